"""The participant HTML report: ``output_dir/sub-<label>.html`` + ``sub-<label>/figures/*.png``.

The HTML has inline CSS, no scripts and no external resources; it opens offline. Figures are
PNG files named ``<prefix>_desc-<name>_<suffix>.png`` and referenced by relative paths.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..__about__ import __packagename__, __version__
from ..outputs import atomic_write_bytes, atomic_write_text

#: QC keys shown first (in this order) in the summary table; others follow.
QC_KEYS = (
    "MaxTranslation", "MaxRotation", "MeanFD", "HighMotion", "LesionVolume", "SeedVoxels",
    "SeedLesionOverlap", "LesionSide", "Mirrored", "NumberOfWindows", "DummyScans",
)  # fmt: skip
#: Keys a prediction dict must hold; ``Disclaimer`` is optional.
PREDICTION_KEYS = ("PredictedClass", "ProbabilityMean", "ProbabilitySpread", "CVAccuracy")
NOT_A_DEVICE = (
    "This prediction comes from a research model. It is not a clinical device and must not be "
    "used for diagnosis, prognosis or treatment decisions."
)
MOTION_COLUMNS = (
    "trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "framewise_displacement",
)  # fmt: skip

CSS = """
body{font-family:sans-serif;margin:1.5em auto;max-width:1100px;color:#222;line-height:1.4}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #aaa;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #bbb;padding:.2em .5em;text-align:left}th{background:#eee}
td.flag,tr.flag td.flag{color:#fff;background:#c00;font-weight:bold}
.warn{color:#c00;font-weight:bold}figure{margin:1em 0}img{max-width:100%}
figcaption{font-size:.85em;color:#555}
"""


@dataclass(frozen=True)
class RunReportData:
    """Everything the report shows for one run; all volumes on the output grid.

    Attributes
    ----------
    prefix : str
        Run prefix (``outputs.run_prefix``).
    background : ndarray or path
        3D anatomical background on the output grid: the workflow passes the temporal mean of
        the denoised series (or a template T1 resampled to the grid when one is available);
        a NIfTI path is loaded with nibabel.
    affine : ndarray
        4x4 voxel-to-world affine of the output grid (shared by all volumes here).
    brain_mask, seed_mask : ndarray
        3D boolean masks; ``lesion_mask`` is 3D boolean or None.
    seed_mni : tuple of float
        Seed centre in MNI mm.
    carpet_before, carpet_after : ndarray
        (time, voxels) samples of the series before and after denoising.
    motion : pandas.DataFrame
        trans_x..trans_z (mm), rot_x..rot_z (rad) and framewise_displacement (mm) of the
        retained volumes.
    max_motion : float
        Exclusion threshold (mm and degrees).
    dfc_mean, dfc_std : ndarray
        3D mean and standard deviation of the windowed z maps.
    window_maps : ndarray
        4D (x, y, z, k) subset of window maps; ``window_indices`` (0-based window numbers) and
        ``window_onsets`` (seconds) have k entries.
    seed_series : ndarray
        1D denoised seed series; ``tr`` is the repetition time in seconds.
    qc : dict
        QC values (see ``QC_KEYS``).
    prediction : dict or None
        ``PREDICTION_KEYS`` (+ optional ``Disclaimer``) or None.
    """

    prefix: str
    background: Any
    affine: np.ndarray
    brain_mask: np.ndarray
    seed_mask: np.ndarray
    lesion_mask: np.ndarray | None
    seed_mni: tuple
    carpet_before: np.ndarray
    carpet_after: np.ndarray
    motion: Any
    max_motion: float
    dfc_mean: np.ndarray
    dfc_std: np.ndarray
    window_maps: np.ndarray
    window_indices: Sequence[int]
    window_onsets: Sequence[float]
    seed_series: np.ndarray
    tr: float
    qc: Mapping[str, Any]
    prediction: Mapping[str, Any] | None = None


def _background(run: RunReportData) -> np.ndarray:
    if isinstance(run.background, (str, os.PathLike)):
        import nibabel as nib

        return np.asarray(nib.load(run.background).get_fdata(dtype=np.float32))
    return np.asarray(run.background, dtype=float)


def check_run(run: RunReportData, background: np.ndarray) -> None:
    """Raise ValueError (naming the field) when a RunReportData is inconsistent."""
    shape = np.shape(run.brain_mask)
    if len(shape) != 3:
        raise ValueError(f"brain_mask must be 3D, got shape {shape}")
    if np.shape(run.affine) != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {np.shape(run.affine)}")
    volumes = {"background": background, "seed_mask": run.seed_mask, "dfc_mean": run.dfc_mean}
    volumes |= {"dfc_std": run.dfc_std, "lesion_mask": run.lesion_mask}
    for name, vol in volumes.items():
        if vol is not None and np.shape(vol) != shape:
            raise ValueError(f"{name} must have the grid shape {shape}, got {np.shape(vol)}")
    wshape = np.shape(run.window_maps)
    if len(wshape) != 4 or wshape[:3] != shape:
        raise ValueError(f"window_maps must have shape {shape} + (k,), got {wshape}")
    if not len(run.window_indices) == len(run.window_onsets) == wshape[3]:
        raise ValueError(
            f"window_indices and window_onsets must have {wshape[3]} entries, got "
            f"{len(run.window_indices)} and {len(run.window_onsets)}"
        )
    for name in ("carpet_before", "carpet_after"):
        if np.ndim(getattr(run, name)) != 2:
            raise ValueError(
                f"{name} must be 2D (time, voxels), got {np.shape(getattr(run, name))}"
            )
    missing = [c for c in MOTION_COLUMNS if c not in run.motion.columns]
    if missing:
        raise ValueError(f"motion lacks columns {missing}")
    if not run.tr > 0:
        raise ValueError(f"tr must be > 0, got {run.tr}")
    if run.prediction is not None:
        lacking = [k for k in PREDICTION_KEYS if k not in run.prediction]
        if lacking:
            raise ValueError(f"prediction lacks keys {lacking}")


def run_figures(run: RunReportData, fig_dir: Path) -> list[tuple[str, Path]]:
    """Write the figures of one run into ``fig_dir``; return (caption, path) pairs."""
    from . import figures as f

    bg = _background(run)
    check_run(run, bg)
    aff = np.asarray(run.affine, dtype=float)
    made = [
        ("Seed (yellow) and lesion (red) on the background", "seed_mask",
         lambda: f.seed_figure(bg, run.seed_mask, run.lesion_mask, aff, run.seed_mni)),
        ("Carpet plots before and after denoising (voxels z-scored)", "carpetplot_bold",
         lambda: f.carpet_figure(run.carpet_before, run.carpet_after, run.tr)),
        (f"Head motion; dashed lines: +/-{run.max_motion:g} mm or degrees", "motion_timeseries",
         lambda: f.motion_figure(run.motion, run.max_motion, run.tr)),
        ("Mean (top) and standard deviation (bottom) of dFC z maps", "dfcsummary_boldmap",
         lambda: f.dfc_summary_figure(run.dfc_mean, run.dfc_std, run.brain_mask, aff)),
        ("Window maps over time (axial slice through the seed)", "dfcwindows_boldmap",
         lambda: f.window_strip_figure(
             run.window_maps, run.window_indices, run.window_onsets, run.brain_mask,
             run.seed_mask, aff, run.seed_mni)),
        ("Seed time series (denoised)", "seed_timeseries",
         lambda: f.seed_series_figure(run.seed_series, run.tr)),
    ]  # fmt: skip
    out = []
    for caption, desc_suffix, build in made:
        desc, suffix = desc_suffix.split("_")
        path = fig_dir / f"{run.prefix}_desc-{desc}_{suffix}.png"
        atomic_write_bytes(path, build())
        out.append((caption, path))
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def qc_table(runs: Sequence[RunReportData]) -> str:
    """HTML table with one row per run; HighMotion runs flagged in red."""
    keys = list(QC_KEYS) + sorted({k for r in runs for k in r.qc} - set(QC_KEYS))
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["Run", *keys])
    rows = []
    for run in runs:
        flag = bool(run.qc.get("HighMotion", False))
        cells = [f"<td>{html.escape(run.prefix)}</td>"]
        for key in keys:
            cls = ' class="flag"' if key == "HighMotion" and flag else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(run.qc.get(key, 'n/a')))}</td>")
        rows.append(f"<tr{' class=flag' if flag else ''}>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def prediction_section(runs: Sequence[RunReportData]) -> str:
    """The prediction section (empty string when no run has a prediction)."""
    with_pred = [r for r in runs if r.prediction is not None]
    if not with_pred:
        return ""
    head = "<tr><th>Run</th><th>Predicted class</th><th>Probability (mean)</th>"
    head += "<th>Probability spread</th><th>Model CV participant-level accuracy</th></tr>"
    rows, notes = [], []
    for run in with_pred:
        p = run.prediction
        vals = [run.prefix] + [_fmt(p[k]) for k in PREDICTION_KEYS]
        rows.append("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in vals) + "</tr>")
        if p.get("Disclaimer"):
            notes.append(f"<p>{html.escape(str(p['Disclaimer']))}</p>")
    return (
        f'<h2 id="prediction">Prediction</h2><p class="warn">{NOT_A_DEVICE}</p>'
        f"<table>{head}{''.join(rows)}</table>{''.join(dict.fromkeys(notes))}"
    )


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items += _flatten(value, name + ".")
        else:
            items.append((name, value))
    return items


def config_table(config_summary: Mapping[str, Any]) -> str:
    """Two-column HTML table of the (flattened) configuration."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in _flatten(config_summary)
    )
    return f"<table><tr><th>Option</th><th>Value</th></tr>{rows}</table>"


def write_participant_report(
    output_dir: str | os.PathLike,
    subject: str,
    runs: Sequence[RunReportData],
    *,
    methods_html: str,
    config_summary: Mapping[str, Any],
) -> Path:
    """Write ``output_dir/sub-<label>.html`` and its figures under ``sub-<label>/figures/``.

    Parameters
    ----------
    output_dir : path
        The derivatives directory.
    subject : str
        Participant label (with or without ``sub-``).
    runs : sequence of RunReportData
        The processed runs (at least one).
    methods_html : str
        Trusted HTML of the methods text (generated by the workflow), inserted as is.
    config_summary : mapping
        Options to list; nested mappings are shown as ``section.option``.

    Returns
    -------
    Path
        The HTML file.
    """
    label = subject[4:] if subject.startswith("sub-") else subject
    if not label.isalnum():
        raise ValueError(f"subject must be an alphanumeric label, got {subject!r}")
    if len(runs) == 0:
        raise ValueError("runs must hold at least one RunReportData, got 0")
    output_dir = Path(output_dir)
    fig_dir = output_dir / f"sub-{label}" / "figures"
    parts = [
        f"<h1>{__packagename__}: sub-{html.escape(label)}</h1>",
        f"<p>{__packagename__} {__version__}, report written "
        f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC.</p>",
        '<h2 id="summary">Summary</h2>',
        f"<p>{len(runs)} run(s) processed.</p>",
        qc_table(runs),
    ]
    for run in runs:
        parts.append(f'<h2 id="run-{html.escape(run.prefix)}">Run {html.escape(run.prefix)}</h2>')
        for caption, path in run_figures(run, fig_dir):
            src = html.escape(path.relative_to(output_dir).as_posix())
            parts.append(
                f'<figure><img src="{src}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts += [
        prediction_section(runs),
        f'<h2 id="methods">Methods</h2>{methods_html}',
        f'<h2 id="configuration">Configuration</h2>{config_table(config_summary)}',
        '<h2 id="errors">Errors</h2><p>No errors to report.</p>',
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>sub-{html.escape(label)} - {__packagename__}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    return atomic_write_text(output_dir / f"sub-{label}.html", page)
