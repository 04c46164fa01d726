"""Tests of the participant HTML report and its figures."""

from __future__ import annotations

import dataclasses
import time
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nibabel.affines import apply_affine
from scipy import ndimage, stats

from bids_app.reports import RunReportData, figures, write_participant_report

SHAPE = (9, 11, 10)
# LAS grid (x flipped) so that the RAS reorientation is exercised
AFFINE = np.array([[-3.0, 0, 0, 12], [0, 3, 0, -15], [0, 0, 3, -12], [0, 0, 0, 1]])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.h2, self.imgs, self.urls, self.flags, self._tag = [], [], [], 0, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._tag = tag
        self.imgs += [attrs["src"]] if tag == "img" else []
        self.urls += [v for k, v in attrs.items() if k in ("src", "href") and v]
        self.flags += int(tag == "td" and attrs.get("class") == "flag")

    def handle_data(self, data):
        if self._tag == "h2" and data.strip():
            self.h2.append(data.strip())

    def handle_endtag(self, tag):
        self._tag = None


def _run(prefix: str, rng: np.random.Generator, *, lesion: bool, high_motion: bool, pred=None):
    brain = np.zeros(SHAPE, bool)
    brain[1:-1, 1:-1, 1:-1] = True
    seed = np.zeros(SHAPE, bool)
    seed[5:7, 4:6, 6:8] = True
    lesion_mask = None
    if lesion:
        lesion_mask = np.zeros(SHAPE, bool)
        lesion_mask[2:4, 5:8, 3:6] = True
    n_vol, k = 40, 5
    motion = pd.DataFrame(
        rng.normal(0, 0.2, (n_vol, 6)) * [1, 1, 1, 0.01, 0.01, 0.01],
        columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"],
    )
    motion["framewise_displacement"] = np.abs(rng.normal(0, 0.1, n_vol))
    qc = {
        "MaxTranslation": 3.456 if high_motion else 0.789,
        "MaxRotation": 0.4321,
        "MeanFD": 0.1234,
        "HighMotion": high_motion,
        "LesionVolume": 12.5,
        "SeedVoxels": int(seed.sum()),
        "SeedLesionOverlap": 0,
        "LesionSide": "L",
        "Mirrored": True,
        "NumberOfWindows": 13,
        "DummyScans": 2,
    }
    return RunReportData(
        prefix=prefix,
        background=rng.random(SHAPE) + brain,
        affine=AFFINE,
        brain_mask=brain,
        seed_mask=seed,
        lesion_mask=lesion_mask,
        seed_mni=(-3.0, 0.0, 9.0),
        carpet_before=rng.standard_normal((n_vol + 2, 120)),
        carpet_after=rng.standard_normal((n_vol, 120)),
        motion=motion,
        max_motion=3.0,
        dfc_mean=rng.normal(0, 0.3, SHAPE),
        dfc_std=rng.random(SHAPE),
        window_maps=rng.normal(0, 0.3, SHAPE + (k,)),
        window_indices=[0, 3, 6, 9, 12],
        window_onsets=[0.0, 6.0, 12.0, 18.0, 24.0],
        seed_series=rng.standard_normal(n_vol),
        tr=2.0,
        qc=qc,
        prediction=pred,
    )


PRED = {
    "PredictedClass": "severe",
    "ProbabilityMean": 0.8125,
    "ProbabilitySpread": 0.0625,
    "CVAccuracy": 0.8375,
    "Disclaimer": "Trained on 20 participants.",
}


def test_participant_report(tmp_path):
    rng = np.random.default_rng(1)
    runs = [
        _run("sub-01_ses-1_task-rest_run-1", rng, lesion=True, high_motion=False, pred=PRED),
        _run("sub-01_ses-1_task-rest_run-2", rng, lesion=False, high_motion=True),
    ]
    config = {"dfc": {"window_length": 30, "step": 3}, "seed_radius": 6.0}
    start = time.perf_counter()
    html_path = write_participant_report(
        tmp_path, "sub-01", runs, methods_html="<p>Methods boilerplate.</p>",
        config_summary=config,
    )  # fmt: skip
    assert time.perf_counter() - start < 20
    assert html_path == tmp_path / "sub-01.html"
    text = html_path.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    parser.close()
    for heading in ("Summary", "Prediction", "Methods", "Configuration", "Errors"):
        assert heading in parser.h2
    assert "Run sub-01_ses-1_task-rest_run-1" in parser.h2
    assert "Run sub-01_ses-1_task-rest_run-2" in parser.h2
    for number in ("3.456", "0.789", "0.4321", "0.1234", "12.5"):
        assert number in text
    assert parser.flags == 1  # only the high-motion run's HighMotion cell
    assert "not a clinical device" in text and "0.8375" in text and "severe" in text
    assert "Trained on 20 participants." in text
    assert "dfc.window_length" in text and "Methods boilerplate." in text
    assert "No errors to report." in text
    assert len(parser.imgs) == 12
    fig_dir = (tmp_path / "sub-01" / "figures").resolve()
    for src in parser.imgs:
        target = (tmp_path / src).resolve()
        assert target.parent == fig_dir and target.is_file()
        assert target.read_bytes()[:8] == PNG_MAGIC
        assert target.name.startswith("sub-01_ses-1_task-rest_run-")
        assert "_desc-" in target.name
    assert not any(u.startswith(("http", "//")) for u in parser.urls)
    assert "<script" not in text and "<link" not in text
    assert [p for p in tmp_path.rglob("*.tmp")] == []


