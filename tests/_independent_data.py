"""A tiny raw-BIDS + fMRIPrep-derivatives generator with planted signals (not a test module).

Written independently of :mod:`bids_app.demo`: it knows nothing of the app but fMRIPrep's
file names. Every planted quantity (coupling, nuisance, motion, lesion) is returned as ground
truth so that tests can compare the app's outputs against it.

Layout written under ``root``::

    bids/dataset_description.json, participants.tsv
    bids/derivatives/fmriprep/dataset_description.json
    bids/derivatives/fmriprep/sub-XX/func/sub-XX_task-rest_space-<sp>_res-<r>_desc-preproc_bold
        .nii.gz + .json, ..._desc-brain_mask.nii.gz, sub-XX_task-rest_desc-confounds_timeseries.tsv
    lesions/dataset_description.json
    lesions/sub-XX/anat/sub-XX_space-<sp>_res-<r>_label-lesion_mask.nii.gz
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

SPACE = "MNI152NLin2009cAsym"
#: fMRIPrep's MNI152NLin2009cAsym res-2 grid.
RES2_SHAPE = (97, 115, 97)
RES2_AFFINE = np.array(
    [[2.0, 0, 0, -96.0], [0, 2.0, 0, -132.0], [0, 0, 2.0, -78.0], [0, 0, 0, 1.0]]
)
#: A 4 mm LAS grid (x decreases with the voxel index) with an odd, off-grid origin.
LAS4_SHAPE = (46, 56, 46)
LAS4_AFFINE = np.array(
    [[-4.0, 0, 0, 90.5], [0, 4.0, 0, -126.3], [0, 0, 4.0, -72.7], [0, 0, 0, 1.0]]
)

SEED_LEFT = (-38.0, -22.0, 56.0)
SEED_RIGHT = (38.0, -22.0, 56.0)
TARGET_RIGHT = (40.0, -60.0, 40.0)
TARGET_LEFT = (-40.0, -60.0, 40.0)
#: Brain: an ellipsoid (centre, semi-axes in mm) holding the seeds and targets.
BRAIN_CENTRE = (0.0, -18.0, 18.0)
BRAIN_AXES = (72.0, 98.0, 78.0)
MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


@dataclass
class SubjectSpec:
    """What to plant in one participant.

    ``table_side`` goes into participants.tsv; ``lesion_centre`` (world mm) and
    ``lesion_radius`` define a spherical lesion mask (None: no mask). ``coupling`` plants a
    shared signal in spheres at ``coupling_sites``; ``nuisance_weight`` adds the
    ``white_matter`` column times this weight to every brain voxel; ``spike_mm`` adds a
    translation spike (``trans_y``) at volume ``spike_volume``. ``extra["non_steady"]`` flags
    that many initial volumes with ``non_steady_state_outlierXX`` columns.
    """

    label: str
    table_side: str = "n/a"
    lesion_centre: tuple | None = None
    lesion_radius: float = 10.0
    coupling: bool = False
    coupling_sites: tuple = (SEED_RIGHT, TARGET_RIGHT)
    coupling_radius: float = 10.0
    nuisance_weight: float = 0.0
    spike_mm: float = 0.0
    spike_volume: int = 20
    extra: dict = field(default_factory=dict)


def world_coords(shape, affine) -> np.ndarray:
    """World (x, y, z) of every voxel centre, shape ``shape + (3,)``."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def sphere(shape, affine, centre, radius) -> np.ndarray:
    """Voxels whose centre lies within ``radius`` mm of ``centre``."""
    xyz = world_coords(shape, affine)
    return np.linalg.norm(xyz - np.asarray(centre, dtype=float), axis=-1) <= radius


def brain_mask(shape, affine) -> np.ndarray:
    """The ellipsoidal brain."""
    xyz = world_coords(shape, affine)
    rel = (xyz - np.asarray(BRAIN_CENTRE)) / np.asarray(BRAIN_AXES)
    return np.sum(rel**2, axis=-1) <= 1.0


