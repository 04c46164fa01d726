"""GLM t-maps vs statsmodels, clusters vs a brute-force flood fill, AAL labels, run_stats."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from bids_app.config import GroupConfig
from bids_app.errors import InputError
from bids_app.group import glm
from bids_app.group.atlas import ATLAS_DIR, label_at
from bids_app.group.cache import GroupCache
from bids_app.group.cohort import Cohort
from bids_app.group.stats import covariate_table, run_stats


def _covariates(rng, n):
    return pd.DataFrame(
        {
            "age": rng.uniform(40, 70, n),
            "sex": rng.choice(["F", "M"], n),
            "illness_duration": rng.uniform(1, 24, n),
        }
    )


def test_glm_t_equals_statsmodels_with_categorical_covariate():
    rng = np.random.default_rng(0)
    n, v = 23, 6
    group = np.r_[np.ones(11), np.zeros(12)]
    cov = _covariates(rng, n)
    Y = rng.normal(size=(n, v)) + 0.8 * group[:, None]
    X, names = glm.design_matrix(group, cov)
    assert names == ["intercept", "group", "age", "sex[M]", "illness_duration"]
    c = np.zeros(len(names))
    c[1] = 1
    t = glm.glm_tmap(Y, X, c)
    for j in range(v):
        df = cov.assign(y=Y[:, j], group=group)
        fit = smf.ols("y ~ group + age + C(sex) + illness_duration", data=df).fit()
        assert t[j] == pytest.approx(fit.tvalues["group"], abs=1e-6)


def test_glm_rejects_bad_designs():
    with pytest.raises(ValueError, match="rank deficient"):
        glm.glm_tmap(np.ones((5, 2)), np.column_stack([np.ones(5), np.ones(5)]), [0, 1])
    with pytest.raises(ValueError, match="group must hold only 0 and 1"):
        glm.design_matrix(np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="contrast must have 2 entries, got 3"):
        glm.glm_tmap(np.ones((5, 2)), np.ones((5, 2)), [0, 1, 0])


def _flood_clusters(binary):
    """Independent 26-connected components by breadth-first search (sizes, sorted)."""
    seen = np.zeros_like(binary)
    sizes = []
    offsets = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
    for start in zip(*np.nonzero(binary), strict=True):
        if seen[start]:
            continue
        size, queue = 0, deque([start])
        seen[start] = True
        while queue:
            p = queue.popleft()
            size += 1
            for o in offsets:
                q = tuple(int(p[i] + o[i]) for i in range(3))
                if (
                    all(0 <= q[i] < binary.shape[i] for i in range(3))
                    and binary[q]
                    and not seen[q]
                ):
                    seen[q] = True
                    queue.append(q)
        sizes.append(size)
    return sorted(sizes, reverse=True)


def test_find_clusters_matches_flood_fill_and_splits_signs():
    rng = np.random.default_rng(1)
    stat = rng.normal(0, 1.5, size=(6, 7, 8))
    for sign in (1, -1):
        ref = [s for s in _flood_clusters(sign * stat > 2.0) if s >= 2]
        got = glm.find_clusters(stat, 2.0, 2, sign=sign)
        assert [c["size"] for c in got] == ref
        for c in got:
            assert np.all(sign * stat[c["mask"]] > 2.0)
            assert sign * c["peak"] == pytest.approx((sign * stat[c["mask"]]).max())
    # a positive and a negative voxel touching diagonally are never one cluster
    s = np.zeros((3, 3, 3))
    s[0, 0, 0], s[1, 1, 1] = 5.0, -5.0
    assert [c["size"] for c in glm.find_clusters(s, 2.0, 1, sign=1)] == [1]
    assert [c["size"] for c in glm.find_clusters(s, 2.0, 1, sign=-1)] == [1]


def _independent_aal(xyz):
    img = nib.load(ATLAS_DIR / "aal.nii.gz")
    ijk = np.rint(np.linalg.inv(img.affine) @ np.r_[xyz, 1])[:3].astype(int)
    code = int(np.asarray(img.dataobj)[tuple(ijk)])
    names = pd.read_csv(ATLAS_DIR / "aal_labels.tsv", sep="\t").set_index("index")["name"]
    return names.get(code, "outside_atlas")


def test_label_at_known_regions():
    # peaks of Table 4 of Gao et al. 2025 with their published AAL regions
    assert label_at((6, 33, -12)) == "Frontal_Med_Orb_R"  # MOF.R
    assert label_at((-36, -66, 57)) == "Parietal_Sup_L"  # SPL.L
    assert label_at((-3, 0, 69)) == "Supp_Motor_Area_L"  # SMA.L
    assert label_at((50, -60, 30)) == "Angular_R"
    assert label_at((0, 0, 500)) == "outside_atlas"
    with pytest.raises(ValueError, match="mni_xyz must be 3 finite numbers"):
        label_at((1, 2))


def test_missing_atlas_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="AAL atlas file not found"):
        label_at((0, 0, 0), atlas_dir=str(tmp_path))


# ----------------------------------------------------------------------------- run_stats
SHAPE = (5, 6, 7)
PEAK = (2, 3, 3)  # placed at MNI (50, -60, 30): Angular_R


def _study(tmp_path, n_sub=16, n_win=6, effect=3.0, rng=2):
    rng = np.random.default_rng(rng)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = np.array([50.0, -60.0, 30.0]) - 4.0 * np.array(PEAK)
    mask = np.ones(SHAPE, dtype=bool)
    mask[0, 0, 0] = False
    blob = np.zeros(SHAPE)
    blob[1:4, 2:5, 2:5] = 0.35
    blob[PEAK] = 1.0
    subjects = [f"{k + 1:02d}" for k in range(n_sub)]
    groups = ["MSP" if k % 2 else "SSP" for k in range(n_sub)]
    index, data, seq = [], [], []
    for s, g in zip(subjects, groups, strict=True):
        for w in range(n_win):
            state = 1 if w % 2 == 0 else 2
            vol = rng.normal(0, 1.0, SHAPE)
            if state == 1 and g == "MSP":
                vol += effect * blob
            data.append(vol[mask])
            index.append(
                {
                    "row": len(index),
                    "subject": s,
                    "run_key": f"sub-{s}_task-rest",
                    "window": w,
                    "label": int(g == "SSP"),
                }
            )
            seq.append(
                {
                    "participant": f"sub-{s}",
                    "run": f"sub-{s}_task-rest",
                    "window": w,
                    "state": state,
                }
            )
    cache = GroupCache(
        root=tmp_path,
        mask=mask,
        affine=affine,
        shape=SHAPE,
        index=pd.DataFrame(index),
        data=np.asarray(data, dtype=np.float32),
    )
    table = pd.DataFrame(
        {
            "participant_id": [f"sub-{s}" for s in subjects],
            "subject": subjects,
            "group": groups,
            "included": True,
            "age": rng.uniform(40, 70, n_sub),
            "sex": ["M", "F", "F", "M"] * (n_sub // 4),
            "illness_duration": rng.uniform(1, 24, n_sub),
        }
    )
    cohort = Cohort(table=table, runs=[], space="MNI", resolution="4", shape=SHAPE, affine=affine)
    seq_path = tmp_path / "seq.tsv"
    pd.DataFrame(seq).to_csv(seq_path, sep="\t", index=False)
    states = {"retained_states": [1, 2], "files": {"sequences_tsv": str(seq_path)}}
    return cohort, cache, states


def test_planted_difference_found_at_the_right_place_with_fwe(tmp_path):
    cohort, cache, states = _study(tmp_path)
    cfg = GroupConfig(cluster_size=3, t_threshold=2.0, fwe_permutations=100)
    out = run_stats(cohort, cache, states, cfg, out_dir=tmp_path / "stats", random_seed=0)
    unc = pd.read_csv(tmp_path / "stats" / "clusters_desc-uncorrected.tsv", sep="\t")
    fwe = pd.read_csv(tmp_path / "stats" / "clusters_desc-fwe.tsv", sep="\t")
    for table in (unc, fwe):
        hit = table[(table["state"] == 1) & (table["direction"] == "MSP > SSP")].iloc[0]
        assert (hit["x"], hit["y"], hit["z"]) == (50.0, -60.0, 30.0)
        assert hit["region"] == "Angular_R" == _independent_aal((50, -60, 30))
        assert hit["peak_t"] > 2.0
    assert not (fwe["state"] == 2).any()
    assert out["states"][0]["left_out"] == [] and out["states"][0]["n_MSP"] == 8
    side = pd.read_json(tmp_path / "stats" / "clusters_desc-fwe.json", typ="series")
    assert "AAL" in side["AtlasVersion"]
    assert Path(out["states"][0]["tmap"]).is_file()
    # the saved t-map equals a statsmodels refit at the peak voxel
    t_img = nib.load(out["states"][0]["tmap"]).get_fdata()
    means = [
        cache.data[cache.index["subject"] == s]
        .reshape(-1, 2, cache.data.shape[1])[:, 0]
        .mean(axis=0)
        for s in cohort.table["subject"]
    ]
    vox = int(np.flatnonzero(cache.mask.ravel()).tolist().index(np.ravel_multi_index(PEAK, SHAPE)))
    df = cohort.table.assign(y=[m[vox] for m in means], g=(cohort.table["group"] == "MSP") * 1.0)
    fit = smf.ols("y ~ g + age + C(sex) + illness_duration", data=df).fit()
    assert t_img[PEAK] == pytest.approx(fit.tvalues["g"], abs=1e-4)


def test_covariate_errors_name_file_column_and_participants(tmp_path):
    cohort, _, _ = _study(tmp_path, n_sub=4)
    with pytest.raises(InputError, match=r"participants\.tsv.*'handedness'"):
        covariate_table(cohort, ["handedness"], ["01", "02"])
    cohort.table.loc[1, "age"] = np.nan
    with pytest.raises(InputError, match="sub-02"):
        covariate_table(cohort, ["age"], ["01", "02", "03"])


def test_rank_deficient_state_is_skipped_not_a_crash(tmp_path):
    # Sex collinear with group (all MSP male, all SSP female): the design of every state is
    # rank deficient; run_stats must skip the states with a reason instead of failing.
    cohort, cache, states = _study(tmp_path)
    cohort.table["sex"] = np.where(cohort.table["group"] == "MSP", "M", "F")
    cfg = GroupConfig(cluster_size=3, t_threshold=2.0, fwe_permutations=0)
    out = run_stats(cohort, cache, states, cfg, out_dir=tmp_path / "stats", random_seed=0)
    assert [s["state"] for s in out["states"]] == [1, 2]
    for info in out["states"]:
        assert "rank deficient" in info["skipped"]
        assert "tmap" not in info