def test_report_without_prediction_has_no_prediction_section(tmp_path):
    run = _run("sub-02_task-rest", np.random.default_rng(2), lesion=False, high_motion=False)
    path = write_participant_report(tmp_path, "02", [run], methods_html="", config_summary={})
    parser = _Collector()
    parser.feed(path.read_text())
    assert "Prediction" not in parser.h2 and "Summary" in parser.h2 and parser.flags == 0


def test_background_from_nifti_path(tmp_path):
    run = _run("sub-03_task-rest", np.random.default_rng(3), lesion=True, high_motion=False)
    bg = tmp_path / "bg.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(run.background, np.float32), AFFINE), bg)
    run = dataclasses.replace(run, background=bg)
    out = tmp_path / "out"
    write_participant_report(out, "03", [run], methods_html="", config_summary={})
    assert (out / "sub-03/figures/sub-03_task-rest_desc-seed_mask.png").is_file()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("dfc_mean", np.zeros((9, 11, 9)), "dfc_mean must have the grid shape"),
        ("window_indices", [0, 1], "window_indices and window_onsets must have 5"),
        ("motion", pd.DataFrame({"trans_x": [0.0]}), "motion lacks columns"),
        ("prediction", {"PredictedClass": "mild"}, "prediction lacks keys"),
        ("tr", 0.0, "tr must be > 0, got 0.0"),
    ],
)
def test_report_rejects_inconsistent_runs(tmp_path, field, value, match):
    run = _run("sub-04_task-rest", np.random.default_rng(4), lesion=False, high_motion=False)
    bad = dataclasses.replace(run, **{field: value})
    with pytest.raises(ValueError, match=match):
        write_participant_report(tmp_path, "04", [bad], methods_html="", config_summary={})


def test_to_ras_matches_nibabel_canonical():
    data = np.random.default_rng(5).random(SHAPE + (2,))
    ours, aff = figures.to_ras(data, AFFINE)
    ref = nib.as_closest_canonical(nib.Nifti1Image(data, AFFINE))
    np.testing.assert_array_equal(ours, np.asarray(ref.dataobj))
    np.testing.assert_allclose(aff, ref.affine)


def test_seed_voxel_center_of_mass_and_mni_fallback():
    seed = np.zeros(SHAPE, bool)
    seed[2:5, 6:8, 3:4] = True
    expected = np.rint(ndimage.center_of_mass(seed)).astype(int)
    assert figures.seed_voxel(seed, AFFINE, (0, 0, 0)) == tuple(expected)
    mni = (-3.0, 6.0, 3.0)
    ijk = figures.seed_voxel(np.zeros(SHAPE, bool), AFFINE, mni)
    np.testing.assert_allclose(apply_affine(AFFINE, ijk), mni)


def test_carpet_image_is_voxelwise_zscore():
    x = np.random.default_rng(6).standard_normal((30, 8)) * 5 + 2
    x[:, 3] = 1.0  # constant voxel -> zeros, not NaN
    img = figures._carpet_image(x, max_rows=100)
    ref = np.zeros_like(x)
    varying = [0, 1, 2, 4, 5, 6, 7]
    ref[:, varying] = stats.zscore(x[:, varying], axis=0)
    np.testing.assert_allclose(img, ref.T, atol=1e-12)
    assert figures._carpet_image(x, max_rows=4).shape == (4, 30)


def test_report_rejects_bad_subject(tmp_path):
    run = _run("sub-05_task-rest", np.random.default_rng(7), lesion=False, high_motion=False)
    with pytest.raises(ValueError, match="subject must be an alphanumeric label, got 'a_b'"):
        write_participant_report(Path(tmp_path), "a_b", [run], methods_html="", config_summary={})


def test_seed_figure_adds_a_row_through_the_lesion():
    import io

    import matplotlib.image as mpimg

    from bids_app.reports.figures import seed_figure

    affine = np.diag([6.0, 6.0, 6.0, 1.0])
    affine[:3, 3] = [-90.0, -126.0, -72.0]
    bg = np.random.default_rng(0).random((31, 37, 31))
    seed = np.zeros(bg.shape, bool)
    seed[8, 17, 21] = True
    lesion = np.zeros(bg.shape, bool)
    lesion[11:13, 20:22, 13:15] = True  # subcortical: not in the slices through the seed
    without = mpimg.imread(io.BytesIO(seed_figure(bg, seed, None, affine, (-38, -22, 56))))
    with_lesion = mpimg.imread(io.BytesIO(seed_figure(bg, seed, lesion, affine, (-38, -22, 56))))
    assert with_lesion.shape[0] == 2 * without.shape[0]
    assert with_lesion.shape[1] == without.shape[1]
