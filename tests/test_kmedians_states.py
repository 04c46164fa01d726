"""k-medians, exemplars, elbow, participation and dwell statistics against independent code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import argrelextrema
from scipy.spatial.distance import cdist

from bids_app.group import kmedians as km


def _reference_kmedians(X, C, max_iter):
    """Brute-force k-medians: scipy cityblock distances + numpy medians, plain loops."""
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64).copy()
    labels = cdist(X, C, metric="cityblock").argmin(axis=1)
    for _ in range(max_iter):
        for j in range(C.shape[0]):
            members = [X[i] for i in range(X.shape[0]) if labels[i] == j]
            if members:
                C[j] = np.median(np.array(members), axis=0)
        new = cdist(X, C, metric="cityblock").argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels, C


def _planted(rng, n_states=3, per_state=40, n_vox=30, noise=0.3):
    centres = rng.normal(0, 3.0, size=(n_states, n_vox))
    X = np.concatenate([c + rng.normal(0, noise, size=(per_state, n_vox)) for c in centres])
    truth = np.repeat(np.arange(n_states), per_state)
    return X.astype(np.float32), truth, centres


def test_local_maxima_matches_argrelextrema():
    rng = np.random.default_rng(1)
    x = rng.normal(size=57)
    ref = argrelextrema(x, np.greater)[0]
    np.testing.assert_array_equal(km.local_maxima(x), ref)
    # plateaus and edges are never maxima
    np.testing.assert_array_equal(km.local_maxima([3, 1, 2, 2, 1, 5]), [])
    np.testing.assert_array_equal(km.local_maxima([0, 2, 1]), [1])


def test_exemplars_are_local_maxima_of_spatial_std():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(40, 23)) * rng.uniform(0.5, 2, size=(40, 1))
    spread = np.array([np.std(m) for m in maps])
    ref = argrelextrema(spread, np.greater)[0]
    np.testing.assert_array_equal(km.exemplar_windows(maps), ref)
    with pytest.raises(ValueError, match="maps must be 2D"):
        km.exemplar_windows(np.zeros(5))


def test_kmedians_matches_bruteforce_and_cost_never_increases():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(61, 7)).astype(np.float32)
    init = X[[0, 5, 9, 30]]
    X_before, init_before = X.copy(), init.copy()
    labels, centroids, history = km.kmedians(X, init, max_iter=50)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(init, init_before)
    ref_labels, ref_centroids = _reference_kmedians(X, init, 50)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(centroids, ref_centroids, rtol=1e-6, atol=1e-6)
    assert np.all(np.diff(history) <= 1e-9 * history[0])
    # the reported final cost is the L1 cost of the returned solution
    ref_cost = cdist(X, ref_centroids, metric="cityblock").min(axis=1).sum()
    assert history[-1] == pytest.approx(ref_cost, rel=1e-6)


def test_kmedians_empty_cluster_keeps_previous_centroid():
    X = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0]], dtype=np.float32)
    init = np.array([[0.0, 0.0], [10.0, 10.0], [100.0, 100.0]], dtype=np.float32)
    labels, centroids, _ = km.kmedians(X, init, max_iter=5)
    np.testing.assert_array_equal(labels, [0, 0, 1])
    np.testing.assert_array_equal(centroids[2], [100.0, 100.0])


def test_kmedians_rejects_bad_arguments():
    X = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="max_iter must be >= 1, got 0"):
        km.kmedians(X, X[:2], max_iter=0)
    with pytest.raises(ValueError, match="init_centroids must have shape"):
        km.kmedians(X, np.zeros((2, 4)), max_iter=3)


def test_replicates_recover_planted_states_and_elbow_picks_three():
    rng = np.random.default_rng(4)
    X, truth, _ = _planted(rng)
    ks = list(range(2, 8))
    costs = []
    for k in ks:
        best = km.kmedians_replicates(X, k, n_replicates=3, max_iter=30, rng=k)
        assert best["cost"] == min(best["costs"])
        costs.append(best["cost"])
        if k == 3:
            # every planted state maps to one cluster (adjusted for label permutation)
            for s in range(3):
                assert np.unique(best["labels"][truth == s]).size == 1
            assert np.unique(best["labels"]).size == 3
    assert km.elbow_k(ks, costs) == 3


def test_elbow_on_textbook_curve():
    ks = [2, 3, 4, 5, 6]
    # cost drops steeply up to k = 4 then flattens
    assert km.elbow_k(ks, [100.0, 60.0, 20.0, 18.0, 17.0]) == 4


def test_participation_counts_participants():
    labels = np.array([0, 0, 1, 2, 2, 0, 1])
    subjects = np.array(["a", "a", "a", "b", "b", "c", "c"])
    # state 0: a, c; state 1: a, c; state 2: b; state 3: nobody
    np.testing.assert_allclose(km.participation(labels, subjects, 4), [2 / 3, 2 / 3, 1 / 3, 0])


def test_dwell_stats_by_hand():
    seq = [0, 0, 1, 1, 1, 0, 2]
    out = km.dwell_stats(seq, 4)
    np.testing.assert_allclose(out["fraction"], [3 / 7, 3 / 7, 1 / 7, 0])
    np.testing.assert_allclose(out["mean_dwell"][:3], [1.5, 3.0, 1.0])
    assert np.isnan(out["mean_dwell"][3])
    assert out["transitions"] == 3
    # runs: segments and transitions do not cross run boundaries
    two = km.dwell_stats([[0, 0], [0, 1]], 2)
    assert two["transitions"] == 1
    np.testing.assert_allclose(two["mean_dwell"], [1.5, 1.0])


def test_run_states_recovers_planted_states(tmp_path):
    import json

    import pandas as pd
    from _group_fixtures import make_participant_outputs

    from bids_app.config import GroupConfig
    from bids_app.group.cache import build_cache
    from bids_app.group.cohort import load_cohort
    from bids_app.group.states import run_states

    shape = (5, 6, 7)
    patterns = np.random.default_rng(7).normal(0, 3.0, size=(3, *shape))
    truth = {}

    def signal(subject_index, run_index, label, shape_, n_windows, rng):
        states = rng.integers(0, 3, n_windows)
        truth[(subject_index, run_index)] = states
        return np.moveaxis(patterns[states], 0, -1)

    study = make_participant_outputs(
        tmp_path, n_subjects=6, shape=shape, n_windows=24, rng=3, noise=0.5, signal=signal
    )
    cohort = load_cohort(study.bids_dir, study.output_dir)
    cache = build_cache(cohort, tmp_path / "cache", dtype="float32")
    cfg = GroupConfig(k_range=(2, 5), kmeans_replicates=3, kmeans_max_iter=30)
    out_dir = tmp_path / "states"
    summary = run_states(cohort, cache, cfg, out_dir=out_dir, random_seed=0)
    assert summary["k"] == 3 and summary["k_selection"] == "elbow"
    seq = pd.read_csv(out_dir / "state_sequences.tsv", sep="\t")
    # one-to-one mapping between planted and found states
    planted = np.concatenate(
        [truth[(k, 0)] for k in range(6)]
    )  # subjects in order, one run each, windows in order
    found = seq.sort_values(["participant", "window"])["state"].to_numpy()
    pairs = set(zip(planted.tolist(), found.tolist(), strict=True))
    assert len(pairs) == 3 and len({p[1] for p in pairs}) == 3
    # participation in states.tsv equals a recount from the sequences
    table = pd.read_csv(out_dir / "states.tsv", sep="\t")
    chosen = table[table["k"] == 3].set_index("state")
    for s in range(1, 4):
        n_part = seq.loc[seq["state"] == s, "participant"].nunique()
        assert chosen.loc[s, "participation"] == pytest.approx(n_part / 6)
        assert chosen.loc[s, "windows"] == int((seq["state"] == s).sum())
    assert set(table["k"]) == {2, 3, 4, 5}
    for name in ("states", "state_sequences", "dwell", "kselection"):
        sidecar = json.loads((out_dir / f"{name}.json").read_text())
        header = (out_dir / f"{name}.tsv").read_text().splitlines()[0].split("\t")
        assert set(sidecar) >= set(header)
    for rec in summary["states"]:
        assert Path(rec["centroid"]).is_file() and Path(rec["figure"]).is_file()
