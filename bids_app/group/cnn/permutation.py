"""Permutation tests of a fold's test balanced accuracy.

The statistic is the balanced accuracy (robust to class imbalance, as in section 3.2 of the
paper). Test-label shuffles keep the model's predictions fixed and permute the TEST labels
(section 2.9). With ``groups`` (subject mode) the permutation is over participants: each
participant's windows carry its permuted label together, because shuffling windows of the same
participant would break the dependence structure (and ``permutation_test_score(groups=...)``
shuffles within groups, which does nothing with one label per participant). Without groups
(window mode) windows are shuffled individually, as in the paper.

p = (1 + #{null >= observed}) / (1 + n_permutations), so p is never 0.
"""

from __future__ import annotations

import numpy as np

from bids_app.group.cnn.metrics import balanced_accuracy_matrix


def permutation_p_value(null: np.ndarray, observed: float) -> float:
    """``(1 + #{null >= observed}) / (1 + len(null))`` (NaN entries count as not exceeding)."""
    null = np.asarray(null, dtype=float)
    if null.ndim != 1:
        raise ValueError(f"null must be 1-D, got shape {null.shape}")
    if not np.isfinite(observed):
        return float("nan")
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + null.size))


def permuted_labels(
    y_true: np.ndarray,
    groups: np.ndarray | None,
    n_permutations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Label matrix (n_permutations, n) shuffled over groups (or over items when None).

    With ``groups``, the unique groups' labels are permuted and every item takes its group's
    permuted label, so items of a group always share one label.
    """
    y = np.asarray(y_true).astype(int)
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be >= 0, got {n_permutations}")
    if groups is None:
        return rng.permuted(np.broadcast_to(y, (n_permutations, y.size)), axis=1)
    groups = np.asarray(groups)
    uniq, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    group_y = y[first]
    if not np.array_equal(group_y[inverse], y):
        raise ValueError("items of one group carry different labels")
    perm = rng.permuted(np.broadcast_to(group_y, (n_permutations, uniq.size)), axis=1)
    return perm[:, inverse]


def label_shuffle_null(
    y_true: np.ndarray,
    prob: np.ndarray,
    *,
    groups: np.ndarray | None,
    n_permutations: int,
    rng: np.random.Generator,
    threshold: float = 0.5,
) -> np.ndarray:
    """Null distribution of balanced accuracy under shuffled test labels (vectorised).

    Parameters
    ----------
    y_true : array of int, shape (n,)
        True test labels.
    prob : array of float, shape (n,)
        Predicted probability of severe (fixed).
    groups : array, shape (n,), or None
        Participant of each item; None shuffles items individually.
    n_permutations : int
        Number of shuffles.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray, shape (n_permutations,)
    """
    pred = (np.asarray(prob, dtype=float) >= threshold).astype(int)
    if n_permutations == 0:
        return np.zeros(0)
    out = np.empty(n_permutations)
    chunk = max(1, int(2e7 // max(1, pred.size)))  # bound memory for many windows
    for start in range(0, n_permutations, chunk):
        n = min(chunk, n_permutations - start)
        out[start : start + n] = balanced_accuracy_matrix(
            permuted_labels(y_true, groups, n, rng), pred
        )
    return out


def shuffle_participant_labels(
    participants: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One participant-level shuffle of window labels (for retraining permutations)."""
    return permuted_labels(y, participants, 1, rng)[0]
