"""Group cohort (participants.tsv + participant outputs) and the masked window cache."""

from __future__ import annotations

import json
import os
import pickle

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from _group_fixtures import grid_affine, make_participant_outputs

from bids_app.errors import InputError
from bids_app.group.cache import build_cache, open_cache
from bids_app.group.cohort import load_cohort


@pytest.fixture
def study(tmp_path):
    return make_participant_outputs(
        tmp_path,
        n_subjects=6,
        shape=(5, 6, 7),
        n_windows=[4, 3, 5, 4, 2, 3],
        n_runs=[1, 2, 1, 1, 1, 1],
        rng=1,
        scores=[10.0, 45.0, 20.0, 33.0, np.nan, 50.0],
        high_motion=[False, False, False, True, False, False],
        lesions=[True, True, False, True, True, True],
        extra_participants=["sub-99"],
    )


def test_cohort_table_labels_and_exclusions(study):
    cohort = load_cohort(study.bids_dir, study.output_dir)
    table = cohort.table.set_index("participant_id")
    assert list(table.index) == [f"sub-0{k}" for k in range(1, 7)] + ["sub-99"]
    assert table.loc["sub-05", "exclusion_reason"] == "no score"
    assert table.loc["sub-04", "exclusion_reason"] == "high motion"
    assert table.loc["sub-99", "exclusion_reason"] == "no participant-level output"
    assert list(cohort.included()["subject"]) == ["01", "02", "03", "06"]
    # score <= 20 is severe (inclusive boundary at 20)
    assert table.loc[["sub-01", "sub-02", "sub-03", "sub-06"], "label"].tolist() == [1, 0, 1, 0]
    assert table.loc[["sub-01", "sub-02"], "group"].tolist() == ["SSP", "MSP"]
    assert table["label"].isna().tolist() == [False, False, False, True, True, False, True]
    for col in ("age", "sex", "illness_duration", "lesion_side", "ul_fma"):
        assert col in table.columns
    assert table.loc["sub-04", "HighMotion"] and not table.loc["sub-01", "HighMotion"]
    # MeanFD is the mean over runs (sub-02 has two runs), LesionVolume from the sidecar
    fds = [
        json.loads(study.path(k, "desc-dfc_boldmap.json").read_text())["MeanFD"]
        for k in study.run_keys["02"]
    ]
    assert table.loc["sub-02", "MeanFD"] == pytest.approx(np.mean(fds))
    assert table.loc["sub-03", "LesionVolume"] == 0.0
    assert table.loc["sub-01", "LesionVolume"] == pytest.approx(
        study.lesion_masks["01"].sum() * 0.027
    )


def test_cohort_runs_grid_and_options(study):
    cohort = load_cohort(study.bids_dir, study.output_dir)
    assert [(r.subject, r.run_key) for r in cohort.runs] == [
        ("01", "sub-01_task-rest"),
        ("02", "sub-02_task-rest_run-1"),
        ("02", "sub-02_task-rest_run-2"),
        ("03", "sub-03_task-rest"),
        ("06", "sub-06_task-rest"),
    ]
    assert [r.n_windows for r in cohort.runs] == [4, 3, 3, 5, 3]
    assert cohort.runs[0].lesion_path is not None and cohort.runs[3].lesion_path is None
    assert cohort.space == "MNI152NLin2009cAsym" and cohort.resolution == "3"
    assert cohort.shape == (5, 6, 7)
    np.testing.assert_allclose(cohort.affine, grid_affine((5, 6, 7)), atol=1e-5)

    moving = load_cohort(study.bids_dir, study.output_dir, include_high_motion=True)
    assert "04" in set(moving.included()["subject"])
    strict = load_cohort(study.bids_dir, study.output_dir, severe_max=9.0)
    assert strict.table.set_index("subject").loc["01", "label"] == 0
    some = load_cohort(study.bids_dir, study.output_dir, participant_labels=["sub-02", "03"])
    assert list(some.table["subject"]) == ["02", "03"]


