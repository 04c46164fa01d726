"""Synthetic stroke rs-fMRI dataset: raw BIDS + fMRIPrep-shaped derivatives + lesion masks.

All participants are simulated in a CANONICAL space where the lesion is in the left
hemisphere; right-lesioned participants are then mirrored left-right (about world x = 0,
on grids that are symmetric about x = 0) before writing. The planted truth is returned as
:class:`GroundTruth` and written to ``<out_dir>/code/groundtruth.json``.

Choices (documented for users of the demo):

- BOLD grid: RAS+, ``resolution`` mm (default 4), even number of columns centred on x = 0,
  box about [-94, 94] x [-130, 98] x [-76, 116] mm (fMRIPrep-like, origin off the 3 mm SPM
  lattice). No ``res-`` entity: fMRIPrep omits it for the native BOLD resolution.
- Brain mask: nilearn's MNI152 2009a (symmetric) mask, linearly resampled and thresholded,
  then made exactly symmetric; background voxels of the BOLD are 0 (``SkullStripped``).
- Lesion masks: a grid of half the BOLD voxel size with an odd number of columns, so every
  BOLD voxel centre is a lesion-grid centre; written per participant (no session), in
  ``derivatives/lesions``; the last participant has none (its lesion_side is still given).
- Confounds: fMRIPrep >= 21 column names; ``white_matter``, ``csf`` and the six motion
  columns are exactly the series added to the BOLD; ``global_signal`` and ``dvars`` are
  computed from the written BOLD; ``std_dvars`` is DVARS over its steady-state mean (an
  approximation of fMRIPrep's); CompCor and cosine columns are zero in dummy rows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bids_app.demo import GroundTruth, ParticipantTruth, RunTruth
from bids_app.demo import _layout as layout
from bids_app.demo import _signals as sig

LOGGER = logging.getLogger("strokedfc.demo")

#: Canonical (lesion-left) planted regions: name -> (centre MNI mm, radius mm).
REGIONS = {
    "seed": ((-38.0, -22.0, 56.0), 10.0),
    "coupled_all": ((-40.0, -60.0, 40.0), 10.0),
    "state_a": ((38.0, -22.0, 56.0), 10.0),
    "state_b": ((10.0, 40.0, -10.0), 10.0),
    "group": ((50.0, -60.0, 30.0), 10.0),
}
COUPLING_GROUP_SEVERE = 0.1
SEVERE_MAX_FMA = 20
LESION_CENTRE = (-25.0, -5.0, 10.0)
SPIKE_MM = 3.0


def symmetric_grid(
    resolution: float, y0: float, z0: float, *, odd: bool = False
) -> tuple[tuple, np.ndarray]:
    """RAS+ grid whose columns are centred on x = 0 (exact L-R flips by reversing axis 0).

    Covers about x in [-96, 96], y in [y0, y0 + 228], z in [z0, z0 + 190] mm (an
    fMRIPrep-like MNI box whose origin is off the 3 mm SPM lattice). With ``odd`` the
    number of columns is odd (a column at x = 0), so that the BOLD grid's x centres
    (``(2i + 1) * r / 2``) fall exactly on an odd grid of half its voxel size.
    """
    nx = 2 * max(1, round(96.0 / resolution)) + int(odd)
    shape = (nx, int(np.ceil(228.0 / resolution)) + 1, int(np.ceil(190.0 / resolution)) + 1)
    affine = np.diag([resolution, resolution, resolution, 1.0])
    affine[:3, 3] = [-(nx - 1) / 2.0 * resolution, y0, z0]
    return shape, affine


def grid_coords(shape: tuple, affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of every voxel centre, ``shape + (3,)``."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def brain_mask(shape: tuple, affine: np.ndarray) -> np.ndarray:
    """nilearn's MNI152 (2009a symmetric) brain mask on the grid, made exactly symmetric.

    Falls back to an ellipsoid when the template cannot be loaded.
    """
    coords = grid_coords(shape, affine)
    try:
        from nilearn.datasets import load_mni152_brain_mask
        from scipy.ndimage import map_coordinates

        template = load_mni152_brain_mask(resolution=1)
        vox = (coords - template.affine[:3, 3]) @ np.linalg.inv(template.affine[:3, :3]).T
        values = map_coordinates(
            np.asarray(template.dataobj, dtype=np.float32), np.moveaxis(vox, -1, 0), order=1
        )
        mask = values > 0.5
    except Exception:  # noqa: BLE001 - offline/old nilearn: documented fallback
        LOGGER.warning("MNI152 brain mask unavailable; using an ellipsoid")
        radii = np.array([68.0, 86.0, 70.0])
        mask = (((coords - [0.0, -18.0, 15.0]) / radii) ** 2).sum(axis=-1) <= 1.0
    return mask | mask[::-1]


def ball(coords: np.ndarray, centre, radii) -> np.ndarray:
    """Voxels of ``coords`` inside an axis-aligned ellipsoid (a sphere for scalar radii).

    The voxel nearest the centre is always included, so coarse grids never miss a region.
    """
    scaled = (coords - np.asarray(centre)) / np.asarray(radii, dtype=float)
    dist = (scaled**2).sum(axis=-1)
    inside = dist <= 1.0
    inside.flat[int(np.argmin(dist))] = True
    return inside


def sample_nearest(volume: np.ndarray, affine: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Values of ``volume`` at the voxels nearest to world ``coords`` (0 outside)."""
    vox = np.rint((coords - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T).astype(int)
    inside = ((vox >= 0) & (vox < volume.shape)).all(axis=1)
    out = np.zeros(len(coords), dtype=volume.dtype)
    out[inside] = volume[tuple(vox[inside].T)]
    return out


def _plan_participants(rng: np.random.Generator, n: int) -> list[dict]:
    """Demographics, severity, lesion side and lesion geometry of each participant."""
    width = max(2, len(str(n)))
    severe = rng.permutation(n) < (n + 1) // 2
    right = rng.permutation(n) < n // 2
    high_motion = int(rng.integers(max(n - 1, 1)))
    plans = []
    for i in range(n):
        fma = int(rng.integers(0, SEVERE_MAX_FMA + 1) if severe[i] else rng.integers(21, 67))
        side_text = rng.choice(["R", "R", "right", "Right"] if right[i] else ["L", "L", "left"])
        jitter = rng.normal(0.0, 3.0, 3)
        centre = np.add(LESION_CENTRE, jitter)
        centre[0] = min(centre[0], -15.0)
        radius = float(rng.uniform(6.0, 12.0))
        plans.append(
            {
                "participant_id": f"sub-{i + 1:0{width}d}",
                "ul_fma": fma,
                "age": int(np.clip(np.rint(rng.normal(55.0, 10.0)), 25, 90)),
                "sex": str(rng.choice(["M", "F"])),
                "illness_duration": int(rng.integers(3, 25)),
                "lesion_side": str(side_text),
                "right": bool(right[i]),
                "severe": bool(severe[i]),
                "high_motion": i == high_motion,
                "lesion_centre": tuple(float(round(c, 2)) for c in centre),
                "lesion_radius": round(radius, 2),
                "lesion_radii": tuple(radius * rng.uniform(0.85, 1.15, 3)),
                "has_mask": i < n - 1 or n == 1,
            }
        )
    return plans


def _check_args(**values) -> None:
    """Validate :func:`generate_dataset` arguments (ValueError naming the parameter)."""
    limits = {
        "n_participants": (1, 999),
        "n_sessions": (0, 99),
        "n_runs": (1, 99),
        "n_dummy": (0, 1000),
    }
    for name, (low, high) in limits.items():
        if not low <= values[name] <= high:
            raise ValueError(f"{name} must be in [{low}, {high}], got {values[name]}")
    if values["n_volumes"] - values["n_dummy"] < 10:
        raise ValueError(f"n_volumes must exceed n_dummy by >= 10, got {values['n_volumes']}")
    if not 0 < values["tr"] <= 20:
        raise ValueError(f"tr must be in (0, 20] seconds, got {values['tr']}")
    if not 1.0 <= values["resolution"] <= 12.0:
        raise ValueError(f"resolution must be in [1, 12] mm, got {values['resolution']}")
    if not 0 <= values["effect_size"] <= 1 - COUPLING_GROUP_SEVERE - 0.05:
        raise ValueError(f"effect_size must be in [0, 0.85], got {values['effect_size']}")
    if values["lesion_mask_style"] not in ("derivative", "atlas"):
        style = values["lesion_mask_style"]
        raise ValueError(f"lesion_mask_style must be 'derivative' or 'atlas', got {style!r}")


def generate_dataset(
    out_dir: str | Path,
    *,
    n_participants: int = 12,
    n_volumes: int = 240,
    tr: float = 2.0,
    resolution: float = 4.0,
    n_sessions: int = 0,
    n_runs: int = 1,
    n_dummy: int = 4,
    random_seed: int = 0,
    space: str = "MNI152NLin2009cAsym",
    effect_size: float = 0.6,
    lesion_mask_style: str = "derivative",
    overwrite: bool = False,
) -> GroundTruth:
    """Write a synthetic stroke rs-fMRI BIDS dataset with fMRIPrep-shaped derivatives.

    Parameters
    ----------
    out_dir : str or Path
        Dataset root; must be empty or absent (or a previous demo with ``overwrite``).
    n_participants, n_volumes, n_sessions, n_runs, n_dummy : int
        Participants, volumes per run (dummies included), sessions (0: no ``ses-``
        entity), runs per session (1: no ``run-`` entity) and non-steady-state volumes.
    tr : float
        Repetition time in seconds.
    resolution : float
        Voxel size (mm) of the BOLD grid; lesion masks use half of it.
    random_seed : int
        Seed of the single ``numpy.random.Generator``; same seed, identical bytes.
    space : str
        Template name used in the ``space-`` entity of the BOLD derivatives.
    effect_size : float
        Seed coupling of the group region in mild/moderate minus that in severe.
    lesion_mask_style : {"derivative", "atlas"}
        ``label-lesion_mask`` (BIDS derivative) or ATLAS R2.0 ``label-L_desc-T1lesion``.
    overwrite : bool
        Replace ``out_dir`` if it holds a previous demo dataset.

    Returns
    -------
    GroundTruth
        The planted truth, also written to ``out_dir/code/groundtruth.json``.
    """
    _check_args(**{k: v for k, v in locals().items() if k not in ("out_dir", "space")})
    out_dir = Path(out_dir)
    layout.prepare_out_dir(out_dir, overwrite)
    rng = np.random.default_rng(random_seed)
    shape, affine = symmetric_grid(resolution, -130.0, -76.0)
    les_shape, les_aff = symmetric_grid(resolution / 2.0, -131.0, -77.0, odd=True)
    mask = brain_mask(shape, affine)
    index = np.nonzero(mask)
    coords = grid_coords(shape, affine)[index]
    les_coords = grid_coords(les_shape, les_aff)
    regions = {name: ball(coords, c, r) for name, (c, r) in REGIONS.items()}
    space_info = {"shape": shape, "resolution": resolution, "index": index, "coords": coords,
                  "regions": regions}  # fmt: skip
    sessions = [f"{k + 1:02d}" for k in range(n_sessions)] or [None]
    runs = list(range(1, n_runs + 1)) if n_runs > 1 else [None]
    plans = _plan_participants(rng, n_participants)
    truths = []
    for plan in plans:
        sub, centre, radii = plan["participant_id"], plan["lesion_centre"], plan["lesion_radii"]
        LOGGER.info("simulating %s", sub)
        lesion_mask = ball(les_coords, centre, radii).astype(np.uint8)
        lesion_bold = sample_nearest(lesion_mask, les_aff, coords) > 0
        lesion_mask = lesion_mask[::-1] if plan["right"] else lesion_mask
        mask_path = (
            layout.lesion_path(out_dir, sub, lesion_mask_style) if plan["has_mask"] else None
        )
        if mask_path is not None:
            layout.write_nifti(mask_path, lesion_mask, les_aff)
        rho_g = COUPLING_GROUP_SEVERE + (0.0 if plan["severe"] else effect_size)
        run_truths = []
        for ses in sessions:
            for run in runs:
                states = sig.state_sequence(rng, n_volumes - n_dummy)
                bold, motion, tissue = sig.simulate_run(
                    rng, space=space_info, lesion=lesion_bold,
                    states=np.concatenate([[states[0]] * n_dummy, states]),
                    group_coupling=rho_g, n_volumes=n_volumes, n_dummy=n_dummy, tr=tr,
                    spike_mm=SPIKE_MM if plan["high_motion"] else 0.0,
                )  # fmt: skip
                if plan["right"]:
                    bold, motion = bold[::-1], motion * sig.MIRROR_SIGN + 0.0
                glob, dvars = sig.global_and_dvars(bold, mask)
                confounds = sig.confounds_table(
                    rng, motion=np.round(motion, 8) + 0.0, tissue=tissue, global_signal=glob,
                    dvars=dvars, tr=tr, n_dummy=n_dummy,
                )  # fmt: skip
                layout.write_run(
                    out_dir, rng, prefix=layout.bids_prefix(sub, ses, run), bold=bold,
                    affine=affine, mask=mask, confounds=confounds, space=space, tr=tr,
                )  # fmt: skip
                max_trans = float(np.abs(motion[:, :3]).max())
                run_truths.append(RunTruth(ses, run, tuple(str(s) for s in states),
                                           plan["high_motion"], round(max_trans, 4)))  # fmt: skip
        sign = -1.0 if plan["right"] else 1.0
        truths.append(
            ParticipantTruth(
                participant_id=sub, lesion_side="R" if plan["right"] else "L",
                severity="severe" if plan["severe"] else "mild_moderate", ul_fma=plan["ul_fma"],
                lesion_centre_canonical=centre,
                lesion_centre_written=(sign * centre[0], centre[1], centre[2]),
                lesion_radius_mm=plan["lesion_radius"],
                lesion_mask=None if mask_path is None else str(mask_path.relative_to(out_dir)),
                group_coupling=round(rho_g, 6), runs=tuple(run_truths),
            )
        )  # fmt: skip
    layout.write_static(out_dir, plans, tr=tr)
    truth = _ground_truth(plans, truths, locals_=locals())
    layout.write_json(out_dir / "code" / "groundtruth.json", truth.to_dict())
    return truth


def _ground_truth(plans: list[dict], truths: list, *, locals_: dict) -> GroundTruth:
    """Assemble :class:`GroundTruth` from the plans and the per-participant truths."""
    regions = {}
    for name, (centre, radius) in REGIONS.items():
        regions[name] = {"centre_mni": list(centre), "radius_mm": radius}
    regions["seed"]["coupling"] = 1.0
    regions["coupled_all"]["coupling"] = sig.COUPLING_ALL
    regions["state_a"]["coupling"] = {"A": sig.COUPLING_STATE, "B": 0.0}
    regions["state_b"]["coupling"] = {"A": 0.0, "B": sig.COUPLING_STATE}
    effect = locals_["effect_size"]
    regions["group"]["coupling"] = {
        "severe": COUPLING_GROUP_SEVERE,
        "mild_moderate": round(COUPLING_GROUP_SEVERE + effect, 6),
    }
    settings = {k: locals_[k] for k in ("n_volumes", "tr", "resolution", "n_dummy", "random_seed",
                                        "space", "lesion_mask_style")}  # fmt: skip
    settings.update(
        bold_grid={"shape": list(locals_["shape"]), "affine": locals_["affine"].tolist()},
        lesion_grid={
            "shape": list(locals_["les_shape"]),
            "affine": locals_["les_aff"].tolist(),
        },
        network_amplitude=sig.NETWORK_AMPLITUDE,
        states_exclude_dummy_volumes=True,
    )
    return GroundTruth(
        regions=regions,
        right_lesioned=tuple(p["participant_id"] for p in plans if p["right"]),
        participants=tuple(truths),
        group_effect={
            "region": "group",
            "effect_size": effect,
            "stronger_in": "mild_moderate",
            "severe_if_ul_fma_at_most": SEVERE_MAX_FMA,
        },  # fmt: skip
        nuisance={
            "confound_columns": ["white_matter", "csf", *sig.MOTION_NAMES],
            "linear_drift": True,
            "non_steady_state_volumes": locals_["n_dummy"],
            "high_motion": [p["participant_id"] for p in plans if p["high_motion"]],
            "spike_mm": SPIKE_MM,
        },
        settings=settings,
    )
