"""Plan one run before any heavy work: every check that can fail on bad input happens here.

:func:`plan_run` reads only headers, 3D masks and the confounds table, so that bad input is
reported (one clear line, nothing written) before the nipype workflow starts. It resolves
the dummy scans, the confound columns, the motion QC, the lesion side and volume, the
output grid, the (mirrored) brain and lesion masks and the seed, and saves the masks on the
output grid into the work directory for the workflow's nodes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bids_app.config import ParticipantConfig
from bids_app.errors import ConfigError, InputError
from bids_app.inputs import RunInputs, check_run_lengths, reconcile_lesion_side

LOG = logging.getLogger("strokedfc")

MOTION_COLUMNS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


@dataclass
class RunPlan:
    """Everything decided about one run before processing (JSON-serialisable via to_dict)."""

    subject: str
    session: str | None
    prefix: str
    space_entity: str
    bold: str
    confounds_file: str
    repetition_time: float
    n_volumes: int
    dummy_scans: int
    confound_columns: list[str]
    lesion_side: str
    mirrored: bool
    lesion_volume_ml: float | None
    lesion_file: str | None
    seed_voxels: int
    seed_lesion_overlap: int
    qc: dict
    brain_mask_file: str
    seed_mask_file: str
    lesion_mask_file: str | None
    confounds_tsv: str
    motion_tsv: str
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return a plain dictionary."""
        return asdict(self)


def read_tsv(path: Path):
    """Read a TSV file, with a clear error naming the file."""
    import pandas as pd

    try:
        return pd.read_csv(path, sep="\t")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read the table ({exc})", path) from None


def load_image(path: Path):
    """Load a NIfTI image, with a clear error naming the file."""
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for broken files
        raise InputError(f"unreadable NIfTI ({exc})", path) from None


