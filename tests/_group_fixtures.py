"""Builders of tiny fake PARTICIPANT OUTPUTS for group-level tests (not a test module).

:func:`make_participant_outputs` writes, for each fake subject, files following the
participant-output contract of ``docs/architecture.md``::

    output_dir/sub-XX/func/sub-XX_task-rest[_run-N]_space-<space>_res-<res>_desc-dfc_boldmap.nii.gz
                                                                         ..._desc-dfc_boldmap.json
                                                                         ..._desc-brain_mask.nii.gz
                                                                         ..._label-lesion_mask.nii.gz
    bids_dir/participants.tsv   participant_id, ul_fma, age, sex, illness_duration, lesion_side

and returns a :class:`FakeStudy` holding the exact arrays written (the ground truth).

The dFC maps (float32, 0 outside each subject's brain mask) are, per window ``w``::

    z = noise * N(0, 1)                                   # i.i.d. per voxel and window
        + fingerprint * P_subject                         # fixed random pattern per subject
        + group_effect * label * effect_region            # label 1 = severe (score <= 20)
        + signal(...)                                     # optional user-supplied term

Example
-------
>>> study = make_participant_outputs(tmp_path, n_subjects=6, shape=(5, 6, 7), n_windows=4,
...                                   rng=0, group_effect=2.0, high_motion=[0, 0, 1, 0, 0, 0])
>>> cohort = load_cohort(study.bids_dir, study.output_dir)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

SPACE = "MNI152NLin2009cAsym"
SEVERE_MAX = 20.0


@dataclass
class FakeStudy:
    """What :func:`make_participant_outputs` wrote (ground truth for tests).

    Attributes
    ----------
    bids_dir, output_dir : Path
    subjects : list of str
        Labels without ``sub-`` of subjects WITH outputs, e.g. ``["01", "02"]``.
    scores : dict
        subject -> ul_fma (NaN when written as ``n/a``).
    labels : dict
        subject -> 1 (severe, score <= 20) / 0 (mild/moderate) / -1 (no score).
    shape : tuple ; affine : ndarray
    brain_masks : dict
        subject -> 3D bool brain mask (same for all runs of a subject).
    lesion_masks : dict
        subject -> 3D bool lesion mask (only subjects with a lesion file).
    maps : dict
        run_key -> 4D float32 (X, Y, Z, n_windows) dFC maps exactly as written.
    run_keys : dict
        subject -> list of run_key (``<p>`` prefixes), sorted.
    fingerprints : dict
        subject -> 3D float pattern P_subject (before scaling by ``fingerprint``).
    effect_region : ndarray
        3D bool region of the planted group effect.
    high_motion : dict
        subject -> bool written as HighMotion (same for all runs unless ``high_motion_runs``).
    """

    bids_dir: Path
    output_dir: Path
    subjects: list[str]
    scores: dict
    labels: dict
    shape: tuple
    affine: np.ndarray
    brain_masks: dict = field(default_factory=dict)
    lesion_masks: dict = field(default_factory=dict)
    maps: dict = field(default_factory=dict)
    run_keys: dict = field(default_factory=dict)
    fingerprints: dict = field(default_factory=dict)
    effect_region: np.ndarray | None = None
    high_motion: dict = field(default_factory=dict)

    def func_dir(self, subject: str) -> Path:
        return self.output_dir / f"sub-{subject}" / "func"

    def path(self, run_key: str, suffix: str = "desc-dfc_boldmap.nii.gz", res: str = "3") -> Path:
        """Path of one output file of ``run_key`` (suffix after ``_space-.._res-.._``)."""
        subject = run_key.split("_")[0].removeprefix("sub-")
        return self.func_dir(subject) / f"{run_key}_space-{SPACE}_res-{res}_{suffix}"


def grid_affine(shape, zooms: float = 3.0) -> np.ndarray:
    """RAS affine with isotropic ``zooms`` and the grid centred on (0, 0, 0)."""
    aff = np.diag([zooms, zooms, zooms, 1.0])
    aff[:3, 3] = -zooms * (np.asarray(shape) - 1) / 2.0
    return aff


def ellipsoid(shape, scale: float = 1.0) -> np.ndarray:
    """Bool ellipsoid touching the grid's faces when ``scale`` = 1 (a fake brain mask)."""
    axes = [np.linspace(-1, 1, n) if n > 1 else np.zeros(1) for n in shape]
    xx, yy, zz = np.meshgrid(*axes, indexing="ij")
    return (xx**2 + yy**2 + zz**2) <= (1.05 * scale) ** 2


