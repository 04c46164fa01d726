"""Table 2: demographics and clinical data per group (SSP vs MSP) with p-values.

Same participants as the CNN and the states (``cohort.included()``). Continuous variables:
mean ± SD (sample SD, ddof = 1) and Student's two-sample t-test with equal variances
(``scipy.stats.ttest_ind``). Categorical variables (sex, lesion side): counts and Pearson's
chi-square without continuity correction (``scipy.stats.chi2_contingency(correction=False)``).
Participants with a missing value are left out of that row only (``n_SSP``/``n_MSP`` say how
many were used). Lesion side comes from the participant-level sidecars (``LesionSide``, from
the lesion mask) when known, else from participants.tsv ``lesion_side``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.group.report import write_table

TABLE2_COLUMNS = {
    "variable": "Variable (column of participants.tsv or of the participant sidecars).",
    "label": "Row label as in Table 2 of Gao et al. 2025.",
    "SSP": "Severe group (score <= severe_max): mean ± SD, or counts (first:second level).",
    "MSP": "Mild/moderate group: mean ± SD, or counts (first:second level).",
    "p_value": "Two-sided p-value of the test.",
    "statistic": "Test statistic (t, or chi-square).",
    "test": "Student two-sample t (equal variances) or Pearson chi-square (no correction).",
    "n_SSP": "SSP participants with a value.",
    "n_MSP": "MSP participants with a value.",
}

CONTINUOUS = [
    ("age", "Age (years)"),
    ("LesionVolume", "Lesion volume (ml)"),
    ("illness_duration", "Duration of illness (months)"),
    ("score", "Clinical score"),
]


def _norm_sex(v) -> str | None:
    if not isinstance(v, str) or not v.strip():
        return None
    return {"m": "M", "male": "M", "f": "F", "female": "F"}.get(v.strip().lower())


def _norm_side(v) -> str | None:
    if not isinstance(v, str):
        return None
    return {"l": "L", "left": "L", "r": "R", "right": "R"}.get(v.strip().lower())


def lesion_sides(table: pd.DataFrame) -> pd.Series:
    """L/R per participant: sidecar ``LesionSide`` when L/R, else ``lesion_side``."""
    side = table.get("LesionSide", pd.Series([None] * len(table), index=table.index))
    side = side.map(_norm_side)
    if "lesion_side" in table.columns:
        side = side.fillna(table["lesion_side"].map(_norm_side))
    return side


def continuous_row(ssp, msp, variable: str, label: str) -> dict:
    """Mean ± SD per group and Student's t-test p-value."""
    from scipy import stats

    a = pd.to_numeric(pd.Series(ssp), errors="coerce").dropna().to_numpy(float)
    b = pd.to_numeric(pd.Series(msp), errors="coerce").dropna().to_numpy(float)
    fmt = lambda x: f"{x.mean():.2f} ± {x.std(ddof=1):.2f}" if x.size > 1 else "n/a"  # noqa: E731
    p = t = np.nan
    if a.size > 1 and b.size > 1 and np.ptp(np.r_[a, b]) > 0:
        res = stats.ttest_ind(a, b, equal_var=True)
        t, p = float(res.statistic), float(res.pvalue)
    return {
        "variable": variable,
        "label": label,
        "SSP": fmt(a),
        "MSP": fmt(b),
        "p_value": p,
        "statistic": t,
        "test": "Student t (equal variances)",
        "n_SSP": a.size,
        "n_MSP": b.size,
    }


def categorical_row(ssp, msp, levels: tuple[str, str], variable: str, label: str) -> dict:
    """Counts per group (levels[0]:levels[1]) and Pearson chi-square without correction."""
    from scipy import stats

    a = pd.Series(ssp).dropna()
    b = pd.Series(msp).dropna()
    counts = np.array([[int((x == lev).sum()) for lev in levels] for x in (a, b)])
    p = chi2 = np.nan
    if counts.sum(axis=1).all() and counts.sum(axis=0).all():
        res = stats.chi2_contingency(counts, correction=False)
        chi2, p = float(res.statistic), float(res.pvalue)
    return {
        "variable": variable,
        "label": label,
        "SSP": f"{counts[0, 0]}:{counts[0, 1]}",
        "MSP": f"{counts[1, 0]}:{counts[1, 1]}",
        "p_value": p,
        "statistic": chi2,
        "test": "Pearson chi-square (no continuity correction)",
        "n_SSP": int(len(a)),
        "n_MSP": int(len(b)),
    }


def demographics_table(
    included: pd.DataFrame, score_label: str = "Clinical score"
) -> pd.DataFrame:
    """Table 2 from the included participants (pure: DataFrame in, DataFrame out)."""
    ssp = included["group"] == "SSP"
    msp = included["group"] == "MSP"
    rows = []
    for variable, label in CONTINUOUS:
        if variable in included.columns:
            label = score_label if variable == "score" else label
            rows.append(
                continuous_row(
                    included.loc[ssp, variable], included.loc[msp, variable], variable, label
                )
            )
    if "sex" in included.columns:
        sex = included["sex"].map(_norm_sex)
        rows.append(categorical_row(sex[ssp], sex[msp], ("M", "F"), "sex", "Sex (male:female)"))
    side = lesion_sides(included)
    if side.notna().any():
        rows.append(
            categorical_row(
                side[ssp], side[msp], ("L", "R"), "lesion_side", "Lesion side (left:right)"
            )
        )
    return pd.DataFrame(rows, columns=list(TABLE2_COLUMNS))


def write_demographics(cohort, *, out_dir: Path, score_column: str = "ul_fma") -> pd.DataFrame:
    """Write ``demographics.tsv`` (Table 2) and ``exclusions.tsv`` (+ JSON sidecars).

    Parameters
    ----------
    cohort : Cohort
    out_dir : Path
        ``output_dir/group/stats``.
    score_column : str
        Name shown for the score row.

    Returns
    -------
    DataFrame
        Table 2.
    """
    out_dir = Path(out_dir)
    included = cohort.included()
    table = demographics_table(included, score_label=f"Score ({score_column})")
    n_ssp, n_msp = int((included["group"] == "SSP").sum()), int((included["group"] == "MSP").sum())
    write_table(
        table,
        out_dir / "demographics.tsv",
        TABLE2_COLUMNS,
        extra={
            "Groups": {"SSP": n_ssp, "MSP": n_msp},
            "Participants": "cohort.included(): the participants of the CNN and the states",
        },
    )
    excluded = cohort.table.loc[~cohort.table["included"], ["participant_id", "exclusion_reason"]]
    write_table(
        excluded.reset_index(drop=True),
        out_dir / "exclusions.tsv",
        {
            "participant_id": "Participant left out of the group analyses.",
            "exclusion_reason": "Why (no outputs, no score, high motion).",
        },
    )
    return table
