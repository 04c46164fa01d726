"""Tests of bids_app.outputs: names, atomic writes, staging, rerun rules."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bids.layout import parse_file_entities
from bids.layout.utils import PaddedInt

from bids_app import outputs
from bids_app.errors import ConfigError, InputError

SPACE = "space-MNI152NLin2009cAsym_res-3"


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or outputs.STAGING_DIR in str(p)]


# ----------------------------------------------------------------------------- names
def test_run_prefix_without_session():
    assert outputs.run_prefix("01", None, "rest", {}) == "sub-01_task-rest"


def test_run_prefix_orders_entities_as_bids_and_keeps_run_padding():
    # pybids long names, shuffled order, metadata and naming keys that must be ignored
    ents = {
        "echo": 2,
        "run": PaddedInt("02"),
        "suffix": "bold",
        "acquisition": "mb4",
        "subject": "01",
        "RepetitionTime": 2.0,
        "direction": "AP",
        "extension": ".nii.gz",
    }
    prefix = outputs.run_prefix("sub-01", "pre", "motor", ents)
    assert prefix == "sub-01_ses-pre_task-motor_acq-mb4_dir-AP_run-02_echo-2"
    parsed = parse_file_entities(f"/d/sub-01/ses-pre/func/{prefix}_bold.nii.gz")
    assert parsed["subject"] == "01" and parsed["session"] == "pre"
    assert parsed["acquisition"] == "mb4" and parsed["direction"] == "AP"
    assert int(parsed["run"]) == 2 and str(parsed["echo"]) == "2"


def test_run_prefix_short_keys_and_plain_int_run():
    prefix = outputs.run_prefix("7", "1", "rest", {"run": 1, "ce": "gd", "rec": "x"})
    assert prefix == "sub-7_ses-1_task-rest_ce-gd_rec-x_run-1"


@pytest.mark.parametrize(
    ("subject", "entities", "match"),
    [("0_1", {}, "subject"), ("01", {"space": "MNI"}, "space"), ("01", {"acq": "a-b"}, "acq")],
)
def test_run_prefix_rejects_bad_input(subject, entities, match):
    with pytest.raises(ValueError, match=match):
        outputs.run_prefix(subject, None, "rest", entities)


def test_space_label():
    assert outputs.space_label("MNI152NLin2009cAsym", 3) == SPACE
    assert outputs.space_label("MNI152NLin2009cAsym", 2.5).endswith("_res-2p5")
    with pytest.raises(ValueError, match="resolution must be > 0, got 0"):
        outputs.space_label("MNI152NLin2009cAsym", 0)


def test_derivative_path_with_and_without_session(tmp_path):
    p = outputs.derivative_path(
        tmp_path, "01", "2", "sub-01_ses-2_task-rest", space=SPACE,
        suffix_desc="desc-dfc_boldmap", ext=".nii.gz",
    )  # fmt: skip
    expected = "sub-01/ses-2/func/sub-01_ses-2_task-rest_" + SPACE + "_desc-dfc_boldmap.nii.gz"
    assert p == tmp_path / expected
    p = outputs.derivative_path(
        tmp_path, "01", None, "sub-01_task-rest", space=None,
        suffix_desc="desc-seed_timeseries", ext=".tsv",
    )  # fmt: skip
    assert p == tmp_path / "sub-01/func/sub-01_task-rest_desc-seed_timeseries.tsv"
    with pytest.raises(ValueError, match="ext must start with '.'"):
        outputs.derivative_path(tmp_path, "01", None, "x", space=None, suffix_desc="d", ext="tsv")


def test_participant_output_names_match_the_contract():
    p = "sub-01_task-rest_run-1"
    names = outputs.participant_output_names(p, SPACE)
    # the table of docs/architecture.md, written out by hand
    expected = {
        "dfc": f"{p}_{SPACE}_desc-dfc_boldmap.nii.gz",
        "dfc_json": f"{p}_{SPACE}_desc-dfc_boldmap.json",
        "dfcmean": f"{p}_{SPACE}_desc-dfcmean_boldmap.nii.gz",
        "dfcstd": f"{p}_{SPACE}_desc-dfcstd_boldmap.nii.gz",
        "dfccv": f"{p}_{SPACE}_desc-dfccv_boldmap.nii.gz",
        "sfc": f"{p}_{SPACE}_desc-sfc_boldmap.nii.gz",
        "denoised": f"{p}_{SPACE}_desc-denoised_bold.nii.gz",
        "brain_mask": f"{p}_{SPACE}_desc-brain_mask.nii.gz",
        "seed_mask": f"{p}_{SPACE}_label-seed_mask.nii.gz",
        "lesion_mask": f"{p}_{SPACE}_label-lesion_mask.nii.gz",
        "seed_timeseries": f"{p}_desc-seed_timeseries.tsv",
        "nuisance_timeseries": f"{p}_desc-nuisance_timeseries.tsv",
        "prediction": f"{p}_desc-prediction_severity.tsv",
    }
    assert names == expected
    for name in names.values():  # every name parses as BIDS-Derivatives with pybids
        ents = parse_file_entities(f"/d/sub-01/func/{name}", config=["bids", "derivatives"])
        assert ents["subject"] == "01" and ents["task"] == "rest" and int(ents["run"]) == 1
        if "_space-" in name:
            assert ents["space"] == "MNI152NLin2009cAsym" and ents["res"] == "3"


# ----------------------------------------------------------------------------- atomic writes
def test_atomic_write_failure_on_replace_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "a" / "file.json"

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(outputs.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        outputs.atomic_write_json(target, {"a": 1})
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_write_interrupt_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"
    target.write_text("old")

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        outputs.atomic_write_text(target, "new content")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_atomic_write_json_numpy_and_order(tmp_path):
    obj = {"b": np.float32(0.5), "a": np.arange(3), "n": np.int64(4), "nan": float("nan")}
    path = outputs.atomic_write_json(tmp_path / "s.json", obj)
    text = path.read_text()
    assert json.loads(text) == {"b": 0.5, "a": [0, 1, 2], "n": 4, "nan": None}
    assert text.index('"b"') < text.index('"a"')  # insertion order kept
    assert text.startswith('{\n  "b"')  # indent 2


def test_atomic_save_nifti_is_deterministic_and_lossless(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((5, 6, 7, 3)).astype(np.float32)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    one = outputs.atomic_save_nifti(nib.Nifti1Image(data, affine), tmp_path / "a.nii.gz")
    two = outputs.atomic_save_nifti(nib.Nifti1Image(data, affine), tmp_path / "b.nii.gz")
    raw = one.read_bytes()
    assert raw == two.read_bytes()
    assert raw[4:8] == b"\x00\x00\x00\x00"  # gzip MTIME field
    loaded = nib.load(one)
    np.testing.assert_array_equal(np.asarray(loaded.dataobj), data)
    np.testing.assert_allclose(loaded.affine, affine)
    plain = outputs.atomic_save_nifti(nib.Nifti1Image(data, affine), tmp_path / "c.nii")
    assert gzip.decompress(raw) == plain.read_bytes()
    with pytest.raises(ValueError, match="path must end in .nii"):
        outputs.atomic_save_nifti(nib.Nifti1Image(data, affine), tmp_path / "d.img")


# ----------------------------------------------------------------------------- staging
def test_staged_outputs_publish_on_success(tmp_path):
    with outputs.staged_outputs(tmp_path) as stage:
        outputs.atomic_write_text(stage / "sub-01/func/a.tsv", "seed\n1\n")
        outputs.atomic_write_text(stage / "sub-01/func/b.json", "{}")
        assert not (tmp_path / "sub-01").exists()  # nothing visible before the end
    assert (tmp_path / "sub-01/func/a.tsv").read_text() == "seed\n1\n"
    assert (tmp_path / "sub-01/func/b.json").exists()
    assert _leftovers(tmp_path) == []


def test_staged_outputs_publish_dfc_maps_last(tmp_path, monkeypatch):
    moved = []
    real_replace = os.replace

    def recording_replace(src, dst):
        moved.append(Path(dst).name)
        real_replace(src, dst)

    names = ["a_desc-dfc_boldmap.nii.gz", "a_desc-dfc_boldmap.json", "z_desc-brain_mask.nii.gz"]
    with outputs.staged_outputs(tmp_path) as stage:
        for name in names:
            (stage / "sub-01/func").mkdir(parents=True, exist_ok=True)
            (stage / "sub-01/func" / name).write_bytes(b"x")
        monkeypatch.setattr(outputs.os, "replace", recording_replace)
    assert sorted(moved) == sorted(names)
    assert moved[-1] == "a_desc-dfc_boldmap.nii.gz"


def test_staged_outputs_leave_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError, match="node crashed"):
        with outputs.staged_outputs(tmp_path) as stage:
            outputs.atomic_write_text(stage / "sub-01/func/a.tsv", "x")
            raise RuntimeError("node crashed")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- rerun
def test_check_rerun_skip_error_overwrite(tmp_path):
    assert outputs.participant_status(tmp_path, "01") is None
    assert outputs.check_rerun(tmp_path, "01", "abc", overwrite=False) is False
    out = tmp_path / "sub-01/func/sub-01_task-rest_desc-seed_timeseries.tsv"
    outputs.atomic_write_text(out, "seed\n")
    outputs.atomic_write_text(tmp_path / "sub-01.html", "<html></html>")
    outputs.mark_participant_complete(tmp_path, "01", "abc", [str(out.relative_to(tmp_path))])
    assert outputs.participant_status(tmp_path, "01")["ConfigHash"] == "abc"
    assert outputs.check_rerun(tmp_path, "01", "abc", overwrite=False) is True
    with pytest.raises(ConfigError, match="different configuration.*--overwrite"):
        outputs.check_rerun(tmp_path, "01", "xyz", overwrite=False)
    # another participant is untouched by the overwrite of sub-01
    outputs.mark_participant_complete(tmp_path, "02", "abc", [])
    assert outputs.check_rerun(tmp_path, "01", "xyz", overwrite=True) is False
    assert not out.exists() and not (tmp_path / "sub-01.html").exists()
    assert outputs.participant_status(tmp_path, "01") is None
    assert outputs.participant_status(tmp_path, "02") is not None


def test_participant_status_malformed(tmp_path):
    outputs.atomic_write_text(outputs.status_path(tmp_path, "01"), "{not json")
    with pytest.raises(InputError, match="sub-01_status.json"):
        outputs.participant_status(tmp_path, "01")
