"""Tests of bids_app.provenance: dataset_description.json, run configs, citation, container."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from bids_app import outputs, provenance
from bids_app.errors import ConfigError


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or outputs.STAGING_DIR in str(p)]


def test_dataset_description_content(tmp_path):
    container = {"Type": "docker", "Tag": "strokedfc:test"}
    path = provenance.write_dataset_description(
        tmp_path, source_datasets=["file:///data/bids"], container=container
    )
    desc = json.loads(path.read_text())
    assert desc["DatasetType"] == "derivative" and desc["BIDSVersion"] == "1.9.0"
    gen = desc["GeneratedBy"][0]
    assert gen["Name"] == "strokedfc" and gen["Container"] == container
    from bids_app.__about__ import __version__

    assert gen["Version"] == __version__
    assert desc["SourceDatasets"] == [{"URL": "file:///data/bids"}]


def test_dataset_description_other_version_kept_other_pipeline_rejected(tmp_path, monkeypatch):
    provenance.write_dataset_description(tmp_path, source_datasets=[])
    before = (tmp_path / "dataset_description.json").read_text()
    monkeypatch.setattr(provenance, "__version__", "9.9.9")
    provenance.write_dataset_description(tmp_path, source_datasets=["x"])
    assert (tmp_path / "dataset_description.json").read_text() == before
    other = {"Name": "x", "BIDSVersion": "1.9.0", "GeneratedBy": [{"Name": "fmriprep"}]}
    (tmp_path / "dataset_description.json").write_text(json.dumps(other))
    with pytest.raises(ConfigError, match="fmriprep"):
        provenance.write_dataset_description(tmp_path, source_datasets=[])


def _hammer(output_dir: str, worker: int) -> None:
    for i in range(20):
        provenance.write_dataset_description(output_dir, source_datasets=["file:///bids"])
        provenance.write_run_config(output_dir, f"worker = {worker}\ni = {i}\n", f"w{worker}-{i}")
        provenance.write_citation(output_dir, "# Methods\n\nSame text from every job.\n")


def test_concurrent_writers(tmp_path):
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), w)) for w in range(2)]
    for proc in procs:
        proc.start()
    _hammer(str(tmp_path), 2)  # the parent is a third writer
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    desc = json.loads((tmp_path / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert len(list((tmp_path / "logs").glob("config-*.toml"))) == 60
    assert (tmp_path / "logs/CITATION.md").read_text().startswith("# Methods")
    assert _leftovers(tmp_path) == []


def test_write_run_config_rejects_bad_uuid(tmp_path):
    with pytest.raises(ValueError, match="run_uuid"):
        provenance.write_run_config(tmp_path, "a = 1\n", "../x")


def test_container_info(tmp_path):
    assert provenance.container_info({}, tmp_path) is None
    sing = provenance.container_info({"APPTAINER_CONTAINER": "/img/strokedfc_0.1.sif"}, tmp_path)
    assert sing == {"Type": "singularity", "Tag": "strokedfc_0.1.sif"}
    (tmp_path / ".dockerenv").touch()
    assert provenance.container_info({}, tmp_path) == {"Type": "docker"}
    env = {"STROKEDFC_CONTAINER_TAG": "strokedfc/strokedfc:0.1.0"}
    assert provenance.container_info(env, tmp_path) == {
        "Type": "docker",
        "Tag": "strokedfc/strokedfc:0.1.0",
    }
    os.remove(tmp_path / ".dockerenv")
    (tmp_path / "run").mkdir()
    (tmp_path / "run/.containerenv").touch()
    assert provenance.container_info({}, tmp_path)["Type"] == "docker"
