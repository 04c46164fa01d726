"""One cross-validation fold: train (or fit the baseline), predict, test and permute.

Part of :func:`bids_app.group.cnn.run.run_cnn`; writes ``fold-<k>/`` (model.pt, model.json,
mask.npy, curves.tsv, predictions.tsv, result.json) on rank 0.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.group.cnn import splits as sp
from bids_app.group.cnn.metrics import fold_metric_rows, prediction_tables, write_tsv
from bids_app.group.cnn.permutation import label_shuffle_null, retrain_null
from bids_app.group.cnn.predict import model_config, save_model

LOG = logging.getLogger("strokedfc.group.cnn")


def fold_seeds(random_seed: int, n_folds: int) -> list[int]:
    """Independent per-fold seeds spawned from ``random_seed`` (``SeedSequence.spawn``)."""
    children = np.random.SeedSequence(int(random_seed)).spawn(int(n_folds))
    return [int(c.generate_state(1)[0] % 2**31) for c in children]


def _logreg(seed: int):
    import inspect

    from bids_app.group.cnn.baseline import LogRegBaseline

    params = inspect.signature(LogRegBaseline).parameters
    for name in ("random_state", "seed"):
        if name in params:
            return LogRegBaseline(**{name: seed})
    return LogRegBaseline()


def fit_predict(
    cache, cfg, rows: dict, *, seed, device, ckpt=None, labels=None, ctx=None, log=LOG
):
    """Train on ``rows['train']`` (select on ``rows['validation']``); probabilities of severe.

    Returns ``(probs, model_state_or_None, curves, best_epoch)`` with ``probs`` a dict of
    role -> P(severe) for the ``train`` and ``test`` rows. ``labels`` (dict role -> labels)
    overrides the cache labels of train/validation (permutation retraining).
    """
    labels = labels or {}
    if cfg.model == "logreg":
        model = _logreg(seed)
        y = labels.get("train")
        if y is None:
            y = cache.index.set_index("row").loc[rows["train"], "label"].to_numpy(dtype=int)
        model.fit(cache.vectors(rows["train"]), y)
        probs = {
            r: model.predict_proba(cache.vectors(rows[r]))[:, 1] if rows[r].size else np.zeros(0)
            for r in ("train", "test")
        }
        return probs, None, [], None
    import torch

    from bids_app.group.cnn.model import VGG3D
    from bids_app.group.cnn.train import TrainSettings, predict_rows, train_model

    settings = TrainSettings.from_config(cfg)
    torch.manual_seed(seed)
    model = VGG3D(model_config(cache, cfg))
    res = train_model(
        model, cache, rows["train"], rows["validation"], settings=settings, device=device,
        seed=seed, checkpoint=ckpt, train_labels=labels.get("train"),
        val_labels=labels.get("validation"), ctx=ctx, log=log,
    )  # fmt: skip
    model.load_state_dict(res.best_state)
    kw = {"device": device, "batch_size": settings.batch_size, "ctx": ctx,
          "mixed_precision": settings.mixed_precision,
          "channels_last": settings.channels_last}  # fmt: skip
    probs = {r: predict_rows(model, cache, rows[r], **kw)[:, 1] for r in ("train", "test")}
    return probs, res.best_state, res.curves, res.best_epoch


def run_fold(k, cache, assignment, participants, cfg, *, seed, device, out_dir, chash, ctx, log):
    """Train, predict, test and permute one fold; write ``out_dir`` (rank 0); the result dict."""
    rows = sp.fold_rows(assignment, k)
    log.info("fold %d: %d train, %d validation, %d test windows", k,
             *(rows[r].size for r in sp.ROLES))  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / f"checkpoint-{chash}.pt"  # never resumed under another config
    probs, state, curves, best_epoch = fit_predict(
        cache, cfg, rows, seed=seed, device=device, ckpt=ckpt, ctx=ctx, log=log
    )
    pred = prediction_tables(cache.index, rows, probs, participants, k)
    rng = np.random.default_rng(seed + 1)
    te_w, te_p = pred["window"]["test"], pred["participant"]["test"]
    groups = te_w["participant"].to_numpy() if cfg.cv_unit == "subject" else None
    n_perm = int(cfg.n_permutations)
    null = {
        "window": label_shuffle_null(te_w["true_label"], te_w["probability"], groups=groups,
                                     n_permutations=n_perm, rng=rng),
        "participant": label_shuffle_null(te_p["true_label"], te_p["probability"], groups=None,
                                          n_permutations=n_perm, rng=rng),
    }  # fmt: skip
    p_retrain = _retrain_null(k, cache, cfg, rows, participants, pred, seed=seed,
                              device=device, ctx=ctx, log=log)  # fmt: skip
    result = {
        "fold": k, "config_hash": chash, "seed": seed, "best_epoch": best_epoch,
        "rows": fold_metric_rows(k, pred, null, p_retrain),
        "null": {lvl: v.tolist() for lvl, v in null.items()},
        "roc": {lvl: {"true_label": pred[lvl]["test"]["true_label"].tolist(),
                      "probability": pred[lvl]["test"]["probability"].tolist()}
                for lvl in ("window", "participant")},
        "curves": curves,
    }  # fmt: skip
    if ctx.is_main:
        write_tsv(te_w, out_dir / "predictions.tsv", "predictions")
        if curves:
            write_tsv(pd.DataFrame(curves), out_dir / "curves.tsv", "curves")
        meta = {"fold": k, "best_epoch": best_epoch, "config_hash": chash,
                "metrics": result["rows"]}  # fmt: skip
        save_model(out_dir, state, cache, cfg, meta)
        from bids_app.outputs import atomic_write_json

        atomic_write_json(out_dir / "result.json", result)
        _remove_checkpoints(out_dir)
    return json.loads(json.dumps(result, default=float))


def _remove_checkpoints(folder: Path) -> None:
    for path in folder.glob("checkpoint-*.pt"):
        path.unlink(missing_ok=True)


def _retrain_null(k, cache, cfg, rows, participants, pred, *, seed, device, ctx, log) -> dict:
    """Retraining p-values (``cfg.permutation_retrain`` fits on shuffled training labels)."""
    n = int(getattr(cfg, "permutation_retrain", 0) or 0)
    if n <= 0:
        return {}
    fit_rows = np.concatenate([rows["train"], rows["validation"]])
    y = cache.index.set_index("row").loc[fit_rows, "label"].to_numpy(dtype=int)
    who = participants.to_numpy()[fit_rows] if cfg.cv_unit == "subject" else fit_rows
    n_tr = rows["train"].size

    def fit(shuffled: np.ndarray, j: int) -> np.ndarray:
        labels = {"train": shuffled[:n_tr], "validation": shuffled[n_tr:]}
        probs, *_ = fit_predict(cache, cfg, rows, seed=seed + 1000 + j, device=device,
                                labels=labels, ctx=ctx, log=log)  # fmt: skip
        log.info("fold %d: retraining permutation %d/%d", k, j + 1, n)
        return probs["test"]

    return retrain_null(fit, who, y, pred, n, np.random.default_rng(seed + 2))
