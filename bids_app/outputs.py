"""BIDS-Derivatives names, atomic and concurrency-safe writing, staging, completion status.

Rules (see docs/architecture.md for the participant-output contract):

* Every file is written to a hidden temporary file in its final directory
  (``.<name>.<pid>.<random>.tmp``), flushed, fsync'ed and moved into place with
  :func:`os.replace`, so a crash never leaves a half-written file under a final name.
* ``.nii.gz`` files are gzip-compressed with ``mtime=0``: the same image gives the same bytes.
* A participant is *complete* when ``output_dir/logs/sub-<label>_status.json`` exists; it holds
  the configuration hash. Each participant has its own status file, so concurrent jobs of a
  SLURM array never share one.
* Provenance files (``dataset_description.json``, ``logs/CITATION.md``, run configurations) are
  written by :mod:`bids_app.provenance`.
* Resolution labels: BIDS labels are alphanumeric, so 3 mm is ``res-3`` and 2.5 mm ``res-2p5``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import json
import logging
import math
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .__about__ import __version__
from .errors import ConfigError, InputError

LOGGER = logging.getLogger(__name__)

STAGING_DIR = ".strokedfc_staging"
DFC_NAME_END = "_desc-dfc_boldmap.nii.gz"

#: Naming entities of a BOLD run after sub/ses/task, in BIDS-schema order (short keys).
RUN_ENTITY_ORDER = ("acq", "ce", "rec", "dir", "run", "echo", "flip", "inv", "mt", "part", "chunk")
#: pybids long entity names -> BIDS short keys.
_LONG_TO_SHORT = {
    "acquisition": "acq",
    "ceagent": "ce",
    "reconstruction": "rec",
    "direction": "dir",
}
#: Keys of a pybids entity dict that never go into the run prefix.
_IGNORED = {"subject", "sub", "session", "ses", "task", "suffix", "extension", "datatype"}
_LABEL = re.compile(r"[0-9A-Za-z]+")


def _label(value: Any, name: str, prefix: str | None = None) -> str:
    text = str(value)
    if prefix and text.startswith(prefix + "-"):
        text = text[len(prefix) + 1 :]
    if not _LABEL.fullmatch(text):
        raise ValueError(f"{name} must be an alphanumeric BIDS label, got {value!r}")
    return text


# --------------------------------------------------------------------------- names
def run_prefix(subject: str, session: str | None, task: str, entities: Mapping[str, Any]) -> str:
    """Build ``sub-<s>[_ses-<x>]_task-<t>[_acq-..]...[_run-..][_echo-..]`` for one BOLD run.

    Parameters
    ----------
    subject, session, task : str
        Labels (a leading ``sub-``/``ses-``/``task-`` is accepted and dropped).
    entities : mapping
        Entities of the source BOLD, short (``acq``) or pybids long (``acquisition``) keys.
        ``subject``/``session``/``task``/``suffix``/``extension``/``datatype`` and metadata
        (keys starting with an upper-case letter) are ignored; the run index is kept as given
        (``PaddedInt``/string keep their zero padding).

    Returns
    -------
    str
        The prefix with entities in BIDS order.
    """
    parts = [f"sub-{_label(subject, 'subject', 'sub')}"]
    if session is not None:
        parts.append(f"ses-{_label(session, 'session', 'ses')}")
    parts.append(f"task-{_label(task, 'task', 'task')}")
    short: dict[str, Any] = {}
    for key, value in entities.items():
        if key in _IGNORED or key[:1].isupper() or value is None:
            continue
        skey = _LONG_TO_SHORT.get(key, key)
        if skey not in RUN_ENTITY_ORDER:
            raise ValueError(f"entities holds an entity not valid for a BOLD run name: {key!r}")
        short[skey] = value
    for key in RUN_ENTITY_ORDER:
        if key in short:
            parts.append(f"{key}-{_label(short[key], key)}")
    return "_".join(parts)


def space_label(space: str, resolution: float) -> str:
    """Return ``space-<space>_res-<mm>``; 3.0 -> ``res-3``, 2.5 -> ``res-2p5``."""
    space = _label(space, "space", "space")
    if not isinstance(resolution, (int, float)) or not math.isfinite(resolution):
        raise ValueError(f"resolution must be a finite number, got {resolution!r}")
    if resolution <= 0:
        raise ValueError(f"resolution must be > 0, got {resolution!r}")
    return f"space-{space}_res-{format(float(resolution), 'g').replace('.', 'p')}"


def func_dir(output_dir: str | os.PathLike, subject: str, session: str | None) -> Path:
    """Return ``output_dir/sub-<s>[/ses-<x>]/func``."""
    path = Path(output_dir) / f"sub-{_label(subject, 'subject', 'sub')}"
    if session is not None:
        path = path / f"ses-{_label(session, 'session', 'ses')}"
    return path / "func"


def derivative_path(
    output_dir: str | os.PathLike,
    subject: str,
    session: str | None,
    prefix: str,
    *,
    space: str | None,
    suffix_desc: str,
    ext: str,
) -> Path:
    """Return ``sub-<s>[/ses-<x>]/func/<prefix>[_<space>]_<suffix_desc><ext>`` under output_dir.

    ``space`` is the output of :func:`space_label` (or None for tabular files),
    ``suffix_desc`` e.g. ``desc-dfc_boldmap`` and ``ext`` e.g. ``.nii.gz``.
    """
    if not ext.startswith("."):
        raise ValueError(f"ext must start with '.', got {ext!r}")
    if not suffix_desc or "/" in suffix_desc:
        raise ValueError(f"suffix_desc must be a non-empty name part, got {suffix_desc!r}")
    stem = prefix if space is None else f"{prefix}_{space}"
    return func_dir(output_dir, subject, session) / f"{stem}_{suffix_desc}{ext}"


#: key -> (uses space, suffix_desc, extension) for the participant-output contract.
OUTPUT_SPEC: dict[str, tuple[bool, str, str]] = {
    "dfc": (True, "desc-dfc_boldmap", ".nii.gz"),
    "dfc_json": (True, "desc-dfc_boldmap", ".json"),
    "dfcmean": (True, "desc-dfcmean_boldmap", ".nii.gz"),
    "dfcstd": (True, "desc-dfcstd_boldmap", ".nii.gz"),
    "dfccv": (True, "desc-dfccv_boldmap", ".nii.gz"),
    "sfc": (True, "desc-sfc_boldmap", ".nii.gz"),
    "denoised": (True, "desc-denoised_bold", ".nii.gz"),
    "brain_mask": (True, "desc-brain_mask", ".nii.gz"),
    "seed_mask": (True, "label-seed_mask", ".nii.gz"),
    "lesion_mask": (True, "label-lesion_mask", ".nii.gz"),
    "seed_timeseries": (False, "desc-seed_timeseries", ".tsv"),
    "nuisance_timeseries": (False, "desc-nuisance_timeseries", ".tsv"),
    "prediction": (False, "desc-prediction_severity", ".tsv"),
}


def participant_output_names(prefix: str, space: str) -> dict[str, str]:
    """Return the file name of every contract output of one run, keyed as in ``OUTPUT_SPEC``."""
    names = {}
    for key, (spatial, suffix_desc, ext) in OUTPUT_SPEC.items():
        stem = f"{prefix}_{space}" if spatial else prefix
        names[key] = f"{stem}_{suffix_desc}{ext}"
    return names


# --------------------------------------------------------------------------- atomic writes
def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + os.replace).

    On any exception (KeyboardInterrupt included) the temporary file is removed and nothing
    appears under ``path``; an earlier file at ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "xb") as fobj:
            fobj.write(data)
            fobj.flush()
            os.fsync(fobj.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples, sets and paths to JSON types; NaN/inf -> None."""
    import numpy as np

    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON (insertion order, indent 2, numpy allowed, NaN -> null)."""
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def atomic_save_nifti(img: Any, path: str | os.PathLike) -> Path:
    """Save a NIfTI image atomically; ``.nii.gz`` is gzipped with mtime=0 (reproducible bytes)."""
    name = str(path)
    if name.endswith(".nii.gz"):
        data = gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)
    elif name.endswith(".nii"):
        data = img.to_bytes()
    else:
        raise ValueError(f"path must end in .nii or .nii.gz, got {name!r}")
    return atomic_write_bytes(path, data)


# --------------------------------------------------------------------------- staging
def new_stage(output_dir: str | os.PathLike, tag: str = "") -> Path:
    """Create and return a fresh staging root under ``output_dir/.strokedfc_staging/``."""
    root = Path(output_dir) / STAGING_DIR
    name = f"{tag + '-' if tag else ''}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    stage = root / name
    stage.mkdir(parents=True)
    return stage


def publish_stage(stage: str | os.PathLike, output_dir: str | os.PathLike) -> list[str]:
    """Move every staged file to the same relative path under ``output_dir``; remove the stage.

    The 4D dfc maps (``*_desc-dfc_boldmap.nii.gz``, what the group level looks for) are moved
    last, so their sidecars and brain masks are always in place first.

    Returns
    -------
    list of str
        The published files, relative to ``output_dir``.
    """
    stage, output_dir = Path(stage), Path(output_dir)
    staged = sorted(
        (p for p in stage.rglob("*") if p.is_file() or p.is_symlink()),
        key=lambda p: (p.name.endswith(DFC_NAME_END), str(p)),
    )
    published = []
    for src in staged:
        rel = src.relative_to(stage)
        dest = output_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        published.append(str(rel))
    discard_stage(stage)
    return published


def discard_stage(stage: str | os.PathLike) -> None:
    """Remove a staging root (and the staging directory when no other job uses it)."""
    stage = Path(stage)
    shutil.rmtree(stage, ignore_errors=True)
    with contextlib.suppress(OSError):
        stage.parent.rmdir()  # only when no other job is staging


@contextlib.contextmanager
def staged_outputs(output_dir: str | os.PathLike) -> Iterator[Path]:
    """Stage files in a hidden directory under ``output_dir``; publish them only on success.

    Yields a staging root that mirrors ``output_dir`` (write e.g.
    ``stage / "sub-01/func/<name>"``). When the block ends without an exception every staged
    file is moved to the same relative path under ``output_dir`` (:func:`publish_stage`); on
    any exception the staging directory is removed and ``output_dir`` is unchanged.
    """
    stage = new_stage(output_dir)
    try:
        yield stage
        publish_stage(stage, output_dir)
    finally:
        discard_stage(stage)


# --------------------------------------------------------------------------- status
def status_path(output_dir: str | os.PathLike, subject: str) -> Path:
    """Return ``output_dir/logs/sub-<label>_status.json`` (the completion marker)."""
    return Path(output_dir) / "logs" / f"sub-{_label(subject, 'subject', 'sub')}_status.json"


def participant_status(output_dir: str | os.PathLike, subject: str) -> dict | None:
    """Return the completion record of a participant, or None when it is not complete."""
    path = status_path(output_dir, subject)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read the participant status file ({err})", path) from err
    if not isinstance(record, dict) or "ConfigHash" not in record:
        raise InputError("participant status file has no ConfigHash", path)
    return record


def mark_participant_complete(
    output_dir: str | os.PathLike, subject: str, config_hash: str, files: list[str]
) -> Path:
    """Record that ``subject`` finished with ``config_hash``; ``files`` relative to output_dir."""
    if not config_hash:
        raise ValueError(f"config_hash must be a non-empty string, got {config_hash!r}")
    record = {
        "Subject": _label(subject, "subject", "sub"),
        "Status": "complete",
        "ConfigHash": config_hash,
        "Version": __version__,
        "Finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "Files": sorted(str(f) for f in files),
    }
    return atomic_write_json(status_path(output_dir, subject), record)


def remove_participant_outputs(output_dir: str | os.PathLike, subject: str) -> None:
    """Remove the marker, ``sub-<label>/``, ``sub-<label>.html`` and the files it listed."""
    output_dir = Path(output_dir).resolve()
    label = _label(subject, "subject", "sub")
    marker = status_path(output_dir, label)
    listed: list[str] = []
    with contextlib.suppress(InputError):
        listed = list((participant_status(output_dir, label) or {}).get("Files", []))
    marker.unlink(missing_ok=True)  # first: an interrupted removal reads as "incomplete"
    for rel in listed:
        target = (output_dir / rel).resolve()
        if output_dir in target.parents and target.is_file():
            target.unlink()
    shutil.rmtree(output_dir / f"sub-{label}", ignore_errors=True)
    (output_dir / f"sub-{label}.html").unlink(missing_ok=True)


def check_rerun(
    output_dir: str | os.PathLike, subject: str, config_hash: str, overwrite: bool
) -> bool:
    """Decide whether a participant can be skipped.

    Returns
    -------
    bool
        True when the participant is complete with the same ``config_hash`` (skip it).
        False when it must be processed; with ``overwrite`` its previous outputs are removed.

    Raises
    ------
    ConfigError
        When it was completed with a different configuration and ``overwrite`` is False.
    """
    if overwrite:
        remove_participant_outputs(output_dir, subject)
        return False
    record = participant_status(output_dir, subject)
    if record is None:
        if (Path(output_dir) / f"sub-{_label(subject, 'subject', 'sub')}").exists():
            LOGGER.warning("sub-%s has incomplete outputs; they will be replaced", subject)
        return False
    if record["ConfigHash"] == config_hash:
        return True
    raise ConfigError(
        f"sub-{_label(subject, 'subject', 'sub')} was processed with a different configuration "
        f"(hash {record['ConfigHash']}, now {config_hash}); use --overwrite to recompute it",
        status_path(output_dir, subject),
    )