def _per_subject(value, n: int, name: str) -> list:
    if value is None or np.isscalar(value):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name} must have {n} entries, got {len(value)}")
    return value


def _save(img_data: np.ndarray, aff: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(img_data, aff), path)


def _sidecar(n_windows: int, high_motion: bool, lesion: np.ndarray | None, rng) -> dict:
    volume = float(lesion.sum() * 27.0 / 1000.0) if lesion is not None else 0.0
    return {
        "RepetitionTime": 2.0,
        "WindowLength": 30,
        "WindowStep": 2,
        "WindowShape": "hamming",
        "NumberOfWindows": int(n_windows),
        "WindowOnsets": [2 * k for k in range(n_windows)],
        "SeedMNI": [-38, -22, 56],
        "SeedRadius": 6.0,
        "SeedVoxels": 7,
        "Mirrored": True,
        "LesionSide": "L" if lesion is not None else "n/a",
        "DummyScans": 0,
        "Confounds": "24P",
        "HighPass": 0.01,
        "LowPass": 0.08,
        "SmoothingFWHM": 6.0,
        "MaxTranslation": float(rng.uniform(0.1, 4.0 if high_motion else 1.5)),
        "MaxRotation": float(rng.uniform(0.1, 1.0)),
        "MeanFD": float(rng.uniform(0.05, 0.6 if high_motion else 0.2)),
        "HighMotion": bool(high_motion),
        "LesionVolume": volume,
        "Sources": [],
        "Resolution": 3,
    }


