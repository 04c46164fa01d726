"""Cross-validation splits over participants (default) or over windows (the paper's protocol).

Subject mode puts every window of every run of a participant in the same role, so the test
participants are never seen in training. Window mode reproduces the paper (stratified folds
over dFC windows, 80/10/10 train/validation/test); neighbouring windows of one participant
overlap by W-1 of W volumes, so it measures participant identification.

Split tables are long: one row per (fold, unit, role) with ``fold`` 1-based and ``role`` one
of ``train``, ``validation``, ``test``. ``splits.tsv`` holds ``participant, fold, role,
n_windows`` in BOTH modes (window mode counts each participant's windows per role; the
per-window assignment is reproducible from the seed and is not written, it would hold
n_windows x n_folds rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bids_app.errors import StrokeDFCError


class TooFewError(StrokeDFCError, ValueError):
    """Too few participants (or windows) per class for the requested folds (a user error)."""


ROLES = ("train", "validation", "test")


class DataLeakageError(StrokeDFCError):
    """A participant is in training (or validation) and in test of the same fold."""


def _check_common(n_folds: int, validation_fraction: float) -> None:
    if int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")


def _validation_split(
    units: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Boolean mask of ``units`` picked for validation, stratified, >= 1 per class if possible.

    Each class contributes ``round(fraction * n_class)`` units (at least 1 when the class has
    2 or more units, so training keeps one), drawn at random with ``rng``.
    """
    is_val = np.zeros(len(units), dtype=bool)
    if fraction <= 0:
        return is_val
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        n_val = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        if n_val:
            is_val[rng.choice(idx, size=n_val, replace=False)] = True
    return is_val


