"""Table 2 p-values vs scipy on the cohort columns; lesion overlap vs a direct sum."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from _group_fixtures import make_participant_outputs
from scipy import stats

from bids_app.group.cohort import load_cohort
from bids_app.group.demographics import write_demographics
from bids_app.group.lesions import overlap_map, write_lesion_overlap


@pytest.fixture
def cohort(tmp_path):
    study = make_participant_outputs(
        tmp_path,
        n_subjects=10,
        shape=(5, 6, 7),
        n_windows=3,
        rng=5,
        high_motion=[0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        extra_participants=["sub-99"],
    )
    cohort = load_cohort(study.bids_dir, study.output_dir)
    # the fixture's lesions all have one size: give them distinct volumes
    cohort.table["LesionVolume"] = np.random.default_rng(1).uniform(1, 20, len(cohort.table))
    return study, cohort


def test_table2_p_values_equal_scipy(tmp_path, cohort):
    _, cohort = cohort
    table = write_demographics(cohort, out_dir=tmp_path / "stats").set_index("variable")
    inc = cohort.included()
    assert len(inc) == 9  # the high-motion participant and sub-99 are out
    ssp, msp = inc[inc["score"] <= 20], inc[inc["score"] > 20]
    for col in ("age", "illness_duration", "LesionVolume", "score"):
        a, b = ssp[col].dropna().astype(float), msp[col].dropna().astype(float)
        ref = stats.ttest_ind(a, b, equal_var=True).pvalue
        assert table.loc[col, "p_value"] == pytest.approx(ref, rel=1e-9)
        assert table.loc[col, "SSP"] == f"{a.mean():.2f} ± {a.std(ddof=1):.2f}"
    counts = pd.crosstab(inc["group"], inc["sex"].str.upper().str[0])
    assert counts.shape == (2, 2)
    ref = stats.chi2_contingency(counts.to_numpy(), correction=False).pvalue
    assert table.loc["sex", "p_value"] == pytest.approx(ref, rel=1e-9)
    written = pd.read_csv(tmp_path / "stats" / "demographics.tsv", sep="\t")
    assert list(written["variable"]) == list(table.index)
    excl = pd.read_csv(tmp_path / "stats" / "exclusions.tsv", sep="\t")
    assert set(excl["participant_id"]) == {"sub-10", "sub-99"}


def test_chi_square_without_correction_by_hand():
    from bids_app.group.demographics import categorical_row

    ssp = ["M"] * 8 + ["F"] * 32
    msp = ["M"] * 5 + ["F"] * 24
    row = categorical_row(pd.Series(ssp), pd.Series(msp), ("M", "F"), "sex", "Sex")
    obs = np.array([[8, 32], [5, 24]], float)
    exp = obs.sum(1, keepdims=True) * obs.sum(0, keepdims=True) / obs.sum()
    chi2 = ((obs - exp) ** 2 / exp).sum()
    assert row["statistic"] == pytest.approx(chi2)
    assert row["p_value"] == pytest.approx(stats.chi2.sf(chi2, 1))
    assert (row["SSP"], row["MSP"]) == ("8:32", "5:24")


def test_lesion_overlap_and_correlation(tmp_path, cohort):
    study, cohort = cohort
    out = write_lesion_overlap(cohort, out_dir=tmp_path / "stats")
    inc = set(cohort.included()["subject"])
    ref = sum(study.lesion_masks[s].astype(int) for s in inc if s in study.lesion_masks)
    got = nib.load(out["overlap_map"]).get_fdata()
    np.testing.assert_array_equal(got, ref)
    with pytest.raises(ValueError, match="masks must share one shape"):
        overlap_map([np.zeros((2, 2, 2)), np.zeros((3, 2, 2))])
    incl = cohort.included()
    v, s = incl["LesionVolume"].to_numpy(float), incl["score"].to_numpy(float)
    assert out["correlation"]["r"] == pytest.approx(stats.pearsonr(v, s).statistic)
