"""Sliding-window dFC against an independent per-window loop with numpy.corrcoef."""

from __future__ import annotations

import numpy as np
import pytest

from bids_app.core import _dfc_kernels, dfc

R_MAX = 0.999999999  # DPABI's clip


def _reference_taper(w: int, shape: str) -> np.ndarray:
    """MATLAB formulas: hamming = 0.54 - 0.46 cos(2 pi k/(N-1)); hann = 0.5 (1 - cos(...))."""
    k = np.arange(w)
    if shape == "hamming":
        return 0.54 - 0.46 * np.cos(2 * np.pi * k / (w - 1))
    if shape == "hann":
        return 0.5 * (1 - np.cos(2 * np.pi * k / (w - 1)))
    return np.ones(w)


def _naive_dfc(voxels, seed, w, step, shape):
    """Per-window, per-voxel loop: taper both series, np.corrcoef, clip, atanh."""
    taper = _reference_taper(w, shape)
    n_t = voxels.shape[1]
    onsets = list(range(0, n_t - w + 1, step))
    out = np.zeros((len(onsets), voxels.shape[0]))
    for k, s in enumerate(onsets):
        ys = seed[s : s + w].astype(np.float64)
        yt = ys * taper
        for v in range(voxels.shape[0]):
            xs = voxels[v, s : s + w].astype(np.float64)
            if np.ptp(xs) == 0 or np.ptp(ys) == 0:
                continue
            r = np.corrcoef(xs * taper, yt)[0, 1]
            out[k, v] = np.arctanh(np.clip(r, -R_MAX, R_MAX))
    return out


