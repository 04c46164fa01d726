"""End-to-end participant level on independently generated data, against independent references.

The datasets come from ``tests/_independent_data.py`` (not from ``bids_app.demo``). The dFC maps
are re-derived with numpy from the written denoised series; the coupling, nuisance, motion and
lesion quantities are compared with what was planted.
"""

from __future__ import annotations

import json
import re
import sys
import time
import tomllib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _independent_data import (  # noqa: E402
    LAS4_AFFINE,
    LAS4_SHAPE,
    RES2_AFFINE,
    RES2_SHAPE,
    SPACE,
    TARGET_LEFT,
    TARGET_RIGHT,
    SubjectSpec,
    sphere,
    write_dataset,
)

from bids_app.__about__ import __version__  # noqa: E402
from bids_app.cli.run import main  # noqa: E402

R_CLIP = 1.0 - 1e-9
LESION_R = (30.0, 5.0, 20.0)
LESION_L = (-30.0, 5.0, 20.0)
# the LAS 4 mm dataset and its options
N_VOL, DUMMY, W, STEP, TR = 120, 4, 20, 3, 2.0
LAS_OPTIONS = ["--dummy-scans", str(DUMMY), "--window-length", str(W), "--window-step", str(STEP)]
LAS_OPTIONS += ["--resolution", "6", "--seed-radius", "8", "--fwhm", "6", "--low-pass", "0.2"]


def _run(root: Path, truth: dict, options: list[str], *extra: str) -> int:
    args = [str(truth["bids"]), str(root / "out"), "participant", "-w", str(root / "work")]
    return main(args + ["--lesion-dir", str(truth["lesions"]), *options, *extra])


def _outputs(out: Path, sub: str) -> dict:
    func = out / f"sub-{sub}" / "func"
    names = {
        "dfc": "desc-dfc_boldmap.nii.gz",
        "json": "desc-dfc_boldmap.json",
        "mean": "desc-dfcmean_boldmap.nii.gz",
        "std": "desc-dfcstd_boldmap.nii.gz",
        "sfc": "desc-sfc_boldmap.nii.gz",
        "denoised": "desc-denoised_bold.nii.gz",
        "brain": "desc-brain_mask.nii.gz",
        "seed": "label-seed_mask.nii.gz",
        "lesion": "label-lesion_mask.nii.gz",
    }
    found = {}
    for key, suffix in names.items():
        hits = sorted(func.glob(f"sub-{sub}_task-rest_space-{SPACE}_res-*_{suffix}"))
        found[key] = hits[0] if hits else None
    return found


def _load(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float64)


def reference_dfc(den, brain, seed, lesion, *, length: int, step: int) -> np.ndarray:
    """Hamming-tapered windowed Pearson r -> atanh, per voxel, with numpy only."""
    seed_series = den[seed].mean(axis=0)
    keep = brain & ~lesion
    voxels = den[keep]
    n_win = (den.shape[3] - length) // step + 1
    taper = np.hamming(length)
    out = np.zeros(den.shape[:3] + (n_win,))
    for k in range(n_win):
        sl = slice(k * step, k * step + length)
        x = seed_series[sl] * taper
        y = voxels[:, sl] * taper
        xc, yc = x - x.mean(), y - y.mean(axis=1, keepdims=True)
        r = yc @ xc / np.sqrt((yc**2).sum(axis=1) * (xc @ xc))
        out[keep, k] = np.arctanh(np.clip(r, -R_CLIP, R_CLIP))
    return out


def _check_dfc(out: Path, sub: str, *, length: int, step: int, n_expected: int) -> None:
    f = _outputs(out, sub)
    den, dfc = _load(f["denoised"]), _load(f["dfc"])
    brain, seed = _load(f["brain"]) > 0, _load(f["seed"]) > 0
    lesion = _load(f["lesion"]) > 0 if f["lesion"] else np.zeros_like(brain)
    ref = reference_dfc(den, brain, seed, lesion, length=length, step=step)
    assert dfc.shape == ref.shape == den.shape[:3] + (n_expected,)
    np.testing.assert_allclose(dfc, ref, atol=1e-4, rtol=0)
    assert np.count_nonzero(dfc[brain & ~lesion]) > 0.9 * dfc[brain & ~lesion].size
    sidecar = json.loads(f["json"].read_text())
    assert sidecar["NumberOfWindows"] == n_expected
    # summaries as DPABI: mean, MATLAB std (N-1) and CV over windows
    np.testing.assert_allclose(_load(f["mean"]), ref.mean(axis=3), atol=1e-4, rtol=0)
    np.testing.assert_allclose(_load(f["std"]), ref.std(axis=3, ddof=1), atol=1e-4, rtol=0)
    # static map: atanh of the whole-run Pearson r with the seed
    seed_series = den[seed].mean(axis=0)
    keep = brain & ~lesion
    r = np.array([np.corrcoef(seed_series, v)[0, 1] for v in den[keep]])
    static = np.zeros(brain.shape)
    static[keep] = np.arctanh(np.clip(r, -R_CLIP, R_CLIP))
    np.testing.assert_allclose(_load(f["sfc"]), static, atol=1e-4, rtol=0)


