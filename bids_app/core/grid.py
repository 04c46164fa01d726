"""Output grid (SPM bounding box) and resampling by world coordinates."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "SPM_BBOX",
    "output_grid",
    "resample_mask",
    "resample_series",
    "resample_volume",
]

#: SPM's default bounding box in mm: ((xmin, ymin, zmin), (xmax, ymax, zmax)).
SPM_BBOX = ((-90, -126, -72), (90, 90, 108))


def output_grid(resolution: float = 3.0, bbox=SPM_BBOX) -> tuple[tuple[int, int, int], np.ndarray]:
    """Grid covering ``bbox`` with voxel centres on both corners, RAS+ orientation.

    Parameters
    ----------
    resolution : float
        Isotropic voxel size in mm. It must divide every extent of the box (to 1e-6 mm);
        otherwise a ValueError is raised (SPM would round the voxel count; we refuse rather than
        silently shift the grid off the box corners).
    bbox : pair of 3-sequences
        ``((xmin, ymin, zmin), (xmax, ymax, zmax))`` in mm.

    Returns
    -------
    shape : tuple of int
        ``(61, 73, 61)`` at 3 mm and ``(91, 109, 91)`` at 2 mm for the SPM box.
    affine : numpy.ndarray
        4x4 voxel-to-world affine with a positive diagonal (RAS+), voxel (0, 0, 0) at ``bbox[0]``.
    """
    res = float(resolution)
    if not np.isfinite(res) or res <= 0:
        raise ValueError(f"resolution must be a positive number of mm, got {resolution!r}")
    lo, hi = (np.asarray(b, dtype=np.float64) for b in bbox)
    if lo.shape != (3,) or hi.shape != (3,) or np.any(hi <= lo):
        raise ValueError(f"bbox must be ((xmin, ymin, zmin), (xmax, ymax, zmax)), got {bbox!r}")
    steps = (hi - lo) / res
    if np.any(np.abs(steps - np.round(steps)) * res > 1e-6):
        raise ValueError(
            f"resolution {resolution} mm does not divide the bounding box extents "
            f"{tuple((hi - lo).tolist())} mm"
        )
    shape = tuple(int(n) + 1 for n in np.round(steps))
    affine = np.diag([res, res, res, 1.0])
    affine[:3, 3] = lo
    return shape, affine


def resample_volume(
    data3d: np.ndarray,
    src_affine: np.ndarray,
    target_shape: tuple[int, int, int],
    target_affine: np.ndarray,
    *,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """Resample a 3D volume onto a target grid by world coordinates.

    Each target voxel centre is mapped to world space with ``target_affine`` and back to source
    voxel coordinates with ``inv(src_affine)``; values come from
    :func:`scipy.ndimage.affine_transform` (spline ``order``: 0 nearest, 1 trilinear, 3 cubic
    as nilearn's "continuous"); points outside the source get ``cval``.

    Parameters
    ----------
    data3d : numpy.ndarray
        Source volume ``(X, Y, Z)``; never modified.
    src_affine, target_affine : numpy.ndarray
        4x4 voxel-to-world affines.
    target_shape : tuple of int
        Output shape.
    order : int
        Interpolation order (0..5).
    cval : float
        Value outside the source field of view.

    Returns
    -------
    numpy.ndarray
        Float64 array of ``target_shape`` (order > 0) or source dtype (order 0).
    """
    from scipy.ndimage import affine_transform

    data = np.asarray(data3d)
    if data.ndim != 3:
        raise ValueError(f"data3d must be 3D, got shape {data.shape}")
    matrix, offset = _voxel_mapping(src_affine, target_affine)
    target_shape = _check_shape(target_shape)
    if order not in range(6):
        raise ValueError(f"order must be an integer in 0..5, got {order!r}")
    if order > 0 or data.dtype.kind == "b":
        data = data.astype(np.float64, copy=False)
    if np.allclose(matrix, np.diag(np.diag(matrix))):
        matrix = np.diag(matrix)  # lets scipy use its faster zoom/shift path
    return affine_transform(
        data, matrix, offset=offset, output_shape=target_shape, order=order, cval=cval
    )


def resample_series(
    data4d: Any,
    src_affine: np.ndarray,
    target_shape: tuple[int, int, int],
    target_affine: np.ndarray,
    *,
    order: int = 1,
    dtype=np.float32,
) -> np.ndarray:
    """Resample a 4D series volume by volume (bounded memory).

    Parameters
    ----------
    data4d : array-like
        ``(X, Y, Z, T)`` array, or a nibabel ``dataobj`` / ArrayProxy: volume ``t`` is read as
        ``np.asarray(data4d[..., t])`` so the whole 4D array is never loaded.
    src_affine, target_affine : numpy.ndarray
        4x4 voxel-to-world affines.
    target_shape : tuple of int
        Spatial output shape.
    order : int
        Interpolation order (1 = trilinear).
    dtype : numpy dtype
        Output dtype (float32 by default).

    Returns
    -------
    numpy.ndarray
        ``target_shape + (T,)`` array of ``dtype``.
    """
    shape = tuple(data4d.shape)
    if len(shape) != 4:
        raise ValueError(f"data4d must be 4D, got shape {shape}")
    target_shape = _check_shape(target_shape)
    out = np.empty(target_shape + (shape[3],), dtype=dtype)
    for t in range(shape[3]):
        vol = np.asarray(data4d[..., t])
        out[..., t] = resample_volume(vol, src_affine, target_shape, target_affine, order=order)
    return out


def resample_mask(
    mask3d: np.ndarray,
    src_affine: np.ndarray,
    target_shape: tuple[int, int, int],
    target_affine: np.ndarray,
    *,
    threshold: float = 0.5,
) -> np.ndarray:
    """Resample a binary mask: trilinear interpolation of the 0/1 mask, then ``> threshold``.

    Interpolating the mask as a fraction and thresholding keeps a target voxel when more than
    ``threshold`` of its neighbourhood is inside, which behaves better than nearest neighbour
    when downsampling (no aliasing on the sampling phase).

    Parameters
    ----------
    mask3d : numpy.ndarray
        Source mask; non-zero is inside.
    src_affine, target_affine : numpy.ndarray
        4x4 affines.
    target_shape : tuple of int
        Output shape.
    threshold : float
        In [0, 1); the kept voxels have interpolated value strictly greater than it.

    Returns
    -------
    numpy.ndarray
        Boolean array of ``target_shape``.
    """
    if not 0.0 <= float(threshold) < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    frac = resample_volume(
        np.asarray(mask3d) != 0, src_affine, target_shape, target_affine, order=1
    )
    return frac > threshold


def _voxel_mapping(src_affine, target_affine) -> tuple[np.ndarray, np.ndarray]:
    src = np.asarray(src_affine, dtype=np.float64)
    tgt = np.asarray(target_affine, dtype=np.float64)
    for name, a in (("src_affine", src), ("target_affine", tgt)):
        if a.shape != (4, 4) or not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be a finite 4x4 matrix, got shape {a.shape}")
    try:
        mapping = np.linalg.solve(src, tgt)
    except np.linalg.LinAlgError as exc:
        raise ValueError("src_affine is singular") from exc
    return mapping[:3, :3], mapping[:3, 3]


def _check_shape(shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"target_shape must be three positive integers, got {shape}")
    return shape
