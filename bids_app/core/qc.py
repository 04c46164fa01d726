"""Head-motion summaries from fMRIPrep confounds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "TRANSLATIONS",
    "ROTATIONS",
    "framewise_displacement",
    "is_high_motion",
    "motion_summary",
]

TRANSLATIONS = ("trans_x", "trans_y", "trans_z")
ROTATIONS = ("rot_x", "rot_y", "rot_z")
#: Head radius (mm) converting rotations to displacements in Power et al. (2012) FD.
HEAD_RADIUS_MM = 50.0


def framewise_displacement(params: np.ndarray, radius_mm: float = HEAD_RADIUS_MM) -> np.ndarray:
    """Power framewise displacement from 6 motion parameters.

    Parameters
    ----------
    params : numpy.ndarray
        ``(T, 6)``: 3 translations in mm then 3 rotations in radians.
    radius_mm : float
        Sphere radius converting rotations to arc length.

    Returns
    -------
    numpy.ndarray
        ``(T,)``; the first value is NaN (no previous frame), as in fMRIPrep.
    """
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 6:
        raise ValueError(f"params must have shape (T, 6), got {p.shape}")
    d = np.abs(np.diff(p, axis=0))
    fd = d[:, :3].sum(axis=1) + radius_mm * d[:, 3:].sum(axis=1)
    return np.r_[np.nan, fd]


def motion_summary(confounds: pd.DataFrame) -> dict:
    """Maximum translation (mm), maximum rotation (degrees) and mean FD (mm).

    Parameters
    ----------
    confounds : pandas.DataFrame
        fMRIPrep confounds restricted to the retained rows (after dummy scans), with columns
        ``trans_x/y/z`` (mm), ``rot_x/y/z`` (radians) and optionally ``framewise_displacement``.

    Returns
    -------
    dict
        ``MaxTranslation``: max |trans| over rows and axes (mm); ``MaxRotation``: max |rot|
        converted to degrees; ``MeanFD``: mean of ``framewise_displacement`` ignoring NaN, or,
        without that column, of Power FD computed from the 6 parameters (50 mm radius) over
        the T-1 frame-to-frame differences. NaN parameters are ignored.
    """
    missing = [c for c in TRANSLATIONS + ROTATIONS if c not in confounds.columns]
    if missing:
        raise ValueError(f"confounds lacks motion columns {missing}")
    if len(confounds) == 0:
        raise ValueError("confounds has no rows")
    trans = confounds.loc[:, list(TRANSLATIONS)].to_numpy(dtype=np.float64)
    rots = confounds.loc[:, list(ROTATIONS)].to_numpy(dtype=np.float64)
    if "framewise_displacement" in confounds.columns:
        fd = confounds["framewise_displacement"].to_numpy(dtype=np.float64)
    else:
        fd = framewise_displacement(np.c_[trans, rots])
    return {
        "MaxTranslation": _nanmax_abs(trans),
        "MaxRotation": float(np.degrees(_nanmax_abs(rots))),
        "MeanFD": float(np.nanmean(fd)) if np.any(np.isfinite(fd)) else float("nan"),
    }


def is_high_motion(summary: dict, max_motion: float) -> bool:
    """True when the maximum translation (mm) or rotation (degrees) exceeds ``max_motion``.

    Parameters
    ----------
    summary : dict
        Output of :func:`motion_summary`.
    max_motion : float
        Threshold, used for both millimetres and degrees (the paper: 2.0).

    Returns
    -------
    bool
    """
    if not np.isfinite(float(max_motion)) or float(max_motion) < 0:
        raise ValueError(f"max_motion must be a non-negative number, got {max_motion!r}")
    return bool(summary["MaxTranslation"] > max_motion or summary["MaxRotation"] > max_motion)


def _nanmax_abs(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size else float("nan")
