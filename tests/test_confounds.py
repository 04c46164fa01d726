"""Tests for bids_app.core.confounds against fMRIPrep files shipped with nilearn."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.core import confounds as cf
from bids_app.errors import InputError

NILEARN_DATA = Path(__import__("nilearn").__file__).parent / "interfaces" / "fmriprep" / "data"
V21 = NILEARN_DATA / "test-v21_desc-confounds_timeseries.tsv"
OLD = NILEARN_DATA / "test_desc-confounds_regressors.tsv"
NO_NSS = NILEARN_DATA / "no_nonsteady_desc-confounds_regressors.tsv"
MOTION = [
    f"{kind}_{axis}{suffix}"
    for kind in ("trans", "rot")
    for axis in "xyz"
    for suffix in ("", "_derivative1", "_power2", "_derivative1_power2")
]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


def test_builtin_strategy_sizes_and_content():
    assert sorted(cf.load_strategy("24P")) == sorted(MOTION)
    p26 = cf.load_strategy("26P")
    assert len(p26) == 26 and set(p26) == set(MOTION) | {"white_matter", "csf"}
    assert not any("global" in c for c in p26)
    p36 = cf.load_strategy("36P")
    expected36 = set(MOTION) | {
        f"{sig}{suffix}"
        for sig in ("white_matter", "csf", "global_signal")
        for suffix in ("", "_derivative1", "_power2", "_derivative1_power2")
    }
    assert len(p36) == 36 and set(p36) == expected36
    assert cf.load_strategy("none") == []
    assert "white" in cf.strategy_description("26P").lower()


def test_unknown_strategy_names_value_and_choices():
    with pytest.raises(ValueError) as info:
        cf.load_strategy("27P")
    assert "'27P'" in str(info.value) and "24P, 26P, 36P, none" in str(info.value)


def test_user_strategy_files(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("# my model\ncsf\n\nwhite_matter\n")
    assert cf.load_strategy(plain) == ["csf", "white_matter"]
    tsv = tmp_path / "model.tsv"
    tsv.write_text("column\tnote\ntrans_x\tmm\nrot_z\trad\n")
    assert cf.load_strategy(str(tsv)) == ["trans_x", "rot_z"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("column\n../etc\n")
    with pytest.raises(InputError, match="bad.tsv"):
        cf.load_strategy(bad)


@pytest.mark.parametrize("path", [V21, OLD, NO_NSS])
@pytest.mark.parametrize("strategy", ["24P", "26P", "36P"])
def test_strategies_exist_in_real_fmriprep_files(path, strategy):
    table = _read(path)
    cols = cf.load_strategy(strategy)
    out = cf.select_confounds(table, cols, path=path)
    assert list(out.columns) == cols
    assert out.shape == (len(table), len(cols))
    assert np.isfinite(out.to_numpy()).all()
    # rows 1.. are the file's values unchanged
    np.testing.assert_array_equal(out.to_numpy()[1:], table[cols].to_numpy(dtype=float)[1:])


def test_first_row_nan_filled_like_nilearn(tmp_path):
    """Compare with nilearn.interfaces.fmriprep.load_confounds (motion full + wm_csf basic)."""
    from nilearn.interfaces.fmriprep import load_confounds

    stem = "sub-01_task-rest"
    shutil.copy(V21, tmp_path / f"{stem}_desc-confounds_timeseries.tsv")
    shutil.copy(V21.with_suffix(".json"), tmp_path / f"{stem}_desc-confounds_timeseries.json")
    img = tmp_path / f"{stem}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 30), np.float32), np.eye(4)), img)
    ref, _ = load_confounds(
        str(img), strategy=("motion", "wm_csf"), motion="full", wm_csf="basic", demean=False
    )
    table = _read(V21)
    ours = cf.select_confounds(table, cf.load_strategy("26P"), path=V21)
    assert set(ref.columns) == set(ours.columns)
    np.testing.assert_allclose(ours[list(ref.columns)].to_numpy(), ref.to_numpy())
    # the first row of a derivative takes the second row's value (nilearn's rule)
    assert np.isnan(table.loc[0, "trans_x_derivative1"])
    assert ours.loc[0, "trans_x_derivative1"] == table.loc[1, "trans_x_derivative1"]
    assert np.isnan(table.loc[0, "trans_x_derivative1"])  # input not mutated


def test_fd_and_dvars_first_row_filled():
    table = _read(OLD)
    out = cf.select_confounds(table, ["framewise_displacement", "std_dvars", "dvars"])
    for col in out.columns:
        assert out.loc[0, col] == table.loc[1, col]


def test_missing_columns_name_file_and_columns():
    table = _read(V21).drop(columns=["csf", "rot_y"])
    with pytest.raises(InputError) as info:
        cf.select_confounds(table, cf.load_strategy("26P"), path=V21)
    msg = str(info.value)
    assert V21.name in msg and "csf" in msg and "rot_y" in msg


def test_nan_elsewhere_names_file_column_row():
    table = _read(V21)
    table.loc[7, "white_matter"] = np.nan
    with pytest.raises(InputError, match=r"confounds_timeseries\.tsv.*'white_matter'.*row 7"):
        cf.select_confounds(table, ["white_matter"], path=V21)
    table = _read(V21)
    table.loc[0, "csf"] = np.nan  # not a derivative: first-row NaN is not expected here
    with pytest.raises(InputError, match=r"'csf'.*row 0"):
        cf.select_confounds(table, ["csf"], path=V21)
    table = _read(V21)
    table.loc[4, "trans_x_derivative1"] = np.nan
    with pytest.raises(InputError, match=r"'trans_x_derivative1'.*row 4"):
        cf.select_confounds(table, ["trans_x_derivative1"], path=V21)


def test_none_strategy_gives_empty_frame():
    out = cf.select_confounds(_read(V21), [])
    assert out.shape == (30, 0)


def test_non_steady_state_count_real_files():
    # independent reference: the files' one-hot columns read directly
    v21 = _read(V21)
    nss = v21.filter(regex=r"^non_steady_state_outlier").to_numpy()
    assert nss.shape[1] == 3 and (nss.sum(axis=0) == 1).all()
    assert cf.non_steady_state_count(v21) == int(nss[:10].any(axis=1).sum()) == 3
    assert cf.non_steady_state_count(_read(OLD)) == 1
    assert cf.non_steady_state_count(_read(NO_NSS)) == 0


def test_non_steady_state_counts_only_leading_rows():
    table = pd.DataFrame({"non_steady_state_outlier00": np.eye(6)[0]})
    table["non_steady_state_outlier01"] = np.eye(6)[3]  # not contiguous with row 0
    assert cf.non_steady_state_count(table) == 1
    late = pd.DataFrame({"non_steady_state_outlier00": np.eye(6)[2]})
    assert cf.non_steady_state_count(late) == 0


def test_resolve_dummy_scans():
    v21 = _read(V21)
    assert cf.resolve_dummy_scans("auto", v21) == 3
    assert cf.resolve_dummy_scans(10, v21) == 10
    assert cf.resolve_dummy_scans(np.int64(0), v21) == 0
    assert cf.resolve_dummy_scans("4", v21) == 4
    for bad in (-1, "x", 1.5, True):
        with pytest.raises(ValueError, match="dummy_scans"):
            cf.resolve_dummy_scans(bad, v21)
