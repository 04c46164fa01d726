"""A plain, resumable training loop for one fold (imported only when training).

Adam(lr, eps) + StepLR(step, gamma), cross-entropy on logits. After every epoch a checkpoint
(model, optimizer, scheduler, grad scaler, epoch, best state, curves, RNG states) is written
atomically; a later call resumes after the last finished epoch. Every epoch re-seeds the RNGs
from ``(seed, epoch)`` and shuffles with a sampler seeded the same way, so a resumed fold gives
exactly the weights of an uninterrupted one. The fold's model is the state of the epoch with
the best validation balanced accuracy (ties: lower validation loss, then the earlier epoch).
"""

from __future__ import annotations

import copy
import io
import logging
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bids_app.group.cnn.data import WindowDataset, make_loader
from bids_app.group.cnn.distributed import (
    DistContext,
    all_reduce_sum,
    gather_by_position,
    shard,
)
from bids_app.group.cnn.metrics import classification_metrics

LOG = logging.getLogger("strokedfc.group.cnn")


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (GroupConfig fields of the same names)."""

    lr: float = 1e-3
    adam_eps: float = 1e-3
    lr_step_epochs: int = 10
    lr_gamma: float = 0.5
    batch_size: int = 32
    epochs: int = 50
    num_workers: int = 0
    mixed_precision: bool = True
    channels_last: bool = True

    def __post_init__(self):
        for name in ("lr", "adam_eps", "lr_gamma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("lr_step_epochs", "batch_size", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_config(cls, cfg) -> TrainSettings:
        """Pick the fields from a GroupConfig-like object."""
        names = cls.__dataclass_fields__
        return cls(**{n: getattr(cfg, n) for n in names if hasattr(cfg, n)})


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`."""

    best_state: dict
    best_epoch: int
    curves: list[dict] = field(default_factory=list)
    completed: bool = True


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; ``"cuda"`` without a GPU is an error.

    Raises
    ------
    ConfigError
        ``"cuda"`` requested but torch sees no GPU (never a silent CPU run).
    """
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        from bids_app.errors import ConfigError

        raise ConfigError(
            "--device cuda was requested but no CUDA GPU is available to torch "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu "
            "or auto"
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def set_threads(nthreads: int | None) -> None:
    """``torch.set_num_threads`` when ``nthreads`` is given (>= 1)."""
    if nthreads is not None:
        if int(nthreads) < 1:
            raise ValueError(f"nthreads must be >= 1, got {nthreads}")
        torch.set_num_threads(int(nthreads))


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (global RNG of third-party code)
    torch.manual_seed(seed)


def _amp_dtype(device: torch.device, enabled: bool):
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _prepare(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last:  # NDHWC: faster 3D convolutions on CUDA and on CPU (oneDNN), see bench
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return x


def _rng_state() -> dict:
    np_state = np.random.get_state()  # noqa: NPY002
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save`` to memory, then an atomic replace of ``path``."""
    from bids_app.outputs import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def predict_rows(
    model: torch.nn.Module,
    cache,
    rows: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = 32,
    num_workers: int = 0,
    mixed_precision: bool = True,
    channels_last: bool = True,
    ctx: DistContext | None = None,
) -> np.ndarray:
    """Softmax probabilities (len(rows), n_classes) of ``model`` in eval mode.

    Under DDP each rank predicts a shard and the shards are gathered, so every rank returns
    the complete array.
    """
    ctx = ctx or DistContext()
    rows = np.asarray(rows, dtype=int)
    module = model.module if hasattr(model, "module") else model
    pos = shard(rows.size, ctx)
    ds = WindowDataset(cache, rows[pos], labels=np.zeros(pos.size, dtype=int))
    loader = make_loader(
        ds, batch_size=batch_size, shuffle=False, seed=0, num_workers=num_workers, device=device
    )
    amp = _amp_dtype(device, mixed_precision)
    module.eval()
    out = []
    with torch.no_grad():
        for x, _ in loader:
            x = _prepare(x, device, channels_last)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                logits = module(x)
            out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    n_cls = getattr(getattr(module, "config", None), "n_classes", 2)
    probs = np.concatenate(out) if out else np.zeros((0, n_cls))
    return gather_by_position(rows.size, pos, probs.astype(np.float64), ctx)


def _evaluate(model, cache, rows, labels, device, settings, ctx) -> dict:
    probs = predict_rows(
        model,
        cache,
        rows,
        device=device,
        batch_size=settings.batch_size,
        mixed_precision=settings.mixed_precision,
        channels_last=settings.channels_last,
        ctx=ctx,
    )
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    m = classification_metrics(labels, probs[:, 1])
    return {"loss": float(-np.log(p).mean()), "acc": m["accuracy"], "bacc": m["balanced_accuracy"]}


def _is_better(val: dict, best: dict | None) -> bool:
    """Higher validation balanced accuracy; ties -> lower validation loss (NaN = worst)."""
    if best is None:
        return True

    def key(d):
        b, loss = d["bacc"], d["loss"]
        return (-np.inf if np.isnan(b) else b), (np.inf if np.isnan(loss) else loss)

    (b, loss), (bb, bloss) = key(val), key(best)
    if b > bb + 1e-12:
        return True
    return abs(b - bb) <= 1e-12 and loss < bloss - 1e-12


