"""Per-state two-sample GLM (MSP minus SSP, with covariates), clusters, permutation FWE.

For every retained state, each participant's map is the mean of its windows in that state
(participants without windows in the state are left out of that test and listed). The GLM
is ``map ~ intercept + group (MSP = 1, SSP = 0) + covariates``; positive t means MSP > SSP.
Uncorrected clusters: |t| > ``t_threshold``, positive and negative clusters formed
separately with 26-connectivity, at least ``cluster_size`` voxels (as in the paper, Table 4).
FWE: nilearn's ``non_parametric_inference`` (max-t permutations, two-sided) gives voxel-level
FWE-corrected -log10 p; voxels with p_FWE < 0.05 form the corrected table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.errors import InputError
from bids_app.group import glm
from bids_app.group.atlas import ATLAS_NAME, ATLAS_VERSION, label_at, voxel_to_mni
from bids_app.group.report import save_map, save_montage, write_table

FWE_ALPHA = 0.05

CLUSTER_COLUMNS = {
    "index": "Cluster index (A, B, ...), across states, as in Table 4 of Gao et al. 2025.",
    "state": "Connectivity state number.",
    "direction": "MSP > SSP (positive t) or MSP < SSP (negative t).",
    "region": "AAL region at the peak voxel.",
    "x": "Peak MNI x (mm).",
    "y": "Peak MNI y (mm).",
    "z": "Peak MNI z (mm).",
    "cluster_voxels": "Number of voxels in the cluster.",
    "peak_t": "t value at the peak (MSP minus SSP).",
}


def covariate_table(cohort, covariates: list[str], subjects: list[str]) -> pd.DataFrame:
    """Covariate columns of ``subjects`` (labels without ``sub-``) from the cohort table.

    Raises
    ------
    InputError
        When a covariate column is missing from participants.tsv, or has missing values for
        participants in the analysis (named).
    """
    table = cohort.table.set_index("subject")
    path = getattr(cohort, "participants_tsv", None) or "participants.tsv"
    for name in covariates:
        if name not in table.columns:
            raise InputError(
                f"covariate column {name!r} (--covariates) is not in participants.tsv",
                path,
            )
    df = table.loc[subjects, list(covariates)].copy()
    for name in covariates:
        missing = df.index[df[name].isna()].tolist()
        if missing:
            who = ", ".join(f"sub-{s}" for s in missing)
            raise InputError(
                f"covariate {name!r} has missing values for included participants: {who} "
                "(fill them in or drop the covariate with --covariates)",
                path,
            )
    return df.reset_index(drop=True)


def _state_rows(cache, states_result) -> pd.DataFrame:
    seq = pd.read_csv(states_result["files"]["sequences_tsv"], sep="\t")
    seq["subject"] = seq["participant"].str.removeprefix("sub-")
    idx = cache.index[["row", "subject", "run_key", "window"]].copy()
    idx["subject"] = idx["subject"].astype(str)
    return idx.merge(
        seq[["subject", "run", "window", "state"]].rename(columns={"run": "run_key"}),
        on=["subject", "run_key", "window"],
        how="inner",
    )


def participant_means(cache, rows_by_subject: dict[str, np.ndarray]) -> np.ndarray:
    """Mean masked map of each participant's rows, (n_participants, n_voxels) float32."""
    return np.stack([cache.vectors(np.sort(r)).mean(axis=0) for r in rows_by_subject.values()])


def cluster_records(tvol, clusters_pos, clusters_neg, affine, state) -> list[dict]:
    """Table rows (without index letters) for positive then negative clusters."""
    recs = []
    for sign, clusters in ((1, clusters_pos), (-1, clusters_neg)):
        for cl in clusters:
            x, y, z = voxel_to_mni(cl["peak_ijk"], affine)
            recs.append(
                {
                    "state": int(state),
                    "direction": "MSP > SSP" if sign > 0 else "MSP < SSP",
                    "region": label_at((x, y, z)),
                    "x": round(x, 1),
                    "y": round(y, 1),
                    "z": round(z, 1),
                    "cluster_voxels": cl["size"],
                    "peak_t": round(float(tvol[cl["peak_ijk"]]), 3),
                    "_mask": cl["mask"],
                }
            )
    return recs


