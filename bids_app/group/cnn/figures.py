"""Figures of the cross-validation (matplotlib Agg, imported inside the functions).

Written under ``out_dir/figures/``: ``roc.png`` (ROC per fold, participant and window level),
``confusion.png`` (summed confusion matrices), ``curves.png`` (training curves per fold) and
``permutation.png`` (null distribution of the balanced accuracy with the observed value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LEVELS = ("participant", "window")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def roc_points(y_true: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every threshold (from (0, 0) to (1, 1))."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob, dtype=float)
    order = np.argsort(-p, kind="stable")
    y, p = y[order], p[order]
    distinct = np.r_[np.flatnonzero(np.diff(p)), y.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    n_pos, n_neg = max(y.sum(), 1), max((1 - y).sum(), 1)
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos]


def plot_roc(results: dict, path: Path) -> Path:
    """ROC curve of every fold at participant and window level."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, level in zip(axes, LEVELS, strict=True):
        for k in sorted(results):
            roc = results[k]["roc"][level]
            fpr, tpr = roc_points(roc["true_label"], roc["probability"])
            ax.plot(fpr, tpr, lw=1, label=f"fold {k}")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(title=f"{level} level", xlabel="1 - specificity", ylabel="sensitivity")
    axes[0].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(predictions: pd.DataFrame, path: Path) -> Path:
    """Confusion matrices over all test predictions (threshold 0.5), both levels."""
    plt = _plt()
    part = predictions.groupby(["fold", "participant"], sort=False).agg(
        true_label=("true_label", "first"), probability=("probability", "mean")
    )
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
    names = ["mild/moderate", "severe"]
    tables = [("participant", part), ("window", predictions)]
    for ax, (level, df) in zip(axes, tables, strict=True):
        y = df["true_label"].to_numpy(dtype=int)
        pred = (df["probability"].to_numpy(dtype=float) >= 0.5).astype(int)
        cm = np.array([[np.sum((y == t) & (pred == q)) for q in (0, 1)] for t in (0, 1)])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center",
                    color="white" if v > cm.max() / 2 else "black")  # fmt: skip
        ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=names, yticklabels=names)
        ax.set(title=f"{level} level", xlabel="predicted", ylabel="true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(results: dict, path: Path) -> Path | None:
    """Training and validation loss / balanced accuracy per epoch for every fold."""
    curves = {k: pd.DataFrame(r["curves"]) for k, r in results.items() if r.get("curves")}
    if not curves:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for k, df in sorted(curves.items()):
        line = axes[0].plot(df["epoch"], df["train_loss"], lw=1, label=f"fold {k}")[0]
        axes[0].plot(df["epoch"], df["val_loss"], lw=1, ls="--", color=line.get_color())
        axes[1].plot(df["epoch"], df["val_bacc"], lw=1, color=line.get_color())
    axes[0].set(xlabel="epoch", ylabel="loss (solid train, dashed validation)")
    axes[1].set(xlabel="epoch", ylabel="validation balanced accuracy", ylim=(0, 1.02))
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_null(results: dict, path: Path) -> Path | None:
    """Pooled permutation null of the test balanced accuracy with each fold's observed value."""
    if not any(len(r["null"].get("participant", [])) for r in results.values()):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, level in zip(axes, LEVELS, strict=True):
        null = np.concatenate([np.asarray(r["null"][level], float) for r in results.values()])
        ax.hist(null[np.isfinite(null)], bins=30, range=(0, 1), color="0.7")
        for r in results.values():
            obs = [row["balanced_accuracy"] for row in r["rows"] if row["level"] == level]
            for v in obs:
                if v is not None and np.isfinite(v):
                    ax.axvline(v, color="C3", lw=1)
        ax.set(title=f"{level} level", xlabel="balanced accuracy (red: observed per fold)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_figures(results: dict, predictions: pd.DataFrame, out_dir: Path) -> list[Path]:
    """All figures under ``out_dir/figures``; the paths written."""
    fig_dir = Path(out_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        plot_roc(results, fig_dir / "roc.png"),
        plot_confusion(predictions, fig_dir / "confusion.png"),
        plot_curves(results, fig_dir / "curves.png"),
        plot_null(results, fig_dir / "permutation.png"),
    ]
    return [p for p in paths if p is not None]
