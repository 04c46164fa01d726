"""Connectivity states: exemplar windows -> L1 k-medians for each k -> all windows (GIFT style).

Steps (Allen et al. 2014, as in GIFT's dFNC toolbox, on the brain-masked dFC maps):

1. per run, exemplar windows = local maxima over time of the spatial standard deviation of
   the window maps (:func:`bids_app.group.kmedians.exemplar_windows`);
2. for each k in ``cfg.k_range`` (inclusive), k-medians (L1 assignment + median update)
   on the exemplars with ``cfg.kmeans_replicates`` L1 k-means++ starts; the lowest-cost
   replicate is kept;
3. k = ``cfg.k`` when a number, else the elbow of the exemplar cost curve
   (:func:`~bids_app.group.kmedians.elbow_k`);
4. every window is clustered with k-medians started from the exemplar centroids of that k.
   For the other k, windows are assigned once to their nearest exemplar centroid (so that
   the participation table covers every k without a full clustering per k).

States are numbered 1..k by decreasing number of windows. A state is retained for the group
statistics when its participation (fraction of participants with >= 1 window in it) is at
least ``cfg.min_participation``.

Outputs in ``out_dir`` (``k-<k>_state-<s>`` entities, BIDS-derivative-like):
``k-<k>_state-<s>_desc-centroid_boldmap.nii.gz``, ``states.tsv``, ``state_sequences.tsv``,
``dwell.tsv``, ``kselection.tsv`` (each with a JSON sidecar), ``states_summary.json`` and
PNG figures under ``out_dir/figures``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.group import kmedians as km
from bids_app.group.report import save_map, save_montage, write_table


def _runs(index: pd.DataFrame) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(subject, run_key, rows, windows) per run, windows in time order."""
    out = []
    for (subject, run_key), df in index.groupby(["subject", "run_key"], sort=True):
        df = df.sort_values("window")
        out.append((str(subject), str(run_key), df["row"].to_numpy(), df["window"].to_numpy()))
    return out


def select_exemplars(cache, runs) -> np.ndarray:
    """Cache rows of the exemplar windows of every run (sorted)."""
    rows = [r[2][km.exemplar_windows(cache.vectors(r[2]))] for r in runs]
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=int)


def _k_values(cfg, n_rows: int) -> tuple[list[int], int | None]:
    lo, hi = (int(v) for v in cfg.k_range)
    if lo < 1 or hi < lo:
        raise ValueError(f"k_range must satisfy 1 <= low <= high, got {tuple(cfg.k_range)}")
    fixed = None
    if str(cfg.k).lower() != "auto":
        if not str(cfg.k).isdigit() or int(cfg.k) < 1:
            raise ValueError(f"k must be 'auto' or a positive integer, got {cfg.k!r}")
        fixed = int(cfg.k)
    ks = sorted(set(range(lo, hi + 1)) | ({fixed} if fixed else set()))
    ks = [k for k in ks if k <= n_rows]
    if not ks or (fixed is not None and fixed not in ks):
        raise ValueError(f"k values {tuple(cfg.k_range)} / {cfg.k!r} exceed {n_rows} windows")
    return ks, fixed


def _order_by_size(labels: np.ndarray, k: int) -> np.ndarray:
    """Permutation old -> new index so that state 0 has the most windows."""
    counts = np.bincount(labels, minlength=k)
    order = np.argsort(-counts, kind="stable")
    new = np.empty(k, dtype=int)
    new[order] = np.arange(k)
    return new


def _participation_rows(k, labels, subjects, min_participation, chosen) -> list[dict]:
    part = km.participation(labels, subjects, k)
    counts = np.bincount(labels, minlength=k)
    return [
        {
            "k": k,
            "state": s + 1,
            "participation": float(part[s]),
            "participants": int(round(part[s] * np.unique(subjects).size)),
            "windows": int(counts[s]),
            "retained": bool(part[s] >= min_participation),
            "chosen_k": bool(k == chosen),
        }
        for s in range(k)
    ]


