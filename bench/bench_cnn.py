"""Benchmark: group-cache read throughput against the CNN's training rate (CPU).

Run with ``PYTHONPATH=. python bench/bench_cnn.py`` (no pytest; finishes in < 3 minutes).

* Cache: fake participant outputs on the 61x73x61 grid (tests/_group_fixtures), cached with
  ``build_cache`` (float16); volumes/s reading single windows in random order (what the
  DataLoader does) and through ``WindowDataset``.
* Table 1 network (width 1, FC 4096), batch 2 on CPU: forward + backward + Adam step; only a
  couple of iterations are timed (it is slow on CPU).
* CPU-sized network (width 0.125, FC 64), batch 8: training samples/s through the DataLoader,
  baseline (1 thread, num_workers 0, contiguous) vs speed-ups (all threads, num_workers 2,
  channels_last_3d).
Medians are quoted.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPE = (61, 73, 61)


def _median_rate(times: list[float], items: int) -> float:
    return items / statistics.median(times)


def make_cache(tmp: Path, n_subjects: int = 4, n_windows: int = 16):
    """Fake outputs at 61x73x61 and their group cache."""
    from bids_app.group.cache import build_cache
    from bids_app.group.cohort import load_cohort
    from tests._group_fixtures import make_participant_outputs

    study = make_participant_outputs(
        tmp, n_subjects=n_subjects, shape=SHAPE, n_windows=n_windows, rng=0, group_effect=1.0
    )
    cohort = load_cohort(study.bids_dir, study.output_dir)
    return build_cache(cohort, tmp / "cache")


def bench_cache(cache, repeats: int = 3) -> dict:
    """Volumes/s reading one window at a time in random order (raw and via the Dataset)."""
    from bids_app.group.cnn.data import WindowDataset

    rows = cache.index["row"].to_numpy()
    rng = np.random.default_rng(0)
    raw, ds_times = [], []
    ds = WindowDataset(cache, rows)
    for _ in range(repeats):
        order = rng.permutation(rows.size)
        t0 = time.perf_counter()
        for r in order:
            cache.volumes([rows[r]])
        raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in order:
            ds[int(i)]
        ds_times.append(time.perf_counter() - t0)
    return {"raw": _median_rate(raw, rows.size), "dataset": _median_rate(ds_times, rows.size)}


def _step_times(model, batches, threads: int, channels_last: bool, n_iter: int) -> list[float]:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-3)
    model.train()
    times = []
    it = iter(batches)
    for i in range(n_iter + 1):  # the first iteration warms up and is not timed
        t0 = time.perf_counter()
        x, y = next(it)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return times


def bench_table1(cache, n_iter: int = 2) -> float:
    """Samples/s of forward + backward + step of the Table 1 network, batch 2, CPU."""
    import torch

    from bids_app.group.cnn.model import VGG3D, VGG3DConfig

    torch.manual_seed(0)
    model = VGG3D(VGG3DConfig(in_shape=SHAPE))
    vols = torch.from_numpy(cache.volumes([0, 1]))[:, None]
    y = torch.tensor([0, 1])
    times = _step_times(model, [(vols, y)] * (n_iter + 1), os.cpu_count() or 1, False, n_iter)
    return _median_rate(times, 2)


def bench_small(cache, *, threads: int, workers: int, channels_last: bool, n_iter=4) -> float:
    """Training samples/s of the CPU-sized network through the DataLoader."""
    import torch

    from bids_app.group.cnn.data import WindowDataset, make_loader
    from bids_app.group.cnn.model import VGG3D, VGG3DConfig

    torch.manual_seed(0)
    model = VGG3D(VGG3DConfig(in_shape=SHAPE, width_multiplier=0.125, fc_width=64))
    ds = WindowDataset(cache, cache.index["row"].to_numpy())
    loader = make_loader(ds, batch_size=8, shuffle=True, seed=0, num_workers=workers)
    times = _step_times(model, loader, threads, channels_last, n_iter)
    return _median_rate(times, 8)


def main() -> None:
    import torch

    t_start = time.perf_counter()
    ncpu = os.cpu_count() or 1
    print(f"torch {torch.__version__}, {ncpu} CPUs, grid {SHAPE}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = make_cache(Path(tmp))
        n_vox = int(cache.mask.sum())
        print(f"cache: {len(cache.index)} windows x {n_vox} mask voxels ({cache.data.dtype})")
        rates = bench_cache(cache)
        print(f"cache read (random single windows): {rates['raw']:8.1f} volumes/s")
        print(f"WindowDataset items:                {rates['dataset']:8.1f} volumes/s")
        t1 = bench_table1(cache)
        print(f"Table 1 net (width 1), batch 2, fwd+bwd+step: {t1:8.3f} samples/s")
        base = bench_small(cache, threads=1, workers=0, channels_last=False)
        fast = bench_small(cache, threads=ncpu, workers=2, channels_last=True)
        print(
            f"width 0.125 / FC 64, batch 8, baseline (1 thread, 0 workers):  {base:6.2f} samples/s"
        )
        print(f"width 0.125 / FC 64, batch 8, {ncpu} threads, 2 workers, channels_last_3d: "
              f"{fast:6.2f} samples/s")  # fmt: skip
        print(
            f"cache read is {rates['dataset'] / t1:.0f}x the Table 1 training rate and "
            f"{rates['dataset'] / max(base, fast):.0f}x the small network's: reading is not "
            "the bottleneck on CPU"
        )
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
