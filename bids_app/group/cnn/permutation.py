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


def retrain_null(fit, who: np.ndarray, y: np.ndarray, pred: dict, n: int, rng) -> dict:
    """p-values of the test balanced accuracy against ``n`` retrainings on shuffled labels.

    Parameters
    ----------
    fit : callable
        ``fit(shuffled_labels, j) -> test probabilities`` (a model trained from scratch on the
        training/validation windows with ``shuffled_labels``).
    who : array
        Participant of each training/validation window (labels are shuffled per participant,
        so each participant's windows keep one label); window indices in window mode.
    y : array of int
        True training/validation labels.
    pred : dict
        ``pred[level]["test"]`` tables (window and participant level) of the real model.
    n : int
        Number of retrainings.
    rng : numpy.random.Generator

    Returns
    -------
    dict
        ``{"window": p, "participant": p}`` with ``p = (1 + #{null >= observed}) / (1 + n)``.
    """
    from bids_app.group.cnn.metrics import classification_metrics, participant_scores

    te = pred["window"]["test"]
    null: dict = {"window": [], "participant": []}
    for j in range(n):
        prob = fit(shuffle_participant_labels(who, y, rng), j)
        null["window"].append(classification_metrics(te["true_label"], prob)["balanced_accuracy"])
        ps = participant_scores(te["participant"].to_numpy(), te["true_label"], prob)
        m = classification_metrics(ps["true_label"], ps["probability"])
        null["participant"].append(m["balanced_accuracy"])
    out = {}
    for level, values in null.items():
        t = pred[level]["test"]
        obs = classification_metrics(t["true_label"], t["probability"])["balanced_accuracy"]
        out[level] = permutation_p_value(np.asarray(values, dtype=float), obs)
    return out


def pooled_participant_test(predictions, n_permutations: int, seed: int) -> dict:
    """Balanced accuracy of all out-of-fold participant scores and its permutation p-value.

    A fold of a subject-level CV tests few participants, so its p-value cannot go below
    1 / C(n_test, n_severe); pooling every participant's out-of-fold score (soft vote over
    all its test windows) and shuffling participant labels gives a finer p-value.
    """
    from bids_app.group.cnn.metrics import classification_metrics, participant_scores

    if predictions.empty:
        return {}
    ps = participant_scores(
        predictions["participant"].to_numpy(), predictions["true_label"].to_numpy(),
        predictions["probability"].to_numpy(dtype=float),
    )  # fmt: skip
    obs = classification_metrics(ps["true_label"], ps["probability"])
    null = label_shuffle_null(ps["true_label"], ps["probability"], groups=None,
                              n_permutations=n_permutations,
                              rng=np.random.default_rng([int(seed), 7]))  # fmt: skip
    return {
        "n_participants": int(len(ps)),
        "balanced_accuracy": obs["balanced_accuracy"],
        "auc": obs["auc"],
        "p_value": permutation_p_value(null, obs["balanced_accuracy"]) if null.size else None,
        "n_permutations": int(n_permutations),
    }