def _fwe(cache, Y, X, names, n_perm, random_seed):
    """Voxel-level FWE-corrected -log10 p (two-sided max-t permutations, nilearn)."""
    import nibabel as nib
    from nilearn.glm.second_level import non_parametric_inference

    imgs = [nib.Nifti1Image(cache.unmask(y).astype(np.float32), cache.affine) for y in Y]
    mask_img = nib.Nifti1Image(cache.mask.astype(np.uint8), cache.affine)
    out = non_parametric_inference(
        imgs,
        design_matrix=pd.DataFrame(X, columns=names),
        second_level_contrast="group",
        mask=mask_img,
        model_intercept=False,
        n_perm=int(n_perm),
        two_sided_test=True,
        random_state=int(random_seed),
        n_jobs=1,
    )
    return np.asarray(out.get_fdata(), dtype=np.float64)


def run_stats(cohort, cache, states_result, cfg, *, out_dir: Path, random_seed: int) -> dict:
    """Two-sample GLM per retained state; t-maps, cluster tables (uncorrected and FWE).

    Parameters
    ----------
    cohort : Cohort
    cache : GroupCache
    states_result : dict
        The summary returned by :func:`bids_app.group.states.run_states`.
    cfg : GroupConfig
        Uses covariates, t_threshold, cluster_size, fwe_permutations.
    out_dir : Path
        ``output_dir/group/stats``.
    random_seed : int

    Returns
    -------
    dict
        JSON-serialisable summary (also ``stats_summary.json``).
    """
    from bids_app.outputs import atomic_write_json, to_jsonable

    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    summary = {
        "ran": False,
        "atlas": ATLAS_VERSION,
        "covariates": list(cfg.covariates),
        "t_threshold": float(cfg.t_threshold),
        "cluster_size": int(cfg.cluster_size),
        "fwe_permutations": int(cfg.fwe_permutations),
        "contrast": "MSP minus SSP (positive t: MSP > SSP)",
        "states": [],
    }
    if not states_result or not states_result.get("retained_states"):
        summary["reason"] = "no retained connectivity states"
        atomic_write_json(out_dir / "stats_summary.json", summary)
        return summary
    included = cohort.included()
    group_of = dict(zip(included["subject"].astype(str), included["group"], strict=True))
    covariate_table(cohort, list(cfg.covariates), list(group_of))  # fail early, clearly
    rows = _state_rows(cache, states_result)
    all_recs, all_fwe = [], []
    for state in states_result["retained_states"]:
        info, recs, fwe_recs = _one_state(
            cohort, cache, cfg, rows, group_of, int(state), out_dir, random_seed
        )
        summary["states"].append(info)
        all_recs += recs
        all_fwe += fwe_recs
    summary["ran"] = True
    summary["clusters"] = _finish_tables(all_recs, out_dir, cfg, corrected=False, info=summary)
    summary["fwe_clusters"] = (
        _finish_tables(all_fwe, out_dir, cfg, corrected=True, info=summary)
        if cfg.fwe_permutations > 0
        else []
    )
    summary = to_jsonable(summary)
    atomic_write_json(out_dir / "stats_summary.json", summary)
    return summary