STATES_COLUMNS = {
    "k": "Number of states of the solution.",
    "state": "State number (1..k, by decreasing number of windows).",
    "participation": "Fraction of participants with at least one window in the state.",
    "participants": "Number of participants with at least one window in the state.",
    "windows": "Number of windows assigned to the state (all participants).",
    "retained": "participation >= min_participation (state kept for the group statistics).",
    "chosen_k": "True for the solution used downstream (clustering of all windows); other k "
    "are nearest-exemplar-centroid assignments.",
}


def run_states(cohort, cache, cfg, *, out_dir: Path, random_seed: int) -> dict:
    """Cluster the windows into connectivity states and write the state outputs.

    Parameters
    ----------
    cohort : Cohort
    cache : GroupCache
        ``cache.data`` rows are the windows; ``cache.index`` has subject, run_key, window.
    cfg : GroupConfig
        Uses k_range, k, kmeans_replicates, kmeans_max_iter, min_participation.
    out_dir : Path
        ``output_dir/group/states``.
    random_seed : int

    Returns
    -------
    dict
        JSON-serialisable summary (also written to ``states_summary.json``).
    """
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    index = cache.index
    runs = _runs(index)
    exemplar_rows = select_exemplars(cache, runs)
    ks_probe = int(cfg.k_range[1]) if str(cfg.k).lower() == "auto" else int(cfg.k)
    fallback = exemplar_rows.size < max(ks_probe, int(cfg.k_range[1]))
    if fallback:  # too few local maxima (very short runs): cluster every window
        exemplar_rows = np.sort(index["row"].to_numpy())
    ks, fixed = _k_values(cfg, exemplar_rows.size)
    X_ex = np.asarray(cache.data[exemplar_rows])
    rng = np.random.default_rng(random_seed)
    fits = {
        k: km.kmedians_replicates(
            X_ex, k, n_replicates=cfg.kmeans_replicates, max_iter=cfg.kmeans_max_iter, rng=rng
        )
        for k in ks
    }
    costs = [fits[k]["cost"] for k in ks]
    chosen = fixed if fixed is not None else km.elbow_k(ks, costs)

    rows_all = index["row"].to_numpy()
    subjects_all = index["subject"].astype(str).to_numpy()
    table_rows: list[dict] = []
    final = None
    for k in ks:
        if k == chosen:
            labels, centroids, history = km.kmedians(
                cache.data, fits[k]["centroids"], max_iter=cfg.kmeans_max_iter
            )
            final = (labels, centroids, history)
        else:
            labels = km.l1_distances(cache.data, fits[k]["centroids"]).argmin(axis=1)
        labels = _order_by_size(labels, k)[labels]
        table_rows += _participation_rows(
            k, labels[rows_all], subjects_all, cfg.min_participation, chosen
        )
        if k == chosen:
            perm = _order_by_size(final[0], k)
            centroids = np.empty_like(final[1])
            centroids[perm] = final[1]
            final = (labels, centroids, final[2])
    labels, centroids, history = final
    states_df = pd.DataFrame(table_rows)
    files = {"states_tsv": write_table(states_df, out_dir / "states.tsv", STATES_COLUMNS)}
    files.update(_write_sequences(index, labels, chosen, out_dir))
    files.update(_write_kselection(ks, costs, fits, exemplar_rows.size, chosen, out_dir))
    chosen_rows = states_df[states_df["k"] == chosen].to_dict("records")
    for rec in chosen_rows:
        s = rec["state"]
        vol = cache.unmask(centroids[s - 1])
        rec["centroid"] = str(
            save_map(vol, cache.affine, out_dir / f"k-{chosen}_state-{s}_desc-centroid_boldmap")
        )
        rec["figure"] = str(
            save_montage(
                vol,
                out_dir / "figures" / f"k-{chosen}_state-{s}_desc-centroid.png",
                title=f"State {s} of {chosen}: centroid (Fisher z), participation "
                f"{rec['participation']:.2f}",
                symmetric=True,
            )
        )
    summary = {
        "k": int(chosen),
        "k_selection": "fixed" if fixed is not None else "elbow",
        "k_values": ks,
        "costs": costs,
        "n_windows": int(index.shape[0]),
        "n_participants": int(np.unique(subjects_all).size),
        "n_exemplars": int(exemplar_rows.size),
        "exemplar_fallback": bool(fallback),
        "final_cost_history": [float(c) for c in history],
        "min_participation": float(cfg.min_participation),
        "states": chosen_rows,
        "retained_states": [r["state"] for r in chosen_rows if r["retained"]],
        "participation": {
            str(k): states_df.loc[states_df["k"] == k, "participation"].tolist() for k in ks
        },
        "files": files,
        "out_dir": str(out_dir),
    }
    from bids_app.outputs import atomic_write_json, to_jsonable

    atomic_write_json(out_dir / "states_summary.json", summary)
    return to_jsonable(summary)


