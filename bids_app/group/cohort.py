"""The group-level cohort: participant outputs + participants.tsv -> one table and run list.

The group level reads only the participant-output contract of ``docs/architecture.md``:
``sub-*/[ses-*/]func/<p>_<sp>_desc-dfc_boldmap.nii.gz`` (+ ``.json`` sidecar),
``<p>_<sp>_desc-brain_mask.nii.gz`` and, when present, ``<p>_<sp>_label-lesion_mask.nii.gz``,
plus ``bids_dir/participants.tsv``. Headers only are read here (no image data).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.errors import InputError

DFC_SUFFIX = "_desc-dfc_boldmap.nii.gz"
_DFC_RE = re.compile(
    r"^(?P<p>sub-(?P<sub>[A-Za-z0-9]+)(?:_[A-Za-z]+-[A-Za-z0-9]+)*?)"
    r"(?:_space-(?P<space>[A-Za-z0-9]+))?(?:_res-(?P<res>[A-Za-z0-9]+))?"
    + re.escape(DFC_SUFFIX)
    + "$"
)
REASON_NO_OUTPUT = "no participant-level output"
REASON_NO_SCORE = "no score"
REASON_HIGH_MOTION = "high motion"


@dataclass(frozen=True)
class RunRecord:
    """One run's participant-level dFC output.

    Attributes
    ----------
    subject : str
        Label without ``sub-`` (e.g. ``"01"``).
    run_key : str
        The ``<p>`` file-name prefix (e.g. ``"sub-01_task-rest_run-1"``).
    dfc_path, mask_path : Path
        The 4D Fisher-z maps and the brain mask on the output grid.
    lesion_path : Path or None
        The mirrored lesion mask, when one exists.
    sidecar : dict
        The dfc JSON sidecar.
    n_windows : int
        Number of windows (4th dimension of the dfc image).
    """

    subject: str
    run_key: str
    dfc_path: Path
    mask_path: Path
    lesion_path: Path | None
    sidecar: dict = field(hash=False, compare=False)
    n_windows: int = 0


@dataclass
class Cohort:
    """Participants, their labels/exclusions, and the runs of the included ones.

    ``table`` has one row per participant (participants.tsv rows and participants with
    outputs): participant_id, subject, score, label (Int64: 1 severe = score <= severe_max,
    0 mild/moderate, <NA> when excluded), group ("SSP"/"MSP", "" without score), included,
    exclusion_reason ("" when included; reasons joined by "; "), every participants.tsv
    column, and LesionVolume, LesionSide (first run), HighMotion (any run), MeanFD (mean
    over runs) from the sidecars.
    """

    table: pd.DataFrame
    runs: list[RunRecord]
    space: str
    resolution: str
    shape: tuple[int, int, int]
    affine: np.ndarray

    def included(self) -> pd.DataFrame:
        """The rows of ``table`` of included participants (a copy)."""
        return self.table[self.table["included"]].reset_index(drop=True)


def _sidecar(path: Path) -> dict:
    side = path.with_name(path.name.replace(".nii.gz", ".json"))
    if not side.is_file():
        return {}
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON sidecar ({err})", side) from err


def _header(path: Path):
    import nibabel as nib

    try:
        return nib.load(path)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise InputError(f"cannot read NIfTI image ({err})", path) from err


def find_runs(output_dir: Path, participant_labels=None) -> list[dict]:
    """Find the dfc outputs under ``output_dir`` (headers only).

    Parameters
    ----------
    output_dir : Path
        The participant-level output directory.
    participant_labels : iterable of str, optional
        Restrict to these labels (with or without ``sub-``).

    Returns
    -------
    list of dict
        Keys: subject, run_key, space, resolution, dfc_path, mask_path, lesion_path,
        sidecar, n_windows, shape, affine; sorted by subject then run_key.
    """
    wanted = None
    if participant_labels:
        wanted = {str(s).removeprefix("sub-") for s in participant_labels}
    found = []
    for path in sorted(Path(output_dir).glob(f"sub-*/**/func/*{DFC_SUFFIX}")):
        match = _DFC_RE.match(path.name)
        if match is None:
            continue
        sub = match["sub"]
        if wanted is not None and sub not in wanted:
            continue
        stem = path.name[: -len(DFC_SUFFIX)]
        mask = path.with_name(f"{stem}_desc-brain_mask.nii.gz")
        if not mask.is_file():
            raise InputError("brain mask of this dFC output is missing", mask)
        lesion = path.with_name(f"{stem}_label-lesion_mask.nii.gz")
        img = _header(path)
        shape = tuple(int(n) for n in img.shape)
        if len(shape) not in (3, 4):
            raise InputError(f"dFC maps must be 4D, got shape {shape}", path)
        found.append(
            {
                "subject": sub,
                "run_key": match["p"],
                "space": match["space"] or "",
                "resolution": match["res"] or "",
                "dfc_path": path,
                "mask_path": mask,
                "lesion_path": lesion if lesion.is_file() else None,
                "sidecar": _sidecar(path),
                "n_windows": shape[3] if len(shape) == 4 else 1,
                "shape": shape[:3],
                "affine": np.asarray(img.affine, dtype=float),
            }
        )
    return sorted(found, key=lambda r: (r["subject"], r["run_key"]))


def _check_grid(runs: list[dict]) -> None:
    first = runs[0]
    for run in runs[1:]:
        same = (
            run["space"] == first["space"]
            and run["resolution"] == first["resolution"]
            and run["shape"] == first["shape"]
            and np.allclose(run["affine"], first["affine"], atol=1e-4)
        )
        if not same:
            raise InputError(
                "participant outputs are on different grids/spaces "
                f"({first['space']} res-{first['resolution']} {first['shape']} for "
                f"{first['dfc_path'].name} vs {run['space']} res-{run['resolution']} "
                f"{run['shape']}); rerun the participant level with one --resolution",
                run["dfc_path"],
            )


def _read_participants(bids_dir: Path, score_column: str) -> pd.DataFrame:
    path = Path(bids_dir) / "participants.tsv"
    if not path.is_file():
        raise InputError("participants.tsv is missing (needed for the clinical scores)", path)
    table = pd.read_csv(path, sep="\t", dtype=str, na_values=["n/a", "N/A", "NA", ""])
    if "participant_id" not in table.columns:
        raise InputError("participants.tsv has no participant_id column", path)
    if score_column not in table.columns:
        raise InputError(
            f"score column {score_column!r} is not in participants.tsv "
            f"(columns: {', '.join(table.columns)})",
            path,
        )
    table["participant_id"] = table["participant_id"].astype(str).str.strip()
    table = table.drop_duplicates("participant_id", keep="first")
    for col in table.columns:
        if col == "participant_id":
            continue
        numeric = pd.to_numeric(table[col], errors="coerce")
        if numeric.notna().sum() == table[col].notna().sum():
            table[col] = numeric.astype(float)
    table[score_column] = pd.to_numeric(table[score_column], errors="coerce").astype(float)
    return table


def _sidecar_summary(runs: list[dict]) -> dict:
    first = runs[0]["sidecar"]
    fds = [r["sidecar"].get("MeanFD") for r in runs]
    fds = [float(v) for v in fds if isinstance(v, int | float)]
    lesion_volume = first.get("LesionVolume")
    return {
        "LesionVolume": float(lesion_volume) if isinstance(lesion_volume, int | float) else np.nan,
        "LesionSide": str(first.get("LesionSide", "n/a")),
        "HighMotion": any(bool(r["sidecar"].get("HighMotion", False)) for r in runs),
        "MeanFD": float(np.mean(fds)) if fds else np.nan,
    }


def load_cohort(
    bids_dir: Path,
    output_dir: Path,
    *,
    score_column: str = "ul_fma",
    severe_max: float = 20.0,
    include_high_motion: bool = False,
    participant_labels=None,
) -> Cohort:
    """Build the group cohort from participant outputs and participants.tsv.

    Parameters
    ----------
    bids_dir : Path
        Raw BIDS root (``participants.tsv`` is read from it).
    output_dir : Path
        Participant-level output directory.
    score_column : str
        participants.tsv column with the clinical score (UL-FMA).
    severe_max : float
        Scores ``<= severe_max`` are labelled severe (1, group "SSP"), others 0 ("MSP").
    include_high_motion : bool
        Keep participants with ``HighMotion`` true in any run.
    participant_labels : iterable of str, optional
        Restrict the cohort to these participants.

    Returns
    -------
    Cohort
    """
    if not np.isfinite(severe_max):
        raise ValueError(f"severe_max must be finite, got {severe_max}")
    runs = find_runs(output_dir, participant_labels)
    if not runs:
        raise InputError(
            "no dFC outputs (*_desc-dfc_boldmap.nii.gz) found; run the participant level first",
            output_dir,
        )
    _check_grid(runs)
    participants = _read_participants(bids_dir, score_column)
    by_sub: dict[str, list[dict]] = {}
    for run in runs:
        by_sub.setdefault(run["subject"], []).append(run)
    ids = [f"sub-{s}" for s in by_sub]
    listed = participants["participant_id"].tolist()
    if participant_labels:
        wanted = {f"sub-{str(s).removeprefix('sub-')}" for s in participant_labels}
        listed = [p for p in listed if p in wanted]
    all_ids = sorted(set(ids) | set(listed))
    table = pd.DataFrame({"participant_id": all_ids})
    table = table.merge(participants, on="participant_id", how="left")
    table.insert(1, "subject", table["participant_id"].str.removeprefix("sub-"))
    summaries = [
        _sidecar_summary(by_sub[s])
        if s in by_sub
        else {"LesionVolume": np.nan, "LesionSide": "n/a", "HighMotion": False, "MeanFD": np.nan}
        for s in table["subject"]
    ]
    for key in ("LesionVolume", "LesionSide", "HighMotion", "MeanFD"):
        table[key] = [s[key] for s in summaries]
    score = table[score_column].astype(float)
    table["score"] = score
    reasons = []
    for sub, value, moving in zip(table["subject"], score, table["HighMotion"], strict=True):
        why = []
        if sub not in by_sub:
            why.append(REASON_NO_OUTPUT)
        if not np.isfinite(value):
            why.append(REASON_NO_SCORE)
        if moving and not include_high_motion:
            why.append(REASON_HIGH_MOTION)
        reasons.append("; ".join(why))
    table["exclusion_reason"] = reasons
    table["included"] = table["exclusion_reason"] == ""
    severe = (score <= severe_max).astype(int)
    table["label"] = pd.array(np.where(table["included"], severe, 0), dtype="Int64")
    table.loc[~table["included"], "label"] = pd.NA
    table["group"] = np.where(np.isfinite(score), np.where(severe == 1, "SSP", "MSP"), "")
    front = ["participant_id", "subject", "score", "label", "group", "included"]
    table = table[
        front
        + ["exclusion_reason"]
        + [c for c in table.columns if c not in front + ["exclusion_reason"]]
    ]
    keep = set(table.loc[table["included"], "subject"])
    records = [
        RunRecord(
            subject=r["subject"],
            run_key=r["run_key"],
            dfc_path=r["dfc_path"],
            mask_path=r["mask_path"],
            lesion_path=r["lesion_path"],
            sidecar=r["sidecar"],
            n_windows=r["n_windows"],
        )
        for r in runs
        if r["subject"] in keep
    ]
    first = runs[0]
    return Cohort(
        table=table.reset_index(drop=True),
        runs=records,
        space=first["space"],
        resolution=first["resolution"],
        shape=first["shape"],
        affine=first["affine"],
    )
