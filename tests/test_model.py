"""VGG3D (Table 1 of the paper) and the PCA + logistic-regression baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bids_app.group.cnn.baseline import LogRegBaseline
from bids_app.group.cnn.model import VGG3D, VGG3DConfig, count_parameters, feature_shape

torch.set_num_threads(1)

# Table 1, written out independently of the module: (c_in, c_out) of the 13 convolutions.
TABLE1_CONVS = [(1, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256)]
TABLE1_CONVS += [(256, 512)] + [(512, 512)] * 5


@pytest.fixture(scope="module")
def full_model():
    torch.manual_seed(0)
    return VGG3D(VGG3DConfig())


def test_parameter_count_matches_table1_arithmetic(full_model):
    conv = sum(27 * cin * cout + cout for cin, cout in TABLE1_CONVS)
    # BN before convs 2..13 (on their input channels) + one after the last conv
    bn = sum(2 * cin for cin, _ in TABLE1_CONVS[1:]) + 2 * 512
    flat = 512 * 2 * 3 * 2  # 61x73x61 -> 30x36x30 -> 15x18x15 -> 7x9x7 -> 3x4x3 -> 2x3x2
    fc = (flat * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 2 + 2)
    assert count_parameters(full_model) == conv + bn + fc
    assert feature_shape((61, 73, 61)) == (512, 2, 3, 2)


def test_layer_order_is_preactivation(full_model):
    kinds = []
    for module in full_model.features:
        kinds.append(
            {nn.Conv3d: "C", nn.BatchNorm3d: "B", nn.ReLU: "R", nn.MaxPool3d: "P"}[type(module)]
        )
    expected = "C" + "BRC" + "P" + "BRCBRC" + "P" + "BRC" * 3 + "P" + "BRC" * 3 + "P"
    expected += "BRC" * 3 + "BR" + "P"
    assert "".join(kinds) == expected
    head = [type(m) for m in full_model.classifier]
    assert head == [nn.Linear, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    assert all(m.p == 0.7 for m in full_model.classifier if isinstance(m, nn.Dropout))
    convs = [m for m in full_model.features if isinstance(m, nn.Conv3d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == TABLE1_CONVS
    assert all(m.kernel_size == (3, 3, 3) and m.stride == (1, 1, 1) for m in convs)
    assert all(m.padding == (1, 1, 1) for m in convs)


def test_he_initialisation_statistics(full_model):
    convs = [m for m in full_model.features if isinstance(m, nn.Conv3d)]
    for conv in (convs[3], convs[6], convs[12]):
        w = conv.weight.detach().numpy()
        assert abs(w.mean()) < 1e-3
        assert w.std() == pytest.approx(np.sqrt(2.0 / (conv.out_channels * 27)), rel=0.02)
        assert not conv.bias.detach().any()
    linears = [m for m in full_model.classifier if isinstance(m, nn.Linear)]
    for lin in linears[:2]:
        w = lin.weight.detach().numpy()
        assert w.std() == pytest.approx(np.sqrt(2.0 / lin.in_features), rel=0.02)
    bns = [m for m in full_model.features if isinstance(m, nn.BatchNorm3d)]
    assert all(bool((b.weight == 1).all()) and not b.bias.detach().any() for b in bns)


def test_full_size_forward_shapes(full_model):
    shapes = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
        for m in full_model.features
        if isinstance(m, nn.MaxPool3d)
    ]
    size, expected = (61, 73, 61), []
    for c in (64, 128, 256, 512):
        size = tuple(n // 2 for n in size)
        expected.append((1, c, *size))
    expected.append((1, 512, *(n - 1 for n in size)))
    full_model.eval()
    with torch.no_grad():
        logits = full_model(torch.randn(1, 1, 61, 73, 61))
    for hook in hooks:
        hook.remove()
    assert shapes == expected
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


def test_narrow_full_grid_backward():
    torch.manual_seed(1)
    model = VGG3D(VGG3DConfig(width_multiplier=0.125, fc_width=32, dropout=0.5))
    convs = [m for m in model.features if isinstance(m, nn.Conv3d)]
    assert [m.out_channels for m in convs] == [round(c * 0.125) for _, c in TABLE1_CONVS]
    logits = model(torch.randn(2, 1, 61, 73, 61))
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert convs[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(9, 11, 10), (5, 5, 5), (1, 8, 8), (1, 1, 1), (2, 3, 17)])
def test_small_grids_run(shape):
    torch.manual_seed(2)
    config = VGG3DConfig(in_shape=shape, width_multiplier=0.05, fc_width=8)
    model = VGG3D(config)
    # independent size rule: halve axes >= 2 four times, then minus one where >= 2
    size = list(shape)
    for _ in range(4):
        size = [n // 2 if n >= 2 else n for n in size]
    size = [n - 1 if n >= 2 else n for n in size]
    assert feature_shape(shape, 0.05) == (26, *size)
    logits = model(torch.randn(3, 1, *shape))
    assert logits.shape == (3, 2)
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_config_and_input_checks():
    with pytest.raises(ValueError, match="in_shape must be 3 integers >= 1, got"):
        VGG3DConfig(in_shape=(0, 5, 5))
    with pytest.raises(ValueError, match="width_multiplier must be > 0, got 0"):
        VGG3DConfig(width_multiplier=0)
    with pytest.raises(ValueError, match="dropout must be in"):
        VGG3DConfig(dropout=1.0)
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        VGG3DConfig(n_classes=1)
    model = VGG3D(VGG3DConfig(in_shape=(4, 4, 4), width_multiplier=0.05, fc_width=4))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, 4, 4, 4\)"):
        model(torch.zeros(2, 1, 4, 4, 5))
    assert VGG3D(VGG3DConfig(in_shape=(4, 4, 4), n_classes=3, width_multiplier=0.05)).eval()(
        torch.zeros(1, 1, 4, 4, 4)
    ).shape == (1, 3)


def _blobs(rng, n, v, shift):
    y = np.arange(n) % 2
    x = rng.normal(size=(n, v))
    x[:, :5] += shift * (2 * y[:, None] - 1)
    return x, y


def test_logreg_baseline_separable_vs_random():
    rng = np.random.default_rng(0)
    x, y = _blobs(rng, 80, 300, 3.0)
    xt, yt = _blobs(rng, 200, 300, 3.0)
    model = LogRegBaseline(seed=0).fit(x, y)
    proba = model.predict_proba(xt)
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert np.mean(proba.argmax(axis=1) == yt) > 0.95
    assert model.n_components_ == 50
    # pure noise: chance level on fresh data
    x0, y0 = _blobs(rng, 80, 300, 0.0)
    xt0, yt0 = _blobs(rng, 400, 300, 0.0)
    acc = np.mean(LogRegBaseline(seed=0).fit(x0, y0).predict_proba(xt0).argmax(axis=1) == yt0)
    assert 0.35 < acc < 0.65
    # seeded: identical refits; few samples -> n - 1 components
    again = LogRegBaseline(seed=0).fit(x, y).predict_proba(xt)
    np.testing.assert_array_equal(again, proba)
    assert LogRegBaseline(seed=0).fit(x[:10], y[:10]).n_components_ == 9


def test_logreg_baseline_checks():
    with pytest.raises(ValueError, match="X must be 2D"):
        LogRegBaseline().fit(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="y must contain both classes"):
        LogRegBaseline().fit(np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="not fitted"):
        LogRegBaseline().predict_proba(np.zeros((2, 3)))
