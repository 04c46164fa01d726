"""Splits, metrics and permutation tests of the CNN cross-validation (no training here).

References are independent: sklearn.metrics for the metrics, exact combinatorics for the
permutation p-value, direct counting for the fold properties.
"""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from bids_app.group.cnn import splits as sp
from bids_app.group.cnn.metrics import (
    auc_score,
    balanced_accuracy_matrix,
    classification_metrics,
    participant_scores,
    summarise_folds,
)
from bids_app.group.cnn.permutation import (
    label_shuffle_null,
    permutation_p_value,
    permuted_labels,
)


def _people(n_severe=7, n_mild=9):
    subjects = [f"{i:02d}" for i in range(1, n_severe + n_mild + 1)]
    labels = [1] * n_severe + [0] * n_mild
    return subjects, labels


def test_subject_folds_partition_stratified_and_leak_free():
    subjects, labels = _people(7, 9)
    lab = dict(zip(subjects, labels, strict=True))
    folds = sp.subject_folds(subjects, labels, n_folds=3, validation_fraction=0.2, seed=4)
    assert set(folds.columns) == {"participant", "fold", "role"}
    test = folds[folds.role == "test"]
    # every participant is tested exactly once
    assert sorted(test.participant) == sorted(subjects)
    for _fold, grp in folds.groupby("fold"):
        assert sorted(grp.participant) == sorted(subjects)  # each participant one role per fold
        roles = {r: set(g.participant) for r, g in grp.groupby("role")}
        assert not roles["test"] & (roles["train"] | roles["validation"])
        # stratified: 7 severe over 3 folds -> 2 or 3 per test fold; 9 mild -> exactly 3
        n_sev = sum(lab[p] for p in roles["test"])
        assert n_sev in (2, 3) and len(roles["test"]) - n_sev == 3
        # validation holds at least one participant of each class
        assert {lab[p] for p in roles["validation"]} == {0, 1}
    sp.check_no_leakage(folds)