def _region_mean(path: Path, centre, radius: float = 10.0) -> float:
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float64)
    region = sphere(data.shape[:3], img.affine, centre, radius) & (data != 0)
    assert region.sum() >= 5
    return float(data[region].mean())


@pytest.fixture(scope="module")
def las(tmp_path_factory):
    """Three participants on a 4 mm LAS grid with an off-grid origin, processed once."""
    root = tmp_path_factory.mktemp("las")
    subjects = [
        SubjectSpec("01", "R", lesion_centre=LESION_R, coupling=True),
        SubjectSpec("02", "left", lesion_centre=LESION_L, nuisance_weight=3.0, spike_mm=3.0),
        SubjectSpec("03", "n/a", lesion_centre=LESION_R, coupling=True),  # side from the mask
    ]
    truth = write_dataset(
        root, subjects, shape=LAS4_SHAPE, affine=LAS4_AFFINE, n_volumes=N_VOL, tr=TR, res="4"
    )
    rc = _run(root, truth, LAS_OPTIONS)
    return {"root": root, "truth": truth, "out": root / "out", "rc": rc}


def test_las_run_succeeds(las):
    assert las["rc"] == 0
    for sub in ("01", "02", "03"):
        assert all(p is not None for p in _outputs(las["out"], sub).values())


@pytest.mark.parametrize("sub", ["01", "02"])
def test_dfc_equals_independent_recomputation(las, sub):
    expected = (N_VOL - DUMMY - W) // STEP + 1
    _check_dfc(las["out"], sub, length=W, step=STEP, n_expected=expected)


@pytest.mark.parametrize("sub", ["01", "03"])
def test_right_lesion_coupling_appears_in_left_hemisphere(las, sub):
    f = _outputs(las["out"], sub)
    for key in ("sfc", "mean"):
        left = _region_mean(f[key], TARGET_LEFT)
        right = _region_mean(f[key], TARGET_RIGHT)
        assert left > 1.2, (key, left)
        assert left - right > 1.0, (key, left, right)
    # the seed sits in the left hemisphere of the output grid
    seed = nib.load(str(f["seed"]))
    ijk = np.argwhere(np.asarray(seed.dataobj) > 0)
    assert np.all((ijk @ seed.affine[0, :3] + seed.affine[0, 3]) < 0)


@pytest.mark.parametrize("sub", ["01", "02", "03"])
def test_lesion_is_left_and_zero_in_every_window(las, sub):
    f = _outputs(las["out"], sub)
    lesion_img = nib.load(str(f["lesion"]))
    lesion = np.asarray(lesion_img.dataobj) > 0
    assert lesion.sum() > 0
    x = np.argwhere(lesion) @ lesion_img.affine[0, :3] + lesion_img.affine[0, 3]
    assert np.all(x < 0), "the lesion must be in the left hemisphere after mirroring"
    dfc = _load(f["dfc"])
    assert np.all(dfc[lesion] == 0.0)
    brain = _load(f["brain"]) > 0
    assert np.all(dfc[~brain] == 0.0)
    for key in ("mean", "std", "sfc"):
        assert np.all(_load(f[key])[lesion] == 0.0)


def test_planted_nuisance_is_removed(las):
    f = _outputs(las["out"], "02")
    den, brain = _load(f["denoised"]), _load(f["brain"]) > 0
    table = las["truth"]["subjects"]["02"]["confounds_table"]
    wm = table["white_matter"].to_numpy()[DUMMY:]
    voxels = den[brain]
    vc = voxels - voxels.mean(axis=1, keepdims=True)
    wc = wm - wm.mean()
    r = vc @ wc / np.sqrt((vc**2).sum(axis=1) * (wc @ wc))
    assert np.mean(np.abs(r)) < 0.05
    # before denoising the nuisance dominated: the raw input correlates with it
    raw = _load(las["truth"]["subjects"]["02"]["bold"])[..., DUMMY:]
    inside = raw[_load(las["truth"]["subjects"]["02"]["mask"]) > 0][::50]
    rc = inside - inside.mean(axis=1, keepdims=True)
    r_raw = rc @ wc / np.sqrt((rc**2).sum(axis=1) * (wc @ wc))
    assert np.mean(np.abs(r_raw)) > 0.9