@pytest.mark.parametrize(
    ("n_vox", "n_t", "w", "step", "shape"),
    [
        (7, 40, 10, 1, "hamming"),
        (5, 37, 8, 3, "hann"),  # (37 - 8) not a multiple of 3
        (9, 50, 12, 5, "rectangular"),  # (50 - 12) not a multiple of 5
        (6, 31, 31, 1, "hamming"),  # one window
        (4, 45, 6, 2, "rectangular"),
        (11, 33, 9, 4, "hann"),
    ],
)
def test_dfc_matches_naive_loop(n_vox, n_t, w, step, shape):
    rng = np.random.default_rng(n_vox * 100 + n_t)
    seed = rng.standard_normal(n_t)
    # mixtures of the seed and noise, plus offsets (taper results depend on the offset)
    voxels = (
        rng.uniform(-1, 1, (n_vox, 1)) * seed
        + rng.standard_normal((n_vox, n_t))
        + rng.normal(0, 3, (n_vox, 1))
    )
    got = dfc.sliding_window_dfc(voxels, seed, window_length=w, step=step, shape=shape)
    want = _naive_dfc(voxels, seed, w, step, shape)
    assert got.shape == ((n_t - w) // step + 1, n_vox)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


def test_block_boundaries(monkeypatch):
    """Voxel blocking gives the same result as one block."""
    rng = np.random.default_rng(3)
    seed = rng.standard_normal(30)
    voxels = rng.standard_normal((23, 30)) + seed
    monkeypatch.setattr(_dfc_kernels, "_BLOCK", 5)
    got = dfc.sliding_window_dfc(voxels, seed, window_length=7, step=2, shape="hann")
    np.testing.assert_allclose(got, _naive_dfc(voxels, seed, 7, 2, "hann"), rtol=1e-9, atol=1e-10)


def test_window_counts_and_onsets():
    assert dfc.n_windows(230, 22, 1) == 209
    assert dfc.n_windows(230, 22, 4) == len(range(0, 230 - 22 + 1, 4))
    np.testing.assert_array_equal(dfc.window_onsets(50, 12, 5), np.arange(0, 39, 5))
    with pytest.raises(ValueError, match="window_length"):
        dfc.n_windows(10, 22)
    with pytest.raises(ValueError, match="step must be >= 1, got 0"):
        dfc.n_windows(30, 22, 0)
    with pytest.raises(ValueError, match="window_length must be >= 2, got 1"):
        dfc.n_windows(30, 1)


@pytest.mark.parametrize("shape", ["hamming", "hann", "rectangular"])
@pytest.mark.parametrize("w", [5, 22])
def test_taper_matches_matlab_formula(shape, w):
    np.testing.assert_allclose(dfc.window_taper(w, shape), _reference_taper(w, shape), atol=1e-15)


def test_taper_bad_shape():
    with pytest.raises(ValueError, match="shape must be one of"):
        dfc.window_taper(10, "gaussian")


@pytest.mark.parametrize("shape", ["hamming", "hann", "rectangular"])
def test_zero_variance_and_invalid_voxels(shape):
    rng = np.random.default_rng(0)
    seed = rng.standard_normal(40)
    voxels = rng.standard_normal((5, 40))
    voxels[1] = 7.5  # constant everywhere
    voxels[2, 10:25] = -2.0  # constant inside some windows only
    valid = np.array([True, True, True, False, True])
    z = dfc.sliding_window_dfc(voxels, seed, window_length=10, step=1, shape=shape, valid=valid)
    assert np.all(np.isfinite(z))
    assert np.all(z[:, 1] == 0)
    assert np.all(z[:, 3] == 0)
    onsets = np.arange(z.shape[0])
    inside = (onsets >= 10) & (onsets + 10 <= 25)
    assert np.all(z[inside, 2] == 0)
    assert np.all(z[~inside, 2] != 0)
    np.testing.assert_allclose(
        z[:, [0, 4]], _naive_dfc(voxels[[0, 4]], seed, 10, 1, shape), rtol=1e-9, atol=1e-10
    )


def test_constant_seed_gives_zero():
    seed = np.r_[np.ones(15), np.arange(15.0)]
    voxels = np.random.default_rng(1).standard_normal((3, 30))
    z = dfc.sliding_window_dfc(voxels, seed, window_length=8, shape="hamming")
    assert np.all(z[: 15 - 8 + 1] == 0)
    assert np.all(z[15 - 8 + 1 :] != 0)


@pytest.mark.parametrize("shape", ["hamming", "hann", "rectangular"])
def test_perfect_correlation_is_finite(shape):
    seed = np.sin(np.linspace(0, 9, 60))
    voxels = np.vstack([seed, -seed, 2 * seed])
    z = dfc.sliding_window_dfc(voxels, seed, window_length=15, shape=shape)
    zmax = np.arctanh(R_MAX)
    assert np.all(np.isfinite(z))
    np.testing.assert_allclose(z[:, 0], zmax, rtol=1e-6)
    np.testing.assert_allclose(z[:, 1], -zmax, rtol=1e-6)
    s = dfc.static_fc(voxels, seed)
    np.testing.assert_allclose(s, [zmax, -zmax, zmax], rtol=1e-6)


def test_inputs_not_mutated_and_float32_upcast():
    rng = np.random.default_rng(5)
    seed = rng.standard_normal(30).astype(np.float32)
    voxels = rng.standard_normal((4, 30)).astype(np.float32)
    valid = np.array([True, False, True, True])
    copies = seed.copy(), voxels.copy(), valid.copy()
    z = dfc.sliding_window_dfc(voxels, seed, window_length=9, step=2, valid=valid)
    s = dfc.static_fc(voxels, seed, valid)
    for before, after in zip(copies, (seed, voxels, valid), strict=True):
        np.testing.assert_array_equal(before, after)
    assert z.dtype == np.float64 and s.dtype == np.float64
    want = _naive_dfc(voxels.astype(np.float64), seed.astype(np.float64), 9, 2, "hamming")
    want[:, 1] = 0
    np.testing.assert_allclose(z, want, rtol=1e-9, atol=1e-10)


def test_static_fc_matches_corrcoef():
    rng = np.random.default_rng(8)
    seed = rng.standard_normal(50)
    voxels = rng.standard_normal((6, 50)) + 0.5 * seed + 100.0
    voxels[2] = 3.0
    valid = np.array([True, True, True, True, False, True])
    got = dfc.static_fc(voxels, seed, valid)
    want = np.array(
        [0.0 if v in (2, 4) else np.arctanh(np.corrcoef(voxels[v], seed)[0, 1]) for v in range(6)]
    )
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_dfc_summary_matches_matlab_conventions():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((9, 4))
    z[:, 3] = 0.0
    mean, std, cv = dfc.dfc_summary(z)
    for v in range(3):
        col = z[:, v]
        m = sum(col) / 9
        s = np.sqrt(sum((c - m) ** 2 for c in col) / 8)  # MATLAB std: N - 1
        np.testing.assert_allclose([mean[v], std[v], cv[v]], [m, s, s / m], rtol=1e-12)
    assert mean[3] == 0 and std[3] == 0 and cv[3] == 0
    m1, s1, c1 = dfc.dfc_summary(z[:1])
    np.testing.assert_array_equal(s1, 0.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="seed must have shape"):
        dfc.sliding_window_dfc(np.zeros((3, 20)), np.zeros(19), window_length=5)
    with pytest.raises(ValueError, match="valid must be a boolean"):
        dfc.sliding_window_dfc(np.zeros((3, 20)), np.zeros(20), window_length=5, valid=[1, 0, 1])
    bad = np.zeros((3, 20))
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        dfc.sliding_window_dfc(bad, np.arange(20.0), window_length=5)
    # a non-finite invalid voxel is ignored
    z = dfc.sliding_window_dfc(
        bad, np.arange(20.0), window_length=5, valid=np.array([True, False, True])
    )
    assert np.all(z == 0)


@pytest.mark.parametrize("threads", ["1", "3"])
def test_tile_and_block_edges(monkeypatch, threads):
    """Band tiles and voxel blocks that do not divide the windows / voxels evenly."""
    monkeypatch.setenv("OMP_NUM_THREADS", threads)  # voxel blocks shared among threads
    rng = np.random.default_rng(11)
    seed = rng.standard_normal(47)
    voxels = rng.standard_normal((13, 47)) + 0.4 * seed + rng.normal(0, 2, (13, 1))
    valid = np.ones(13, dtype=bool)
    valid[[2, 7]] = False  # non-contiguous voxel blocks (gathered, not views)
    monkeypatch.setattr(_dfc_kernels, "_TILE", 3)
    monkeypatch.setattr(_dfc_kernels, "_BLOCK", 4)
    for shape in ("hamming", "rectangular"):
        got = dfc.sliding_window_dfc(
            voxels, seed, window_length=9, step=2, shape=shape, valid=valid
        )
        want = _naive_dfc(voxels, seed, 9, 2, shape)
        want[:, ~valid] = 0
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("shape", ["hamming", "hann", "rectangular"])
def test_large_offsets_keep_precision(shape):
    """BOLD-like offsets (1e4) on small fluctuations, seed offset too: no cancellation."""
    rng = np.random.default_rng(12)
    seed = 500.0 + rng.standard_normal(120)
    voxels = 1e4 * rng.uniform(0.5, 1.5, (6, 1)) + rng.standard_normal((6, 120)) + 0.5 * seed
    got = dfc.sliding_window_dfc(voxels, seed, window_length=22, step=1, shape=shape)
    want = _naive_dfc(voxels, seed, 22, 1, shape)
    # np.corrcoef itself rounds at ~1e-12 relative here (tapered offsets of 1e4)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-9)


def test_hann_zero_ends_give_zero():
    """A series non-zero only where the Hann taper is 0 has no tapered variance: z = 0."""
    rng = np.random.default_rng(13)
    seed = rng.standard_normal(30)
    voxels = np.zeros((2, 30))
    voxels[0, ::9] = 3.0  # non-zero at t = 0, 9, 18, 27 only
    voxels[1] = rng.standard_normal(30)
    z = dfc.sliding_window_dfc(voxels, seed, window_length=10, step=9, shape="hann")
    np.testing.assert_array_equal(z[:, 0], 0.0)  # windows 0-9, 9-18, 18-27: ends only
    np.testing.assert_allclose(
        z[:, 1], _naive_dfc(voxels[1:], seed, 10, 9, "hann")[:, 0], rtol=1e-9
    )