def band_signal(n: int, tr: float, rng, freqs=(0.02, 0.08), n_sines: int = 6) -> np.ndarray:
    """Unit-variance sum of sinusoids with random frequencies in ``freqs`` (Hz)."""
    t = np.arange(n) * tr
    f = rng.uniform(*freqs, size=n_sines)
    phase = rng.uniform(0, 2 * np.pi, size=n_sines)
    x = np.sin(2 * np.pi * f[:, None] * t[None, :] + phase[:, None]).sum(axis=0)
    x = x - x.mean()
    return x / x.std()


def motion_table(n: int, rng, spike_mm: float, spike_volume: int) -> pd.DataFrame:
    """Six rigid-body parameters (mm, radians) as a small random walk, with an optional spike."""
    walk = np.cumsum(rng.normal(scale=0.01, size=(n, 6)), axis=0)
    walk[:, 3:] *= 0.002  # radians
    if spike_mm:
        walk[spike_volume, 1] += spike_mm
    return pd.DataFrame(walk, columns=list(MOTION))


def confounds_table(motion: pd.DataFrame, wm: np.ndarray, csf: np.ndarray) -> pd.DataFrame:
    """fMRIPrep-style confounds: 24 motion expansions, WM, CSF, GS, FD (first-row NaNs)."""
    cols = {}
    for name in MOTION:
        x = motion[name].to_numpy()
        d = np.r_[np.nan, np.diff(x)]
        cols[name] = x
        cols[f"{name}_derivative1"] = d
        cols[f"{name}_power2"] = x**2
        cols[f"{name}_derivative1_power2"] = d**2
    cols["white_matter"] = wm
    cols["csf"] = csf
    cols["global_signal"] = 0.5 * wm + 0.5 * csf
    cols["framewise_displacement"] = power_fd(motion)
    return pd.DataFrame(cols)


def power_fd(motion: pd.DataFrame) -> np.ndarray:
    """Power et al. (2012) FD (50 mm head radius), NaN in the first row."""
    d = np.abs(np.diff(motion[list(MOTION)].to_numpy(), axis=0))
    return np.r_[np.nan, d[:, :3].sum(axis=1) + 50.0 * d[:, 3:].sum(axis=1)]


def _save(data, affine, path: Path, *, tr: float | None = None, dtype=np.float32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(data).astype(dtype), affine)
    img.header.set_xyzt_units("mm", "sec")
    if tr is not None:
        img.header.set_zooms(tuple(img.header.get_zooms()[:3]) + (tr,))
    nib.save(img, str(path))
    return path


def _json(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))
    return path


def write_dataset(
    root: Path,
    subjects: list[SubjectSpec],
    *,
    shape=LAS4_SHAPE,
    affine=LAS4_AFFINE,
    n_volumes: int = 80,
    tr: float = 2.0,
    res: str = "2",
    noise: float = 1.0,
    coupling_amplitude: float = 1.5,
    seed: int = 7,
) -> dict:
    """Write the dataset; return the ground truth.

    Returns
    -------
    dict
        ``bids``, ``fmriprep``, ``lesions`` (paths) and ``subjects``: label -> dict with
        ``bold``, ``mask``, ``confounds``, ``bold_json``, ``lesion`` (paths or None),
        ``confounds_table`` (DataFrame), ``coupling`` (signal or None), ``lesion_voxels``,
        ``voxel_volume`` (mm^3) and ``spec``.
    """
    root = Path(root)
    bids, fmriprep, lesions = root / "bids", root / "bids/derivatives/fmriprep", root / "lesions"
    rng = np.random.default_rng(seed)
    affine = np.asarray(affine, dtype=float)
    voxel_volume = abs(float(np.linalg.det(affine[:3, :3])))
    _json(bids / "dataset_description.json", {"Name": "indep", "BIDSVersion": "1.9.0"})
    _json(
        fmriprep / "dataset_description.json",
        {
            "Name": "fMRIPrep - fMRI PREProcessing workflow",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.1"}],
        },
    )
    _json(
        lesions / "dataset_description.json",
        {
            "Name": "lesion masks",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "manual"}],
        },
    )
    rows = [
        {"participant_id": f"sub-{s.label}", "lesion_side": s.table_side, "age": 60}
        for s in subjects
    ]
    pd.DataFrame(rows).to_csv(bids / "participants.tsv", sep="\t", index=False)
    brain = brain_mask(shape, affine)
    truth = {"bids": bids, "fmriprep": fmriprep, "lesions": lesions, "subjects": {}}
    for spec in subjects:
        truth["subjects"][spec.label] = _write_subject(
            spec, fmriprep, lesions, brain, affine, n_volumes, tr, res, noise,
            coupling_amplitude, rng,
        )  # fmt: skip
        truth["subjects"][spec.label]["voxel_volume"] = voxel_volume
    return truth