def subject_folds(
    subjects: Sequence[str],
    labels: Sequence[int],
    *,
    n_folds: int = 10,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """Stratified k folds over participants, with a stratified validation subset per fold.

    Parameters
    ----------
    subjects : sequence of str
        Participant labels, unique.
    labels : sequence of int
        Class per participant (1 = severe, 0 = mild/moderate).
    n_folds : int
        Number of folds (``StratifiedKFold(shuffle=True, random_state=seed)``).
    validation_fraction : float
        Fraction of each fold's training participants held out for validation (stratified,
        at least one per class when that class has two or more training participants).
    seed : int
        Seed of the fold assignment and of the validation draw.

    Returns
    -------
    pandas.DataFrame
        Columns ``participant, fold, role``; one row per participant per fold.

    Raises
    ------
    ValueError
        When a class has fewer participants than ``n_folds`` (the message gives the counts).
    """
    from sklearn.model_selection import StratifiedKFold

    _check_common(n_folds, validation_fraction)
    subjects = np.asarray(list(subjects), dtype=object)
    labels = np.asarray(list(labels), dtype=int)
    if len(subjects) != len(labels):
        raise ValueError(f"subjects and labels differ in length: {len(subjects)} vs {len(labels)}")
    if len(set(subjects.tolist())) != len(subjects):
        raise ValueError("subjects must be unique")
    counts = {int(c): int((labels == c).sum()) for c in (0, 1)}
    if min(counts.values()) < n_folds:
        raise TooFewError(
            f"too few participants per class for n_folds={n_folds}: {counts[1]} severe (1) and "
            f"{counts[0]} mild/moderate (0); every class needs at least n_folds participants "
            "(lower --n-folds)"
        )
    skf = StratifiedKFold(n_splits=int(n_folds), shuffle=True, random_state=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for fold, (train_idx, test_idx) in enumerate(skf.split(subjects, labels), start=1):
        is_val = _validation_split(train_idx, labels[train_idx], validation_fraction, rng)
        for i, v in zip(train_idx, is_val, strict=True):
            rows.append((subjects[i], fold, "validation" if v else "train"))
        rows.extend((subjects[i], fold, "test") for i in test_idx)
    out = pd.DataFrame(rows, columns=["participant", "fold", "role"])
    return out.sort_values(["fold", "participant"], kind="stable").reset_index(drop=True)


def window_folds(
    index_df: pd.DataFrame,
    *,
    n_folds: int = 10,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """The paper's protocol: stratified folds over WINDOWS (leaky, see module docstring).

    Parameters
    ----------
    index_df : pandas.DataFrame
        Cache index with columns ``row, subject, label`` (one row per window).
    n_folds, seed
        As in :func:`subject_folds`, applied to windows.
    validation_fraction : float
        Fraction of ALL windows used for validation, as in the paper (10-fold: 80/10/10
        train/validation/test), i.e. ``validation_fraction / (1 - 1/n_folds)`` of each fold's
        training windows.

    Returns
    -------
    pandas.DataFrame
        Columns ``row, participant, fold, role``; one row per window per fold.
    """
    from sklearn.model_selection import StratifiedKFold

    _check_common(n_folds, validation_fraction)
    missing = {"row", "subject", "label"} - set(index_df.columns)
    if missing:
        raise ValueError(f"index_df lacks columns {sorted(missing)}")
    labels = index_df["label"].to_numpy(dtype=int)
    counts = {int(c): int((labels == c).sum()) for c in (0, 1)}
    if min(counts.values()) < n_folds:
        raise TooFewError(
            f"too few windows per class for n_folds={n_folds}: {counts[1]} severe and "
            f"{counts[0]} mild/moderate"
        )
    rows_all = index_df["row"].to_numpy()
    subj = index_df["subject"].to_numpy(dtype=object)
    skf = StratifiedKFold(n_splits=int(n_folds), shuffle=True, random_state=seed)
    rng = np.random.default_rng(seed)
    parts = []
    for fold, (train_idx, test_idx) in enumerate(skf.split(rows_all, labels), start=1):
        frac = min(validation_fraction * len(rows_all) / len(train_idx), 0.99)
        is_val = _validation_split(train_idx, labels[train_idx], frac, rng)
        role = np.empty(len(rows_all), dtype=object)
        role[train_idx] = np.where(is_val, "validation", "train")
        role[test_idx] = "test"
        parts.append(
            pd.DataFrame({"row": rows_all, "participant": subj, "fold": fold, "role": role})
        )
    return pd.concat(parts, ignore_index=True)


def window_assignment(splits: pd.DataFrame, index_df: pd.DataFrame) -> pd.DataFrame:
    """Expand participant-level splits to windows: columns ``row, participant, fold, role``."""
    merged = index_df[["row", "subject"]].merge(
        splits[["participant", "fold", "role"]], left_on="subject", right_on="participant"
    )
    out = merged[["row", "participant", "fold", "role"]]
    return out.sort_values(["fold", "row"], kind="stable").reset_index(drop=True)


def summarise_splits(assignment: pd.DataFrame) -> pd.DataFrame:
    """``participant, fold, role, n_windows`` from a window-level assignment (splits.tsv)."""
    out = (
        assignment.groupby(["fold", "participant", "role"], sort=True)
        .size()
        .rename("n_windows")
        .reset_index()
    )
    return out[["participant", "fold", "role", "n_windows"]]


def check_no_leakage(splits: pd.DataFrame) -> None:
    """Raise :class:`DataLeakageError` when a participant is in test and in train/validation.

    Parameters
    ----------
    splits : pandas.DataFrame
        Columns ``participant, fold, role`` (a subject-mode split or ``splits.tsv``).
    """
    for fold, grp in splits.groupby("fold"):
        test = set(grp.loc[grp["role"] == "test", "participant"])
        fit = set(grp.loc[grp["role"] != "test", "participant"])
        shared = sorted(test & fit)
        if shared:
            raise DataLeakageError(
                f"fold {fold}: participants {shared[:5]} are in training/validation AND test; "
                "an evaluation that shares participants with training is leaky"
            )


def fold_rows(assignment: pd.DataFrame, fold: int) -> dict[str, np.ndarray]:
    """Cache rows per role (``train``, ``validation``, ``test``) of one fold, sorted."""
    sub = assignment[assignment["fold"] == fold]
    if sub.empty:
        raise ValueError(f"fold must be one of {sorted(assignment['fold'].unique())}, got {fold}")
    return {r: np.sort(sub.loc[sub["role"] == r, "row"].to_numpy(dtype=int)) for r in ROLES}
