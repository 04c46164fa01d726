"""HTML sections of the group report (cohort, demographics, lesions, CNN, states, stats).

Used by :func:`bids_app.group.report.write_group_report`; each builder returns an HTML
fragment (escaped text; tables via pandas; figures as ``<img>`` relative to the output folder)
or a "Not run" note when its part did not run.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd


def esc(x) -> str:
    return html.escape(str(x))


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, na_rep="n/a", border=0)


def _read_tsv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, sep="\t") if Path(path).is_file() else None


def _img(output_dir: Path, path, caption: str = "") -> str:
    """<img> with a path relative to output_dir, or '' when the file does not exist."""
    if not path:
        return ""
    p = Path(path)
    candidates = [p] if p.is_absolute() else [output_dir / p, output_dir / "group" / "cnn" / p]
    for c in candidates:
        if c.is_file():
            rel = Path(os.path.relpath(c, output_dir)).as_posix()
            cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
            return f'<figure><img src="{esc(rel)}" alt="{esc(caption or rel)}">{cap}</figure>'
    return ""


def not_run(what: str) -> str:
    return f'<p class="note">Not run: {esc(what)}.</p>'


def _pval(v) -> str:
    if v is None or pd.isna(v):
        return "n/a"
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def _pct(x) -> str:
    try:
        return "n/a" if x is None or not np.isfinite(float(x)) else f"{100 * float(x):.2f}"
    except (TypeError, ValueError):
        return "n/a"


def cnn_headline(cnn: dict) -> str:
    metrics = cnn.get("metrics") or {}
    unit = cnn.get("cv_unit", "subject")
    parts = []
    for level in ("participant", "window"):
        m = metrics.get(level, {}).get("balanced_accuracy")
        if m:
            sd = "" if m.get("sd") is None else f" ± {_pct(m['sd'])}"
            parts.append(
                f"<span class='big'>{_pct(m.get('mean'))}%{sd}</span> "
                f"balanced accuracy ({esc(level)} level)"
            )
    meaning = (
        "Cross-validation by participant: every test participant was unseen in training, so "
        "this measures generalisation to new patients."
        if unit == "subject"
        else "Cross-validation by window: windows of the same participant sit in training and "
        "test, so this measures identification of participants already seen, NOT "
        "generalisation to new patients."
    )
    out = "<p>" + "<br>".join(parts or ["no finished folds"]) + "</p>"
    out += f"<p>{esc(meaning)}</p>"
    pooled = cnn.get("pooled") or {}
    if pooled.get("p_value") is not None:
        out += (
            f"<p>Pooled over folds: {_pct(pooled['balanced_accuracy'])}% balanced accuracy of "
            f"the {pooled['n_participants']} participants' out-of-fold scores, permutation "
            f"p = {pooled['p_value']:.3g} ({pooled['n_permutations']} shuffles of participant "
            "labels).</p>"
        )
    if unit == "window":
        warn = cnn.get("leakage_warning") or meaning
        out += f'<p class="warning">Leakage warning: {esc(warn)}</p>'
    return out


def cnn_section(output_dir: Path, cnn: dict | None) -> str:
    if not cnn:
        return not_run("CNN classification")
    out = cnn_headline(cnn)
    folds = _read_tsv(output_dir / "group" / "cnn" / "folds.tsv")
    if folds is not None and not folds.empty:
        cols = [
            c
            for c in (
                "train_accuracy",
                "test_accuracy",
                "specificity",
                "sensitivity",
                "f_score",
                "balanced_accuracy",
                "auc",
            )
            if c in folds
        ]
        shown = folds[[c for c in ("fold", "level", "n_test") if c in folds] + cols].copy()
        for c in cols:
            shown[c] = shown[c].map(_pct)
        if "p_value" in folds:
            shown["p_value"] = folds["p_value"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.4f}")
        out += "<h3>Per fold (Table 3, percent)</h3>" + _table(shown)
    figures = cnn.get("figures")
    if not figures:
        fig_dir = output_dir / "group" / "cnn" / "figures"
        figures = sorted(str(p) for p in fig_dir.glob("*.png")) if fig_dir.is_dir() else []
    out += "".join(_img(output_dir, f, Path(str(f)).stem) for f in figures)
    return out


def states_section(output_dir: Path, states: dict | None) -> str:
    if not states:
        return not_run("connectivity-state analysis")
    how = "elbow of the L1 cost curve" if states.get("k_selection") == "elbow" else "--k"
    out = (
        f"<p>{states.get('n_windows')} windows of {states.get('n_participants')} "
        f"participants; {states.get('n_exemplars')} exemplar windows. k = "
        f"<b>{states.get('k')}</b> ({esc(how)}); states retained (participation &ge; "
        f"{states.get('min_participation')}): {esc(states.get('retained_states'))}.</p>"
    )
    files = states.get("files", {})
    table = _read_tsv(Path(files.get("states_tsv", "")))
    if table is not None:
        out += "<h3>Participation for every k</h3>" + _table(table)
    out += _img(output_dir, files.get("kselection_figure"), "L1 cost of the exemplar clustering")
    for rec in states.get("states", []):
        out += _img(output_dir, rec.get("figure"), f"State {rec['state']} centroid")
    return out


def stats_section(output_dir: Path, stats: dict | None) -> str:
    if not stats:
        return not_run("group statistics")
    if not stats.get("ran"):
        return f'<p class="note">Not run: {esc(stats.get("reason", "no states"))}.</p>'
    out = (
        f"<p>Contrast: {esc(stats.get('contrast'))}; covariates: "
        f"{esc(', '.join(stats.get('covariates', [])) or 'none')}. Atlas: "
        f"{esc(stats.get('atlas'))}.</p>"
    )
    for st in stats.get("states", []):
        note = f" (skipped: {esc(st['skipped'])})" if "skipped" in st else ""
        left = ", ".join(st.get("left_out", [])) or "none"
        out += (
            f"<p>State {st['state']}: {st['n_MSP']} MSP, {st['n_SSP']} SSP; left out "
            f"(no window in the state): {esc(left)}{note}</p>"
        )
    unc = pd.DataFrame(stats.get("clusters", []))
    out += (
        f"<h3>Uncorrected clusters (|t| &gt; {stats.get('t_threshold')}, &ge; "
        f"{stats.get('cluster_size')} voxels; Table 4 style, NOT corrected for multiple "
        "comparisons)</h3>"
    )
    out += _table(unc) if not unc.empty else "<p>No cluster survived.</p>"
    if stats.get("fwe_permutations", 0) > 0:
        fwe = pd.DataFrame(stats.get("fwe_clusters", []))
        out += (
            f"<h3>FWE-corrected (voxel-level p &lt; 0.05, {stats['fwe_permutations']} "
            "max-t permutations)</h3>"
        )
        out += _table(fwe) if not fwe.empty else "<p>No voxel survived FWE correction.</p>"
    else:
        out += '<p class="note">Permutation FWE correction was not run (0 permutations).</p>'
    for st in stats.get("states", []):
        out += _img(output_dir, st.get("figure"), f"State {st['state']}: uncorrected clusters")
        out += _img(output_dir, st.get("fwe_figure"), f"State {st['state']}: FWE p < 0.05")
    return out


def cohort_section(cohort, cfg) -> str:
    inc = cohort.included()
    n_ssp, n_msp = int((inc["group"] == "SSP").sum()), int((inc["group"] == "MSP").sum())
    out = (
        f"<p>{len(inc)} participants included: {n_ssp} SSP ({esc(cfg.score_column)} "
        f"&le; {cfg.severe_max}) and {n_msp} MSP; {len(cohort.runs)} runs; grid "
        f"{esc(cohort.shape)} in {esc(cohort.space)}.</p>"
    )
    exc = cohort.table.loc[~cohort.table["included"], ["participant_id", "exclusion_reason"]]
    out += "<h3>Exclusions</h3>" + (_table(exc) if len(exc) else "<p>None.</p>")
    return out


def demographics_section(output_dir: Path) -> str:
    table = _read_tsv(output_dir / "group" / "stats" / "demographics.tsv")
    if table is None:
        return not_run("demographics table")
    cols = ["label", "SSP", "MSP", "p_value", "test"]
    shown = table[cols].copy()
    shown["p_value"] = shown["p_value"].map(_pval)
    return "<p>Table 2: mean ± SD or counts; same participants as the CNN.</p>" + _table(shown)


def lesion_section(output_dir: Path) -> str:
    path = output_dir / "group" / "stats" / "lesions.json"
    if not path.is_file():
        return not_run("lesion overlap")
    info = json.loads(path.read_text())
    corr = info.get("correlation", {})
    r, p = corr.get("r"), corr.get("p")
    text = (
        f"<p>{info.get('n_masks', 0)} lesion masks (mirrored to the left). Lesion volume "
        f"vs score: Pearson r = {'n/a' if r is None else f'{r:.3f}'}, p = "
        f"{'n/a' if p is None else f'{p:.3g}'} (n = {corr.get('n')}).</p>"
    )
    return text + _img(output_dir, info.get("figure"), "Lesion overlap (participants per voxel)")