def test_window_z_unbiased_by_residual_mean(las):
    f = _outputs(las["out"], "02")  # no planted coupling in sub-02
    brain = _load(f["brain"]) > 0
    mean_z = _load(f["mean"])[brain]
    static = _load(f["sfc"])[brain]
    assert abs(static.mean()) < 0.3  # static FC (demeaned over the run) is unbiased
    assert abs(mean_z.mean()) < 0.3


def _expected_motion(table, dummy: int) -> dict:
    kept = table.iloc[dummy:]
    trans = kept[["trans_x", "trans_y", "trans_z"]].to_numpy()
    rots = kept[["rot_x", "rot_y", "rot_z"]].to_numpy()
    return {
        "MaxTranslation": float(np.abs(trans).max()),
        "MaxRotation": float(np.abs(rots).max() * 180.0 / np.pi),
        "MeanFD": float(np.nanmean(kept["framewise_displacement"].to_numpy())),
    }


@pytest.mark.parametrize("sub", ["01", "02", "03"])
def test_sidecar_fields_match_the_planted_truth(las, sub):
    f = _outputs(las["out"], sub)
    meta = json.loads(f["json"].read_text())
    truth = las["truth"]["subjects"][sub]
    n_win = (N_VOL - DUMMY - W) // STEP + 1
    assert meta["RepetitionTime"] == TR
    assert (meta["WindowLength"], meta["WindowStep"], meta["WindowShape"]) == (W, STEP, "hamming")
    assert meta["NumberOfWindows"] == n_win
    np.testing.assert_allclose(meta["WindowOnsets"], np.arange(n_win) * STEP * TR)
    assert meta["SeedMNI"] == [-38.0, -22.0, 56.0]
    assert meta["SeedRadius"] == 8.0
    assert meta["SeedVoxels"] == int((_load(f["seed"]) > 0).sum()) > 0
    assert meta["Mirrored"] is (sub != "02")
    assert meta["LesionSide"] == ("L" if sub == "02" else "R")
    assert meta["DummyScans"] == DUMMY
    assert len(meta["Confounds"]) == 26
    assert set(meta["Confounds"]) == {
        c for c in truth["confounds_table"].columns
        if c not in ("global_signal", "framewise_displacement")
    }  # fmt: skip
    assert (meta["HighPass"], meta["LowPass"], meta["SmoothingFWHM"]) == (0.01, 0.2, 6.0)
    expected = _expected_motion(truth["confounds_table"], DUMMY)
    for key, value in expected.items():
        assert meta[key] == pytest.approx(value, rel=1e-6), key
    assert meta["HighMotion"] is (sub == "02")  # the 3 mm spike
    if sub == "02":
        assert meta["MaxTranslation"] == pytest.approx(3.0, abs=0.2)
    volume = truth["lesion_voxels"] * truth["voxel_volume"] / 1000.0
    assert meta["LesionVolume"] == pytest.approx(volume, rel=1e-6)
    fmriprep = las["truth"]["fmriprep"]
    sources = {
        f"bids:fmriprep:{truth[k].relative_to(fmriprep).as_posix()}"
        for k in ("bold", "mask", "confounds")
    }
    sources.add(f"bids:lesions:{truth['lesion'].relative_to(las['truth']['lesions']).as_posix()}")
    assert set(meta["Sources"]) == sources
    shape = nib.load(str(f["dfc"])).shape[:3]
    assert "6 mm" in meta["Resolution"]
    assert "x".join(str(n) for n in shape) in meta["Resolution"]


def test_nuisance_tsv_holds_the_retained_regressors(las):
    import pandas as pd

    table = las["truth"]["subjects"]["01"]["confounds_table"]
    path = las["out"] / "sub-01/func/sub-01_task-rest_desc-nuisance_timeseries.tsv"
    written = pd.read_csv(path, sep="\t")
    assert len(written) == N_VOL - DUMMY
    np.testing.assert_allclose(
        written["white_matter"].to_numpy(), table["white_matter"].to_numpy()[DUMMY:], rtol=1e-6
    )


def test_dataset_level_files(las):
    out = las["out"]
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "strokedfc"
    assert desc["GeneratedBy"][0]["Version"] == __version__
    assert (out / "logs" / "CITATION.md").read_text().strip()
    configs = sorted((out / "logs").glob("config-*.toml"))
    assert configs
    config = tomllib.loads(configs[-1].read_text())
    assert config["participant"]["window_length"] == W
    assert config["participant"]["window_step"] == STEP
    assert config["participant"]["resolution"] == 6.0


@pytest.mark.parametrize("sub", ["01", "02"])
def test_report_and_its_images(las, sub):
    report = las["out"] / f"sub-{sub}.html"
    text = report.read_text()
    sources = re.findall(r'<img[^>]+src="([^"]+)"', text)
    assert sources
    for src in sources:
        assert (las["out"] / src).is_file(), src


def _strategy_file(folder: Path) -> Path:
    path = folder / "wm_csf.txt"
    path.write_text("# two regressors\nwhite_matter\ncsf\n")
    return path


