"""Discovery and validation of the participant-level inputs.

With :mod:`bids_app.lesion_inputs` (lesion masks, ``participants.tsv``, lesion side), the
only modules that query BIDS layouts (pybids). It finds, per participant, the fMRIPrep
preprocessed BOLD runs, their brain masks, confounds and sidecars, the lesion mask (and, for
a T1w-space mask, fMRIPrep's T1w-to-template transform), and the lesion side from
``participants.tsv``; and it validates them, raising one-line
:class:`~bids_app.errors.InputError` messages that name the file concerned.

Layouts are in-memory (``database_path=None``, nothing is written into the input folders),
unvalidated, restricted to the requested participants, and the fMRIPrep layout does not
index JSON metadata (sidecars are read directly). The raw-BIDS layout, with metadata, is
built only when needed (RepetitionTime missing from fMRIPrep's sidecar, lesion search).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bids_app.errors import ConfigError, InputError
from bids_app.input_checks import NIFTI_EXTENSIONS, SPACE_PREFERENCE, check_nifti
from bids_app.lesion_inputs import find_lesion, normalise_side, participants_table
from bids_app.lesion_inputs import (  # re-exported: public API of bids_app.inputs
    reconcile_lesion_side as reconcile_lesion_side,
)

_NOT_RUN_ENTITIES = {"space", "res", "den", "desc"}
_RESERVED_FILTERS = {"subject", "task", "space", "desc", "suffix", "extension", "datatype"}


@dataclass(frozen=True)
class RunInputs:
    """Validated inputs of one preprocessed BOLD run.

    ``entities`` maps BIDS short keys (``sub``, ``ses``, ``task``, ``acq``, ``dir``, ``run``,
    ``echo``...) to the labels of the source BOLD file name, in file-name order, without
    ``space``, ``res``, ``den`` and ``desc``: ``"_".join(f"{k}-{v}" ...)`` is the run prefix.
    """

    subject: str
    session: str | None
    task: str
    entities: dict
    bold: Path
    mask: Path
    confounds: Path
    bold_json: Path | None
    space: str
    repetition_time: float
    n_volumes: int
    lesion: Path | None
    lesion_space: str | None
    lesion_xfm: Path | None


@dataclass(frozen=True)
class ParticipantInputs:
    """All runs of one participant and its ``participants.tsv`` row."""

    subject: str
    runs: tuple[RunInputs, ...]
    lesion_side: str
    participant_row: dict


def normalise_label(label: str, *, entity: str = "participant") -> str:
    """Strip an optional ``sub-``/``ses-`` prefix and check the label is alphanumeric.

    Parameters
    ----------
    label : str
        A label such as ``"01"`` or ``"sub-01"``.
    entity : {"participant", "session"}
        Which prefix (``sub-`` or ``ses-``) may be stripped.

    Returns
    -------
    str
        The bare label.

    Raises
    ------
    ConfigError
        If the label is empty or contains anything but ``[A-Za-z0-9]``.
    """
    prefixes = {"participant": "sub-", "subject": "sub-", "session": "ses-"}
    if entity not in prefixes:
        raise ValueError(f"entity must be 'participant' or 'session', got {entity!r}")
    text = str(label)
    bare = text[4:] if text.startswith(prefixes[entity]) else text
    if not re.fullmatch(r"[A-Za-z0-9]+", bare):
        raise ConfigError(f"invalid {entity} label {text!r}: only letters and digits allowed")
    return bare


def _layout(root: Path, subjects: list[str] | None, *, index_metadata: bool):
    """An in-memory, unvalidated pybids layout restricted to ``subjects``."""
    from bids import BIDSLayout, BIDSLayoutIndexer

    ignore = [re.compile(r"^/(code|models|sourcedata|stimuli|derivatives|figures|logs?|work)")]
    if subjects:
        alternatives = "|".join(re.escape(s) for s in subjects)
        ignore.append(re.compile(rf"^/sub-(?!(?:{alternatives})(?:/|$))"))
    indexer = BIDSLayoutIndexer(validate=False, index_metadata=index_metadata, ignore=ignore)
    try:
        return BIDSLayout(
            root,
            validate=False,
            config=["bids", "derivatives"],
            database_path=None,
            indexer=indexer,
        )
    except Exception as exc:  # pybids raises assorted errors for unusable folders
        raise InputError(f"cannot index as a BIDS dataset ({exc})", root) from exc


def _bold_filters(bids_filters: dict | None) -> dict:
    """The ``bold`` section of a fMRIPrep-style filter dict, as pybids query arguments."""
    if bids_filters is None:
        return {}
    if not isinstance(bids_filters, dict) or not isinstance(bids_filters.get("bold", {}), dict):
        raise ConfigError(f"bids_filters must map 'bold' to a dict, got {bids_filters!r}")
    from bids.layout import Query

    out = {}
    for key, value in bids_filters.get("bold", {}).items():
        if key in _RESERVED_FILTERS:
            raise ConfigError(f"bids_filters may not set {key!r} (use the dedicated option)")
        specials = {None: Query.NONE, "*": Query.ANY}
        out[key] = specials.get(value, value) if not isinstance(value, list) else value
    return out


def _run_entities(name: str) -> dict:
    """Entities of a BIDS file name (short keys, file order) minus space/res/den/desc."""
    stem = name.split(".", 1)[0]
    pairs = [p.split("-", 1) for p in stem.split("_")[:-1]]
    return {k: v for k, v in pairs if k not in _NOT_RUN_ENTITIES}


def _repetition_time(bold: Path, bold_json: Path | None, raw_layout) -> float:
    """RepetitionTime from fMRIPrep's sidecar, else from raw-BIDS sidecar inheritance."""
    if bold_json is not None:
        try:
            meta = json.loads(bold_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"unreadable JSON sidecar ({exc})", bold_json) from exc
        if "RepetitionTime" in meta:
            return _positive_tr(meta["RepetitionTime"], bold_json)
    layout = raw_layout()
    if layout is not None:
        ents = _run_entities(bold.name)
        raw_name = "_".join(f"{k}-{v}" for k, v in ents.items()) + "_bold"
        for raw in layout.get(subject=ents["sub"], suffix="bold", extension=NIFTI_EXTENSIONS):
            if raw.filename.split(".", 1)[0] == raw_name:
                meta = layout.get_metadata(raw.path)
                if "RepetitionTime" in meta:
                    return _positive_tr(meta["RepetitionTime"], raw.path)
    raise InputError("no RepetitionTime in the BOLD sidecar or the raw BIDS sidecars", bold)