def _cpu_state(model) -> dict:
    module = model.module if hasattr(model, "module") else model
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def train_model(
    model: torch.nn.Module,
    cache,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    *,
    settings: TrainSettings,
    device: torch.device,
    seed: int,
    checkpoint: Path | None = None,
    train_labels: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    stop_after: int | None = None,
    ctx: DistContext | None = None,
    log: logging.Logger = LOG,
) -> TrainResult:
    """Train ``model`` (in place) and return the best-validation state and the curves.

    Parameters
    ----------
    model : torch.nn.Module
        Freshly initialised network (initialise it under a fixed seed for reproducibility).
    cache : GroupCache-like
        Source of volumes and labels.
    train_rows, val_rows : array of int
        Cache rows of training and validation (validation may be empty: last epoch wins).
    settings : TrainSettings
        Optimisation settings.
    device : torch.device
        From :func:`resolve_device`.
    seed : int
        Fold seed (shuffling, dropout, workers).
    checkpoint : Path, optional
        Per-epoch checkpoint; resumed from when present.
    train_labels, val_labels : array of int, optional
        Labels overriding the cache's (permutation retraining).
    stop_after : int, optional
        Stop after this epoch (simulates an interruption; the result has ``completed=False``).
    ctx : DistContext, optional
        Distributed context; rank 0 alone writes the checkpoint.
    """
    ctx = ctx or DistContext()
    ds = WindowDataset(cache, train_rows, train_labels)
    val_rows = np.asarray(val_rows, dtype=int)
    if val_labels is None:
        val_labels = WindowDataset(cache, val_rows).labels
    val_labels = np.asarray(val_labels, dtype=int)
    model.to(device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    net = model
    sampler = None
    batch = settings.batch_size
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data import DistributedSampler

        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
        sampler = DistributedSampler(ds, ctx.world_size, ctx.rank, shuffle=True, seed=seed)
        batch = max(1, settings.batch_size // ctx.world_size)
    loader = make_loader(
        ds,
        batch_size=batch,
        shuffle=True,
        seed=seed,
        num_workers=settings.num_workers,
        device=device,
        sampler=sampler,
        drop_last=len(ds) // ctx.world_size % batch == 1,
    )
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, eps=settings.adam_eps)
    sched = torch.optim.lr_scheduler.StepLR(opt, settings.lr_step_epochs, settings.lr_gamma)
    amp = _amp_dtype(device, settings.mixed_precision)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    start, best, curves = 1, None, []
    if checkpoint is not None and Path(checkpoint).exists():
        ck = load_checkpoint(Path(checkpoint))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        best, curves, start = ck["best"], list(ck["curves"]), int(ck["epoch"]) + 1
        _set_rng_state(ck["rng"])
        log.info("resuming from %s after epoch %d", checkpoint, start - 1)
    show_bar = ctx.is_main and sys.stderr.isatty()
    for epoch in range(start, settings.epochs + 1):
        _seed_all(seed * 1000 + epoch)
        loader.sampler.set_epoch(epoch)
        net.train()
        tot = [0.0, 0.0, 0.0]  # loss sum, correct, n
        it = loader
        if show_bar:
            from tqdm import tqdm

            it = tqdm(loader, desc=f"epoch {epoch}/{settings.epochs}", leave=False)
        for x, y in it:
            x, y = _prepare(x, device, settings.channels_last), y.to(device)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                logits = net(x)
            loss = F.cross_entropy(logits.float(), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            tot[0] += float(loss.detach()) * len(y)
            tot[1] += float((logits.argmax(1) == y).sum())
            tot[2] += len(y)
        tot = all_reduce_sum(tot, ctx)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        if val_rows.size:
            val = _evaluate(net, cache, val_rows, val_labels, device, settings, ctx)
        else:
            val = {"loss": float("nan"), "acc": float("nan"), "bacc": float("nan")}
        row = {
            "epoch": epoch,
            "train_loss": tot[0] / max(tot[2], 1),
            "train_acc": tot[1] / max(tot[2], 1),
            "val_loss": val["loss"],
            "val_acc": val["acc"],
            "val_bacc": val["bacc"],
            "lr": lr,
        }
        curves.append(row)
        if not val_rows.size or _is_better(val, best):
            best = {"epoch": epoch, "bacc": val["bacc"], "loss": val["loss"]}
            best["state"] = _cpu_state(net)
        if ctx.is_main:
            log.info(
                "epoch %d/%d train_loss %.4f train_acc %.3f val_loss %.4f val_bacc %.3f lr %.2e",
                *(row[k] for k in ("epoch",)),
                settings.epochs,
                *(row[k] for k in ("train_loss", "train_acc", "val_loss", "val_bacc", "lr")),
            )
        if checkpoint is not None and ctx.is_main:
            save_checkpoint(
                Path(checkpoint),
                {
                    "model": _cpu_state(net),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch,
                    "best": best,
                    "curves": curves,
                    "rng": _rng_state(),
                },
            )
        if stop_after is not None and epoch >= stop_after and epoch < settings.epochs:
            return TrainResult(copy.deepcopy(best["state"]), best["epoch"], curves, False)
    return TrainResult(best["state"], best["epoch"], curves, True)
