"""Discovery and validation of the participant-level inputs.

The only module that queries BIDS layouts (pybids). It finds, per participant, the
fMRIPrep preprocessed BOLD runs, their brain masks, confounds and sidecars, the lesion mask
(and, for a T1w-space mask, fMRIPrep's T1w-to-template transform), and the lesion side from
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

SPACE_PREFERENCE = ("MNI152NLin2009cAsym", "MNI152NLin6Asym", "MNI152NLin2009cSym")
_NOT_RUN_ENTITIES = {"space", "res", "den", "desc"}
_RESERVED_FILTERS = {"subject", "task", "space", "desc", "suffix", "extension", "datatype"}
_NIFTI = [".nii.gz", ".nii"]


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


def check_nifti(path: Path) -> tuple[tuple[int, ...], object]:
    """Check that a NIfTI file is readable and complete; return its shape and affine.

    Only the header is parsed and the last volume read: for ``.nii`` the file size is
    compared with header offset + data size; for ``.nii.gz`` reading the last volume through
    ``dataobj`` decompresses the stream to its end, which detects truncation cheaply enough.

    Parameters
    ----------
    path : Path
        A ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    shape : tuple of int
    affine : numpy.ndarray

    Raises
    ------
    InputError
        If the file cannot be read or is truncated.
    """
    import nibabel as nib
    import numpy as np

    try:
        img = nib.load(str(path))
        shape, affine = tuple(int(n) for n in img.shape), img.affine
    except Exception as exc:
        raise InputError(f"unreadable NIfTI file ({exc})", path) from exc
    try:
        header = img.header
        offset = int(getattr(img.dataobj, "offset", header.get_data_offset()))
        needed = offset + int(np.prod(shape)) * header.get_data_dtype().itemsize
        if str(path).endswith(".gz"):
            # A complete single-member gzip ends with ISIZE = uncompressed size mod 2**32:
            # when it matches, the stream is whole without decompressing it (a 300 MB BOLD
            # takes seconds). Otherwise (multi-member gzip, or truncation) read to the end.
            if _gzip_isize(path) != needed % 2**32:
                np.asarray(img.dataobj[(Ellipsis, -1)])
        elif Path(path).stat().st_size < needed:
            raise OSError(f"file has {Path(path).stat().st_size} bytes, header needs {needed}")
    except Exception as exc:
        raise InputError(f"truncated or corrupt NIfTI file ({exc})", path) from exc
    return shape, affine


def _gzip_isize(path: Path) -> int:
    """The ISIZE field of a gzip file (its last 4 bytes, little-endian)."""
    with open(path, "rb") as fh:
        fh.seek(-4, 2)
        return int.from_bytes(fh.read(4), "little")


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
        for raw in layout.get(subject=ents["sub"], suffix="bold", extension=_NIFTI):
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


def _lesion_candidates(layout, source_rank: int, sub: str, ses: str | None, space: str) -> list:
    """(sort key, path, lesion space) for every lesion mask of ``sub`` in ``layout``."""
    out = []
    for f in layout.get(subject=sub, extension=_NIFTI):
        ent = f.get_entities()
        f_space, label, suffix = ent.get("space"), ent.get("label"), ent.get("suffix")
        template = (
            suffix == "mask"
            and f_space not in (None, "T1w")
            and (label == "lesion" or (label == "L" and ent.get("desc") == "T1lesion"))
        )
        t1w = label == "lesion" and (
            (suffix == "roi" and f_space is None) or (suffix == "mask" and f_space == "T1w")
        )
        if not (template or t1w) or ent.get("session") not in (None, ses):
            continue
        pref = SPACE_PREFERENCE.index(f_space) if f_space in SPACE_PREFERENCE else 99
        key = (ent.get("session") != ses, t1w, source_rank, f_space != space, pref, f.path)
        out.append((key, Path(f.path), "T1w" if t1w else f_space))
    return out


def _find_lesion(layouts: list, fmriprep_layout, sub: str, ses: str | None, space: str) -> tuple:
    """(lesion, lesion_space, lesion_xfm) for one run, or three Nones."""
    candidates = []
    for rank, layout in enumerate(layouts):
        candidates += _lesion_candidates(layout, rank, sub, ses, space)
    if not candidates:
        return None, None, None
    _, lesion, lesion_space = min(candidates, key=lambda c: c[0])
    check_nifti(lesion)
    if lesion_space != "T1w":
        return lesion, lesion_space, None
    xfms = fmriprep_layout.get(
        subject=sub, suffix="xfm", mode="image", extension=".h5", **{"from": "T1w", "to": space}
    )
    xfms = sorted(
        (x for x in xfms if x.get_entities().get("session") in (None, ses)),
        key=lambda x: (x.get_entities().get("session") != ses, x.path),
    )
    if not xfms:
        raise InputError(
            f"lesion mask is in T1w space but fMRIPrep's sub-{sub}[_ses-*]_from-T1w_to-{space}"
            f"_mode-image_xfm.h5 was not found under {fmriprep_layout.root}",
            lesion,
        )
    return lesion, lesion_space, Path(xfms[0].path)


def _normalise_side(value, *, participant: str, path) -> str:
    text = "" if value is None else str(value).strip().lower()
    if text in ("", "n/a", "nan", "na"):
        return "n/a"
    sides = {"l": "L", "left": "L", "r": "R", "right": "R"}
    if text not in sides:
        raise InputError(
            f"lesion side of participant {participant!r} must be L, R, left or right "
            f"(any case) or n/a, got {value!r}",
            path,
        )
    return sides[text]


def _participants_table(bids_dir: Path) -> tuple[dict, Path]:
    """participants.tsv rows keyed by bare label ({} when the file is absent)."""
    import pandas as pd

    path = Path(bids_dir) / "participants.tsv"
    if not path.is_file():
        return {}, path
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as exc:
        raise InputError(f"unreadable participants table ({exc})", path) from exc
    if "participant_id" not in table.columns:
        raise InputError("participants.tsv has no participant_id column", path)
    rows = {}
    for row in table.to_dict(orient="records"):
        pid = str(row["participant_id"]).strip()
        rows[pid[4:] if pid.startswith("sub-") else pid] = row
    return rows, path


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
    query = {"task": task, "desc": "preproc", "suffix": "bold", "extension": _NIFTI}
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
    table, table_path = _participants_table(bids_dir)
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
            lesion = _find_lesion(lesion_layouts, fp, sub, dict(entities).get("ses"), chosen)
            runs.append(_run_inputs(bold, chosen, raw_layout, lesion))
        row = table.get(sub, {})
        side = _normalise_side(row.get(lesion_side_column), participant=sub, path=table_path)
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


def reconcile_lesion_side(table_side: str, mask_side: str, *, participant: str, path) -> str:
    """Combine the lesion side from participants.tsv with the one estimated from the mask.

    Parameters
    ----------
    table_side, mask_side : {"L", "R", "n/a"}
    participant : str
        Label, for the error message.
    path : str or PathLike
        The file named in the error (participants.tsv or the lesion mask).

    Returns
    -------
    str
        The known side ("n/a" when neither is known).

    Raises
    ------
    InputError
        If both are known and disagree.
    """
    for name, value in (("table_side", table_side), ("mask_side", mask_side)):
        if value not in ("L", "R", "n/a"):
            raise ValueError(f"{name} must be 'L', 'R' or 'n/a', got {value!r}")
    if "n/a" not in (table_side, mask_side) and table_side != mask_side:
        raise InputError(
            f"participant '{participant}': lesion side {table_side} in participants.tsv "
            f"but the lesion mask lies mostly in the {mask_side} hemisphere",
            path,
        )
    return table_side if table_side != "n/a" else mask_side