def _positive_tr(value, path) -> float:
    try:
        tr = float(value)
    except (TypeError, ValueError):
        tr = float("nan")
    if not tr > 0:
        raise InputError(f"RepetitionTime must be a positive number, got {value!r}", path)
    return tr


def _count_rows(path: Path) -> int:
    import pandas as pd

    try:
        return len(pd.read_csv(path, sep="\t", usecols=[0]))
    except Exception as exc:
        raise InputError(f"unreadable confounds file ({exc})", path) from exc


def _run_inputs(bold: Path, space: str, raw_layout, lesion: tuple) -> RunInputs:
    """Validate one BOLD run and its companions."""
    import numpy as np

    entities = _run_entities(bold.name)
    stem = bold.name.split(".", 1)[0]
    shape, affine = check_nifti(bold)
    if len(shape) != 4:
        raise InputError(f"BOLD image must be 4D, got shape {shape}", bold)
    bold_json = bold.with_name(f"{stem}.json")
    bold_json = bold_json if bold_json.is_file() else None
    tr = _repetition_time(bold, bold_json, raw_layout)
    mask = bold.with_name(stem.replace("_desc-preproc_bold", "_desc-brain_mask") + ".nii.gz")
    if not mask.is_file():
        raise InputError("brain mask missing for this BOLD run", mask)
    mask_shape, mask_affine = check_nifti(mask)
    if mask_shape[:3] != shape[:3] or not np.allclose(mask_affine, affine, atol=1e-4):
        raise InputError(
            f"brain mask grid {mask_shape[:3]} differs from the BOLD grid {shape[:3]} "
            f"of {bold.name} (shape or affine)",
            mask,
        )
    prefix = "_".join(f"{k}-{v}" for k, v in entities.items())
    candidates = [
        bold.with_name(f"{prefix}_desc-confounds_{s}.tsv") for s in ("timeseries", "regressors")
    ]
    confounds = next((c for c in candidates if c.is_file()), None)
    if confounds is None:
        raise InputError(
            "confounds file missing (also looked for *_regressors.tsv)", candidates[0]
        )
    n_rows = _count_rows(confounds)
    if n_rows != shape[3]:
        raise InputError(
            f"confounds have {n_rows} rows but {bold.name} has {shape[3]} volumes", confounds
        )
    return RunInputs(
        subject=entities["sub"],
        session=entities.get("ses"),
        task=entities["task"],
        entities=entities,
        bold=bold,
        mask=mask,
        confounds=confounds,
        bold_json=bold_json,
        space=space,
        repetition_time=tr,
        n_volumes=shape[3],
        lesion=lesion[0],
        lesion_space=lesion[1],
        lesion_xfm=lesion[2],
    )