def _one_state(cohort, cache, cfg, rows, group_of, state, out_dir, random_seed):
    in_state = rows[rows["state"] == state]
    by_sub = {
        s: df["row"].to_numpy()
        for s, df in in_state.groupby("subject", sort=True)
        if s in group_of
    }
    subjects = list(by_sub)
    left_out = sorted(f"sub-{s}" for s in set(group_of) - set(subjects))
    group = np.array([1.0 if group_of[s] == "MSP" else 0.0 for s in subjects])
    info = {
        "state": state,
        "participants": [f"sub-{s}" for s in subjects],
        "n_MSP": int(group.sum()),
        "n_SSP": int((1 - group).sum()),
        "left_out": left_out,
    }
    covs = covariate_table(cohort, list(cfg.covariates), subjects) if cfg.covariates else None
    X, names = glm.design_matrix(group, covs)
    if info["n_MSP"] < 1 or info["n_SSP"] < 1 or len(subjects) <= X.shape[1]:
        info["skipped"] = (
            f"too few participants for the GLM ({info['n_MSP']} MSP, {info['n_SSP']} SSP, "
            f"{X.shape[1]} regressors)"
        )
        return info, [], []
    if np.linalg.matrix_rank(X) < X.shape[1]:
        info["skipped"] = (
            "design is rank deficient among this state's participants (a covariate is "
            f"constant or collinear with group; columns {names})"
        )
        return info, [], []
    Y = participant_means(cache, by_sub)
    contrast = np.zeros(X.shape[1])
    contrast[names.index("group")] = 1.0
    tvol = cache.unmask(glm.glm_tmap(Y, X, contrast))
    stem = out_dir / f"state-{state}"
    design = pd.DataFrame(X, columns=names)
    design.insert(0, "participant", info["participants"])
    info["design_tsv"] = str(
        write_table(
            design,
            Path(f"{stem}_design.tsv"),
            {
                c: "participant_id." if c == "participant" else f"Design column {c}."
                for c in design
            },
            extra={"Contrast": "group (MSP = 1, SSP = 0): MSP minus SSP"},
        )
    )
    pos = glm.find_clusters(tvol, cfg.t_threshold, cfg.cluster_size, sign=1)
    neg = glm.find_clusters(tvol, cfg.t_threshold, cfg.cluster_size, sign=-1)
    recs = cluster_records(tvol, pos, neg, cache.affine, state)
    kept = np.zeros(tvol.shape, dtype=bool)
    for r in recs:
        kept |= r["_mask"]
    info["tmap"] = str(save_map(tvol, cache.affine, Path(f"{stem}_stat-t_statmap")))
    thr = np.where(kept, tvol, 0.0)
    info["thresholded"] = str(
        save_map(thr, cache.affine, Path(f"{stem}_stat-t_desc-clusters_statmap"))
    )
    info["figure"] = str(
        save_montage(
            thr,
            out_dir / "figures" / f"state-{state}_desc-clusters_tmap.png",
            title=f"State {state}: t (MSP - SSP), |t| > {cfg.t_threshold}, "
            f">= {cfg.cluster_size} voxels (uncorrected)",
            symmetric=True,
        )
    )
    fwe_recs = []
    if cfg.fwe_permutations > 0:
        logp = _fwe(cache, Y, X, names, cfg.fwe_permutations, random_seed)
        info["fwe_map"] = str(save_map(logp, cache.affine, Path(f"{stem}_desc-fwe_logp")))
        sig = logp > -np.log10(FWE_ALPHA)
        signed = np.where(sig, tvol, 0.0)
        fpos = glm.find_clusters(signed, 0.0, 1, sign=1)
        fneg = glm.find_clusters(signed, 0.0, 1, sign=-1)
        fwe_recs = cluster_records(tvol, fpos, fneg, cache.affine, state)
        for r in fwe_recs:
            r["peak_neglog10p_fwe"] = round(float(logp[r["_mask"]].max()), 3)
        info["fwe_figure"] = str(
            save_montage(
                np.where(sig, logp * np.sign(tvol), 0.0),
                out_dir / "figures" / f"state-{state}_desc-fwe_logp.png",
                title=f"State {state}: signed -log10 p (FWE, {cfg.fwe_permutations} "
                "permutations), p < 0.05",
                symmetric=True,
            )
        )
    info["n_clusters"] = len(recs)
    info["n_fwe_clusters"] = len(fwe_recs)
    return info, recs, fwe_recs


def _finish_tables(recs, out_dir: Path, cfg, *, corrected: bool, info: dict) -> list[dict]:
    """Assign A, B, ... indices, write the combined and per-state tables; return the rows."""
    letters = glm.cluster_letters(len(recs))
    clean = [
        {"index": letter} | {k: v for k, v in r.items() if k != "_mask"}
        for letter, r in zip(letters, recs, strict=True)
    ]
    columns = dict(CLUSTER_COLUMNS)
    if corrected:
        columns["peak_neglog10p_fwe"] = "Largest -log10 FWE-corrected p in the cluster."
    df = pd.DataFrame(clean, columns=list(columns))
    extra = {
        "Atlas": ATLAS_NAME,
        "AtlasVersion": ATLAS_VERSION,
        "Contrast": info["contrast"],
        "Covariates": info["covariates"],
        "Correction": (
            f"voxel-level FWE p < {FWE_ALPHA} (max-t, {cfg.fwe_permutations} permutations, "
            "two-sided, nilearn non_parametric_inference); clusters of significant voxels, "
            "26-connectivity, no size threshold"
            if corrected
            else f"none: |t| > {cfg.t_threshold}, clusters >= {cfg.cluster_size} voxels "
            "(26-connectivity), uncorrected"
        ),
    }
    tag = "fwe" if corrected else "uncorrected"
    write_table(df, out_dir / f"clusters_desc-{tag}.tsv", columns, extra)
    for st in info["states"]:
        if "skipped" in st:
            continue
        sub = df[df["state"] == st["state"]]
        path = write_table(
            sub, out_dir / f"state-{st['state']}_desc-{tag}_clusters.tsv", columns, extra
        )
        st[f"{tag}_tsv"] = str(path)
    return df.to_dict("records")
