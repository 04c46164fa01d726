"""Temporal cleaning (detrend, band-pass, confound regression) and spatial smoothing.

:func:`clean` re-implements, with numpy/scipy only, exactly what

    nilearn.signal.clean(data, t_r=t_r, confounds=confounds, detrend=detrend,
                         standardize=False, standardize_confounds=True,
                         filter="butterworth", high_pass=high_pass, low_pass=low_pass,
                         butterworth__order=filter_order)

computes (nilearn 0.14, no runs, no sample mask):

1. ``detrend``: remove the mean and the least-squares linear trend of every data column and
   every confound column;
2. zero-phase Butterworth filter (``scipy.signal.butter(order, ..., output="sos", fs=1/t_r)``
   applied forwards and backwards by ``scipy.signal.sosfiltfilt`` with odd padding of scipy's
   default length), the same filter on data and confounds (Lindquist et al. 2018);
3. confounds z-scored (ddof=1; constant columns become 0), an orthonormal basis of their
   column space from a pivoted QR (columns with ``|R_ii| <= 100 eps`` dropped) projected out of
   the data.  No intercept is added and nothing is standardised afterwards.

Unlike nilearn, a cut-off at or above the Nyquist frequency raises ValueError instead of being
silently lowered.
"""

from __future__ import annotations

import numpy as np

__all__ = ["clean", "detrend_linear", "smooth_volume"]

FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))


def detrend_linear(data: np.ndarray) -> np.ndarray:
    """Remove the mean and the least-squares linear trend of each column.

    Parameters
    ----------
    data : numpy.ndarray
        Shape ``(T, V)``.

    Returns
    -------
    numpy.ndarray
        Float64 copy, detrended.
    """
    out = np.array(data, dtype=np.float64, copy=True)
    out -= out.mean(axis=0)
    n_t = out.shape[0]
    if n_t > 1:
        ramp = np.arange(n_t, dtype=np.float64)
        ramp -= ramp.mean()
        ramp /= np.sqrt(ramp @ ramp)
        out -= np.outer(ramp, ramp @ out)
    return out