def _choose_space(bolds: list, space: str | None, sub: str, fmriprep_dir: Path) -> str:
    available = sorted({b.get_entities().get("space") for b in bolds} - {None})
    if space is not None:
        if space not in available:
            raise InputError(
                f"no preprocessed BOLD of participant '{sub}' in space {space!r} "
                f"(available: {', '.join(available) or 'none'})",
                fmriprep_dir / f"sub-{sub}",
            )
        return space
    for candidate in SPACE_PREFERENCE:
        if candidate in available:
            return candidate
    raise InputError(
        f"no preprocessed BOLD of participant '{sub}' in {', '.join(SPACE_PREFERENCE)} "
        f"(available: {', '.join(available) or 'none'}); choose one with the space option",
        fmriprep_dir / f"sub-{sub}",
    )


def collect_participants(
    bids_dir: Path,
    fmriprep_dir: Path,
    *,
    participant_labels: list[str] | None,
    session_labels: list[str] | None = None,
    task: str = "rest",
    space: str | None = None,
    bids_filters: dict | None = None,
    lesion_dir: Path | None = None,
    lesion_side_column: str = "lesion_side",
) -> list[ParticipantInputs]:
    """Find and validate every participant's inputs.

    Parameters
    ----------
    bids_dir : Path
        Raw BIDS dataset (``participants.tsv``, sidecar inheritance, ``label-lesion_roi``).
    fmriprep_dir : Path
        fMRIPrep derivatives (must contain ``dataset_description.json``).
    participant_labels : list of str or None
        Labels with or without ``sub-``; None for every participant with BOLD.
    session_labels : list of str, optional
        Restrict to these sessions.
    task : str
        Task label of the BOLD runs.
    space : str, optional
        Template space; None picks the first available of :data:`SPACE_PREFERENCE`.
    bids_filters : dict, optional
        fMRIPrep ``--bids-filter-file`` content; its ``bold`` entry (pybids entity names,
        ``null`` = absent, ``"*"`` = any) is applied to the BOLD query.
    lesion_dir : Path, optional
        A BIDS-derivative dataset of lesion masks, searched before bids_dir and fmriprep_dir.
    lesion_side_column : str
        Column of ``participants.tsv`` holding the lesion side.

    Returns
    -------
    list of ParticipantInputs
        One per participant, sorted by label; runs sorted by file name. When several
        ``res`` of one run exist, the first by file name is used.

    Raises
    ------
    InputError
        For missing, malformed or inconsistent inputs (the message names the file).
    ConfigError
        For invalid labels or filters.
    """
    fmriprep_dir, bids_dir = Path(fmriprep_dir), Path(bids_dir)
    if not re.fullmatch(r"[A-Za-z0-9]+", str(task)):
        raise ConfigError(f"invalid task label {task!r}: only letters and digits allowed")
    if not (fmriprep_dir / "dataset_description.json").is_file():
        raise InputError(
            "no fMRIPrep derivatives found (missing folder or dataset_description.json)",
            fmriprep_dir,
        )
    labels = None
    if participant_labels:
        labels = sorted({normalise_label(x) for x in participant_labels})
    sessions = [normalise_label(s, entity="session") for s in session_labels or []]
    query = {"task": task, "desc": "preproc", "suffix": "bold", "extension": NIFTI_EXTENSIONS}
    query.update(_bold_filters(bids_filters))
    if sessions:
        query["session"] = sessions
    fp = _layout(fmriprep_dir, labels, index_metadata=False)
    try:
        all_bolds = fp.get(**query)
    except ValueError as exc:
        raise ConfigError(f"invalid bids_filters ({exc})") from exc
    found = sorted({b.get_entities()["subject"] for b in all_bolds})
    for label in labels or []:
        if not (fmriprep_dir / f"sub-{label}").is_dir():
            raise InputError(f"participant '{label}' not found in {fmriprep_dir}", fmriprep_dir)
        if label not in found:
            raise InputError(
                f"no fMRIPrep derivatives found for participant '{label}', task-{task} "
                "(after session and BIDS filters)",
                fmriprep_dir / f"sub-{label}",
            )
    if not found:
        raise InputError(f"no fMRIPrep derivatives found for task-{task}", fmriprep_dir)

    cache: dict = {}

    def raw_layout():
        if "raw" not in cache:
            has_raw = (bids_dir / "dataset_description.json").is_file() or any(
                bids_dir.glob("sub-*")
            )
            cache["raw"] = _layout(bids_dir, labels, index_metadata=True) if has_raw else None
        return cache["raw"]

    lesion_layouts = (
        [_layout(Path(lesion_dir), labels, index_metadata=False)] if lesion_dir else []
    )
    if raw_layout() is not None:
        lesion_layouts.append(raw_layout())
    lesion_layouts.append(fp)
    table, table_path = participants_table(bids_dir)
    out = []
    for sub in labels or found:
        bolds = [b for b in all_bolds if b.get_entities()["subject"] == sub]
        chosen = _choose_space(bolds, space, sub, fmriprep_dir)
        by_run: dict = {}
        for b in sorted(bolds, key=lambda b: b.path):
            if b.get_entities().get("space") == chosen:
                by_run.setdefault(tuple(_run_entities(b.filename).items()), Path(b.path))
        runs = []
        for entities, bold in by_run.items():
            lesion = find_lesion(lesion_layouts, fp, sub, dict(entities).get("ses"), chosen)
            runs.append(_run_inputs(bold, chosen, raw_layout, lesion))
        row = table.get(sub, {})
        side = normalise_side(row.get(lesion_side_column), participant=sub, path=table_path)
        out.append(ParticipantInputs(sub, tuple(runs), side, dict(row)))
    return out


def check_run_lengths(run: RunInputs, *, dummy_scans: int, window_length: int) -> None:
    """Raise InputError if a run is shorter than the dummy scans plus one window.

    Parameters
    ----------
    run : RunInputs
    dummy_scans : int
        Volumes to drop (>= 0).
    window_length : int
        Sliding-window length in volumes (>= 2).
    """
    if dummy_scans < 0:
        raise ValueError(f"dummy_scans must be >= 0, got {dummy_scans}")
    if window_length < 2:
        raise ValueError(f"window_length must be >= 2, got {window_length}")
    if run.n_volumes < dummy_scans + window_length:
        raise InputError(
            f"{run.n_volumes} volumes are fewer than dummy_scans ({dummy_scans}) + "
            f"window_length ({window_length}) = {dummy_scans + window_length}",
            run.bold,
        )
