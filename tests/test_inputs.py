"""Tests for bids_app.inputs on tiny fMRIPrep-shaped datasets."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app import inputs as I
from bids_app.errors import ConfigError, InputError
from tests import _fmriprep_fixtures as F

SPACE = "MNI152NLin2009cAsym"


@pytest.fixture
def dataset(tmp_path):
    """Two participants: sub-01 with sessions/acq/run, sub-02 with a single run."""
    raw = F.make_raw(
        tmp_path / "raw",
        [
            {"participant_id": "sub-01", "lesion_side": "left", "group": "severe"},
            {"participant_id": "sub-02", "lesion_side": "R", "group": "mild"},
        ],
    )
    fp = F.make_derivatives_root(tmp_path / "fmriprep")
    runs = {
        "a": F.add_run(fp, "01", ses="pre", extra={"acq": "mb", "run": "1"}, bids_dir=raw),
        "b": F.add_run(fp, "01", ses="pre", extra={"acq": "mb", "run": "2"}, n_vols=24),
        "c": F.add_run(fp, "01", ses="post", res=None, grid=(6, 5, 4)),
        "d": F.add_run(fp, "02", n_vols=26, confounds="regressors"),
        "other_space": F.add_run(
            fp, "02", space="MNI152NLin6Asym", grid=(4, 4, 4), n_vols=26, confounds=None
        ),
    }
    return raw, fp, runs


def _collect(raw, fp, **kw):
    kw.setdefault("participant_labels", None)
    return I.collect_participants(raw, fp, **kw)


def test_discovery_entities_sessions_and_sides(dataset):
    raw, fp, runs = dataset
    before = F.listing(raw, fp)
    parts = _collect(raw, fp)
    assert F.listing(raw, fp) == before  # nothing written into the inputs
    assert [p.subject for p in parts] == ["01", "02"]
    p1, p2 = parts
    assert p1.lesion_side == "L" and p2.lesion_side == "R"
    assert p1.participant_row["group"] == "severe"
    assert [r.bold for r in p1.runs] == sorted(runs[k]["bold"] for k in "abc")
    by_bold = {r.bold: r for r in p1.runs}
    ra = by_bold[runs["a"]["bold"]]
    assert ra.entities == {"sub": "01", "ses": "pre", "task": "rest", "acq": "mb", "run": "1"}
    assert (ra.subject, ra.session, ra.task, ra.space) == ("01", "pre", "rest", SPACE)
    assert ra.mask == runs["a"]["mask"] and ra.confounds == runs["a"]["confounds"]
    assert ra.bold_json == runs["a"]["bold_json"] and ra.repetition_time == 2.0
    assert ra.n_volumes == 30 and by_bold[runs["b"]["bold"]].n_volumes == 24
    rc = by_bold[runs["c"]["bold"]]  # no res entity
    assert rc.session == "post" and rc.mask == runs["c"]["mask"]
    assert ra.lesion is None and ra.lesion_space is None and ra.lesion_xfm is None
    (rd,) = p2.runs  # older confounds name; space preference over MNI152NLin6Asym
    assert rd.confounds.name.endswith("_desc-confounds_regressors.tsv")
    assert rd.space == SPACE and rd.n_volumes == 26


def test_labels_with_and_without_prefix_and_sessions(dataset):
    raw, fp, _ = dataset
    (p,) = _collect(raw, fp, participant_labels=["sub-01"], session_labels=["ses-post"])
    assert [r.session for r in p.runs] == ["post"]
    (p,) = _collect(raw, fp, participant_labels=["02"], space="MNI152NLin6Asym")
    assert p.runs[0].space == "MNI152NLin6Asym" and p.runs[0].bold.name.count("NLin6Asym")


def test_bids_filters_applied(dataset):
    raw, fp, runs = dataset
    (p,) = _collect(raw, fp, participant_labels=["01"], bids_filters={"bold": {"run": 2}})
    assert [r.bold for r in p.runs] == [runs["b"]["bold"]]
    (p,) = _collect(
        raw, fp, participant_labels=["01"], bids_filters={"bold": {"acquisition": None}}
    )
    assert [r.bold for r in p.runs] == [runs["c"]["bold"]]
    with pytest.raises(ConfigError):
        _collect(raw, fp, bids_filters={"bold": {"space": "T1w"}})


@pytest.mark.parametrize("bad", ["../01", "sub-0 1", "a/b", "sub-01\\x", "", "0.1"])
def test_normalise_label_rejects_path_characters(bad):
    with pytest.raises(ConfigError, match="invalid participant label"):
        I.normalise_label(bad)


def test_normalise_label_strips_prefixes():
    assert I.normalise_label("sub-01") == "01" and I.normalise_label("01") == "01"
    assert I.normalise_label("ses-pre", entity="session") == "pre"


def test_space_preference_and_missing_space(tmp_path):
    raw = F.make_raw(tmp_path / "raw")
    fp = F.make_derivatives_root(tmp_path / "fp")
    F.add_run(fp, "01", space="MNI152NLin2009cSym")
    F.add_run(fp, "01", space="MNI152NLin6Asym", res=None)
    (p,) = _collect(raw, fp)
    assert p.runs[0].space == "MNI152NLin6Asym" and p.lesion_side == "n/a"
    with pytest.raises(InputError, match="sub-01.*'T1w'"):
        _collect(raw, fp, space="T1w")
    F.add_run(tmp_path / "fp2", "01", space="T1w")
    F.make_derivatives_root(tmp_path / "fp2")
    with pytest.raises(InputError, match="available: T1w"):
        _collect(raw, tmp_path / "fp2")


def test_missing_derivatives_and_unknown_participant(dataset, tmp_path):
    raw, fp, _ = dataset
    with pytest.raises(InputError, match="no fMRIPrep derivatives found"):
        _collect(raw, tmp_path / "nowhere")
    with pytest.raises(InputError, match="participant '07' not found"):
        _collect(raw, fp, participant_labels=["sub-07"])
    with pytest.raises(InputError, match="no fMRIPrep derivatives found for task-motor"):
        _collect(raw, fp, task="motor")


def test_tr_fallback_to_raw_inheritance_and_missing_tr(tmp_path):
    raw = F.make_raw(tmp_path / "raw", tr=1.5)
    fp = F.make_derivatives_root(tmp_path / "fp")
    paths = F.add_run(fp, "01", tr=None, bids_dir=raw)
    (p,) = _collect(raw, fp)
    assert p.runs[0].repetition_time == 1.5
    (raw / "task-rest_bold.json").unlink()
    with pytest.raises(InputError, match=paths["bold"].name + ".*RepetitionTime"):
        _collect(raw, fp)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"mask": False}, "desc-brain_mask.nii.gz: brain mask missing"),
        ({"confounds": None}, "desc-confounds_timeseries.tsv: confounds file missing"),
        ({"n_conf_rows": 29}, "confounds_timeseries.tsv: confounds have 29 rows.*30 volumes"),
        ({"mask_affine": F.affine(shift=2.0)}, "desc-brain_mask.nii.gz: brain mask grid"),
    ],
)
def test_run_errors_name_the_file(tmp_path, kwargs, pattern):
    raw = F.make_raw(tmp_path / "raw")
    fp = F.make_derivatives_root(tmp_path / "fp")
    F.add_run(fp, "01", **kwargs)
    with pytest.raises(InputError, match=pattern):
        _collect(raw, fp)


def test_mask_shape_mismatch(tmp_path):
    raw = F.make_raw(tmp_path / "raw")
    fp = F.make_derivatives_root(tmp_path / "fp")
    paths = F.add_run(fp, "01")
    F.write_nifti(paths["mask"], (5, 6, 8), dtype=np.uint8)
    with pytest.raises(InputError, match=r"brain_mask.nii.gz: .*\(5, 6, 8\).*\(5, 6, 7\)"):
        _collect(raw, fp)


def test_truncated_and_unreadable_nifti(tmp_path):
    raw = F.make_raw(tmp_path / "raw")
    fp = F.make_derivatives_root(tmp_path / "fp")
    bold = F.add_run(fp, "01")["bold"]
    data = gzip.decompress(bold.read_bytes())
    bold.write_bytes(gzip.compress(data)[:-200])  # truncated gzip stream
    with pytest.raises(InputError, match=bold.name + ": truncated"):
        _collect(raw, fp)
    bold.write_bytes(b"not a nifti")
    with pytest.raises(InputError, match=bold.name + ": unreadable NIfTI"):
        _collect(raw, fp)
    plain = tmp_path / "x.nii"
    nib.save(nib.Nifti1Image(np.ones((5, 6, 7, 3), np.float32), np.eye(4)), plain)
    assert I.check_nifti(plain)[0] == (5, 6, 7, 3)
    plain.write_bytes(plain.read_bytes()[:-100])
    with pytest.raises(InputError, match="x.nii: truncated"):
        I.check_nifti(plain)


def test_complete_gzip_is_accepted_without_decompressing(tmp_path, monkeypatch):
    img = nib.Nifti1Image(
        np.arange(5 * 6 * 7 * 4, dtype=np.float32).reshape(5, 6, 7, 4), np.eye(4)
    )
    single = tmp_path / "single.nii.gz"
    single.write_bytes(gzip.compress(img.to_bytes()))
    multi = tmp_path / "multi.nii.gz"  # a valid two-member gzip: ISIZE covers the last only
    raw = img.to_bytes()
    multi.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    assert I.check_nifti(multi)[0] == (5, 6, 7, 4)  # falls back to reading to the end

    def no_data_read(*args, **kwargs):
        raise AssertionError("the fast path must not read the data")

    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__getitem__", no_data_read)
    assert I.check_nifti(single)[0] == (5, 6, 7, 4)


def test_lesion_masks_search_and_preference(tmp_path):
    raw = F.make_raw(tmp_path / "raw", [{"participant_id": "sub-01", "lesion_side": "RIGHT"}])
    fp = F.make_derivatives_root(tmp_path / "fp")
    F.add_run(fp, "01", ses="A")
    F.add_run(fp, "01", ses="B")
    roi = F.write_nifti(raw / "sub-01/anat/sub-01_label-lesion_roi.nii.gz", (4, 4, 4))
    with pytest.raises(InputError, match="lesion_roi.nii.gz: .*from-T1w_to-" + SPACE):
        _collect(raw, fp)
    xfm = fp / "sub-01/anat" / f"sub-01_from-T1w_to-{SPACE}_mode-image_xfm.h5"
    xfm.parent.mkdir(parents=True)
    xfm.write_bytes(b"h5")
    (p,) = _collect(raw, fp)
    assert p.lesion_side == "R"
    assert {(r.lesion, r.lesion_space, r.lesion_xfm) for r in p.runs} == {(roi, "T1w", xfm)}
    # a template-space mask in lesion_dir wins over the raw T1w one; session-specific first
    les = F.make_derivatives_root(tmp_path / "lesions", "masks")
    atlas = F.write_nifti(
        les / "sub-01/anat/sub-01_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz",
        F.GRID,
    )
    ses_b = F.write_nifti(
        les / f"sub-01/ses-B/anat/sub-01_ses-B_space-{SPACE}_res-2_label-lesion_mask.nii.gz",
        F.GRID,
    )
    (p,) = _collect(raw, fp, lesion_dir=les)
    got = {r.session: (r.lesion, r.lesion_space, r.lesion_xfm) for r in p.runs}
    assert got == {"A": (atlas, "MNI152NLin2009aSym", None), "B": (ses_b, SPACE, None)}


def test_participants_side_values(tmp_path):
    raw = F.make_raw(tmp_path / "raw", [{"participant_id": "sub-01", "side": "up"}])
    fp = F.make_derivatives_root(tmp_path / "fp")
    F.add_run(fp, "01")
    with pytest.raises(InputError, match="participants.tsv: .*'01'.*'up'"):
        _collect(raw, fp, lesion_side_column="side")
    (p,) = _collect(raw, fp)  # absent column
    assert p.lesion_side == "n/a" and p.participant_row["side"] == "up"
    pd.DataFrame({"participant_id": ["sub-01"], "side": ["n/a"]}).to_csv(
        raw / "participants.tsv", sep="\t", index=False
    )
    assert _collect(raw, fp, lesion_side_column="side")[0].lesion_side == "n/a"


def test_check_run_lengths(dataset):
    raw, fp, _ = dataset
    run = _collect(raw, fp, participant_labels=["02"])[0].runs[0]  # 26 volumes
    I.check_run_lengths(run, dummy_scans=6, window_length=20)
    with pytest.raises(InputError, match=run.bold.name + r": 26 volumes .*\(7\).*\(20\) = 27"):
        I.check_run_lengths(run, dummy_scans=7, window_length=20)
    with pytest.raises(ValueError, match="window_length must be >= 2, got 1"):
        I.check_run_lengths(run, dummy_scans=0, window_length=1)


def test_reconcile_lesion_side():
    assert I.reconcile_lesion_side("L", "n/a", participant="01", path="p.tsv") == "L"
    assert I.reconcile_lesion_side("n/a", "R", participant="01", path="p.tsv") == "R"
    assert I.reconcile_lesion_side("n/a", "n/a", participant="01", path="p.tsv") == "n/a"
    assert I.reconcile_lesion_side("R", "R", participant="01", path="p.tsv") == "R"
    with pytest.raises(InputError, match="p.tsv: participant '01'"):
        I.reconcile_lesion_side("L", "R", participant="01", path="p.tsv")
    with pytest.raises(ValueError, match="table_side"):
        I.reconcile_lesion_side("left", "R", participant="01", path="p.tsv")