def test_subject_folds_seeded_and_different_seeds_differ():
    subjects, labels = _people()
    a = sp.subject_folds(subjects, labels, n_folds=4, seed=1)
    b = sp.subject_folds(subjects, labels, n_folds=4, seed=1)
    c = sp.subject_folds(subjects, labels, n_folds=4, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_too_few_participants_per_class_message():
    subjects, labels = _people(3, 8)
    with pytest.raises(ValueError, match=r"n_folds=5: 3 severe \(1\) and 8 mild/moderate"):
        sp.subject_folds(subjects, labels, n_folds=5)
    with pytest.raises(ValueError, match="n_folds must be"):
        sp.subject_folds(subjects, labels, n_folds=1)
    with pytest.raises(ValueError, match="validation_fraction"):
        sp.subject_folds(subjects, labels, n_folds=2, validation_fraction=1.5)


def test_check_no_leakage_raises_on_shared_participant():
    bad = pd.DataFrame(
        {"participant": ["a", "a", "b"], "fold": [1, 1, 1], "role": ["train", "test", "test"]}
    )
    with pytest.raises(sp.DataLeakageError, match="fold 1"):
        sp.check_no_leakage(bad)


def _index(n_subjects=6, n_windows=10):
    rows = []
    for s in range(n_subjects):
        rows += [(f"{s:02d}", w, s % 2) for w in range(n_windows)]
    df = pd.DataFrame(rows, columns=["subject", "window", "label"])
    return df.assign(row=np.arange(len(df)), run_key="r")


def test_window_folds_paper_protocol_and_leaky():
    index = _index()
    wf = sp.window_folds(index, n_folds=10, validation_fraction=0.1, seed=0)
    test = wf[wf.role == "test"]
    assert sorted(test.row) == list(index.row)  # each window tested exactly once
    frac = wf.groupby("role").size() / len(wf)
    assert frac["test"] == pytest.approx(0.1)
    assert frac["validation"] == pytest.approx(0.1, abs=0.01)  # the paper's 80/10/10
    table = sp.summarise_splits(wf)
    assert table.groupby("fold").n_windows.sum().eq(len(index)).all()
    with pytest.raises(sp.DataLeakageError):  # window-level CV shares participants
        sp.check_no_leakage(table)


def test_window_assignment_keeps_participants_whole():
    index = _index(8, 5)
    people = index.groupby("subject").label.first()
    folds = sp.subject_folds(list(people.index), list(people), n_folds=2, seed=0)
    asg = sp.window_assignment(folds, index)
    assert len(asg) == 2 * len(index)
    assert asg.groupby(["fold", "participant"]).role.nunique().eq(1).all()
    rows = sp.fold_rows(asg, 1)
    assert sum(r.size for r in rows.values()) == len(index)


def _hand_predictions(seed=3, n=40):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    prob = np.clip(0.5 * y + rng.uniform(0, 0.6, n) - 0.05, 0, 1)
    return y, prob


def test_classification_metrics_match_sklearn():
    y, prob = _hand_predictions()
    pred = (prob >= 0.5).astype(int)
    m = classification_metrics(y, prob)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, prob))
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, pred, pos_label=1))
    assert m["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert m["f_score"] == pytest.approx(skm.f1_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    # ties in the scores
    prob_t = np.round(prob, 1)
    assert auc_score(y, prob_t) == pytest.approx(skm.roc_auc_score(y, prob_t))
    assert np.isnan(auc_score(np.ones(4, int), np.linspace(0, 1, 4)))


def test_participant_scores_soft_vote():
    who = np.array(["b", "a", "b", "a", "c"])
    y = np.array([1, 0, 1, 0, 1])
    p = np.array([0.9, 0.2, 0.5, 0.4, 0.1])
    out = participant_scores(who, y, p)
    assert list(out.participant) == ["a", "b", "c"]
    np.testing.assert_allclose(out.probability, [0.3, 0.7, 0.1])
    assert list(out.true_label) == [0, 1, 1] and list(out.n) == [2, 2, 1]
    with pytest.raises(ValueError, match="different labels"):
        participant_scores(who, np.array([1, 0, 0, 0, 1]), p)


def test_balanced_accuracy_matrix_and_summary():
    y, prob = _hand_predictions(5)
    pred = (prob >= 0.5).astype(int)
    rng = np.random.default_rng(0)
    ys = np.stack([rng.permutation(y) for _ in range(7)])
    ref = [skm.balanced_accuracy_score(row, pred) for row in ys]
    np.testing.assert_allclose(balanced_accuracy_matrix(ys, pred), ref)
    folds = pd.DataFrame(
        {
            "fold": [1, 2, 3],
            "level": "window",
            "train_accuracy": [0.9, 0.8, 1.0],
            "test_accuracy": [0.5, 0.7, 0.6],
            **{c: [0.1, 0.2, 0.4] for c in ("auc", "specificity", "sensitivity", "f_score")},
            "balanced_accuracy": [0.5, 0.6, 0.9],
        }
    )
    s = summarise_folds(folds)["window"]
    assert s["balanced_accuracy"]["mean"] == pytest.approx(np.mean([0.5, 0.6, 0.9]))
    assert s["balanced_accuracy"]["sd"] == pytest.approx(np.std([0.5, 0.6, 0.9], ddof=1))


def test_participant_shuffle_keeps_windows_together():
    groups = np.repeat(["a", "b", "c", "d", "e"], [3, 1, 4, 2, 2])
    y = np.repeat([1, 0, 1, 0, 0], [3, 1, 4, 2, 2])
    perm = permuted_labels(y, groups, 200, np.random.default_rng(1))
    for g in np.unique(groups):
        cols = perm[:, groups == g]
        assert (cols == cols[:, :1]).all()  # a participant's windows share one label
    # participant-level label multiset is preserved: 2 severe of 5 participants
    first = [np.flatnonzero(groups == g)[0] for g in np.unique(groups)]
    assert (perm[:, first].sum(axis=1) == 2).all()
    assert len({tuple(r) for r in perm[:, first]}) > 5  # actually shuffled
    win = permuted_labels(y, None, 50, np.random.default_rng(2))
    assert (win.sum(axis=1) == y.sum()).all()


def test_permutation_p_value_bounds_and_exact_value():
    rng = np.random.default_rng(0)
    null = rng.uniform(0, 1, 99)
    assert permutation_p_value(null, 2.0) == pytest.approx(1 / 100)  # never 0
    assert permutation_p_value(null, -1.0) == 1.0
    # perfect predictions for 6 participants (3 per class), windows grouped: only the
    # identity labelling among C(6, 3) = 20 reaches balanced accuracy 1 -> p -> 1/20
    groups = np.repeat(np.arange(6), 4)
    y = np.repeat([1, 1, 1, 0, 0, 0], 4)
    prob = np.where(y == 1, 0.9, 0.1)
    null = label_shuffle_null(
        y, prob, groups=groups, n_permutations=20000, rng=np.random.default_rng(5)
    )
    p = permutation_p_value(null, 1.0)
    assert 1 / 20001 <= p <= 1
    assert p == pytest.approx(1 / comb(6, 3), abs=0.006)
    # shuffling windows individually (window mode) would make p tiny: the leaky null
    null_w = label_shuffle_null(y, prob, groups=None, n_permutations=2000, rng=rng)
    assert permutation_p_value(null_w, 1.0) < 0.01
