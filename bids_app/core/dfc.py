"""Sliding-window seed-based dynamic functional connectivity (DPABI TDA semantics).

The computation follows DPABI's ``y_SCA_Window.m`` (Temporal Dynamic Analysis):

* windows start at ``k * step`` (0-based) and there are ``fix((T - W) / step) + 1`` of them;
* the taper (MATLAB ``hamming(W)``, ``hann(W)`` or ``rectwin(W)``) multiplies both the seed and
  the voxel series inside the window;
* the tapered series are demeaned within the window and correlated (Pearson r);
* ``z = atanh(r)`` after clipping ``|r|`` to :data:`R_CLIP` = ``1 - 1e-9`` (DPABI clips at
  ``0.999999999`` to "prevent outliers"), so ``|z| <= 10.70``;
* voxels without variance in a window get r = z = 0.

Zero variance is decided on the *raw* window series (exactly constant within the window, found
with an exact integer count of non-zero first differences) and, as a numerical guard, on the
tapered series: a voxel's window variance below ``1e-12 * sum(w^2) * max_t x_t^2`` (x centred
first for the rectangular window), i.e. relative to the voxel's overall scale (e.g. a series that
only varies where a Hann taper is zero); the seed's window variance is compared with its tapered
mean square.  DPABI tests only the tapered series; the two rules agree for all-zero series
(voxels outside the data), and differ only for a series that is a non-zero constant within the
window, which DPABI would correlate through the taper shape alone; here it is 0.

The tiled, threaded kernel lives in :mod:`bids_app.core._dfc_kernels`.
"""

from __future__ import annotations

import numpy as np

from bids_app.core import _dfc_kernels as _kernels

__all__ = [
    "R_CLIP",
    "WINDOW_SHAPES",
    "dfc_summary",
    "n_windows",
    "sliding_window_dfc",
    "static_fc",
    "window_onsets",
    "window_taper",
]

#: Largest |r| kept before the Fisher transform (DPABI: 0.999999999).
R_CLIP = 1.0 - 1e-9
#: Accepted taper names.
WINDOW_SHAPES = ("hamming", "hann", "rectangular")


def window_taper(length: int, shape: str = "hamming") -> np.ndarray:
    """Symmetric window taper, as MATLAB's ``hamming(N)``, ``hann(N)``, ``rectwin(N)``.

    Parameters
    ----------
    length : int
        Window length in samples (>= 2).
    shape : {"hamming", "hann", "rectangular"}
        Taper shape. ``hann`` is the symmetric Hann window with zeros at both ends (as MATLAB
        ``hann(N)`` and :func:`numpy.hanning`).

    Returns
    -------
    numpy.ndarray
        Float64 array of shape ``(length,)``.
    """
    length = _check_int("window_length", length, minimum=2)
    if shape == "hamming":
        return np.hamming(length)
    if shape == "hann":
        return np.hanning(length)
    if shape == "rectangular":
        return np.ones(length)
    raise ValueError(f"shape must be one of {WINDOW_SHAPES}, got {shape!r}")


def n_windows(n_timepoints: int, window_length: int, step: int = 1) -> int:
    """Number of sliding windows, ``floor((T - W) / step) + 1``.

    Parameters
    ----------
    n_timepoints : int
        Number of time points T.
    window_length : int
        Window length W (>= 2, <= T).
    step : int
        Shift between consecutive windows (>= 1).

    Returns
    -------
    int
        The number of windows (209 for T=230, W=22, step=1).
    """
    n_timepoints = _check_int("n_timepoints", n_timepoints, minimum=1)
    window_length = _check_int("window_length", window_length, minimum=2)
    step = _check_int("step", step, minimum=1)
    if n_timepoints < window_length:
        raise ValueError(
            f"window_length ({window_length}) must not exceed the number of time points, "
            f"got n_timepoints={n_timepoints}"
        )
    return (n_timepoints - window_length) // step + 1


def window_onsets(n_timepoints: int, window_length: int, step: int = 1) -> np.ndarray:
    """0-based index of the first time point of each window (``k * step``).

    Parameters
    ----------
    n_timepoints, window_length, step : int
        As in :func:`n_windows`.

    Returns
    -------
    numpy.ndarray
        Integer array of shape ``(n_windows,)``.
    """
    n = n_windows(n_timepoints, window_length, step)
    return np.arange(n, dtype=np.int64) * int(step)


