"""torch Dataset and DataLoader over rows of the group cache (imported only when training)."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class WindowDataset(Dataset):
    """dFC windows as ``(volume (1, X, Y, Z) float32, label int64)``.

    Parameters
    ----------
    cache : GroupCache-like
        Object with ``volumes(rows) -> (n, X, Y, Z) float32`` and ``index`` (column ``label``).
    rows : array of int
        Cache rows served, in order.
    labels : array of int, optional
        Labels to serve instead of the cache's (permutation retraining); same length as rows.
    """

    def __init__(self, cache, rows: np.ndarray, labels: np.ndarray | None = None):
        self.cache = cache
        self.rows = np.asarray(rows, dtype=int).copy()
        if labels is None:
            lab = cache.index.set_index("row").loc[self.rows, "label"].to_numpy(dtype=int)
        else:
            lab = np.asarray(labels, dtype=int).copy()
        if lab.shape != self.rows.shape:
            raise ValueError(f"labels must match rows in length, got {lab.shape} vs {len(rows)}")
        self.labels = lab

    def __len__(self) -> int:
        return int(self.rows.size)

    def __getitem__(self, i: int):
        vol = self.cache.volumes([int(self.rows[i])])[0]
        x = torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))[None]
        return x, torch.tensor(int(self.labels[i]), dtype=torch.long)


class EpochShuffleSampler(Sampler):
    """Shuffles with a generator seeded by ``(seed, epoch)``: resuming an epoch is exact."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: numpy/random seeded from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002 (seeds third-party code using the global RNG)
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    device: torch.device | None = None,
    sampler: Sampler | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """DataLoader with seeded shuffling/workers, pinned memory on CUDA, persistent workers.

    Parameters
    ----------
    dataset : Dataset
        Items to load.
    batch_size : int
        Mini-batch size (>= 1).
    shuffle : bool
        Shuffle every epoch with :class:`EpochShuffleSampler` (ignored when ``sampler`` given).
    seed : int
        Run-derived seed of the shuffling and of the workers.
    num_workers : int
        Worker processes (0 = load in the main process).
    device : torch.device, optional
        Target device; ``pin_memory`` is used on CUDA.
    sampler : Sampler, optional
        Explicit sampler (e.g. ``DistributedSampler``).
    drop_last : bool
        Drop a last incomplete batch (training uses it to avoid 1-item BatchNorm batches).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if sampler is None and shuffle:
        sampler = EpochShuffleSampler(len(dataset), seed)
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=int(batch_size),
        sampler=sampler,
        shuffle=False,
        num_workers=int(num_workers),
        pin_memory=device is not None and device.type == "cuda",
        persistent_workers=num_workers > 0,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        generator=gen,
        drop_last=bool(drop_last),
    )