def test_cohort_errors(study, tmp_path):
    with pytest.raises(InputError, match="run the participant level first"):
        load_cohort(study.bids_dir, tmp_path / "empty")
    with pytest.raises(InputError, match="score column 'fma_total'"):
        load_cohort(study.bids_dir, study.output_dir, score_column="fma_total")
    tsv = (study.bids_dir / "participants.tsv").read_text()
    os.remove(study.bids_dir / "participants.tsv")
    with pytest.raises(InputError, match="participants.tsv is missing"):
        load_cohort(study.bids_dir, study.output_dir)
    (study.bids_dir / "participants.tsv").write_text(tsv)
    # one participant on another grid
    path = study.path("sub-03_task-rest")
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:4], img.affine), path)
    with pytest.raises(InputError, match="different grids") as err:
        load_cohort(study.bids_dir, study.output_dir)
    assert "sub-03" in str(err.value)


def _masked_truth(study, cohort):
    """Independent reference: nibabel loads + numpy masking, in cohort run order."""
    mask = np.ones(study.shape, dtype=bool)
    for sub in cohort.included()["subject"]:
        mask &= study.brain_masks[sub]
    rows, meta = [], []
    for run in cohort.runs:
        data = nib.load(run.dfc_path).get_fdata()
        for w in range(data.shape[3]):
            rows.append(data[..., w][mask])
            meta.append((run.subject, run.run_key, w))
    return mask, np.array(rows), meta


def test_cache_content_index_and_access(study, tmp_path):
    cohort = load_cohort(study.bids_dir, study.output_dir)
    cache = build_cache(cohort, tmp_path / "cache")
    mask, truth, meta = _masked_truth(study, cohort)
    np.testing.assert_array_equal(cache.mask, mask)
    assert cache.data.dtype == np.float16 and cache.data.shape == truth.shape
    np.testing.assert_allclose(cache.vectors(np.arange(len(truth))), truth, rtol=2**-11, atol=1e-7)
    assert (
        list(
            zip(cache.index["subject"], cache.index["run_key"], cache.index["window"], strict=True)
        )
        == meta
    )
    labels = {"01": 1, "02": 0, "03": 1, "06": 0}
    assert cache.index["label"].tolist() == [labels[s] for s, _, _ in meta]
    assert cache.index["row"].tolist() == list(range(len(meta)))
    # arbitrary order with duplicates comes back in the requested order
    rows = np.array([7, 2, 15, 2, 0])
    np.testing.assert_allclose(cache.vectors(rows), truth[rows], rtol=2**-11, atol=1e-7)
    vols = cache.volumes(rows)
    assert vols.shape == (5, *study.shape) and vols.dtype == np.float32
    assert np.all(vols[:, ~mask] == 0)
    np.testing.assert_allclose(vols[:, mask], truth[rows], rtol=2**-11, atol=1e-7)
    with pytest.raises(ValueError, match="rows must be in"):
        cache.vectors([len(truth)])
    with pytest.raises(ValueError, match="vectors must end with"):
        cache.unmask(np.zeros((2, 3)))
    reopened = open_cache(tmp_path / "cache")
    np.testing.assert_array_equal(reopened.data, cache.data)
    pd.testing.assert_frame_equal(reopened.index, cache.index)
    np.testing.assert_allclose(reopened.affine, cohort.affine, atol=1e-6)
    # pickles (DataLoader workers) by reference to the file, not by copying the data
    blob = pickle.dumps(cache)
    assert np.asarray(cache.data).tobytes() not in blob
    clone = pickle.loads(blob)
    assert isinstance(clone.data, np.memmap) and not clone.data.flags.writeable
    np.testing.assert_array_equal(clone.vectors(rows), cache.vectors(rows))
    saved = nib.load(tmp_path / "cache" / "mask.nii.gz")
    np.testing.assert_array_equal(np.asarray(saved.dataobj) > 0, mask)


def test_cache_float32_exact_and_float16_clipping(tmp_path):
    study = make_participant_outputs(tmp_path, n_subjects=2, shape=(4, 5, 3), n_windows=2, rng=3)
    key = study.run_keys["01"][0]
    big = study.maps[key].copy()
    inside = np.argwhere(study.brain_masks["01"] & study.brain_masks["02"])[0]
    big[tuple(inside)] = [1e6, np.nan]
    nib.save(nib.Nifti1Image(big, study.affine), study.path(key))
    cohort = load_cohort(study.bids_dir, study.output_dir)
    c32 = build_cache(cohort, tmp_path / "c32", dtype="float32")
    mask = study.brain_masks["01"] & study.brain_masks["02"]
    flat = (
        np.flatnonzero(mask.ravel() == 1).tolist().index(np.ravel_multi_index(inside, mask.shape))
    )
    assert c32.data.dtype == np.float32 and c32.vectors([0])[0, flat] == 1e6
    assert c32.vectors([1])[0, flat] == 0.0  # NaN stored as 0
    other = big[..., 0][mask].copy()
    other[flat] = 1e6
    np.testing.assert_array_equal(c32.vectors([0])[0], other.astype(np.float32))
    c16 = build_cache(cohort, tmp_path / "c16")
    assert c16.vectors([0])[0, flat] == np.finfo(np.float16).max
    with pytest.raises(ValueError, match="dtype must be one of"):
        build_cache(cohort, tmp_path / "c8", dtype="int8")


