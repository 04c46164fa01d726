"""Group-level outputs for humans: tables with JSON sidecars, maps, figures, the HTML page.

``write_group_report`` writes ONE self-contained page ``output_dir/group.html`` (inline CSS,
no scripts, no network) whose figures are PNG files under ``output_dir/group/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.group._report_sections import (
    cnn_headline,
    cnn_section,
    cohort_section,
    demographics_section,
    esc,
    lesion_section,
    not_run,
    states_section,
    stats_section,
)


# ----------------------------------------------------------------------------- files
def write_table(df: pd.DataFrame, path: Path, columns: dict, extra: dict | None = None) -> Path:
    """Write ``df`` as TSV (``n/a`` for missing) and a JSON sidecar describing its columns.

    Parameters
    ----------
    df : DataFrame
    path : Path
        ``.tsv`` path; the sidecar is the same name with ``.json``.
    columns : dict
        Column name -> description (every column of ``df`` must be described).
    extra : dict, optional
        Additional top-level sidecar entries (e.g. the atlas name and version).
    """
    from bids_app.outputs import atomic_write_json, atomic_write_text

    missing = [c for c in df.columns if c not in columns]
    if missing:
        raise ValueError(f"columns without description for {Path(path).name}: {missing}")
    path = Path(path)
    atomic_write_text(path, df.to_csv(sep="\t", index=False, na_rep="n/a"))
    sidecar = {c: {"Description": columns[c]} for c in df.columns}
    sidecar.update(extra or {})
    atomic_write_json(path.with_suffix(".json"), sidecar)
    return path


def save_map(volume: np.ndarray, affine: np.ndarray, stem: Path, dtype=np.float32) -> Path:
    """Save a 3D volume as ``<stem>.nii.gz`` (atomic); returns the path."""
    import nibabel as nib

    from bids_app.outputs import atomic_save_nifti

    img = nib.Nifti1Image(np.asarray(volume, dtype=dtype), np.asarray(affine, dtype=float))
    img.header.set_xyzt_units("mm")
    path = Path(str(stem) + ".nii.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save_nifti(img, path)


def save_montage(
    volume: np.ndarray,
    path: Path,
    *,
    title: str = "",
    symmetric: bool = False,
    n_slices: int = 8,
    cmap: str | None = None,
) -> Path:
    """Axial slice montage (PNG, matplotlib Agg) of a 3D volume in voxel order (RAS grid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vol = np.asarray(volume, dtype=float)
    if vol.ndim != 3:
        raise ValueError(f"volume must be 3D, got shape {vol.shape}")
    nz = np.flatnonzero(np.abs(vol).sum(axis=(0, 1)) > 0)
    lo, hi = (nz[0], nz[-1]) if nz.size else (0, vol.shape[2] - 1)
    zs = np.unique(np.linspace(lo, hi, min(n_slices, hi - lo + 1)).round().astype(int))
    vmax = float(np.abs(vol).max()) or 1.0
    vmin = -vmax if symmetric else 0.0
    cmap = cmap or ("RdBu_r" if symmetric else "hot")
    fig, axes = plt.subplots(1, zs.size, figsize=(1.6 * zs.size + 0.8, 2.3), squeeze=False)
    for ax, z in zip(axes[0], zs, strict=True):
        im = ax.imshow(vol[:, :, z].T, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(f"z={z}", fontsize=7)
        ax.axis("off")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- HTML page
CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.headline{background:#eef5ff;border-left:5px solid #2a6ebb;padding:.8em 1.2em}
.warning{background:#fff1e6;border-left:5px solid #d35400;padding:.8em 1.2em;font-weight:600}
.note{color:#666;font-style:italic}img{max-width:100%;display:block;margin:.5em 0}
.big{font-size:1.35em;font-weight:700}
"""

REFERENCES = [
    "Gao et al. (2025). Front. Neurol. 16:1666991 (the study implemented here).",
    "Allen EA et al. (2014). Tracking whole-brain connectivity dynamics in the resting state. "
    "Cereb Cortex 24:663-676 (exemplars, L1 clustering, states).",
    "Yan CG et al. (2016). DPABI: Data Processing & Analysis for (resting-state) Brain "
    "Imaging. Neuroinformatics 14:339-351 (sliding-window dFC).",
    "Abraham A et al. (2014). Machine learning for neuroimaging with scikit-learn. "
    "Front Neuroinform 8:14 (nilearn; permutation inference).",
    "Tzourio-Mazoyer N et al. (2002). NeuroImage 15:273-289 (AAL atlas).",
    "Wen J et al. (2020). Medical Image Analysis 63:101694 (data leakage in CNN studies).",
    "Nichols TE, Holmes AP (2002). Hum Brain Mapp 15:1-25 (permutation FWE).",
]


def states_stats_methods(cfg) -> str:
    """Methods paragraph (HTML) of the states and statistics, from the configuration."""
    fwe = (
        f"Voxel-level family-wise error was controlled with {cfg.fwe_permutations} max-t "
        "permutations (two-sided; nilearn non_parametric_inference), and clusters of voxels "
        "with p<sub>FWE</sub> &lt; 0.05 are reported separately."
        if cfg.fwe_permutations > 0
        else "No permutation correction was run."
    )
    k_rule = "the elbow of the cost curve" if str(cfg.k) == "auto" else f"fixed at {cfg.k}"
    return (
        "<p>Connectivity states followed Allen et al. (2014): in each run, exemplar windows "
        "were the local maxima over time of the spatial standard deviation of the brain-masked "
        "Fisher-z dFC maps; exemplars were clustered with k-medians (L1 distance, "
        f"component-wise median update; {cfg.kmeans_replicates} L1 k-means++ replicates, at "
        f"most {cfg.kmeans_max_iter} iterations) for k = {cfg.k_range[0]}..{cfg.k_range[1]}; "
        f"k was {k_rule}, and all windows were clustered starting from the exemplar "
        f"centroids. States with a participation rate below {cfg.min_participation} were not "
        "analysed. For each retained state, each participant's mean map over its windows in "
        "the state entered a two-sample GLM (MSP = 1, SSP = 0; covariates "
        f"{esc(', '.join(cfg.covariates) or 'none')}, categorical ones one-hot coded). Maps "
        f"were thresholded at |t| &gt; {cfg.t_threshold} with clusters of at least "
        f"{cfg.cluster_size} voxels (26-connectivity, uncorrected, as in Gao et al. 2025). "
        f"{fwe} Peaks were labelled with the AAL atlas (Tzourio-Mazoyer et al. 2002).</p>"
    )


def write_group_report(
    output_dir: Path,
    *,
    cohort,
    cfg,
    cnn_summary: dict | None,
    states_summary: dict | None,
    stats_summary: dict | None,
    methods_html: str,
) -> Path:
    """Write ``output_dir/group.html`` (one self-contained page; figures under ``group/``).

    Parameters
    ----------
    output_dir : Path
    cohort : Cohort
    cfg : GroupConfig
    cnn_summary, states_summary, stats_summary : dict or None
        Summaries of the parts that ran (None: shown as "not run").
    methods_html : str
        Methods paragraph(s), trusted HTML produced by the application.

    Returns
    -------
    Path
    """
    from bids_app.outputs import atomic_write_text

    output_dir = Path(output_dir)
    head = ""
    if cnn_summary:
        head += "<h3>CNN classification</h3>" + cnn_headline(cnn_summary)
    else:
        head += not_run("CNN classification")
    if states_summary:
        head += (
            f"<p>Connectivity states: k = {states_summary.get('k')}, retained "
            f"{esc(states_summary.get('retained_states'))}.</p>"
        )
    if stats_summary and stats_summary.get("ran"):
        head += (
            f"<p>Group differences: {len(stats_summary.get('clusters', []))} "
            "uncorrected clusters, "
            f"{len(stats_summary.get('fwe_clusters', []))} FWE-corrected clusters.</p>"
        )
    sections = [
        ("headline", "Headline numbers", f'<div class="headline">{head}</div>'),
        ("cohort", "Cohort and exclusions", cohort_section(cohort, cfg)),
        ("demographics", "Demographics (Table 2)", demographics_section(output_dir)),
        ("lesions", "Lesion overlap", lesion_section(output_dir)),
        ("cnn", "CNN classification", cnn_section(output_dir, cnn_summary)),
        ("states", "States and participation", states_section(output_dir, states_summary)),
        ("stats", "T-maps and cluster tables", stats_section(output_dir, stats_summary)),
        (
            "methods",
            "Methods",
            methods_html
            + states_stats_methods(cfg)
            + "<h3>References</h3><ol>"
            + "".join(f"<li>{esc(r)}</li>" for r in REFERENCES)
            + "</ol>",
        ),
    ]
    body = "".join(f'<section id="{sid}"><h2>{esc(t)}</h2>{c}</section>' for sid, t, c in sections)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>strokedfc group report</title><style>" + CSS + "</style></head><body>"
        "<h1>strokedfc: group report</h1>" + body + "</body></html>\n"
    )
    return atomic_write_text(output_dir / "group.html", page)
