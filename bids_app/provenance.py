"""Provenance files of the derivatives, safe when many participant jobs run at once.

* Files shared by all jobs (``dataset_description.json``, ``logs/CITATION.md``) are written under
  an exclusive ``fcntl.flock`` on ``output_dir/.strokedfc.lock``. Run configurations go to
  ``logs/config-<timestamp>_<uuid>.toml``, unique per job.
* Every file is written atomically with :mod:`bids_app.outputs`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from .__about__ import __packagename__, __url__, __version__
from .errors import ConfigError, InputError
from .outputs import atomic_write_json, atomic_write_text

LOGGER = logging.getLogger(__name__)

BIDS_VERSION = "1.9.0"
LOCK_NAME = ".strokedfc.lock"


@contextlib.contextmanager
def output_lock(output_dir: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``output_dir/.strokedfc.lock`` (no-op off POSIX)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(output_dir / LOCK_NAME, "a") as fobj:
        fcntl.flock(fobj.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fobj.fileno(), fcntl.LOCK_UN)


def container_info(
    environ: Mapping[str, str] | None = None, root: str | os.PathLike = "/"
) -> dict | None:
    """Detect Singularity/Apptainer or Docker/Podman; return BIDS ``Container`` or None.

    ``Tag`` is ``$STROKEDFC_CONTAINER_TAG`` when set, else the image file name for
    Singularity/Apptainer; it is left out for Docker when unknown.
    """
    env = os.environ if environ is None else environ
    tag = env.get("STROKEDFC_CONTAINER_TAG")
    image = env.get("APPTAINER_CONTAINER") or env.get("SINGULARITY_CONTAINER")
    if image:
        info = {"Type": "singularity"}
        tag = tag or Path(image).name
    elif (Path(root) / ".dockerenv").exists() or (Path(root) / "run/.containerenv").exists():
        info = {"Type": "docker"}
    else:
        return None
    if tag:
        info["Tag"] = tag
    return info


def dataset_description(source_datasets: list[str], container: dict | None = None) -> dict:
    """Return the dataset_description.json content of strokedfc derivatives."""
    generated = {"Name": __packagename__, "Version": __version__, "CodeURL": __url__}
    if container:
        generated["Container"] = dict(container)
    return {
        "Name": "strokedfc: seed-based dynamic functional connectivity",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "SourceDatasets": [{"URL": str(url)} for url in source_datasets],
    }


def write_dataset_description(
    output_dir: str | os.PathLike, *, source_datasets: list[str], container: dict | None = None
) -> Path:
    """Write ``dataset_description.json`` safely when many participant jobs start at once.

    Rule, under the output lock: no file -> write it; a strokedfc file of the same version ->
    rewrite it (identical jobs give identical content); a strokedfc file of another version ->
    keep it and log a warning (mixed versions in one output directory); a file of another
    pipeline -> ConfigError; unreadable JSON -> InputError.
    """
    path = Path(output_dir) / "dataset_description.json"
    new = dataset_description(source_datasets, container)
    with output_lock(output_dir):
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
                gen = old.get("GeneratedBy") or [{}]
                old_name, old_version = gen[0].get("Name"), gen[0].get("Version")
            except (OSError, ValueError, AttributeError, IndexError, TypeError) as err:
                raise InputError(f"cannot read dataset_description.json ({err})", path) from err
            if old_name != __packagename__:
                raise ConfigError(
                    f"output directory holds derivatives of {old_name!r}, not {__packagename__}",
                    path,
                )
            if old_version != __version__:
                LOGGER.warning(
                    "%s was written by %s %s; keeping it (this is %s)",
                    path, __packagename__, old_version, __version__,
                )  # fmt: skip
                return path
        atomic_write_json(path, new)
    return path


def write_run_config(output_dir: str | os.PathLike, config_toml: str, run_uuid: str) -> Path:
    """Write ``logs/config-<UTC timestamp>_<uuid>.toml`` (unique per job) and return its path."""
    if not re.fullmatch(r"[0-9A-Za-z-]+", str(run_uuid)):
        raise ValueError(f"run_uuid must be alphanumeric with hyphens, got {run_uuid!r}")
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = Path(output_dir) / "logs" / f"config-{stamp}_{run_uuid}.toml"
    return atomic_write_text(path, config_toml)


def write_citation(output_dir: str | os.PathLike, methods_markdown: str) -> Path:
    """Write ``logs/CITATION.md`` atomically under the output lock (last writer wins)."""
    with output_lock(output_dir):
        return atomic_write_text(Path(output_dir) / "logs" / "CITATION.md", methods_markdown)