def sliding_window_dfc(
    voxels: np.ndarray,
    seed: np.ndarray,
    *,
    window_length: int,
    step: int = 1,
    shape: str = "hamming",
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Fisher-z seed connectivity of every voxel in every sliding window.

    Parameters
    ----------
    voxels : numpy.ndarray
        Voxel time series, shape ``(V, T)``. Upcast to float64; never modified.
    seed : numpy.ndarray
        Seed time series, shape ``(T,)``.
    window_length : int
        Window length W in samples.
    step : int
        Window shift in samples.
    shape : {"hamming", "hann", "rectangular"}
        Taper applied to both seed and voxel series inside each window.
    valid : numpy.ndarray of bool, optional
        Shape ``(V,)``; voxels marked False get z = 0 (and are not computed).

    Returns
    -------
    numpy.ndarray
        Float64 array ``(n_windows, V)`` of Fisher z values (see module docstring).
    """
    x, y, valid = _check_series(voxels, seed, valid)
    n_t = x.shape[1]
    n_win = n_windows(n_t, window_length, step)
    taper = window_taper(window_length, shape)
    out = np.zeros((n_win, x.shape[0]), dtype=np.float64)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return out
    with _kernels._single_blas_thread():
        _kernels._dfc_blocks(x, y, idx, taper, step, out, r_clip=R_CLIP)
    return out


def static_fc(voxels: np.ndarray, seed: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Fisher-z of the whole-run Pearson correlation of each voxel with the seed.

    Parameters
    ----------
    voxels : numpy.ndarray
        Shape ``(V, T)``.
    seed : numpy.ndarray
        Shape ``(T,)``.
    valid : numpy.ndarray of bool, optional
        Shape ``(V,)``; False -> 0.

    Returns
    -------
    numpy.ndarray
        Float64 ``(V,)``; zero-variance voxels (or seed) give 0; ``|r|`` clipped to
        :data:`R_CLIP`.
    """
    x, y, valid = _check_series(voxels, seed, valid)
    out = np.zeros(x.shape[0], dtype=np.float64)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return out
    _check_finite(x, idx)
    yc = y - y.mean()
    syy = float(yc @ yc)
    if np.all(y == y[0]):
        return out
    for start in range(0, idx.size, _kernels._BLOCK):
        cols = idx[start : start + _kernels._BLOCK]
        xc = x[cols] - x[cols].mean(axis=1, keepdims=True)
        sxx = np.einsum("vt,vt->v", xc, xc)
        const = np.all(x[cols] == x[cols, :1], axis=1)
        denom = np.sqrt(np.where(const, 1.0, sxx) * syy)
        r = np.where(const, 0.0, (xc @ yc) / denom)
        out[cols] = _fisher_z(r)
    return out


def dfc_summary(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard deviation and coefficient of variation of z over windows.

    As DPABI's TDA metrics: ``mean(z, 4)``, ``std(z, 0, 4)`` (MATLAB's default N-1
    normalisation, ``ddof=1``; a single window gives std 0 as in MATLAB) and
    ``CV = std ./ mean``. DPABI sets only NaN CVs (0/0) to 0; here CV is 0 wherever the mean
    is exactly 0, so the map stays finite.

    Parameters
    ----------
    z : numpy.ndarray
        Shape ``(n_windows, ...)``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(mean, std, cv)``, each of shape ``z.shape[1:]``, float64.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim < 1 or z.shape[0] < 1:
        raise ValueError(f"z must have at least one window along axis 0, got shape {z.shape}")
    mean = z.mean(axis=0)
    std = z.std(axis=0, ddof=1) if z.shape[0] > 1 else np.zeros_like(mean)
    nonzero = mean != 0
    cv = np.zeros_like(mean)
    np.divide(std, mean, out=cv, where=nonzero)
    return mean, std, cv


# ----------------------------------------------------------------------------- helpers


def _check_int(name: str, value, *, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_series(voxels, seed, valid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(voxels, dtype=np.float64)
    y = np.asarray(seed, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"voxels must be 2D (V, T), got shape {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[1]:
        raise ValueError(f"seed must have shape ({x.shape[1]},), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("seed contains non-finite values")
    if valid is None:
        valid = np.ones(x.shape[0], dtype=bool)
    else:
        valid = np.asarray(valid)
        if valid.shape != (x.shape[0],) or valid.dtype != bool:
            raise ValueError(
                f"valid must be a boolean array of shape ({x.shape[0]},), "
                f"got {valid.dtype} {valid.shape}"
            )
    return x, y, valid


def _check_finite(x: np.ndarray, idx: np.ndarray) -> None:
    for start in range(0, idx.size, _kernels._BLOCK):
        if not np.all(np.isfinite(x[idx[start : start + _kernels._BLOCK]])):
            raise ValueError("voxels contains non-finite values in valid voxels")


def _fisher_z(r: np.ndarray) -> np.ndarray:
    return np.arctanh(np.clip(r, -R_CLIP, R_CLIP))
