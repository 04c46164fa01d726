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
from pathlib import Path

import pandas as pd

from bids_app.group.cnn import splits as sp
from bids_app.group.cnn.aggregate import (
    _excluded,
    _load_result,
    _versions,
    aggregate,
    participant_table,
)
from bids_app.group.cnn.final import train_final
from bids_app.group.cnn.fold import fit_predict, fold_seeds, run_fold
from bids_app.group.cnn.metrics import write_tsv

__all__ = [
    "HASHED_FIELDS",
    "LEAKAGE_WARNING",
    "SPLITS_DESCRIPTION",
    "aggregate",
    "config_dict",
    "config_hash",
    "fit_predict",
    "fold_seeds",
    "make_splits",
    "participant_table",
    "run_cnn",
    "run_fold",
    "train_final",
]

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