def _write_sequences(index, labels, k, out_dir: Path) -> dict:
    seq = pd.DataFrame(
        {
            "participant": "sub-" + index["subject"].astype(str),
            "run": index["run_key"].astype(str),
            "window": index["window"].astype(int),
            "state": labels[index["row"].to_numpy()] + 1,
        }
    ).sort_values(["participant", "run", "window"], kind="stable")
    seq_path = write_table(
        seq,
        out_dir / "state_sequences.tsv",
        {
            "participant": "participant_id.",
            "run": "Run prefix (sub-.._task-..[_run-..]).",
            "window": "Window index within the run (0-based).",
            "state": f"State (1..{k}) of the window in the k = {k} solution.",
        },
    )
    dwell_rows = []
    for participant, df in seq.groupby("participant", sort=True):
        runs = [g["state"].to_numpy() - 1 for _, g in df.groupby("run", sort=True)]
        stats = km.dwell_stats(runs, k)
        for s in range(k):
            dwell_rows.append(
                {
                    "participant": participant,
                    "state": s + 1,
                    "fraction_time": float(stats["fraction"][s]),
                    "mean_dwell_windows": float(stats["mean_dwell"][s]),
                    "transitions": stats["transitions"],
                }
            )
    dwell_path = write_table(
        pd.DataFrame(dwell_rows),
        out_dir / "dwell.tsv",
        {
            "participant": "participant_id.",
            "state": "State number.",
            "fraction_time": "Fraction of the participant's windows in the state.",
            "mean_dwell_windows": "Mean number of consecutive windows per visit of the state "
            "(within runs); n/a when never visited.",
            "transitions": "Number of state changes of the participant (all runs, within runs).",
        },
    )
    return {"sequences_tsv": str(seq_path), "dwell_tsv": str(dwell_path)}


def _write_kselection(ks, costs, fits, n_exemplars, chosen, out_dir: Path) -> dict:
    df = pd.DataFrame(
        {
            "k": ks,
            "cost": costs,
            "cost_per_exemplar": [c / n_exemplars for c in costs],
            "best_replicate": [fits[k]["replicate"] + 1 for k in ks],
            "chosen": [k == chosen for k in ks],
        }
    )
    path = write_table(
        df,
        out_dir / "kselection.tsv",
        {
            "k": "Number of states.",
            "cost": "Total L1 distance of the exemplar windows to their centroids (best "
            "replicate).",
            "cost_per_exemplar": "cost / number of exemplar windows.",
            "best_replicate": "Replicate (1-based) with the lowest cost.",
            "chosen": "The k used downstream (elbow of the cost curve or --k).",
        },
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(ks, costs, "o-", color="#333")
    ax.axvline(chosen, color="#c0392b", ls="--", label=f"k = {chosen}")
    ax.set_xlabel("k")
    ax.set_ylabel("L1 cost (exemplars)")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig_path = out_dir / "figures" / "kselection.png"
    fig.savefig(fig_path, dpi=100)
    plt.close(fig)
    return {"kselection_tsv": str(path), "kselection_figure": str(fig_path)}
