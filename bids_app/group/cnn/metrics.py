"""Classification metrics of Table 3 at window and participant level.

The positive class is severe (label 1): sensitivity = recall of severe, specificity = recall of
mild/moderate, F-score = F1 of severe. A participant's score is the mean probability of its
windows (soft vote); the decision threshold is 0.5 at both levels. Fold summaries are the mean
and the sample SD (ddof=1) over folds. Metrics are fractions in [0, 1]; AUC is NaN when the
test set holds one class only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("accuracy", "auc", "specificity", "sensitivity", "f_score", "balanced_accuracy")
FOLD_COLUMNS = (
    "fold",
    "level",
    "n_test",
    "train_accuracy",
    "test_accuracy",
    "p_value",
    "auc",
    "specificity",
    "sensitivity",
    "f_score",
    "balanced_accuracy",
)


def _check(y_true: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y_true and prob must be 1-D of equal length, got {y.shape}, {p.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold 0/1 labels")
    return y, p


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def auc_score(y_true: np.ndarray, prob: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank statistic (ties count 1/2); NaN for a single class."""
    from scipy.stats import rankdata

    y, p = _check(y_true, prob)
    n1, n0 = int(y.sum()), int((1 - y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def classification_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, AUC, specificity, sensitivity, F-score and balanced accuracy.

    Parameters
    ----------
    y_true : array of int, shape (n,)
        1 = severe, 0 = mild/moderate.
    prob : array of float, shape (n,)
        Probability of the severe class; predicted severe when ``prob >= threshold``.
    threshold : float
        Decision threshold.

    Returns
    -------
    dict
        Keys of :data:`METRICS`; a class absent from ``y_true`` makes its recall NaN and the
        balanced accuracy the recall of the class present.
    """
    y, p = _check(y_true, prob)
    pred = (p >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    sens = _ratio(tp, tp + fn)
    spec = _ratio(tn, tn + fp)
    f_score = _ratio(2 * tp, 2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    bacc = float(np.nanmean([sens, spec])) if not (np.isnan(sens) and np.isnan(spec)) else np.nan
    return {
        "accuracy": _ratio(tp + tn, len(y)),
        "auc": auc_score(y, p),
        "specificity": spec,
        "sensitivity": sens,
        "f_score": f_score,
        "balanced_accuracy": bacc,
    }


def participant_scores(
    participants: np.ndarray, y_true: np.ndarray, prob: np.ndarray
) -> pd.DataFrame:
    """Soft vote: one row per participant with ``participant, true_label, probability, n``.

    Raises ``ValueError`` when a participant's windows carry different labels.
    """
    df = pd.DataFrame(
        {"participant": np.asarray(participants), "y": np.asarray(y_true), "p": prob}
    )
    grp = df.groupby("participant", sort=True)
    if (grp["y"].nunique() > 1).any():
        raise ValueError("a participant's windows carry different labels")
    out = grp.agg(true_label=("y", "first"), probability=("p", "mean"), n=("p", "size"))
    return out.reset_index()


def balanced_accuracy_matrix(y_perm: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Balanced accuracy of fixed predictions against each row of permuted labels.

    Parameters
    ----------
    y_perm : array of int, shape (n_perm, n)
        Label vectors (0/1).
    pred : array of int, shape (n,)
        Predicted classes.

    Returns
    -------
    numpy.ndarray, shape (n_perm,)
    """
    y = np.asarray(y_perm).astype(bool)
    pr = np.asarray(pred).astype(bool)[None, :]
    n_pos = y.sum(axis=1)
    n_neg = (~y).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = (y & pr).sum(axis=1) / n_pos
        spec = (~y & ~pr).sum(axis=1) / n_neg
    return np.nanmean(np.stack([sens, spec]), axis=0)


def summarise_folds(folds: pd.DataFrame) -> dict:
    """Mean and SD (ddof=1) of each metric over folds, per level.

    Returns ``{level: {metric: {"mean": m, "sd": s}}}`` for the columns of
    :data:`FOLD_COLUMNS` after ``level`` (``p_value`` excluded; NaNs ignored).
    """
    metric_cols = [c for c in FOLD_COLUMNS[3:] if c != "p_value"]
    out: dict = {}
    for level, grp in folds.groupby("level", sort=False):
        out[str(level)] = {}
        for col in metric_cols:
            vals = grp[col].to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            mean = float(vals.mean()) if vals.size else float("nan")
            sd = float(vals.std(ddof=1)) if vals.size > 1 else float("nan")
            out[str(level)][col] = {"mean": mean, "sd": sd}
    return out


#: Column descriptions of the TSV outputs (JSON sidecars).
COLUMN_DESCRIPTIONS = {
    "participant": "Participant label (sub-<label>)",
    "fold": "Cross-validation fold (1-based)",
    "role": "train, validation or test within the fold",
    "n_windows": "Number of dFC windows of the participant in this role",
    "level": "window: every dFC window scored; participant: mean probability of its windows",
    "n_test": "Number of test items (windows or participants) at this level",
    "train_accuracy": "Accuracy on the training items (fraction 0-1)",
    "test_accuracy": "Accuracy on the test items (fraction 0-1)",
    "p_value": "Permutation p of the test balanced accuracy, test labels shuffled "
    "(participant level in subject mode): (1 + #null >= observed) / (1 + n_permutations)",
    "p_value_retrain": "Permutation p from retraining with participant-shuffled training labels",
    "auc": "Area under the ROC curve of the severe probability",
    "specificity": "Recall of mild/moderate (label 0)",
    "sensitivity": "Recall of severe (label 1, the positive class)",
    "f_score": "F1 score of the severe class",
    "balanced_accuracy": "(sensitivity + specificity) / 2",
    "run": "Run key (<p> prefix of the participant outputs)",
    "window": "Window index within the run (0-based)",
    "true_label": "1 = severe (score <= severe_max), 0 = mild/moderate",
    "probability": "Predicted probability of severe (softmax of the network)",
    "epoch": "Epoch (1-based)",
    "train_loss": "Mean cross-entropy over the training windows of the epoch",
    "train_acc": "Training accuracy of the epoch (dropout active)",
    "val_loss": "Validation cross-entropy",
    "val_acc": "Validation accuracy",
    "val_bacc": "Validation balanced accuracy (selects the fold's model)",
    "lr": "Learning rate during the epoch",
}


def write_tsv(df: pd.DataFrame, path, what: str, description: str | None = None) -> None:
    """Write ``df`` as TSV (atomically, NaN as ``n/a``) with a JSON sidecar of its columns."""
    from pathlib import Path

    from bids_app.outputs import atomic_write_json, atomic_write_text

    path = Path(path)
    atomic_write_text(path, df.to_csv(sep="\t", index=False, na_rep="n/a", lineterminator="\n"))
    side = {c: {"Description": COLUMN_DESCRIPTIONS.get(c, c)} for c in df.columns}
    meta = {"Table": what, "Description": description} if description else {"Table": what}
    atomic_write_json(path.with_suffix(".json"), {**meta, "Columns": side})


def fold_metric_rows(fold: int, pred: dict, null: dict, p_retrain: dict) -> list[dict]:
    """Rows of folds.tsv (window and participant level) of one fold.

    ``pred[level][role]`` are tables with ``true_label`` and ``probability`` (from
    :func:`prediction_tables`); ``null[level]`` the permutation null of the balanced accuracy;
    ``p_retrain[level]`` the retraining p-value (NaN when absent).
    """
    from bids_app.group.cnn.permutation import permutation_p_value

    out = []
    for level in ("window", "participant"):
        tr, te = pred[level]["train"], pred[level]["test"]
        m = classification_metrics(te["true_label"], te["probability"])
        train_acc = classification_metrics(tr["true_label"], tr["probability"])["accuracy"]
        obs = m["balanced_accuracy"]
        out.append(
            {"fold": fold, "level": level, "n_test": len(te), "train_accuracy": train_acc,
             "test_accuracy": m["accuracy"], "p_value": permutation_p_value(null[level], obs),
             **{k: m[k] for k in ("auc", "specificity", "sensitivity", "f_score",
                                  "balanced_accuracy")},
             "p_value_retrain": p_retrain.get(level, float("nan"))}
        )  # fmt: skip
    return out


def prediction_tables(index: pd.DataFrame, rows: dict, probs: dict, participants, fold) -> dict:
    """``{level: {role: table}}`` of train/test predictions at window and participant level.

    Window tables: ``participant, run, window, fold, true_label, probability``; participant
    tables from :func:`participant_scores`. ``participants`` maps cache row -> ``sub-<label>``.
    """
    idx = index.set_index("row")
    out = {"window": {}, "participant": {}}
    for role in ("train", "test"):
        r = rows[role]
        win = pd.DataFrame({
            "participant": participants.to_numpy()[r], "run": idx.loc[r, "run_key"].to_numpy(),
            "window": idx.loc[r, "window"].to_numpy(), "fold": fold,
            "true_label": idx.loc[r, "label"].to_numpy(dtype=int), "probability": probs[role],
        })  # fmt: skip
        out["window"][role] = win
        out["participant"][role] = participant_scores(
            win["participant"].to_numpy(), win["true_label"].to_numpy(), win["probability"]
        )
    return out
