"""Spherical seed on a voxel grid, restricted to the brain and outside the lesion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["seed_mask", "seed_timeseries", "sphere_mask"]


def sphere_mask(
    shape: Sequence[int], affine: np.ndarray, center_mm: Sequence[float], radius_mm: float
) -> np.ndarray:
    """Voxels whose centre lies within ``radius_mm`` of ``center_mm`` (world coordinates).

    Parameters
    ----------
    shape : sequence of int
        Grid shape (3D).
    affine : numpy.ndarray
        4x4 voxel-to-world affine.
    center_mm : sequence of float
        Sphere centre ``(x, y, z)`` in mm.
    radius_mm : float
        Radius in mm (>= 0). When it is smaller than half the smallest voxel size, the sphere is
        the single voxel nearest to the centre.

    Returns
    -------
    numpy.ndarray
        Boolean mask of ``shape``. Raises ValueError when no voxel is selected (centre outside
        the grid).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValueError(f"shape must be 3D, got {shape}")
    aff = np.asarray(affine, dtype=np.float64)
    centre = np.asarray(center_mm, dtype=np.float64)
    if centre.shape != (3,) or not np.all(np.isfinite(centre)):
        raise ValueError(f"center_mm must be three finite numbers, got {center_mm!r}")
    radius = float(radius_mm)
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"radius_mm must be a non-negative number, got {radius_mm!r}")
    voxel_sizes = np.sqrt(np.sum(aff[:3, :3] ** 2, axis=0))
    mask = np.zeros(shape, dtype=bool)
    if radius < 0.5 * voxel_sizes.min():
        ijk = np.rint(np.linalg.solve(aff, np.r_[centre, 1.0])[:3]).astype(int)
        if np.all(ijk >= 0) and np.all(ijk < shape):
            mask[tuple(ijk)] = True
    else:
        ijk = np.indices(shape).reshape(3, -1)
        xyz = aff[:3, :3] @ ijk + aff[:3, 3:4]
        dist2 = np.sum((xyz - centre[:, None]) ** 2, axis=0)
        mask = (dist2 <= radius**2).reshape(shape)
    if not mask.any():
        raise ValueError(
            f"seed sphere at {tuple(centre.tolist())} mm (radius {radius} mm) contains no voxel "
            "of the grid"
        )
    return mask


def seed_mask(
    sphere: np.ndarray,
    brain_mask: np.ndarray,
    lesion_mask: np.ndarray | None = None,
    *,
    max_lesion_fraction: float = 0.5,
) -> np.ndarray:
    """Seed voxels: ``sphere & brain & ~lesion``, with sanity checks.

    Parameters
    ----------
    sphere, brain_mask : numpy.ndarray
        Boolean (or 0/1) masks of the same shape.
    lesion_mask : numpy.ndarray, optional
        Lesion mask of the same shape.
    max_lesion_fraction : float
        Largest tolerated fraction of the in-brain sphere covered by lesion.

    Returns
    -------
    numpy.ndarray
        Boolean mask. Raises ValueError when the sphere has no brain voxel, when more than
        ``max_lesion_fraction`` of it is lesioned, or when nothing is left.
    """
    sph = np.asarray(sphere) != 0
    brain = np.asarray(brain_mask) != 0
    if sph.shape != brain.shape:
        raise ValueError(f"sphere {sph.shape} and brain_mask {brain.shape} shapes differ")
    if not 0.0 <= float(max_lesion_fraction) <= 1.0:
        raise ValueError(f"max_lesion_fraction must be in [0, 1], got {max_lesion_fraction!r}")
    in_brain = sph & brain
    n_brain = int(in_brain.sum())
    if n_brain == 0:
        raise ValueError(f"the seed sphere ({int(sph.sum())} voxels) lies outside the brain mask")
    result = in_brain
    if lesion_mask is not None:
        lesion = np.asarray(lesion_mask) != 0
        if lesion.shape != sph.shape:
            raise ValueError(f"lesion_mask {lesion.shape} and sphere {sph.shape} shapes differ")
        n_lesioned = int((in_brain & lesion).sum())
        fraction = n_lesioned / n_brain
        if fraction > max_lesion_fraction:
            raise ValueError(
                f"{fraction:.0%} of the seed is lesioned ({n_lesioned} of {n_brain} in-brain "
                f"voxels; max_lesion_fraction={max_lesion_fraction})"
            )
        result = in_brain & ~lesion
    if not result.any():
        raise ValueError("the seed mask is empty after removing lesioned voxels")
    return result


def seed_timeseries(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean time series of the seed voxels.

    Parameters
    ----------
    data : numpy.ndarray
        ``(T, V)`` with ``mask`` of shape ``(V,)``, or ``(X, Y, Z, T)`` with a 3D ``mask``.
    mask : numpy.ndarray
        Boolean seed mask (at least one voxel).

    Returns
    -------
    numpy.ndarray
        Float64 ``(T,)``.
    """
    arr = np.asarray(data)
    m = np.asarray(mask) != 0
    if arr.ndim == 2 and m.shape == (arr.shape[1],):
        selected = arr[:, m]
    elif arr.ndim == 4 and m.shape == arr.shape[:3]:
        selected = arr[m].T
    else:
        raise ValueError(
            f"mask shape {m.shape} does not match data shape {arr.shape} "
            "(expected (T, V) with (V,) or (X, Y, Z, T) with (X, Y, Z))"
        )
    if selected.shape[1] == 0:
        raise ValueError("mask selects no voxel")
    return selected.astype(np.float64).mean(axis=1)
