"""Lesion overlap map (mirrored masks on the output grid) and lesion volume vs score."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bids_app.group.report import save_map, save_montage


def overlap_map(masks) -> np.ndarray:
    """Number of participants whose lesion covers each voxel (sum of boolean masks)."""
    masks = [np.asarray(m, dtype=bool) for m in masks]
    if not masks:
        raise ValueError("masks must hold at least one mask, got none")
    shapes = {m.shape for m in masks}
    if len(shapes) != 1:
        raise ValueError(f"masks must share one shape, got {sorted(shapes)}")
    return np.sum(masks, axis=0, dtype=np.int16)


def volume_score_correlation(volume, score) -> dict:
    """Pearson r and two-sided p of lesion volume vs score (finite pairs only)."""
    from scipy import stats

    v = np.asarray(volume, dtype=float)
    s = np.asarray(score, dtype=float)
    ok = np.isfinite(v) & np.isfinite(s)
    out = {"n": int(ok.sum()), "r": float("nan"), "p": float("nan")}
    if ok.sum() >= 3 and np.ptp(v[ok]) > 0 and np.ptp(s[ok]) > 0:
        res = stats.pearsonr(v[ok], s[ok])
        out["r"], out["p"] = float(res.statistic), float(res.pvalue)
    return out


def write_lesion_overlap(cohort, *, out_dir: Path) -> dict:
    """Write the lesion overlap NIfTI + figure and the volume/score correlation.

    Parameters
    ----------
    cohort : Cohort
        Included participants' runs; the first run with a lesion mask of each participant
        is used (masks are mirrored to the left and on the output grid).
    out_dir : Path
        ``output_dir/group/stats``.

    Returns
    -------
    dict
        ``n_masks``, ``max_overlap``, ``overlap_map``, ``figure`` (paths, absent without
        masks), and ``correlation`` (n, r, p) of LesionVolume with the score.
    """
    import nibabel as nib

    from bids_app.outputs import atomic_write_json, to_jsonable

    out_dir = Path(out_dir)
    seen: dict[str, Path] = {}
    for run in cohort.runs:
        if run.lesion_path is not None and run.subject not in seen:
            seen[run.subject] = Path(run.lesion_path)
    included = cohort.included()
    summary: dict = {
        "n_masks": len(seen),
        "participants_with_mask": sorted(f"sub-{s}" for s in seen),
        "correlation": volume_score_correlation(included["LesionVolume"], included["score"]),
    }
    if seen:
        masks = [np.asarray(nib.load(p).dataobj) > 0.5 for p in seen.values()]
        overlap = overlap_map(masks)
        summary["max_overlap"] = int(overlap.max())
        summary["overlap_map"] = str(
            save_map(overlap, cohort.affine, out_dir / "desc-lesionoverlap_map", dtype=np.int16)
        )
        summary["figure"] = str(
            save_montage(
                overlap,
                out_dir / "figures" / "desc-lesionoverlap_map.png",
                title=f"Lesion overlap (number of participants, n = {len(seen)}; "
                "mirrored: lesions on the left)",
                n_slices=10,
            )
        )
    atomic_write_json(out_dir / "lesions.json", summary)
    return to_jsonable(summary)