def make_participant_outputs(
    tmp_path: Path,
    n_subjects: int = 8,
    shape: tuple = (9, 11, 10),
    n_windows: int | Sequence[int] = 15,
    *,
    rng: int | np.random.Generator | None = 0,
    scores: Sequence[float] | None = None,
    n_runs: int | Sequence[int] = 1,
    noise: float = 1.0,
    fingerprint: float = 0.0,
    group_effect: float = 0.0,
    effect_region: np.ndarray | None = None,
    signal: Callable | None = None,
    high_motion: Sequence[bool] | None = None,
    lesions: bool | Sequence[bool] = True,
    mask_jitter: bool = True,
    extra_participants: Sequence[str] = (),
    res: str = "3",
    zooms: float = 3.0,
) -> FakeStudy:
    """Write fake participant outputs + participants.tsv under ``tmp_path``.

    Parameters
    ----------
    tmp_path : Path
        ``tmp_path/bids`` and ``tmp_path/out`` are created.
    n_subjects : int
        Subjects with outputs, labelled ``01``, ``02``, ...
    shape : tuple of 3 int
        Output grid.
    n_windows : int or sequence
        Windows per run (one value, or one per subject).
    rng : int or Generator
        Seed / generator of everything random.
    scores : sequence of float, optional
        ul_fma per subject (NaN -> ``n/a`` in participants.tsv). Default alternates severe
        (uniform 4-20) and mild/moderate (uniform 30-60) starting with severe.
    n_runs : int or sequence
        Runs per subject (``_run-1``, ``_run-2``... when > 1, no run entity when 1).
    noise, fingerprint, group_effect : float
        Scales of the terms of the map model (module docstring).
    effect_region : 3D bool array, optional
        Where the group effect is planted; default a box in the grid's first octant.
    signal : callable, optional
        ``signal(subject_index, run_index, label, shape, n_windows, rng)`` -> array
        (X, Y, Z, n_windows) added to the maps.
    high_motion : sequence of bool, optional
        HighMotion per subject (all runs); default all False.
    lesions : bool or sequence of bool
        Write a lesion mask (a small box inside the brain) for all / these subjects.
    mask_jitter : bool
        Remove a random boundary voxel plane fragment per subject so brain masks differ.
    extra_participants : sequence of str
        participant_ids written to participants.tsv WITHOUT outputs (e.g. ``["sub-99"]``).
    res : str ; zooms : float
        The ``res-`` entity and voxel size of the grid.

    Returns
    -------
    FakeStudy
    """
    rng = np.random.default_rng(rng)
    shape = tuple(int(n) for n in shape)
    aff = grid_affine(shape, zooms)
    if scores is None:
        scores = [
            rng.uniform(4, 20) if k % 2 == 0 else rng.uniform(30, 60) for k in range(n_subjects)
        ]
    scores = [float(s) for s in _per_subject(scores, n_subjects, "scores")]
    windows = [int(n) for n in _per_subject(n_windows, n_subjects, "n_windows")]
    runs = [int(n) for n in _per_subject(n_runs, n_subjects, "n_runs")]
    motion = [bool(m) for m in _per_subject(high_motion or False, n_subjects, "high_motion")]
    lesion_flags = [bool(v) for v in _per_subject(lesions, n_subjects, "lesions")]
    if effect_region is None:
        effect_region = np.zeros(shape, dtype=bool)
        effect_region[
            : max(1, shape[0] // 2), : max(1, shape[1] // 2), : max(1, shape[2] // 2)
        ] = 1
    effect_region = np.asarray(effect_region, dtype=bool)

    bids_dir, output_dir = Path(tmp_path) / "bids", Path(tmp_path) / "out"
    bids_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    subjects = [f"{k + 1:02d}" for k in range(n_subjects)]
    study = FakeStudy(
        bids_dir=bids_dir,
        output_dir=output_dir,
        subjects=subjects,
        scores=dict(zip(subjects, scores, strict=True)),
        labels={
            s: (-1 if not np.isfinite(v) else int(v <= SEVERE_MAX))
            for s, v in zip(subjects, scores, strict=True)
        },
        shape=shape,
        affine=aff,
        effect_region=effect_region,
        high_motion=dict(zip(subjects, motion, strict=True)),
    )
    base_mask = ellipsoid(shape)
    for k, sub in enumerate(subjects):
        brain = base_mask.copy()
        if mask_jitter:
            drop = rng.integers(0, shape[0])
            brain[drop, : max(1, shape[1] // 3)] = False
        if not brain.any():
            brain = base_mask.copy()
        study.brain_masks[sub] = brain
        lesion = None
        if lesion_flags[k]:
            lesion = np.zeros(shape, dtype=bool)
            centre = [n // 2 for n in shape]
            lesion[tuple(slice(c, c + 2) for c in centre)] = True
            lesion &= brain
            study.lesion_masks[sub] = lesion
        pattern = rng.normal(size=shape)
        study.fingerprints[sub] = pattern
        label = max(study.labels[sub], 0)
        study.run_keys[sub] = []
        for r in range(runs[k]):
            run_key = f"sub-{sub}_task-rest" + (f"_run-{r + 1}" if runs[k] > 1 else "")
            nw = windows[k]
            z = noise * rng.normal(size=(*shape, nw))
            z += fingerprint * pattern[..., None]
            z += group_effect * label * effect_region[..., None]
            if signal is not None:
                z += np.asarray(signal(k, r, label, shape, nw, rng), dtype=float)
            z = np.where(brain[..., None], z, 0.0).astype(np.float32)
            study.maps[run_key] = z
            study.run_keys[sub].append(run_key)
            _save(z, aff, study.path(run_key, res=res))
            _save(brain.astype(np.uint8), aff, study.path(run_key, "desc-brain_mask.nii.gz", res))
            if lesion is not None:
                _save(
                    lesion.astype(np.uint8),
                    aff,
                    study.path(run_key, "label-lesion_mask.nii.gz", res),
                )
            side = _sidecar(nw, motion[k], lesion, rng)
            json_path = study.path(run_key, "desc-dfc_boldmap.json", res)
            json_path.write_text(json.dumps(side))
    ids = [f"sub-{s}" for s in subjects] + list(extra_participants)
    n_all = len(ids)
    all_scores = scores + [float(rng.uniform(4, 60)) for _ in extra_participants]
    table = pd.DataFrame(
        {
            "participant_id": ids,
            "ul_fma": all_scores,
            "age": np.round(rng.uniform(35, 75, n_all), 1),
            "sex": rng.choice(["M", "F"], n_all),
            "illness_duration": np.round(rng.uniform(1, 24, n_all), 1),
            "lesion_side": rng.choice(["L", "R"], n_all),
        }
    )
    table.to_csv(bids_dir / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    return study
