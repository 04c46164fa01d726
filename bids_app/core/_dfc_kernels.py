"""Tiled band-matrix kernel behind :func:`bids_app.core.dfc.sliding_window_dfc` (private).

The implementation is vectorised over all windows at once, O(V * n_windows * W) work: each
windowed sum (``sum w x``, ``sum w^2 x^2`` and the covariance with the seed) is a product of
the data with a band matrix (windows x time) holding the weights, evaluated tile by tile
(``_TILE`` windows against the ``(_TILE - 1) * step + W`` time points they cover) so that BLAS
skips most of the band's zeros.  The covariance weights are the taper times the tapered,
window-centred seed divided by its standard deviation, so no voxel x seed products are formed.
Voxels are processed in blocks of ``_BLOCK`` with reused buffers, shared among
``OMP_NUM_THREADS`` threads (default: the usable CPUs, at most 8) while BLAS is held to one
thread (the products are small); results do not depend on the number of threads.  A
cumulative-sum formulation (the Hamming and Hann tapers are cosine sums) is O(V * T) in theory
but needs 13-15 cumulative sums per voxel and was several times slower in NumPy than the tiled
BLAS products (``bench/bench_dfc.py`` times both).

The module attributes ``_BLOCK`` and ``_TILE`` are read at call time (tests shrink them to
exercise block and tile edges).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

#: Relative threshold below which a tapered window variance counts as zero.
_REL_VAR_EPS = 1e-12
#: Number of voxels processed together (bounds the temporary memory, ~12 arrays of this width).
_BLOCK = 1024
#: Number of windows per band tile (one BLAS product per tile and windowed quantity).
_TILE = 32


def _dfc_blocks(x, y, idx, taper, step, out, *, r_clip: float) -> None:
    """Fill out[:, idx], voxel blocks shared among threads (|r| clipped to r_clip).

    See :func:`bids_app.core.dfc.sliding_window_dfc`.
    """
    tiles = _taper_tiles(taper, _seed_coefficients(y, taper, step, out.shape[0]), step)
    starts = list(range(0, idx.size, _BLOCK))
    n_threads = min(_n_threads(), len(starts))
    if n_threads == 1:
        _run_blocks(x, idx, starts, tiles, step, out, r_clip)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_threads) as pool:
        jobs = [
            pool.submit(_run_blocks, x, idx, starts[i::n_threads], tiles, step, out, r_clip)
            for i in range(n_threads)
        ]
        for job in jobs:
            job.result()


def _run_blocks(x, idx, starts, tiles, step, out, r_clip) -> None:
    """One thread's share: blocks starting at starts (NumPy and BLAS release the GIL)."""
    n_win, n_t, w = out.shape[0], x.shape[1], tiles["w"]
    # buffers reused by every block (fresh large arrays cost page faults on every block)
    width = min(_BLOCK, idx.size)
    work = {k: np.empty(n_win * width) for k in "cvm"}
    work.update(u=np.empty(n_t * width), uu=np.empty(n_t * width), x=np.empty(n_t * width))
    for start in starts:
        cols = idx[start : start + _BLOCK]
        if cols[-1] - cols[0] + 1 == cols.size:  # contiguous: a view, no copy
            cols = slice(int(cols[0]), int(cols[-1]) + 1)
            block = x[cols]
        else:
            block = np.take(x, cols, axis=0, out=_shaped(work["x"], (cols.size, n_t)))
        r = _block_r(block, tiles, step, work, r_clip)
        const = _constant_windows(block, w, step, n_win)
        if const is not None:
            r[const] = 0.0
        if isinstance(cols, slice):
            np.arctanh(r, out=out[:, cols])
        else:
            out[:, cols] = np.arctanh(r)


def _n_threads() -> int:
    """Threads for the voxel blocks: OMP_NUM_THREADS if set, else the usable CPUs (<= 8)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) >= 1:
        return int(value)
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, min(8, os.cpu_count() or 1))


def _single_blas_thread():
    """Context holding BLAS to one thread (threadpoolctl ships with scikit-learn)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn, a dependency, requires it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _seed_coefficients(y: np.ndarray, taper: np.ndarray, step: int, n_win: int) -> np.ndarray:
    """(n_windows, W) weights c with sum_j c[k, j] x[s_k + j] = tapered cov(x, y) / sd(y).

    The weights are the taper times the tapered, window-centred seed, divided by the square
    root of its (exact, two-pass) window sum of squares; windows in which the seed has no
    variance get all-zero weights, hence r = 0.
    """
    w = taper.size
    windows = y[np.arange(n_win)[:, None] * step + np.arange(w)[None, :]]
    tapered = windows * taper
    # centre w * (v + d), v = y - d, as centre(w v) + d centre(w): no rounding from a large
    # seed mean d where the taper is flat (exactly 0 for the rectangular window)
    d = y.mean()
    v_tapered = (windows - d) * taper
    centred = v_tapered - v_tapered.mean(axis=1, keepdims=True)
    centred += d * (taper - taper.mean())
    var = np.einsum("kj,kj->k", centred, centred)
    bad = var <= _REL_VAR_EPS * np.einsum("kj,kj->k", tapered, tapered)
    bad |= np.all(windows == windows[:, :1], axis=1)
    inv_sd = np.zeros(n_win)
    np.divide(1.0, np.sqrt(var), out=inv_sd, where=~bad)
    return taper * centred * inv_sd[:, None]