def _write_subject(spec, fmriprep, lesions, brain, affine, n, tr, res, noise, amp, rng) -> dict:
    shape = brain.shape
    sub = f"sub-{spec.label}"
    func = fmriprep / sub / "func"
    stem = f"{sub}_task-rest_space-{SPACE}_res-{res}"
    wm = band_signal(n, tr, rng, freqs=(0.015, 0.09))
    csf = band_signal(n, tr, rng, freqs=(0.015, 0.09))
    motion = motion_table(n, rng, spec.spike_mm, spec.spike_volume)
    table = confounds_table(motion, 400.0 + 10.0 * wm, 900.0 + 10.0 * csf)
    for k in range(int(spec.extra.get("non_steady", 0))):  # fMRIPrep's one-hot outlier columns
        table[f"non_steady_state_outlier{k:02d}"] = np.eye(n)[k]

    data = np.zeros(shape + (n,), dtype=np.float32)
    nb = int(brain.sum())
    series = 100.0 + noise * rng.standard_normal((nb, n), dtype=np.float32)
    if spec.nuisance_weight:
        wm_voxel = (table["white_matter"].to_numpy() - 400.0).astype(np.float32)
        series += np.float32(spec.nuisance_weight) * wm_voxel[None, :]
    data[brain] = series
    coupling = None
    if spec.coupling:
        coupling = band_signal(n, tr, rng, freqs=(0.02, 0.08))
        for centre in spec.coupling_sites:
            region = sphere(shape, affine, centre, spec.coupling_radius) & brain
            data[region] += (amp * coupling[None, :]).astype(np.float32)

    out = {"spec": spec, "confounds_table": table, "coupling": coupling}
    out["bold"] = _save(data, affine, func / f"{stem}_desc-preproc_bold.nii.gz", tr=tr)
    out["bold_json"] = _json(
        func / f"{stem}_desc-preproc_bold.json",
        {"RepetitionTime": tr, "SkullStripped": False, "TaskName": "rest"},
    )
    out["mask"] = _save(brain, affine, func / f"{stem}_desc-brain_mask.nii.gz", dtype=np.uint8)
    out["confounds"] = func / f"{sub}_task-rest_desc-confounds_timeseries.tsv"
    table.to_csv(out["confounds"], sep="\t", index=False, na_rep="n/a")
    out["lesion"], out["lesion_voxels"] = None, 0
    if spec.lesion_centre is not None:
        lesion = sphere(shape, affine, spec.lesion_centre, spec.lesion_radius)
        path = lesions / sub / "anat" / f"{sub}_space-{SPACE}_res-{res}_label-lesion_mask.nii.gz"
        out["lesion"] = _save(lesion, affine, path, dtype=np.uint8)
        out["lesion_voxels"] = int(lesion.sum())
    return out
