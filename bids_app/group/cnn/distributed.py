"""Optional DistributedDataParallel support when launched by ``torchrun``.

``torchrun --nproc_per_node N`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with
``WORLD_SIZE > 1`` :func:`init_distributed` initialises the process group (``gloo`` on CPU,
``nccl`` on CUDA). Training uses a ``DistributedSampler``; evaluation shards the rows over the
ranks and gathers the predictions so every rank holds the same, complete result; rank 0 alone
writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` (1 = not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device_type: str = "cpu") -> DistContext:
    """Initialise the process group when launched with ``WORLD_SIZE > 1``.

    Parameters
    ----------
    device_type : {"cpu", "cuda"}
        ``gloo`` backend on CPU, ``nccl`` on CUDA (the CUDA device is set to ``LOCAL_RANK``).
    """
    world = env_world_size()
    if world <= 1:
        return DistContext()
    import torch
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local)


def barrier(ctx: DistContext) -> None:
    """Wait for all ranks (no-op when not distributed)."""
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum a short list of floats over ranks (float64, CPU object gather)."""
    if not ctx.enabled:
        return list(values)
    import torch.distributed as dist

    gathered: list = [None] * ctx.world_size
    dist.all_gather_object(gathered, [float(v) for v in values])
    return [float(sum(col)) for col in zip(*gathered, strict=True)]


def shard(n: int, ctx: DistContext) -> np.ndarray:
    """Positions ``rank, rank + world, ...`` of ``range(n)`` evaluated by this rank."""
    return np.arange(ctx.rank, n, ctx.world_size)


def gather_by_position(n: int, positions: np.ndarray, values: np.ndarray, ctx: DistContext):
    """Assemble per-rank ``values`` at ``positions`` into one length-``n`` array on every rank."""
    values = np.asarray(values)
    if not ctx.enabled:
        out = np.empty((n, *values.shape[1:]), dtype=values.dtype)
        out[positions] = values
        return out
    import torch.distributed as dist

    gathered: list = [None] * ctx.world_size
    dist.all_gather_object(gathered, (np.asarray(positions), values))
    out = np.empty((n, *values.shape[1:]), dtype=values.dtype)
    for pos, val in gathered:
        out[pos] = val
    return out


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup(ctx: DistContext) -> None:
    """Destroy the process group when one was created."""
    if ctx.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
