"""The final model: one fit on all included participants after a complete cross-validation.

Part of :func:`bids_app.group.cnn.run.run_cnn` (``cfg.final_model``); writes ``final/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.group.cnn import splits as sp
from bids_app.group.cnn.aggregate import _load_result, participant_table
from bids_app.group.cnn.fold import _remove_checkpoints, fit_predict
from bids_app.group.cnn.metrics import write_tsv
from bids_app.group.cnn.predict import save_model


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
