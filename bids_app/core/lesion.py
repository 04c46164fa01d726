"""Lesion volume and side from a lesion mask."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["lesion_side", "lesion_volume_ml", "normalise_side"]

_SIDES = {"l": "L", "left": "L", "r": "R", "right": "R"}
_MISSING = {"", "n/a", "na", "nan", "none"}


def lesion_volume_ml(mask3d: np.ndarray, affine: np.ndarray) -> float:
    """Lesion volume in millilitres: voxel count x |det(affine[:3, :3])| / 1000.

    Parameters
    ----------
    mask3d : numpy.ndarray
        Lesion mask; non-zero is lesion.
    affine : numpy.ndarray
        4x4 voxel-to-world affine (mm).

    Returns
    -------
    float
    """
    m = np.asarray(mask3d)
    if m.ndim != 3:
        raise ValueError(f"mask3d must be 3D, got shape {m.shape}")
    voxel_ml = abs(float(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3]))) / 1000.0
    return int(np.count_nonzero(m)) * voxel_ml


def lesion_side(mask3d: np.ndarray, affine: np.ndarray) -> str:
    """Hemisphere holding most of the lesion volume, from the world x of lesion voxels.

    Parameters
    ----------
    mask3d : numpy.ndarray
        Lesion mask; non-zero is lesion.
    affine : numpy.ndarray
        4x4 voxel-to-world affine (RAS+ world: x < 0 is left).

    Returns
    -------
    str
        "L" or "R"; "n/a" for an empty mask, a lesion entirely on x = 0 or an exact tie.
    """
    m = np.asarray(mask3d) != 0
    if m.ndim != 3:
        raise ValueError(f"mask3d must be 3D, got shape {m.shape}")
    ijk = np.argwhere(m)
    if ijk.size == 0:
        return "n/a"
    aff = np.asarray(affine, dtype=np.float64)
    x = ijk @ aff[0, :3] + aff[0, 3]
    n_left, n_right = int(np.sum(x < 0)), int(np.sum(x > 0))
    if n_left == n_right:
        return "n/a"
    return "L" if n_left > n_right else "R"


def normalise_side(value) -> str:
    """Map L/R/left/right (any case, surrounding spaces) to "L"/"R"; missing to "n/a".

    Parameters
    ----------
    value : str, float or None
        A participants.tsv cell. None, NaN, "", "n/a" (and "na", "nan", "none") mean missing.

    Returns
    -------
    str
        "L", "R" or "n/a"; ValueError for anything else.
    """
    if value is None or type(value).__name__ == "NAType":  # None or pandas.NA
        return "n/a"
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return "n/a"
    if not isinstance(value, str):
        raise ValueError(f"lesion side must be L, R, left, right or n/a, got {value!r}")
    key = value.strip().lower()
    if key in _MISSING:
        return "n/a"
    if key in _SIDES:
        return _SIDES[key]
    raise ValueError(f"lesion side must be L, R, left, right or n/a, got {value!r}")