def clean(
    data: np.ndarray,
    *,
    t_r: float,
    confounds: np.ndarray | None = None,
    high_pass: float | None = 0.01,
    low_pass: float | None = 0.1,
    detrend: bool = True,
    filter_order: int = 5,
) -> np.ndarray:
    """Detrend, band-pass filter and regress confounds out of time series.

    Parameters
    ----------
    data : numpy.ndarray
        Shape ``(T, V)``; never modified.
    t_r : float
        Repetition time in seconds.
    confounds : numpy.ndarray, optional
        Shape ``(T, K)`` (or ``(T,)``), finite values.
    high_pass, low_pass : float or None
        Cut-off frequencies in Hz; None switches that side off (both None: no filtering).
    detrend : bool
        Remove mean and linear trend from data and confounds first.
    filter_order : int
        Butterworth order (nilearn's default 5).

    Returns
    -------
    numpy.ndarray
        Float64 ``(T, V)``. See the module docstring for the exact nilearn equivalent.
    """
    from scipy import linalg
    from scipy import signal as sps

    x = np.asarray(data, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"data must be 2D (T, V), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("data contains non-finite values")
    n_t = x.shape[0]
    t_r = float(t_r)
    if not np.isfinite(t_r) or t_r <= 0:
        raise ValueError(f"t_r must be a positive number of seconds, got {t_r!r}")
    conf = _check_confounds(confounds, n_t)
    sos = _butter_sos(t_r, high_pass, low_pass, int(filter_order))

    x = detrend_linear(x) if detrend else x.copy()
    if conf is not None and detrend:
        conf = detrend_linear(conf)
    if sos is not None:
        x = sps.sosfiltfilt(sos, x, axis=0, padtype="odd")
        if conf is not None:
            conf = sps.sosfiltfilt(sos, conf, axis=0, padtype="odd")
    if conf is not None:
        conf = conf - conf.mean(axis=0)
        std = conf.std(axis=0, ddof=1) if n_t > 1 else np.ones(conf.shape[1])
        std[std < np.finfo(np.float64).eps] = 1.0
        conf = conf / std
        q, r, _ = linalg.qr(conf, mode="economic", pivoting=True)
        q = q[:, np.abs(np.diag(r)) > np.finfo(np.float64).eps * 100.0]
        x = x - q @ (q.T @ x)
    return x


def smooth_volume(data: np.ndarray, affine: np.ndarray, fwhm: float | None) -> np.ndarray:
    """Gaussian smoothing of a 3D volume or of each volume of a 4D series.

    As :func:`nilearn.image.smooth_img`: ``sigma_mm = fwhm / sqrt(8 ln 2)``, per-axis sigma in
    voxels from the affine's column norms, :func:`scipy.ndimage.gaussian_filter1d` along the
    three spatial axes (mode "reflect", truncate 4), non-finite values set to 0 first.

    Parameters
    ----------
    data : numpy.ndarray
        3D ``(X, Y, Z)`` or 4D ``(X, Y, Z, T)``; never modified.
    affine : numpy.ndarray
        4x4 (or 3x3) voxel-to-world matrix.
    fwhm : float or None
        Kernel FWHM in mm; 0 or None returns a copy.

    Returns
    -------
    numpy.ndarray
        Smoothed copy; float input keeps its dtype, integer input becomes float64.
    """
    from scipy.ndimage import gaussian_filter1d

    arr = np.asarray(data)
    if arr.ndim not in (3, 4):
        raise ValueError(f"data must be 3D or 4D, got shape {arr.shape}")
    out = arr.astype(arr.dtype if arr.dtype.kind == "f" else np.float64, copy=True)
    out[~np.isfinite(out)] = 0
    if fwhm is None or float(fwhm) == 0.0:
        return out
    if not np.isfinite(float(fwhm)) or float(fwhm) < 0:
        raise ValueError(f"fwhm must be a non-negative number of mm, got {fwhm!r}")
    vox = np.sqrt(np.sum(np.asarray(affine, dtype=np.float64)[:3, :3] ** 2, axis=0))
    sigmas = float(fwhm) * FWHM_TO_SIGMA / vox
    volumes = [out] if out.ndim == 3 else [out[..., t] for t in range(out.shape[3])]
    for vol in volumes:
        for axis, sigma in enumerate(sigmas):
            vol[...] = gaussian_filter1d(vol, sigma, axis=axis)
    return out


def min_timepoints(
    t_r: float, high_pass: float | None, low_pass: float | None, filter_order: int = 5
) -> int:
    """Fewest time points :func:`clean` can filter with these settings.

    ``scipy.signal.sosfiltfilt`` pads the series by ``3 * (2 * n_sections + 1 - ...)`` samples
    (its default ``padlen``) and needs strictly more samples than that. Raises ValueError for
    cut-offs at or above the Nyquist frequency, as :func:`clean` does.

    Parameters
    ----------
    t_r : float
        Repetition time in seconds.
    high_pass, low_pass : float or None
        Cut-offs in Hz (None: no filter on that side).
    filter_order : int
        Butterworth order.

    Returns
    -------
    int
        The minimum number of time points (1 when no filter is applied).
    """
    sos = _butter_sos(t_r, high_pass, low_pass, filter_order)
    if sos is None:
        return 1
    zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * (2 * len(sos) + 1 - zeros) + 1


def _check_confounds(confounds, n_t: int) -> np.ndarray | None:
    if confounds is None:
        return None
    conf = np.asarray(confounds, dtype=np.float64)
    if conf.ndim == 1:
        conf = conf[:, None]
    if conf.ndim != 2 or conf.shape[0] != n_t:
        raise ValueError(f"confounds must have shape ({n_t}, K), got {np.shape(confounds)}")
    if not np.all(np.isfinite(conf)):
        raise ValueError("confounds contains non-finite values (fill them first)")
    return conf if conf.shape[1] else None


def _butter_sos(t_r: float, high_pass, low_pass, order: int) -> np.ndarray | None:
    from scipy import signal as sps

    if high_pass is None and low_pass is None:
        return None
    nyquist = 0.5 / t_r
    for name, value in (("high_pass", high_pass), ("low_pass", low_pass)):
        if value is None:
            continue
        if not np.isfinite(float(value)) or float(value) <= 0:
            raise ValueError(f"{name} must be a positive frequency in Hz, got {value!r}")
        if float(value) >= nyquist:
            raise ValueError(
                f"{name} = {value} Hz must be below the Nyquist frequency {nyquist:g} Hz "
                f"(t_r = {t_r:g} s)"
            )
    if high_pass is not None and low_pass is not None and float(high_pass) >= float(low_pass):
        raise ValueError(f"high_pass ({high_pass} Hz) must be lower than low_pass ({low_pass} Hz)")
    if order < 1:
        raise ValueError(f"filter_order must be >= 1, got {order}")
    if high_pass is not None and low_pass is not None:
        wn, btype = [float(high_pass), float(low_pass)], "band"
    elif high_pass is not None:
        wn, btype = float(high_pass), "high"
    else:
        wn, btype = float(low_pass), "low"
    return sps.butter(order, wn, btype=btype, output="sos", fs=1.0 / t_r)
