"""Benchmark: vectorised sliding_window_dfc against straightforward per-window loops.

Run with ``PYTHONPATH=. python bench/bench_dfc.py`` (no pytest). Paper-sized problem: a
brain-like ellipsoid mask on the 61x73x61 grid (~70k voxels), T = 230, W = 22, step 1, Hamming.

Two baselines are timed in the same run:

* ``loop-corrcoef``: for each window and each voxel, taper both series and call
  ``numpy.corrcoef`` (the reference used in the tests). Timed on a voxel subset and scaled
  linearly to all voxels (the output says so).
* ``loop-windows``: the DPABI ``y_SCA_Window.m`` structure, a Python loop over windows with
  the voxels of each window handled as one matrix (numpy-vectorised over voxels).
"""

from __future__ import annotations

import resource
import statistics
import sys
import time

import numpy as np

from bids_app.core.dfc import R_CLIP, n_windows, sliding_window_dfc, window_taper

SHAPE = (61, 73, 61)
T, W, STEP, TAPER = 230, 22, 1, "hamming"
REPEATS = 3
SUBSET = 300


def brain_like_mask(shape=SHAPE) -> np.ndarray:
    """Ellipsoid filling most of the SPM bounding box (about 70k voxels at 3 mm)."""
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2 + np.array([0, 4, 4])
    radii = np.array([23.2, 29.9, 24.1])
    dist = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
    return dist <= 1.0


def loop_corrcoef(voxels: np.ndarray, seed: np.ndarray) -> np.ndarray:
    taper = window_taper(W, TAPER)
    n_win = n_windows(voxels.shape[1], W, STEP)
    out = np.zeros((n_win, voxels.shape[0]))
    for k in range(n_win):
        s = k * STEP
        yt = seed[s : s + W] * taper
        for v in range(voxels.shape[0]):
            r = np.corrcoef(voxels[v, s : s + W] * taper, yt)[0, 1]
            out[k, v] = np.arctanh(np.clip(r, -R_CLIP, R_CLIP))
    return out


def loop_windows(voxels: np.ndarray, seed: np.ndarray) -> np.ndarray:
    taper = window_taper(W, TAPER)
    n_win = n_windows(voxels.shape[1], W, STEP)
    out = np.zeros((n_win, voxels.shape[0]))
    for k in range(n_win):
        s = k * STEP
        xw = voxels[:, s : s + W] * taper
        xw = xw - xw.mean(axis=1, keepdims=True)
        yw = seed[s : s + W] * taper
        yw = yw - yw.mean()
        sx = np.sqrt(np.einsum("vt,vt->v", xw, xw))
        sx[sx == 0] = np.inf
        r = (xw @ yw) / (sx * np.sqrt(yw @ yw))
        out[k] = np.arctanh(np.clip(r, -R_CLIP, R_CLIP))
    return out


def timed(fn, *args, repeats: int = REPEATS) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def _peak_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 2**20  # bytes on macOS, else KiB


def main() -> int:
    rng = np.random.default_rng(0)
    mask = brain_like_mask()
    n_vox = int(mask.sum())
    seed = rng.standard_normal(T)
    voxels = 0.3 * seed + rng.standard_normal((n_vox, T))
    print(f"grid {SHAPE}, {n_vox} in-mask voxels, T={T}, W={W}, step={STEP}, taper={TAPER}")
    print(f"windows: {n_windows(T, W, STEP)}; repeats: {REPEATS} (medians reported)")

    def vectorised(x, y):
        return sliding_window_dfc(x, y, window_length=W, step=STEP, shape=TAPER)

    t_vec, z = timed(vectorised, voxels, seed)
    peak_vec = _peak_mib()
    t_win, z_win = timed(loop_windows, voxels, seed)
    sub = voxels[:SUBSET]
    t_sub, z_sub = timed(loop_corrcoef, sub, seed, repeats=1)
    t_cc = t_sub * n_vox / SUBSET
    err = max(np.max(np.abs(z - z_win)), np.max(np.abs(z[:, :SUBSET] - z_sub)))

    print(f"vectorised sliding_window_dfc : {t_vec:8.3f} s")
    print(f"loop over windows (DPABI-like): {t_win:8.3f} s   speed-up {t_win / t_vec:7.1f}x")
    print(
        f"loop windows x voxels corrcoef: {t_cc:8.1f} s   speed-up {t_cc / t_vec:7.1f}x "
        f"(timed on {SUBSET} voxels, {t_sub:.2f} s, scaled linearly to {n_vox})"
    )
    print(f"max |z difference| vs loops   : {err:.2e}")
    print(f"peak RSS after vectorised runs: {peak_vec:8.1f} MiB (before any baseline ran)")
    print(f"peak RSS (whole process)      : {_peak_mib():8.1f} MiB")
    print(
        f"(input {voxels.nbytes / 2**20:.0f} MiB, one z array {z.nbytes / 2**20:.0f} MiB; "
        "the baselines hold their own outputs too)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
