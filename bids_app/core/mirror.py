"""Left-right mirroring about the mid-sagittal plane x = 0."""

from __future__ import annotations

import numpy as np

__all__ = ["is_symmetric_grid", "mirror_lr", "x_axis"]


def x_axis(affine: np.ndarray, atol: float = 1e-3) -> int | None:
    """Voxel axis that alone maps to world x (no rotation or shear on x), else None.

    Parameters
    ----------
    affine : numpy.ndarray
        4x4 voxel-to-world affine.
    atol : float
        Tolerance for the zero entries.

    Returns
    -------
    int or None
        The axis index (0, 1 or 2).
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {a.shape}")
    nonzero = np.flatnonzero(np.abs(a[0, :3]) > atol)
    if nonzero.size != 1:
        return None
    axis = int(nonzero[0])
    if np.any(np.abs(a[1:3, axis]) > atol):
        return None
    return axis


def is_symmetric_grid(shape, affine: np.ndarray, atol: float = 1e-3) -> bool:
    """Whether flipping the x voxel axis maps every voxel centre (x, y, z) to (-x, y, z).

    True when exactly one voxel axis moves along world x, it moves nothing else, world x does not
    depend on the other axes, and voxels 0 and n-1 on that axis sit at -x0 and +x0.

    Parameters
    ----------
    shape : sequence of int
        Grid shape (at least 3 spatial dimensions; extra ones are ignored).
    affine : numpy.ndarray
        4x4 voxel-to-world affine.
    atol : float
        Tolerance in mm.

    Returns
    -------
    bool
    """
    axis = x_axis(affine, atol)
    if axis is None:
        return False
    a = np.asarray(affine, dtype=np.float64)
    n = int(shape[axis])
    x_first = a[0, 3]
    x_last = a[0, 3] + a[0, axis] * (n - 1)
    return bool(abs(x_first + x_last) <= atol)


def mirror_lr(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Flip a 3D or 4D array so that the voxel at (x, y, z) moves to (-x, y, z).

    Parameters
    ----------
    data : numpy.ndarray
        3D volume or 4D series on the grid of ``affine``; never modified.
    affine : numpy.ndarray
        4x4 affine of a grid symmetric about x = 0 (see :func:`is_symmetric_grid`).

    Returns
    -------
    numpy.ndarray
        A flipped copy (the affine is unchanged).
    """
    arr = np.asarray(data)
    if arr.ndim not in (3, 4):
        raise ValueError(f"data must be 3D or 4D, got shape {arr.shape}")
    if not is_symmetric_grid(arr.shape, affine):
        raise ValueError(
            "mirror_lr needs a grid symmetric about x = 0 with no rotation on x; "
            f"got affine {np.asarray(affine).round(3).tolist()} for shape {arr.shape[:3]}"
        )
    return np.flip(arr, axis=x_axis(affine)).copy()
