"""Cross-validated classification of severe vs mild/moderate from the group cache.

``run_cnn`` writes under ``out_dir``: ``splits.tsv`` (before any training), ``fold-<k>/``
(model.pt, model.json, mask.npy, curves.tsv, predictions.tsv, result.json), ``folds.tsv``,
``predictions.tsv``, ``summary.json``, ``figures/`` and, with ``final_model``, ``final/``.
Finished folds (``result.json`` with the same configuration hash) are reused; interrupted folds
resume from their last epoch checkpoint. Each TSV has a JSON sidecar describing its columns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.group.cnn import splits as sp
from bids_app.group.cnn.metrics import (
    FOLD_COLUMNS,
    fold_metric_rows,
    prediction_tables,
    summarise_folds,
    write_tsv,
)
from bids_app.group.cnn.permutation import (
    label_shuffle_null,
    pooled_participant_test,
    retrain_null,
)
from bids_app.group.cnn.predict import model_config, save_model

LOG = logging.getLogger("strokedfc.group.cnn")

LEAKAGE_WARNING = (
    "Cross-validation was over windows (cv_unit='window', the paper's protocol): windows of "
    "the same participant, which overlap by W-1 of their W volumes, are in training and in "
    "test, so these numbers measure identification of participants already seen in training, "
    "not generalisation to new patients; use cv_unit='subject' for that."
)
SPLITS_DESCRIPTION = (
    "Cross-validation splits, written before training: one row per participant, fold and "
    "role (train/validation/test) with the number of its windows in that role. With "
    "cv_unit='subject' a participant has one role per fold. With cv_unit='window' its windows "
    "are spread over the roles; the per-window assignment follows from random_seed and is not "
    "written (it would hold n_windows x n_folds rows)."
)
#: GroupConfig fields that change the cross-validation result (the configuration hash).
HASHED_FIELDS = (
    "score_column severe_max include_high_motion model width_multiplier fc_width dropout lr "
    "adam_eps lr_step_epochs lr_gamma batch_size epochs mixed_precision channels_last cv_unit "
    "n_folds validation_fraction n_permutations permutation_retrain cache_dtype"
).split()


def config_dict(cfg) -> dict:
    """The GroupConfig (dataclass or namespace) as a plain dict."""
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    return dict(vars(cfg))


def config_hash(cfg, random_seed: int, index: pd.DataFrame, shape) -> str:
    """SHA-256 (16 hex) of the result-relevant settings, the seed and the cache's windows."""
    fields = {k: getattr(cfg, k, None) for k in HASHED_FIELDS}
    cache_id = hashlib.sha256(
        pd.util.hash_pandas_object(index[["subject", "run_key", "window", "label"]], index=False)
        .to_numpy()
        .tobytes()
    ).hexdigest()
    payload = json.dumps(
        {"cfg": fields, "seed": int(random_seed), "cache": cache_id, "shape": list(shape)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def participant_table(index: pd.DataFrame) -> pd.DataFrame:
    """``subject, label, n_windows`` per participant of the cache index."""
    grp = index.groupby("subject", sort=True)
    if (grp["label"].nunique() > 1).any():
        raise ValueError("a participant's windows carry different labels in the cache index")
    return grp.agg(label=("label", "first"), n_windows=("row", "size")).reset_index()


def make_splits(index: pd.DataFrame, cfg, random_seed: int) -> pd.DataFrame:
    """Window-level assignment ``row, participant, fold, role`` for ``cfg.cv_unit``."""
    if cfg.cv_unit == "subject":
        people = participant_table(index)
        folds = sp.subject_folds(
            people["subject"],
            people["label"],
            n_folds=cfg.n_folds,
            validation_fraction=cfg.validation_fraction,
            seed=random_seed,
        )
        sp.check_no_leakage(folds)
        return sp.window_assignment(folds, index)
    if cfg.cv_unit == "window":
        return sp.window_folds(
            index, n_folds=cfg.n_folds, validation_fraction=cfg.validation_fraction,
            seed=random_seed,
        )  # fmt: skip
    raise ValueError(f"cv_unit must be 'subject' or 'window', got {cfg.cv_unit!r}")


def _versions() -> dict:
    import sklearn

    from bids_app.__about__ import __version__

    out = {"python": platform.python_version(), "numpy": np.__version__}
    out.update({"scikit-learn": sklearn.__version__, "strokedfc": __version__})
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        out["torch"] = None
    return out


def _excluded(cohort) -> list[dict]:
    table = getattr(cohort, "table", None)
    if table is None or "included" not in table:
        return []
    rows = table.loc[~table["included"].astype(bool)]
    return [
        {"participant": str(r["participant_id"]), "reason": str(r["exclusion_reason"])}
        for _, r in rows.iterrows()
    ]


def _load_result(path: Path, chash: str) -> dict | None:
    try:
        res = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return res if res.get("config_hash") == chash else None


def _check_folds(folds, n_folds: int) -> list[int]:
    if folds is None:
        return list(range(1, n_folds + 1))
    bad = [f for f in folds if not 1 <= int(f) <= n_folds]
    if bad:
        raise ValueError(f"folds must be within 1..{n_folds} (1-based), got {list(folds)}")
    return sorted({int(f) for f in folds})


def run_cnn(cohort, cache, cfg, *, out_dir: Path, random_seed: int, log=LOG) -> dict:
    """Leakage-safe cross-validation of the 3D CNN (or the logistic baseline).

    Parameters
    ----------
    cohort : Cohort
        From ``load_cohort`` (exclusions are reported in the summary).
    cache : GroupCache
        Windows of the included participants (``index``, ``volumes``, ``vectors``).
    cfg : GroupConfig
        Options (model, training, cv_unit, n_folds, permutations, folds, final_model ...).
    out_dir : Path
        Output folder (``output_dir/group/cnn``).
    random_seed : int
        Master seed; per-fold seeds are spawned from it with ``numpy.random.SeedSequence``.
    log : logging.Logger
        Where progress and warnings go.

    Returns
    -------
    dict
        The content of ``summary.json``.
    """
    from bids_app.group.cnn.distributed import barrier, init_distributed
    from bids_app.group.cnn.train import resolve_device, set_threads

    out_dir = Path(out_dir)
    if cfg.model not in ("vgg3d", "logreg"):
        raise ValueError(f"model must be 'vgg3d' or 'logreg', got {cfg.model!r}")
    set_threads(getattr(cfg, "nthreads", None))
    device = resolve_device(cfg.device) if cfg.model == "vgg3d" else resolve_device("cpu")
    ctx = init_distributed(device.type)
    if ctx.enabled and device.type == "cuda":
        import torch

        device = torch.device("cuda", ctx.local_rank)
    log.info("CNN cross-validation: model %s on device %s (rank %d/%d)", cfg.model, device,
             ctx.rank, ctx.world_size)  # fmt: skip
    index = cache.index
    todo = _check_folds(getattr(cfg, "folds", None), cfg.n_folds)
    assignment = make_splits(index, cfg, random_seed)
    leakage = None
    if cfg.cv_unit == "window":
        leakage = LEAKAGE_WARNING
        log.warning(LEAKAGE_WARNING)
    participants = "sub-" + index["subject"].astype(str)
    if ctx.is_main:
        table = sp.summarise_splits(assignment.assign(participant="sub-" + assignment.participant))
        write_tsv(table, out_dir / "splits.tsv", "splits", SPLITS_DESCRIPTION)
    barrier(ctx)
    chash = config_hash(cfg, random_seed, index, cache.shape)
    seeds = fold_seeds(random_seed, cfg.n_folds)
    results = {}
    for k in range(1, cfg.n_folds + 1):
        res = _load_result(out_dir / f"fold-{k}" / "result.json", chash)
        if res is not None:
            results[k] = res
    for k in todo:
        if k in results:
            log.info("fold %d: reusing finished result", k)
            continue
        results[k] = run_fold(
            k, cache, assignment, participants, cfg,
            seed=seeds[k - 1], device=device, out_dir=out_dir / f"fold-{k}", chash=chash,
            ctx=ctx, log=log,
        )  # fmt: skip
        barrier(ctx)
    summary = aggregate(results, cfg, out_dir=out_dir, seed=random_seed, write=ctx.is_main)
    people = participant_table(index)
    summary.update(
        {
            "cv_unit": cfg.cv_unit,
            "model": cfg.model,
            "n_participants": {
                "severe": int((people["label"] == 1).sum()),
                "mild/moderate": int((people["label"] == 0).sum()),
            },
            "excluded": _excluded(cohort),
            "leakage_warning": leakage,
            "versions": _versions(),
            "config": config_dict(cfg),
            "config_hash": chash,
            "random_seed": int(random_seed),
            "device": str(device),
            "world_size": ctx.world_size,
        }
    )
    if getattr(cfg, "final_model", False) and summary["complete"]:
        summary["final_model"] = train_final(
            cache, cfg, summary, seed=random_seed, device=device, out_dir=out_dir / "final",
            ctx=ctx, log=log,
        )  # fmt: skip
    from bids_app.outputs import atomic_write_json, to_jsonable

    summary = json.loads(json.dumps(to_jsonable(summary)))  # exactly what summary.json holds
    if ctx.is_main:
        atomic_write_json(out_dir / "summary.json", summary)
    barrier(ctx)
    return summary


def aggregate(results: dict, cfg, *, out_dir: Path, seed: int = 0, write: bool = True) -> dict:
    """folds.tsv, predictions.tsv and figures from the finished folds; the metric summary."""
    done = sorted(results)
    rows = [r for k in done for r in results[k]["rows"]]
    folds = pd.DataFrame(rows, columns=[*FOLD_COLUMNS, "p_value_retrain"])
    folds = folds.sort_values(["level", "fold"], kind="stable", key=_level_key)
    preds = [pd.read_csv(out_dir / f"fold-{k}" / "predictions.tsv", sep="\t") for k in done]
    predictions = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame()
    if write and done:
        write_tsv(folds, out_dir / "folds.tsv", "folds")
        write_tsv(predictions, out_dir / "predictions.tsv", "predictions")
        try:
            from bids_app.group.cnn.figures import write_figures

            write_figures(results, predictions, out_dir)
        except Exception as exc:  # figures must never lose the numbers
            LOG.warning("figures failed: %s", exc)
    return {
        "n_folds": int(cfg.n_folds),
        "folds_completed": done,
        "complete": len(done) == int(cfg.n_folds),
        "metrics": summarise_folds(folds) if done else {},
        "p_value_max": {
            str(lvl): float(g["p_value"].max()) for lvl, g in folds.groupby("level", sort=False)
        },
        "pooled": pooled_participant_test(predictions, int(cfg.n_permutations), seed),
    }


def _level_key(col: pd.Series) -> pd.Series:
    return col.map({"window": 0, "participant": 1}) if col.name == "level" else col


# --------------------------------------------------------------------------- one fold
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


def train_final(cache, cfg, summary: dict, *, seed, device, out_dir: Path, ctx, log) -> dict:
    """One model on all included participants (validation split as in CV) into ``out_dir``.

    Reused when ``out_dir/model.json`` holds the same configuration hash.
    """
    old = _load_result(out_dir / "model.json", summary.get("config_hash"))
    if old is not None and (cfg.model == "logreg" or (out_dir / "model.pt").exists()):
        log.info("final model: reusing %s", out_dir)
        keys = ("fold", "best_epoch", "config_hash", "cv_participant_accuracy",
                "cv_participant_balanced_accuracy", "cv_unit", "n_train_windows")  # fmt: skip
        path = str(out_dir / "model.pt") if cfg.model == "vgg3d" else None
        return {"path": path, **{k: old.get(k) for k in keys}}
    rng = np.random.default_rng(seed)
    index = cache.index
    if cfg.cv_unit == "subject":
        people = participant_table(index)
        is_val = sp._validation_split(people["subject"].to_numpy(), people["label"].to_numpy(),
                                      cfg.validation_fraction, rng)  # fmt: skip
        val_people = set(people.loc[is_val, "subject"])
        is_val_row = index["subject"].isin(val_people).to_numpy()
    else:
        is_val_row = sp._validation_split(index["row"].to_numpy(), index["label"].to_numpy(),
                                          cfg.validation_fraction, rng)  # fmt: skip
    all_rows = index["row"].to_numpy(dtype=int)
    rows = {"train": all_rows[~is_val_row], "validation": all_rows[is_val_row],
            "test": all_rows[:0]}  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / f"checkpoint-{summary.get('config_hash')}.pt"
    _, state, curves, best_epoch = fit_predict(
        cache, cfg, rows, seed=int(seed), device=device, ckpt=ckpt,
        ctx=ctx, log=log,
    )  # fmt: skip
    part = summary.get("metrics", {}).get("participant", {})
    meta = {
        "fold": None, "best_epoch": best_epoch, "config_hash": summary.get("config_hash"),
        "cv_participant_accuracy": part.get("test_accuracy", {}).get("mean"),
        "cv_participant_balanced_accuracy": part.get("balanced_accuracy", {}).get("mean"),
        "cv_unit": cfg.cv_unit, "n_train_windows": int(rows["train"].size),
    }  # fmt: skip
    if ctx.is_main:
        save_model(out_dir, state, cache, cfg, meta)
        if curves:
            write_tsv(pd.DataFrame(curves), out_dir / "curves.tsv", "curves")
        _remove_checkpoints(out_dir)
    return {"path": str(out_dir / "model.pt") if state is not None else None, **meta}