def load_mask(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load a 3D mask (any non-zero, finite value is inside) and its affine."""
    img = load_image(path)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated files fail here
        raise InputError(f"unreadable NIfTI data ({exc})", path) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"expected a 3D mask, got shape {data.shape}", path)
    threshold = 0.5 if data.dtype.kind == "f" else 0
    return np.nan_to_num(data.astype(np.float32)) > threshold, img.affine


def _lesion_on_template(run: RunInputs, lesion: np.ndarray, affine: np.ndarray):
    """Return the lesion mask in template world coordinates (carrying T1w masks with the xfm)."""
    if run.lesion_space != "T1w":
        return lesion, affine
    import nibabel as nib
    import nitransforms as nt

    ref = load_image(run.mask)
    try:
        xfm = nt.manip.load(str(run.lesion_xfm), fmt="itk")
        moved = nt.resampling.apply(
            xfm, nib.Nifti1Image(lesion.astype(np.float32), affine), reference=ref, order=1
        )
    except Exception as exc:
        raise InputError(
            f"cannot apply the T1w-to-{run.space} transform ({exc})", run.lesion_xfm
        ) from None
    return np.asanyarray(moved.dataobj) > 0.5, ref.affine


def motion_qc(
    confounds, *, path: Path, dummy_scans: int, max_motion: float
) -> tuple[dict, object]:
    """Motion summary of the retained volumes and the motion table for the report."""
    from bids_app.core.qc import is_high_motion, motion_summary

    missing = [c for c in MOTION_COLUMNS if c not in confounds.columns]
    if missing:
        raise InputError(f"confounds table lacks the motion columns {missing}", path)
    keep = MOTION_COLUMNS + [c for c in ["framewise_displacement"] if c in confounds.columns]
    retained = confounds[keep].iloc[dummy_scans:].reset_index(drop=True)
    summary = motion_summary(retained)
    summary["HighMotion"] = bool(is_high_motion(summary, max_motion))
    return summary, retained


def plan_run(
    run: RunInputs,
    *,
    config: ParticipantConfig,
    table_side: str,
    work_dir: Path,
    participants_tsv: Path | None = None,
) -> RunPlan:
    """Check one run and prepare its masks; raise :class:`InputError` on bad input.

    Parameters
    ----------
    run : RunInputs
        Validated inputs of the run (see :func:`bids_app.inputs.collect_participants`).
    config : ParticipantConfig
        Method options.
    table_side : {"L", "R", "n/a"}
        Lesion side from participants.tsv.
    work_dir : Path
        Directory where the masks on the output grid are saved.
    participants_tsv : Path, optional
        Named in the error when the table side contradicts the mask.
    """
    import nibabel as nib

    from bids_app.core.confounds import load_strategy, resolve_dummy_scans, select_confounds
    from bids_app.core.grid import output_grid, resample_mask
    from bids_app.core.lesion import lesion_side, lesion_volume_ml
    from bids_app.core.mirror import mirror_lr
    from bids_app.core.seed import seed_mask, sphere_mask
    from bids_app.outputs import run_prefix, space_label

    warnings: list[str] = []
    confounds = read_tsv(run.confounds)
    try:
        dummy = resolve_dummy_scans(config.dummy_scans, confounds)
        columns = load_strategy(config.confounds)
    except ValueError as exc:
        raise InputError(str(exc), run.confounds) from None
    check_run_lengths(run, dummy_scans=dummy, window_length=config.window_length)
    _check_filter_length(run, n_retained=run.n_volumes - dummy, config=config)
    selected = select_confounds(confounds, columns, path=run.confounds).iloc[dummy:]
    qc, motion = motion_qc(
        confounds, path=run.confounds, dummy_scans=dummy, max_motion=config.max_motion
    )

    shape, affine = output_grid(config.resolution)
    brain_native, brain_affine = load_mask(run.mask)
    brain = resample_mask(brain_native, brain_affine, shape, affine)

    lesion = None
    volume = None
    mask_side = "n/a"
    if run.lesion is not None:
        lesion_native, lesion_affine = load_mask(run.lesion)
        volume = float(lesion_volume_ml(lesion_native, lesion_affine))
        lesion_tpl, tpl_affine = _lesion_on_template(run, lesion_native, lesion_affine)
        mask_side = lesion_side(lesion_tpl, tpl_affine)
        if run.lesion_space not in (None, "T1w", run.space):
            warnings.append(
                f"lesion mask in {run.lesion_space}, BOLD in {run.space}: resampled by world "
                "coordinates (the templates differ slightly)"
            )
        lesion = resample_mask(lesion_tpl, tpl_affine, shape, affine)
    side = reconcile_lesion_side(
        table_side, mask_side, participant=run.subject, path=participants_tsv or run.lesion
    )
    mirrored = side == "R"
    if mirrored:
        brain = mirror_lr(brain, affine)
        lesion = None if lesion is None else mirror_lr(lesion, affine)

    try:
        sphere = sphere_mask(shape, affine, config.seed_mni, config.seed_radius)
    except ValueError as exc:
        raise ConfigError(f"--seed-mni {list(config.seed_mni)}: {exc}") from None
    try:
        seed = seed_mask(sphere, brain, lesion)
    except ValueError as exc:
        raise InputError(f"seed at MNI {list(config.seed_mni)}: {exc}", run.mask) from None
    overlap = int(np.count_nonzero(sphere & brain & lesion)) if lesion is not None else 0

    prefix = run_prefix(run.subject, run.session, run.task, _extra_entities(run.entities))
    out = Path(work_dir) / "plans" / prefix
    out.mkdir(parents=True, exist_ok=True)

    def save(name: str, mask: np.ndarray) -> str:
        path = out / name
        nib.Nifti1Image(mask.astype(np.uint8), affine).to_filename(str(path))
        return str(path)

    confounds_tsv = out / "confounds_selected.tsv"
    selected.to_csv(confounds_tsv, sep="\t", index=False, na_rep="n/a")
    motion_tsv = out / "motion.tsv"
    motion.to_csv(motion_tsv, sep="\t", index=False, na_rep="n/a")
    for message in warnings:
        LOG.warning("sub-%s: %s", run.subject, message)
    return RunPlan(
        subject=run.subject,
        session=run.session,
        prefix=prefix,
        space_entity=space_label(run.space, config.resolution),
        bold=str(run.bold),
        confounds_file=str(run.confounds),
        repetition_time=float(run.repetition_time),
        n_volumes=int(run.n_volumes),
        dummy_scans=int(dummy),
        confound_columns=list(selected.columns),
        lesion_side=side,
        mirrored=mirrored,
        lesion_volume_ml=volume,
        lesion_file=None if run.lesion is None else str(run.lesion),
        seed_voxels=int(seed.sum()),
        seed_lesion_overlap=overlap,
        qc=qc,
        brain_mask_file=save("brain_mask.nii.gz", brain),
        seed_mask_file=save("seed_mask.nii.gz", seed),
        lesion_mask_file=None if lesion is None else save("lesion_mask.nii.gz", lesion),
        confounds_tsv=str(confounds_tsv),
        motion_tsv=str(motion_tsv),
        sources=[str(p) for p in (run.bold, run.mask, run.confounds, run.lesion) if p is not None],
        warnings=warnings,
    )


def _check_filter_length(run: RunInputs, *, n_retained: int, config: ParticipantConfig) -> None:
    """Refuse, before any work, runs the band-pass cannot filter (or a cut-off above Nyquist)."""
    from bids_app.core.signal import min_timepoints

    try:
        needed = min_timepoints(run.repetition_time, config.high_pass, config.low_pass)
    except ValueError as exc:
        raise InputError(f"cannot filter this run: {exc}", run.bold) from None
    if n_retained < needed:
        raise InputError(
            f"{n_retained} volumes after the dummy scans are too few for the band-pass filter "
            f"(needs at least {needed}; shorten --dummy-scans or use --high-pass/--low-pass none)",
            run.bold,
        )


def _extra_entities(entities: dict) -> dict:
    """Entities of the source BOLD other than sub, ses and task (kept in the output names)."""
    return {
        k: v for k, v in entities.items() if k not in ("sub", "ses", "task", "subject", "session")
    }