def _band_tiles(coef: np.ndarray, step: int, tile: int) -> np.ndarray:
    """Tiles (n_tiles, tile, (tile - 1) * step + W) of the band with coef[k] in row k."""
    n_win, w = coef.shape
    n_tiles = -(-n_win // tile)
    padded = np.zeros((n_tiles * tile, w))
    padded[:n_win] = coef
    bands = np.zeros((n_tiles * tile, (tile - 1) * step + w))
    local = np.arange(n_tiles * tile) % tile  # row of each window inside its tile
    bands[np.arange(n_tiles * tile)[:, None], local[:, None] * step + np.arange(w)] = padded
    return bands.reshape(n_tiles, tile, -1)


def _taper_tiles(taper: np.ndarray, cov_coef: np.ndarray, step: int) -> dict:
    """Band tiles for sum(w x) / sqrt(W), sum(w^2 x^2) and cov / sd(seed), plus constants."""
    n_win, w = cov_coef.shape
    tile = min(_TILE, n_win)

    def fixed(row: np.ndarray) -> np.ndarray:
        return _band_tiles(np.broadcast_to(row, (n_win, w)), step, tile)

    return {
        "n_win": n_win,
        "w": w,
        "flat": bool(np.all(taper == taper[0])),
        "sum_w2": float(taper @ taper),
        "mean": fixed(taper / np.sqrt(w)),
        "square": fixed(taper * taper),
        "cov": _band_tiles(cov_coef, step, tile),
    }


def _shaped(flat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """C-contiguous view of the start of a flat work buffer."""
    return flat[: shape[0] * shape[1]].reshape(shape)


def _banded(tiles: np.ndarray, data_t: np.ndarray, step: int, out: np.ndarray) -> np.ndarray:
    """Band-matrix product into out (n_windows, Vb), tile by tile; data_t is (T, Vb)."""
    n_tiles, tile, length = tiles.shape
    n_win = out.shape[0]
    for i in range(n_tiles):
        k0 = i * tile
        k1 = min(k0 + tile, n_win)
        span = length - (tile - (k1 - k0)) * step  # time points covered by windows k0..k1-1
        t0 = k0 * step
        np.matmul(tiles[i, : k1 - k0, :span], data_t[t0 : t0 + span], out=out[k0:k1])
    return out


def _block_r(block: np.ndarray, tiles: dict, step: int, work: dict, r_clip: float) -> np.ndarray:
    """Tapered Pearson r of a voxel block with the seed, shape (n_windows, Vb), in work.

    A flat (rectangular) window makes r offset-invariant, so series are centred first (no
    cancellation in sum(x^2) - sum(x)^2 / W).  A taper makes r depend on the offset c (through
    the taper shape) and raw series are used: where c dominates, var(w x) ~ c^2 W var(w), so the
    difference loses only a factor ~ sum(w^2) / (W var(w)) (~4 for Hamming and Hann).
    """
    n_vox, n_t = block.shape
    shape = (n_win, n_vox) = (tiles["n_win"], n_vox)
    if tiles["flat"]:
        data = np.subtract(
            block, block.mean(axis=1, keepdims=True), out=_shaped(work["u"], (n_vox, n_t))
        )
    else:
        data = block
    squares = np.square(data, out=_shaped(work["uu"], (n_vox, n_t)))
    peak = np.max(squares, axis=1)
    if not np.all(np.isfinite(peak)):
        raise ValueError("voxels contains non-finite values in valid voxels")
    cov = _banded(tiles["cov"], data.T, step, _shaped(work["c"], shape))
    var = _banded(tiles["square"], squares.T, step, _shaped(work["v"], shape))
    mean = _banded(tiles["mean"], data.T, step, _shaped(work["m"], shape))
    np.square(mean, out=mean)
    var -= mean  # sum (w x)^2 - (sum w x)^2 / W
    scale = _REL_VAR_EPS * tiles["sum_w2"] * peak
    np.copyto(var, np.inf, where=var <= scale)  # numerically constant: r = 0
    np.sqrt(var, out=var)
    np.divide(cov, var, out=cov)
    return np.clip(cov, -r_clip, r_clip, out=cov)


def _constant_windows(block: np.ndarray, w: int, step: int, n_win: int) -> np.ndarray | None:
    """Exact (n_windows, Vb) mask of windows in which a series is constant, None if none."""
    rows = np.flatnonzero(np.any(block[:, 1:] == block[:, :-1], axis=1))  # cheap filter
    if rows.size == 0:
        return None
    same = block[rows, 1:] == block[rows, :-1]
    changes = np.zeros((rows.size, block.shape[1]), dtype=np.int64)
    np.cumsum(~same, axis=1, out=changes[:, 1:])
    starts = np.arange(n_win) * step
    mask = np.zeros((n_win, block.shape[0]), dtype=bool)
    mask[:, rows] = (changes[:, starts + w - 1] == changes[:, starts]).T
    return mask
