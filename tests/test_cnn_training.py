"""Cross-validation runs on tiny fake participant outputs (logreg for speed, tiny VGG3D).

Ground truth comes from the fixture's construction: labels with no brain signal but strong
per-participant fingerprints (only participant identification is possible) or a planted
group effect (a real, generalisable difference).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from bids_app.config import GroupConfig
from bids_app.errors import ConfigError
from bids_app.group.cache import build_cache
from bids_app.group.cnn.data import WindowDataset, make_loader
from bids_app.group.cnn.model import VGG3D, VGG3DConfig
from bids_app.group.cnn.predict import load_model, predict_participant
from bids_app.group.cnn.run import run_cnn
from bids_app.group.cnn.train import TrainSettings, resolve_device, train_model
from bids_app.group.cohort import load_cohort
from tests._group_fixtures import make_participant_outputs

torch.set_num_threads(1)


def _study(tmp_path, **kw):
    study = make_participant_outputs(tmp_path, shape=(9, 11, 10), **kw)
    cohort = load_cohort(study.bids_dir, study.output_dir)
    return cohort, build_cache(cohort, tmp_path / "cache")


def _cfg(**kw):
    base = dict(model="logreg", n_folds=3, n_permutations=20, num_workers=0, device="cpu")
    return GroupConfig(**{**base, **kw})


def _read(path):
    return pd.read_csv(path, sep="\t")


@pytest.fixture(scope="module")
def fingerprint_only(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fp")
    return _study(tmp, n_subjects=24, n_windows=6, rng=0, fingerprint=2.0, group_effect=0.0)


def test_window_cv_measures_identification_subject_cv_does_not(fingerprint_only, tmp_path):
    cohort, cache = fingerprint_only
    subj = run_cnn(cohort, cache, _cfg(n_folds=4), out_dir=tmp_path / "s", random_seed=0)
    win = run_cnn(
        cohort, cache, _cfg(n_folds=4, cv_unit="window"), out_dir=tmp_path / "w", random_seed=0
    )
    # no brain signal: new participants are classified at chance ...
    assert subj["metrics"]["participant"]["balanced_accuracy"]["mean"] < 0.75
    # ... while windows of participants seen in training are "classified" near perfectly
    assert win["metrics"]["window"]["balanced_accuracy"]["mean"] > 0.9
    assert subj["leakage_warning"] is None
    assert "participant" in win["leakage_warning"] and "window" in win["leakage_warning"]
    # subject mode: nobody in training and test of one fold (splits.tsv AND predictions.tsv)
    splits = _read(tmp_path / "s" / "splits.tsv")
    preds = _read(tmp_path / "s" / "predictions.tsv")
    for fold, grp in splits.groupby("fold"):
        fit = set(grp.loc[grp.role != "test", "participant"])
        tested = set(preds.loc[preds.fold == fold, "participant"])
        assert tested == set(grp.loc[grp.role == "test", "participant"])
        assert not fit & tested
    assert len(preds) == len(cache.index)  # every window predicted once
    for path in ("splits", "folds", "predictions"):
        side = json.loads((tmp_path / "s" / f"{path}.json").read_text())
        assert set(side["Columns"]) == set(_read(tmp_path / "s" / f"{path}.tsv").columns)


def test_planted_group_effect_is_found_by_subject_cv(tmp_path):
    cohort, cache = _study(tmp_path, n_subjects=12, n_windows=6, rng=1, group_effect=1.0)
    s = run_cnn(cohort, cache, _cfg(), out_dir=tmp_path / "cnn", random_seed=3)
    assert s["metrics"]["participant"]["balanced_accuracy"]["mean"] > 0.8
    assert s["n_participants"] == {"severe": 6, "mild/moderate": 6}
    folds = _read(tmp_path / "cnn" / "folds.tsv")
    assert set(folds.level) == {"window", "participant"} and len(folds) == 6
    assert ((folds.p_value > 0) & (folds.p_value <= 1)).all()
    assert folds.p_value_retrain.isna().all()
    # retraining on participant-shuffled labels (the stronger test), 3 times per fold
    r = run_cnn(cohort, cache, _cfg(permutation_retrain=3), out_dir=tmp_path / "r", random_seed=3)
    p = _read(tmp_path / "r" / "folds.tsv").p_value_retrain
    assert p.isin([0.25, 0.5, 0.75, 1.0]).all()  # (1 + k) / (1 + 3)
    assert r["config_hash"] != s["config_hash"]


def test_fold_subsets_then_aggregate_equal_one_full_run(tmp_path):
    cohort, cache = _study(tmp_path, n_subjects=12, n_windows=5, rng=2, group_effect=0.5)
    full = run_cnn(cohort, cache, _cfg(), out_dir=tmp_path / "full", random_seed=7)
    part = run_cnn(cohort, cache, _cfg(folds=[2]), out_dir=tmp_path / "p", random_seed=7)
    assert part["folds_completed"] == [2] and not part["complete"]
    run_cnn(cohort, cache, _cfg(folds=[1, 3]), out_dir=tmp_path / "p", random_seed=7)
    agg = run_cnn(cohort, cache, _cfg(), out_dir=tmp_path / "p", random_seed=7)
    assert agg["complete"] and full["complete"]
    pd.testing.assert_frame_equal(
        _read(tmp_path / "full" / "folds.tsv"), _read(tmp_path / "p" / "folds.tsv")
    )
    pd.testing.assert_frame_equal(
        _read(tmp_path / "full" / "predictions.tsv"), _read(tmp_path / "p" / "predictions.tsv")
    )
    with pytest.raises(ValueError, match="folds must be within 1..3"):
        run_cnn(cohort, cache, _cfg(folds=[4]), out_dir=tmp_path / "x", random_seed=7)


class _FakeCache:
    """Stand-in with the GroupCache attributes the training loop uses."""

    def __init__(self, n=24, shape=(5, 6, 7), seed=0):
        rng = np.random.default_rng(seed)
        self.shape = shape
        labels = np.arange(n) % 2
        self.vols = (rng.normal(size=(n, *shape)) + labels[:, None, None, None]).astype(np.float32)
        self.index = pd.DataFrame({"row": np.arange(n), "subject": "x", "label": labels})

    def volumes(self, rows):
        return self.vols[np.asarray(rows)]


def _tiny_train(cache, ckpt, stop_after=None, epochs=4):
    torch.manual_seed(0)
    model = VGG3D(VGG3DConfig(in_shape=cache.shape, width_multiplier=0.0625, fc_width=16,
                              dropout=0.3))  # fmt: skip
    settings = TrainSettings(batch_size=5, epochs=epochs, lr_step_epochs=2, lr=1e-2)
    rows = np.arange(len(cache.index))
    res = train_model(model, cache, rows[:18], rows[18:], settings=settings,
                      device=torch.device("cpu"), seed=11, checkpoint=ckpt,
                      stop_after=stop_after)  # fmt: skip
    return model, res


def test_interrupted_training_resumes_to_identical_result(tmp_path):
    cache = _FakeCache()
    model_a, res_a = _tiny_train(cache, tmp_path / "a.pt")
    _, res_b1 = _tiny_train(cache, tmp_path / "b.pt", stop_after=2)  # "killed" after epoch 2
    assert not res_b1.completed and len(res_b1.curves) == 2
    model_b, res_b = _tiny_train(cache, tmp_path / "b.pt")  # resumes at epoch 3
    assert res_b.completed and res_b.best_epoch == res_a.best_epoch
    assert res_a.curves == res_b.curves
    assert [c["lr"] for c in res_a.curves] == [1e-2, 1e-2, 5e-3, 5e-3]  # StepLR(2, 0.5)
    for key, val in model_a.state_dict().items():
        assert torch.equal(val, model_b.state_dict()[key]), key
    for key, val in res_a.best_state.items():
        assert torch.equal(val, res_b.best_state[key]), key
    ck = torch.load(tmp_path / "b.pt", weights_only=True)
    assert ck["epoch"] == 4 and {"python", "numpy", "torch"} <= set(ck["rng"])


def test_dataset_items_and_device_resolution():
    cache = _FakeCache(n=6)
    ds = WindowDataset(cache, [4, 1])
    x, y = ds[0]
    assert x.shape == (1, 5, 6, 7) and x.dtype == torch.float32 and int(y) == 0
    np.testing.assert_array_equal(x[0].numpy(), cache.vols[4])
    batches = list(make_loader(ds, batch_size=2, shuffle=False, seed=0))
    assert batches[0][0].shape == (2, 1, 5, 6, 7)
    assert resolve_device("cpu").type == "cpu"
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")


def test_vgg3d_run_writes_loadable_models_and_predicts(tmp_path):
    cohort, cache = _study(tmp_path, n_subjects=8, n_windows=4, rng=3, group_effect=1.0)
    cfg = _cfg(model="vgg3d", n_folds=2, width_multiplier=0.0625, fc_width=16, dropout=0.2,
               epochs=2, batch_size=8, final_model=True)  # fmt: skip
    s = run_cnn(cohort, cache, cfg, out_dir=tmp_path / "cnn", random_seed=0)
    out = tmp_path / "cnn"
    assert s["device"] == "cpu" and s["config"] == json.loads(json.dumps(dataclasses.asdict(cfg)))
    for k in (1, 2):
        curves = _read(out / f"fold-{k}" / "curves.tsv")
        assert list(curves.epoch) == [1, 2] and not (out / f"fold-{k}" / "checkpoint.pt").exists()
        state = torch.load(out / f"fold-{k}" / "model.pt", weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())
    for fig in ("roc", "confusion", "curves", "permutation"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/model.pt")}
    again = run_cnn(cohort, cache, cfg, out_dir=out, random_seed=0)  # everything reused
    assert len(stamps) == 3 and all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert again["final_model"] == s["final_model"] and again["metrics"] == s["metrics"]
    final = json.loads((out / "final" / "model.json").read_text())
    assert final["cv_participant_accuracy"] == pytest.approx(
        s["metrics"]["participant"]["test_accuracy"]["mean"]
    )
    # the fold model applied by predict.py reproduces the CV probabilities of a test participant
    model, meta = load_model(out / "fold-1" / "model.pt")
    preds = _read(out / "predictions.tsv")
    who = preds.loc[preds.fold == 1, "participant"].iloc[0]
    rows = cache.index.loc[cache.index.subject == who[4:], "row"].to_numpy()
    dfc = np.moveaxis(cache.volumes(rows), 0, -1)
    res = predict_participant(model, meta, dfc, cache.mask)
    probs = preds.loc[preds.participant == who, "probability"].to_numpy()
    assert res["probability_mean"] == pytest.approx(probs.mean(), abs=1e-5)
    assert res["n_windows"] == len(rows) and "not a clinical device" in res["disclaimer"]
    assert res["predicted_class"] == ("severe" if probs.mean() >= 0.5 else "mild/moderate")


def test_config_namespace_and_bad_model_rejected(tmp_path):
    motion = [False] * 6 + [True]  # sub-07 moves too much and is excluded
    cohort, cache = _study(tmp_path, n_subjects=7, n_windows=3, rng=4, high_motion=motion)
    s = run_cnn(cohort, cache, _cfg(n_folds=2), out_dir=tmp_path / "ok", random_seed=0)
    assert [e["participant"] for e in s["excluded"]] == ["sub-07"] and s["excluded"][0]["reason"]
    assert "sub-07" not in set(_read(tmp_path / "ok" / "splits.tsv").participant)
    assert s["pooled"]["n_participants"] == 6
    # the pooled participant-level balanced accuracy equals sklearn's on the soft votes
    preds = _read(tmp_path / "ok" / "predictions.tsv")
    votes = preds.groupby("participant").agg(y=("true_label", "first"), p=("probability", "mean"))
    expected = balanced_accuracy_score(votes["y"], (votes["p"] >= 0.5).astype(int))
    assert s["pooled"]["balanced_accuracy"] == pytest.approx(expected)
    assert s["pooled"]["n_permutations"] == _cfg(n_folds=2).n_permutations
    bad = SimpleNamespace(**{**dataclasses.asdict(_cfg(n_folds=2)), "model": "svm"})
    with pytest.raises(ValueError, match="model must be"):
        run_cnn(cohort, cache, bad, out_dir=tmp_path / "cnn", random_seed=0)
    with pytest.raises(ValueError, match="too few participants per class for n_folds=4"):
        run_cnn(cohort, cache, _cfg(n_folds=4), out_dir=tmp_path / "c2", random_seed=0)


def test_interrupted_fold_resumes_in_run_cnn(tmp_path, monkeypatch, caplog):
    import bids_app.group.cnn.train as train_mod

    cohort, cache = _study(tmp_path, n_subjects=6, n_windows=4, rng=5, group_effect=1.0)
    cfg = _cfg(model="vgg3d", n_folds=2, folds=[1], width_multiplier=0.0625, fc_width=16,
               dropout=0.2, epochs=3, batch_size=4)  # fmt: skip
    run_cnn(cohort, cache, cfg, out_dir=tmp_path / "whole", random_seed=1)
    original = train_mod.train_model

    def killed(*args, **kwargs):
        original(*args, **{**kwargs, "stop_after": 1})
        raise KeyboardInterrupt  # the process dies after epoch 1

    monkeypatch.setattr(train_mod, "train_model", killed)
    with pytest.raises(KeyboardInterrupt):
        run_cnn(cohort, cache, cfg, out_dir=tmp_path / "resumed", random_seed=1)
    ckpts = list((tmp_path / "resumed" / "fold-1").glob("checkpoint-*.pt"))
    assert len(ckpts) == 1 and torch.load(ckpts[0], weights_only=True)["epoch"] == 1
    assert (tmp_path / "resumed" / "splits.tsv").exists()  # splits written before training
    monkeypatch.setattr(train_mod, "train_model", original)
    with caplog.at_level(logging.INFO, logger="strokedfc.group.cnn"):
        run_cnn(cohort, cache, cfg, out_dir=tmp_path / "resumed", random_seed=1)
    assert "after epoch 1" in caplog.text  # resumed, not restarted
    for name in ("folds.tsv", "predictions.tsv", "fold-1/curves.tsv"):
        pd.testing.assert_frame_equal(_read(tmp_path / "whole" / name),
                                      _read(tmp_path / "resumed" / name))  # fmt: skip
    assert not list((tmp_path / "resumed" / "fold-1").glob("checkpoint-*.pt"))
