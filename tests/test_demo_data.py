"""Tests of the synthetic demo dataset (bids_app.demo), checked with independent tools:
pybids (names, layout), nilearn (fMRIPrep confound loading, resampling) and numpy
re-derivations of the planted signals."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.demo import GroundTruth, load_groundtruth
from bids_app.demo.cli import main
from bids_app.demo.synthetic import generate_dataset

N_DUMMY = 4
SMALL = {"n_participants": 4, "n_volumes": 124, "resolution": 8.0, "n_dummy": N_DUMMY}
SPACE = "MNI152NLin2009cAsym"
MOTION = [f"{k}_{a}" for k in ("trans", "rot") for a in "xyz"]
P26 = [m + s for m in MOTION for s in ("", "_derivative1", "_power2", "_derivative1_power2")]
P26 += ["white_matter", "csf"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, GroundTruth]:
    root = tmp_path_factory.mktemp("demo") / "ds"
    return root, generate_dataset(root, random_seed=3, **SMALL)


def _func(root: Path, sub: str, suffix: str) -> Path:
    return root / "derivatives" / "fmriprep" / sub / "func" / f"{sub}_task-rest_{suffix}"


def _bold(root: Path, sub: str) -> Path:
    return _func(root, sub, f"space-{SPACE}_desc-preproc_bold.nii.gz")


def _confounds(root: Path, sub: str) -> pd.DataFrame:
    path = _func(root, sub, "desc-confounds_timeseries.tsv")
    return pd.read_csv(path, sep="\t", na_values="n/a")


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _world(img) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in img.shape[:3]], indexing="ij"), -1)
    return ijk @ img.affine[:3, :3].T + img.affine[:3, 3]


def _residual_series(root: Path, truth: GroundTruth, sub: str) -> dict[str, np.ndarray]:
    """Region means (at the written, possibly mirrored, centres) after dummy removal and
    OLS removal of the planted nuisance (intercept, trend, WM, CSF, 6 motion)."""
    img = nib.load(_bold(root, sub))
    data = np.asarray(img.dataobj, dtype=float)[..., N_DUMMY:]
    conf = _confounds(root, sub).iloc[N_DUMMY:]
    n = len(conf)
    design = np.column_stack(
        [np.ones(n), np.arange(n), conf[truth.nuisance["confound_columns"]].to_numpy()]
    )
    right = sub in truth.right_lesioned
    xyz = _world(img)
    out = {}
    for name, region in truth.regions.items():
        centre = np.array(region["centre_mni"], dtype=float) * ([-1, 1, 1] if right else 1)
        inside = np.linalg.norm(xyz - centre, axis=-1) <= region["radius_mm"]
        series = data[inside].mean(axis=0)
        beta = np.linalg.lstsq(design, series, rcond=None)[0]
        out[name] = series - design @ beta
    return out


def test_file_names_follow_fmriprep_and_pybids_indexes_them(demo):
    from bids import BIDSLayout
    from bids.layout import parse_file_entities

    root, truth = demo
    deriv = root / "derivatives" / "fmriprep"
    pattern = re.compile(
        rf"sub-\d+_task-rest_(space-{SPACE}_desc-(preproc_bold|brain_mask)\.(nii\.gz|json)"
        r"|desc-confounds_timeseries\.(tsv|json))"
    )
    files = sorted(p for p in deriv.rglob("sub-*") if p.is_file())
    assert len(files) == 6 * len(truth.participants)
    for path in files:
        assert pattern.fullmatch(path.name), path.name
        ent = parse_file_entities(str(path))
        assert ent["subject"] == path.name.split("_")[0][4:]
        assert ent["task"] == "rest"
    ent = parse_file_entities(str(_bold(root, "sub-01")))
    assert (ent["space"], ent["desc"], ent["suffix"]) == (SPACE, "preproc", "bold")
    layout = BIDSLayout(root, derivatives=[deriv])
    assert sorted(layout.get_subjects()) == [p.participant_id[4:] for p in truth.participants]
    preproc = layout.get(scope="derivatives", desc="preproc", suffix="bold", extension=".nii.gz")
    assert len(preproc) == len(truth.participants)
    assert layout.get_metadata(preproc[0].path)["RepetitionTime"] == 2.0
    raw = layout.get(scope="raw", suffix="bold", extension=".nii.gz")
    assert [nib.load(f.path).shape for f in raw] == [(8, 8, 8, SMALL["n_volumes"])] * 4


def test_confounds_columns_nans_and_nonsteady_flags(demo):
    root, truth = demo
    conf = _confounds(root, "sub-01")
    assert len(conf) == SMALL["n_volumes"]
    assert set(P26) <= set(conf.columns)
    first_nan = [c for c in conf if "derivative1" in c]
    first_nan += ["framewise_displacement", "dvars", "std_dvars", "rmsd"]
    assert conf.loc[0, first_nan].isna().all()
    assert not conf.loc[1:, first_nan].isna().any().any()
    assert not conf.drop(columns=first_nan).isna().any().any()
    flags = conf[[f"non_steady_state_outlier{k:02d}" for k in range(N_DUMMY)]].to_numpy()
    np.testing.assert_array_equal(flags, np.eye(len(conf))[:, :N_DUMMY])
    assert not any(c.startswith("non_steady_state_outlier") and c[-2:] >= "04" for c in conf)
    assert np.abs(conf[["rot_x", "rot_y", "rot_z"]]).to_numpy().max() < 0.05  # radians
    # independent re-derivations: Power FD and the derivative / power expansions
    motion = conf[MOTION].to_numpy()
    step = np.abs(np.diff(motion, axis=0))
    fd = step[:, :3].sum(1) + 50 * step[:, 3:].sum(1)
    np.testing.assert_allclose(conf["framewise_displacement"][1:], fd, atol=1e-6)
    np.testing.assert_allclose(conf["csf_derivative1"][1:], np.diff(conf["csf"]), atol=1e-6)
    np.testing.assert_allclose(conf["trans_y_power2"], conf["trans_y"] ** 2, rtol=1e-6)


def test_nilearn_loads_the_26p_set_and_drops_dummies(demo):
    from nilearn.interfaces.fmriprep import load_confounds

    root, _ = demo
    table, sample_mask = load_confounds(
        str(_bold(root, "sub-02")), strategy=("motion", "wm_csf"), motion="full"
    )
    assert sorted(table.columns) == sorted(P26)
    np.testing.assert_array_equal(sample_mask, np.arange(N_DUMMY, SMALL["n_volumes"]))


def test_participants_table_and_severity_labels(demo):
    root, truth = demo
    table = pd.read_csv(root / "participants.tsv", sep="\t")
    expected = ["participant_id", "ul_fma", "age", "sex", "illness_duration", "lesion_side"]
    assert list(table.columns) == expected
    assert table["ul_fma"].between(0, 66).all() and table["ul_fma"].dtype.kind == "i"
    assert table["age"].between(20, 95).all()
    assert set(table["sex"]) <= {"M", "F"}
    assert table["illness_duration"].between(3, 24).all()
    sides = table["lesion_side"].str.upper().str[0]
    assert set(sides) == {"L", "R"}
    for p, side, fma in zip(truth.participants, sides, table["ul_fma"], strict=True):
        assert p.lesion_side == side
        assert p.severity == ("severe" if fma <= 20 else "mild_moderate")
    assert {p.severity for p in truth.participants} == {"severe", "mild_moderate"}
    assert sorted(truth.right_lesioned) == sorted(table.participant_id[sides == "R"])


def test_grid_is_symmetric_unlike_the_output_grid_and_masks_match(demo):
    root, truth = demo
    img = nib.load(_bold(root, "sub-01"))
    nx = img.shape[0]
    assert img.shape[:3] != (61, 73, 61) and img.header.get_zooms() == (8.0, 8.0, 8.0, 2.0)
    assert img.affine[0, 0] > 0 and img.affine[0, 3] == pytest.approx(-(nx - 1) / 2 * 8.0)
    steps = (img.affine[1:3, 3] - [-126.0, -72.0]) / 3.0  # SPM 3 mm lattice origin in y, z
    assert np.all(np.abs(steps - np.round(steps)) > 0.1)
    mask = np.asarray(
        nib.load(_func(root, "sub-01", f"space-{SPACE}_desc-brain_mask.nii.gz")).dataobj
    )
    np.testing.assert_array_equal(mask, mask[::-1])
    data = np.asarray(img.dataobj)
    assert (data[mask == 0] == 0).all() and (data[mask > 0, N_DUMMY:] > 500).all()
    # non-steady-state volumes are brighter
    assert data[mask > 0, 0].mean() > 1.3 * data[mask > 0, N_DUMMY:].mean()


def test_planted_network_states_and_group_effect(demo):
    root, truth = demo
    group = {"severe": [], "mild_moderate": []}
    for p in truth.participants:
        series = _residual_series(root, truth, p.participant_id)
        seed = series["seed"]
        assert np.corrcoef(seed, series["coupled_all"])[0, 1] > 0.5, p.participant_id
        states = np.array(p.runs[0].states)
        assert len(states) == SMALL["n_volumes"] - N_DUMMY and set(states) == {"A", "B"}
        for region, on, off in (("state_a", "A", "B"), ("state_b", "B", "A")):
            r_on = np.corrcoef(seed[states == on], series[region][states == on])[0, 1]
            r_off = np.corrcoef(seed[states == off], series[region][states == off])[0, 1]
            assert r_on > 0.4 and r_on - r_off > 0.3, (p.participant_id, region, r_on, r_off)
        group[p.severity].append(np.corrcoef(seed, series["group"])[0, 1])
    assert np.mean(group["mild_moderate"]) - np.mean(group["severe"]) > 0.3


def test_nuisance_is_planted_in_the_bold(demo):
    root, truth = demo
    sub = truth.participants[0].participant_id
    img = nib.load(_bold(root, sub))
    data = np.asarray(img.dataobj, dtype=float)[..., N_DUMMY:]
    brain = data[data[..., 0] > 0].mean(axis=0)
    conf = _confounds(root, sub).iloc[N_DUMMY:]
    design = np.column_stack([np.ones(len(conf)), conf[truth.nuisance["confound_columns"]]])
    resid = brain - design @ np.linalg.lstsq(design, brain, rcond=None)[0]
    assert 1 - resid.var() / brain.var() > 0.5
    np.testing.assert_allclose(conf["global_signal"], brain, atol=1e-3)


def test_lesion_masks_sides_grid_and_signal(demo):
    from nilearn.image import resample_to_img

    root, truth = demo
    bold = nib.load(_bold(root, "sub-01"))
    masks = [p for p in truth.participants if p.lesion_mask]
    assert len(masks) == len(truth.participants) - 1 and truth.participants[-1].lesion_mask is None
    sd_lesion, sd_mirror = [], []
    for p in masks:
        img = nib.load(root / p.lesion_mask)
        assert img.shape != bold.shape[:3] and img.header.get_zooms() == (4.0, 4.0, 4.0)
        com = _world(img)[np.asarray(img.dataobj) > 0].mean(axis=0)
        assert (com[0] > 0) == (p.lesion_side == "R"), (p.participant_id, com)
        assert np.allclose(com, p.lesion_centre_written, atol=4.0)
        # lesion voxels carry less signal variance than the mirrored healthy tissue
        on_bold = resample_to_img(
            img, bold, interpolation="nearest", force_resample=True, copy_header=True
        ).get_fdata()
        on_bold = on_bold > 0
        data = np.asarray(nib.load(_bold(root, p.participant_id)).dataobj, dtype=float)
        sd = data[..., N_DUMMY:].std(axis=-1)
        sd_lesion.extend(sd[on_bold])
        sd_mirror.extend(sd[on_bold[::-1] & ~on_bold])
    assert len(sd_lesion) >= 3
    assert np.mean(sd_lesion) < 0.6 * np.mean(sd_mirror)


def test_exactly_one_participant_moves_more_than_2mm(demo):
    root, truth = demo
    peaks = {
        p.participant_id: np.abs(_confounds(root, p.participant_id)[MOTION[:3]]).to_numpy().max()
        for p in truth.participants
    }
    movers = [s for s, peak in peaks.items() if peak > 2.0]
    assert movers == truth.nuisance["high_motion"] and len(movers) == 1
    assert all(peak < 1.0 for s, peak in peaks.items() if s not in movers)


def test_determinism_cli_matches_api_and_seed_matters(demo, tmp_path):
    root, truth = demo
    args = ["--participants", "4", "--n-volumes", "124", "--resolution", "8"]
    assert main([str(tmp_path / "a"), "--random-seed", "3", *args]) == 0
    assert _hashes(tmp_path / "a") == _hashes(root)
    assert load_groundtruth(root / "code" / "groundtruth.json") == truth
    assert main([str(tmp_path / "b"), "--random-seed", "4", *args]) == 0
    a, b = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert a.keys() == b.keys()
    assert (
        a["sub-01/func/sub-01_task-rest_bold.nii.gz"]
        != b["sub-01/func/sub-01_task-rest_bold.nii.gz"]
    )
    bold = str(_bold(Path(""), "sub-01"))
    assert a[bold] != b[bold]


def test_cli_refuses_a_non_empty_directory(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert main([str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and str(tmp_path) in err[0]
    assert main([str(tmp_path), "--overwrite"]) != 0  # not a demo dataset: never deleted
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_sessions_runs_and_atlas_masks(tmp_path):
    truth = generate_dataset(
        tmp_path / "ds", n_participants=1, n_volumes=20, resolution=10.0, n_sessions=2,
        n_runs=2, n_dummy=2, lesion_mask_style="atlas",
    )  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "ds" / "derivatives").rglob("*.nii.gz"))
    expected = [
        f"sub-01_ses-{s}_task-rest_run-{r}_space-{SPACE}_desc-{d}.nii.gz"
        for d in ("brain_mask", "preproc_bold") for s in ("01", "02") for r in (1, 2)
    ]  # fmt: skip
    expected.append("sub-01_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz")
    assert names == sorted(expected)
    runs = truth.participants[0].runs
    assert [(r.session, r.run) for r in runs] == [("01", 1), ("01", 2), ("02", 1), ("02", 2)]
    assert all(len(r.states) == 18 for r in runs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n_participants": 0}, "n_participants"), ({"n_volumes": 8}, "n_volumes"),
     ({"resolution": 0.5}, "resolution"), ({"lesion_mask_style": "x"}, "lesion_mask_style"),
     ({"effect_size": 0.95}, "effect_size")],
)  # fmt: skip
def test_invalid_arguments_name_the_parameter(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        generate_dataset(tmp_path / "ds", **kwargs)
    assert not (tmp_path / "ds").exists()
