"""Pure k-medians (L1) clustering and state metrics (GIFT dFNC / Allen et al. 2014 style).

MATLAB's ``kmeans(..., 'Distance', 'cityblock')`` used by GIFT assigns windows by L1 distance
and updates each centroid with the component-wise median of its members: that is k-medians,
implemented here so that both steps minimise the same L1 objective (the objective never
increases). Arrays may be float16 memmaps; they are read in row or column chunks and
converted to float32, never copied whole.
"""

from __future__ import annotations

import numpy as np

#: Elements (rows x voxels) converted to float32 at once; bounds the working memory (~256 MB).
CHUNK_ELEMENTS = 64_000_000


def local_maxima(x) -> np.ndarray:
    """Indices strictly greater than both neighbours (the first and last never count).

    Parameters
    ----------
    x : array_like, 1D

    Returns
    -------
    ndarray of int
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"x must be 1D, got shape {x.shape}")
    if x.size < 3:
        return np.zeros(0, dtype=int)
    inner = (x[1:-1] > x[:-2]) & (x[1:-1] > x[2:])
    return np.flatnonzero(inner) + 1


def exemplar_windows(maps) -> np.ndarray:
    """Exemplar windows of one run: local maxima over time of each map's spatial std.

    Parameters
    ----------
    maps : array_like (n_windows, n_voxels)
        The (brain-masked) dFC maps of ONE run, in window order.

    Returns
    -------
    ndarray of int
        Window indices (0-based) of the exemplars.
    """
    maps = np.asarray(maps)
    if maps.ndim != 2:
        raise ValueError(f"maps must be 2D (n_windows, n_voxels), got shape {maps.shape}")
    spread = np.asarray(maps, dtype=np.float32).std(axis=1, dtype=np.float64)
    return local_maxima(spread)


def _row_chunks(n_rows: int, n_cols: int, k: int = 1):
    step = max(1, CHUNK_ELEMENTS // max(1, n_cols * k))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def l1_distances(X, centroids) -> np.ndarray:
    """L1 distance of every row of ``X`` to every centroid, shape (n, k), float64."""
    centroids = np.asarray(centroids, dtype=np.float32)
    n, v = X.shape
    out = np.empty((n, centroids.shape[0]), dtype=np.float64)
    for rows in _row_chunks(n, v):
        block = np.asarray(X[rows], dtype=np.float32)
        for j, c in enumerate(centroids):
            out[rows, j] = np.abs(block - c).sum(axis=1, dtype=np.float64)
    return out


def _assign(X, centroids) -> tuple[np.ndarray, float]:
    d = l1_distances(X, centroids)
    labels = d.argmin(axis=1)
    return labels, float(d[np.arange(len(labels)), labels].sum())


def _medians(X, labels: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Component-wise median per cluster; an empty cluster keeps its previous centroid."""
    n, v = X.shape
    out = np.array(previous, dtype=np.float32, copy=True)
    members = [np.flatnonzero(labels == j) for j in range(previous.shape[0])]
    step = max(1, CHUNK_ELEMENTS // max(1, n))
    for start in range(0, v, step):
        cols = slice(start, min(v, start + step))
        block = np.asarray(X[:, cols], dtype=np.float32)
        for j, idx in enumerate(members):
            if idx.size:
                out[j, cols] = np.median(block[idx], axis=0)
    return out


def kmedians(X, init_centroids, *, max_iter: int = 100):
    """k-medians: L1 assignment and component-wise median update from given centroids.

    Parameters
    ----------
    X : array_like (n, n_features)
        Data (float16/float32 array or memmap; never modified).
    init_centroids : array_like (k, n_features)
        Starting centroids.
    max_iter : int
        Maximum number of median updates (>= 1).

    Returns
    -------
    labels : ndarray (n,) of int
        Nearest (L1) centroid of each row for the returned centroids (ties: lowest index).
    centroids : ndarray (k, n_features) float32
    cost_history : list of float
        Total L1 cost after the first assignment and after each update + reassignment;
        non-increasing. An empty cluster keeps its previous centroid (it cannot raise the
        cost), so k centroids are always returned.
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if X.ndim != 2:
        raise ValueError(f"X must be 2D, got shape {X.shape}")
    centroids = np.array(init_centroids, dtype=np.float32, copy=True)
    if centroids.ndim != 2 or centroids.shape[1] != X.shape[1]:
        raise ValueError(
            f"init_centroids must have shape (k, {X.shape[1]}), got {centroids.shape}"
        )
    labels, cost = _assign(X, centroids)
    history = [cost]
    for _ in range(max_iter):
        centroids = _medians(X, labels, centroids)
        new_labels, cost = _assign(X, centroids)
        history.append(cost)
        converged = np.array_equal(new_labels, labels)
        labels = new_labels
        if converged:
            break
    return labels, centroids, history


def l1_plusplus_init(X, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding with the L1 distance (probability proportional to D, not D^2)."""
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of rows ({n}), got {k}")
    chosen = [int(rng.integers(n))]
    nearest = l1_distances(X, np.asarray(X[chosen[-1] : chosen[-1] + 1], np.float32))[:, 0]
    for _ in range(1, k):
        total = nearest.sum()
        if total > 0:
            nxt = int(rng.choice(n, p=nearest / total))
        else:  # every row coincides with a centroid: pick any unused row
            nxt = int(rng.choice(np.setdiff1d(np.arange(n), chosen)))
        chosen.append(nxt)
        d = l1_distances(X, np.asarray(X[nxt : nxt + 1], np.float32))[:, 0]
        nearest = np.minimum(nearest, d)
    return np.asarray(X[np.sort(chosen)], dtype=np.float32)


def kmedians_replicates(
    X, k: int, *, n_replicates: int = 10, max_iter: int = 100, rng=None
) -> dict:
    """Best of ``n_replicates`` k-medians runs from L1 k-means++ seeds (lowest L1 cost).

    Returns
    -------
    dict
        ``labels``, ``centroids``, ``cost`` (final L1 cost), ``cost_history``,
        ``replicate`` (0-based index of the best run) and ``costs`` (all replicates).
    """
    if n_replicates < 1:
        raise ValueError(f"n_replicates must be >= 1, got {n_replicates}")
    rng = np.random.default_rng(rng)
    best: dict | None = None
    costs = []
    for rep in range(n_replicates):
        init = l1_plusplus_init(X, k, rng)
        labels, centroids, history = kmedians(X, init, max_iter=max_iter)
        costs.append(history[-1])
        if best is None or history[-1] < best["cost"]:
            best = {
                "labels": labels,
                "centroids": centroids,
                "cost": history[-1],
                "cost_history": history,
                "replicate": rep,
            }
    best["costs"] = costs
    return best


def elbow_k(ks, costs) -> int:
    """Elbow of a cost curve: the k farthest from the chord joining its first and last points.

    Both axes are scaled to [0, 1] first so the choice does not depend on units.

    Parameters
    ----------
    ks : sequence of int (increasing)
    costs : sequence of float

    Returns
    -------
    int
    """
    ks = np.asarray(ks, dtype=float)
    costs = np.asarray(costs, dtype=float)
    if ks.shape != costs.shape or ks.ndim != 1 or ks.size < 1:
        raise ValueError(f"ks and costs must be 1D of equal length, got {ks.shape}, {costs.shape}")
    if ks.size <= 2:
        return int(ks[0])
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    span = costs.max() - costs.min()
    y = (costs - costs.min()) / span if span > 0 else np.zeros_like(costs)
    p0, p1 = np.array([x[0], y[0]]), np.array([x[-1], y[-1]])
    direction = (p1 - p0) / np.linalg.norm(p1 - p0)
    rel = np.stack([x, y], axis=1) - p0
    dist = np.abs(rel[:, 0] * direction[1] - rel[:, 1] * direction[0])
    return int(ks[int(np.argmax(dist))])


def participation(labels, subjects, k: int) -> np.ndarray:
    """Fraction of participants with at least one window in each state.

    Parameters
    ----------
    labels : array_like (n_windows,) of int in [0, k)
    subjects : array_like (n_windows,)
        Participant of each window.
    k : int

    Returns
    -------
    ndarray (k,) of float
    """
    labels = np.asarray(labels)
    subjects = np.asarray(subjects)
    if labels.shape != subjects.shape:
        raise ValueError(f"labels and subjects differ in shape: {labels.shape}, {subjects.shape}")
    uniq = np.unique(subjects)
    if uniq.size == 0:
        return np.zeros(k)
    present = np.zeros((uniq.size, k), dtype=bool)
    rows = np.searchsorted(uniq, subjects)
    present[rows, labels] = True
    return present.mean(axis=0)


def dwell_stats(sequence, k: int) -> dict:
    """Fraction of time, mean dwell time and number of transitions of a state sequence.

    Parameters
    ----------
    sequence : array_like of int, or list of such arrays
        States (0-based) of consecutive windows; a list holds one participant's runs, whose
        dwell segments and transitions never cross run boundaries.
    k : int

    Returns
    -------
    dict
        ``fraction`` (k,), ``mean_dwell`` (k,) in windows (NaN for a state never visited),
        ``transitions`` (int).
    """
    if isinstance(sequence, list | tuple) and len(sequence) and np.ndim(sequence[0]) == 1:
        runs = [np.asarray(s, dtype=int) for s in sequence]
    else:
        runs = [np.asarray(sequence, dtype=int)]
    counts = np.zeros(k)
    seg_total = np.zeros(k)
    seg_count = np.zeros(k)
    transitions = 0
    for seq in runs:
        if seq.size == 0:
            continue
        if seq.min() < 0 or seq.max() >= k:
            raise ValueError(f"sequence states must lie in [0, {k}), got {np.unique(seq)}")
        counts += np.bincount(seq, minlength=k)
        change = np.flatnonzero(np.diff(seq) != 0) + 1
        transitions += change.size
        starts = np.r_[0, change]
        lengths = np.diff(np.r_[starts, seq.size])
        np.add.at(seg_total, seq[starts], lengths)
        np.add.at(seg_count, seq[starts], 1)
    total = counts.sum()
    fraction = counts / total if total else np.zeros(k)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_dwell = np.where(seg_count > 0, seg_total / np.maximum(seg_count, 1), np.nan)
    return {"fraction": fraction, "mean_dwell": mean_dwell, "transitions": int(transitions)}
