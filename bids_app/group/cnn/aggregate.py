"""Summary of a cross-validation run: reused fold results, pooled tables and metrics.

Part of :func:`bids_app.group.cnn.run.run_cnn`: ``folds.tsv``, ``predictions.tsv`` and the
figures from the finished folds, and the participant counts, exclusions and versions that go
into ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.group.cnn.metrics import FOLD_COLUMNS, summarise_folds, write_tsv
from bids_app.group.cnn.permutation import pooled_participant_test

LOG = logging.getLogger("strokedfc.group.cnn")


def participant_table(index: pd.DataFrame) -> pd.DataFrame:
    """``subject, label, n_windows`` per participant of the cache index."""
    grp = index.groupby("subject", sort=True)
    if (grp["label"].nunique() > 1).any():
        raise ValueError("a participant's windows carry different labels in the cache index")
    return grp.agg(label=("label", "first"), n_windows=("row", "size")).reset_index()


def _load_result(path: Path, chash: str) -> dict | None:
    try:
        res = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return res if res.get("config_hash") == chash else None


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