def test_res2_grid_few_volumes(tmp_path):
    """fMRIPrep's real res-2 grid: dFC re-derived, windows counted, lesion zero, mirrored."""
    subjects = [
        SubjectSpec("07", "R", lesion_centre=LESION_R, coupling=True, extra={"non_steady": 2})
    ]
    truth = write_dataset(
        tmp_path, subjects, shape=RES2_SHAPE, affine=RES2_AFFINE, n_volumes=40, tr=1.5, res="2"
    )
    options = ["--dummy-scans", "auto", "--window-length", "10", "--window-step", "2"]
    options += ["--resolution", "9", "--seed-radius", "9", "--fwhm", "0"]
    # 38 retained volumes leave no degrees of freedom for 26 regressors: a strategy file
    options += ["--confounds", str(_strategy_file(tmp_path)), "--low-pass", "none"]
    assert _run(tmp_path, truth, options) == 0
    _check_dfc(tmp_path / "out", "07", length=10, step=2, n_expected=(40 - 2 - 10) // 2 + 1)
    f = _outputs(tmp_path / "out", "07")
    img = nib.load(str(f["dfc"]))
    assert img.shape[:3] == (21, 25, 21)  # the SPM box [-90 -126 -72; 90 90 108] at 9 mm
    spm_box = np.array([[9.0, 0, 0, -90], [0, 9.0, 0, -126], [0, 0, 9.0, -72], [0, 0, 0, 1]])
    np.testing.assert_allclose(img.affine, spm_box, atol=1e-5)
    meta = json.loads(f["json"].read_text())
    assert meta["RepetitionTime"] == 1.5
    assert meta["Mirrored"] is True
    assert meta["Confounds"] == ["white_matter", "csf"]
    assert meta["DummyScans"] == 2  # --dummy-scans auto: fMRIPrep's flagged volumes
    assert _region_mean(f["sfc"], TARGET_LEFT, 14) > _region_mean(f["sfc"], TARGET_RIGHT, 14)


@pytest.mark.slow
def test_res2_grid_240_volumes_gives_209_windows(tmp_path):
    subjects = [SubjectSpec("08", "L", lesion_centre=LESION_L, coupling=True)]
    truth = write_dataset(
        tmp_path, subjects, shape=RES2_SHAPE, affine=RES2_AFFINE, n_volumes=240, res="2"
    )
    options = ["--dummy-scans", "10", "--resolution", "6", "--seed-radius", "8"]
    assert _run(tmp_path, truth, options) == 0
    _check_dfc(tmp_path / "out", "08", length=22, step=1, n_expected=209)


def test_rerun_skips_refuses_and_overwrites(tmp_path, capsys):
    truth = write_dataset(
        tmp_path, [SubjectSpec("03")], shape=LAS4_SHAPE, affine=LAS4_AFFINE, n_volumes=40
    )
    options = ["--dummy-scans", "0", "--window-length", "10", "--resolution", "9"]
    options += ["--seed-radius", "9", "--fwhm", "0", "--confounds", str(_strategy_file(tmp_path))]
    assert _run(tmp_path, truth, options) == 0
    out = tmp_path / "out"
    files = sorted(p for p in (out / "sub-03").rglob("*") if p.is_file())
    files.append(out / "sub-03.html")
    stamps = {p: p.stat().st_mtime_ns for p in files}
    capsys.readouterr()

    start = time.monotonic()
    assert _run(tmp_path, truth, options) == 0
    assert time.monotonic() - start < 20
    assert {p: p.stat().st_mtime_ns for p in files} == stamps

    capsys.readouterr()
    assert _run(tmp_path, truth, options, "--window-length", "12") != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("strokedfc: error:") and "--overwrite" in err[0]
    assert {p: p.stat().st_mtime_ns for p in files} == stamps

    assert _run(tmp_path, truth, options, "--window-length", "12", "--overwrite") == 0
    meta = json.loads(_outputs(out, "03")["json"].read_text())
    assert meta["WindowLength"] == 12 and meta["NumberOfWindows"] == 40 - 12 + 1
    dfc = _outputs(out, "03")["dfc"]
    assert dfc.stat().st_mtime_ns != stamps[dfc]


def test_confounds_none_runs(tmp_path):
    truth = write_dataset(
        tmp_path, [SubjectSpec("04")], shape=LAS4_SHAPE, affine=LAS4_AFFINE, n_volumes=50
    )
    options = ["--dummy-scans", "0", "--window-length", "10", "--resolution", "9"]
    options += ["--seed-radius", "9", "--fwhm", "0", "--confounds", "none"]
    assert _run(tmp_path, truth, options) == 0
    meta = json.loads(_outputs(tmp_path / "out", "04")["json"].read_text())
    assert meta["Confounds"] == []