def test_cache_reused_or_rebuilt(study, tmp_path):
    cohort = load_cohort(study.bids_dir, study.output_dir)
    root = tmp_path / "cache"
    build_cache(cohort, root)
    stamp = (root / "data.dat").stat().st_mtime_ns
    inode = (root / "data.dat").stat().st_ino
    build_cache(load_cohort(study.bids_dir, study.output_dir), root)
    assert (root / "data.dat").stat().st_ino == inode
    assert (root / "data.dat").stat().st_mtime_ns == stamp
    # labels only: index rewritten, data reused
    relabel = build_cache(load_cohort(study.bids_dir, study.output_dir, severe_max=5.0), root)
    assert (root / "data.dat").stat().st_ino == inode and relabel.index["label"].sum() == 0
    # a touched input (same content, new mtime) rebuilds
    stat = study.path("sub-01_task-rest").stat()
    os.utime(study.path("sub-01_task-rest"), ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    build_cache(load_cohort(study.bids_dir, study.output_dir), root)
    assert (root / "data.dat").stat().st_ino != inode
    inode = (root / "data.dat").stat().st_ino
    # a changed input rebuilds, with the new content
    key = "sub-03_task-rest"
    new = study.maps[key] + 1.0
    nib.save(nib.Nifti1Image(new, study.affine), study.path(key))
    rebuilt = build_cache(load_cohort(study.bids_dir, study.output_dir), root)
    assert (root / "data.dat").stat().st_ino != inode
    rows = rebuilt.index.index[rebuilt.index["run_key"] == key].to_numpy()
    expected = np.moveaxis(new, -1, 0)[:, rebuilt.mask]
    np.testing.assert_allclose(rebuilt.vectors(rows), expected, rtol=2**-11, atol=1e-7)
    # dtype change rebuilds too; no temporary directories are left behind
    inode = (root / "data.dat").stat().st_ino
    again = load_cohort(study.bids_dir, study.output_dir)
    assert build_cache(again, root, dtype="float32").data.dtype == np.float32
    assert (root / "data.dat").stat().st_ino != inode
    # no temporary build directory is left; the lock file of concurrent builders stays
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache.lock", "bids", "cache", "out"]


def test_cache_errors(study, tmp_path):
    with pytest.raises(InputError, match="manifest.json is missing"):
        open_cache(tmp_path)
    cohort = load_cohort(study.bids_dir, study.output_dir)
    root = tmp_path / "cache"
    build_cache(cohort, root)
    with open(root / "data.dat", "ab") as handle:
        handle.write(b"\0\0")
    with pytest.raises(InputError, match="inconsistent"):
        open_cache(root)
    empty = load_cohort(study.bids_dir, study.output_dir, participant_labels=["05"])
    with pytest.raises(ValueError, match="no included runs"):
        build_cache(empty, tmp_path / "c2")


def _build_in_child(args):
    bids_dir, output_dir, root = args
    cache = build_cache(load_cohort(bids_dir, output_dir), root)
    return (root / "data.dat").stat().st_ino, len(cache.index)


def test_concurrent_builders_share_one_cache(study, tmp_path):
    # Fold jobs of a cluster array start at once: they must end with one consistent cache
    # (one build, the others reuse it) and no leftover temporary directories.
    import multiprocessing as mp

    root = tmp_path / "cache"
    args = [(study.bids_dir, study.output_dir, root)] * 2
    with mp.get_context("fork").Pool(2) as pool:
        results = pool.map(_build_in_child, args)
    assert results[0] == results[1]  # same inode: the second job reused the first's build
    cache = open_cache(root)
    expected = load_cohort(study.bids_dir, study.output_dir)
    reference = build_cache(expected, tmp_path / "reference")
    np.testing.assert_array_equal(np.asarray(cache.data), np.asarray(reference.data))
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
