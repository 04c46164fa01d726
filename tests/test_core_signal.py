"""clean() vs nilearn.signal.clean and physical checks; smooth_volume() vs nilearn smooth_img."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nilearn.image import smooth_img
from nilearn.signal import clean as nl_clean

from bids_app.core import signal


def _synthetic(n_t=200, n_v=6, n_k=4, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_t)
    conf = np.c_[rng.standard_normal((n_t, n_k - 1)).cumsum(axis=0), np.sin(t / 5.0)]
    data = (
        100.0
        + 0.05 * t[:, None]
        + conf @ rng.standard_normal((n_k, n_v))
        + rng.standard_normal((n_t, n_v))
    )
    return data, conf


def _nilearn(data, conf, t_r, high_pass, low_pass, detrend=True):
    return nl_clean(
        data,
        confounds=conf,
        detrend=detrend,
        standardize=None,
        standardize_confounds=True,
        filter="butterworth",
        high_pass=high_pass,
        low_pass=low_pass,
        t_r=t_r,
    )


@pytest.mark.parametrize("with_conf", [True, False])
@pytest.mark.parametrize(
    ("t_r", "high_pass", "low_pass"),
    [(2.0, 0.01, 0.1), (2.0, 0.01, None), (1.5, None, 0.08), (2.0, None, None), (0.8, 0.02, 0.2)],
)
def test_clean_matches_nilearn(with_conf, t_r, high_pass, low_pass):
    data, conf = _synthetic(n_t=180 if t_r == 0.8 else 150, seed=int(t_r * 10))
    conf = conf if with_conf else None
    before = data.copy()
    got = signal.clean(data, t_r=t_r, confounds=conf, high_pass=high_pass, low_pass=low_pass)
    want = _nilearn(data, conf, t_r, high_pass, low_pass)
    np.testing.assert_array_equal(data, before)
    assert got.dtype == np.float64 and got.shape == data.shape
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * scale)


def test_clean_no_detrend_matches_nilearn():
    data, conf = _synthetic(seed=4)
    data = data - data.mean(axis=0)
    got = signal.clean(data, t_r=2.0, confounds=conf, detrend=False, high_pass=0.01, low_pass=0.1)
    want = _nilearn(data, conf, 2.0, 0.01, 0.1, detrend=False)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * np.abs(want).max())


def test_clean_band_pass_physics():
    """In-band sinusoids survive, out-of-band ones and a planted nuisance are removed."""
    t_r, n_t = 2.0, 400
    t = np.arange(n_t) * t_r
    in_band = np.sin(2 * np.pi * 0.05 * t)
    slow = 3 * np.sin(2 * np.pi * 0.002 * t)
    fast = np.sin(2 * np.pi * 0.2 * t)
    nuisance = np.sin(2 * np.pi * 0.031 * t + 0.4)  # in band, only removable by regression
    data = np.c_[in_band + slow + fast + 2.0 * nuisance, in_band]
    out = signal.clean(data, t_r=t_r, confounds=nuisance[:, None])
    core = slice(60, n_t - 60)  # away from the filter edges
    resid = out[core, 0] - in_band[core]
    assert np.sqrt(np.mean(resid**2)) < 0.08  # slow, fast and the nuisance are all gone
    # the planted nuisance (amplitude 2) leaves < 1% of itself in the residual
    n_core = nuisance[core]
    assert abs(resid @ n_core / (n_core @ n_core)) < 0.02
    np.testing.assert_allclose(out[core, 1], in_band[core], atol=0.05)
    # each out-of-band sinusoid alone is attenuated to < 5% of its rms
    alone = signal.clean(np.c_[slow, fast], t_r=t_r)
    for col, src in enumerate((slow, fast)):
        assert np.sqrt(np.mean(alone[core, col] ** 2)) < 0.05 * np.sqrt(np.mean(src**2))


def test_clean_detrend_only_matches_least_squares():
    rng = np.random.default_rng(9)
    data = rng.standard_normal((50, 3)) + np.arange(50)[:, None] * [0.5, -1.0, 2.0] + 7.0
    design = np.c_[np.ones(50), np.arange(50)]
    beta = np.linalg.lstsq(design, data, rcond=None)[0]
    got = signal.clean(data, t_r=2.0, high_pass=None, low_pass=None)
    np.testing.assert_allclose(got, data - design @ beta, atol=1e-10)


def test_clean_errors():
    data = np.zeros((100, 2))
    with pytest.raises(ValueError, match=r"low_pass = 0\.3 Hz .* Nyquist frequency 0\.25 Hz"):
        signal.clean(data, t_r=2.0, low_pass=0.3)
    with pytest.raises(ValueError, match="high_pass .* lower than low_pass"):
        signal.clean(data, t_r=2.0, high_pass=0.1, low_pass=0.05)
    with pytest.raises(ValueError, match="confounds must have shape"):
        signal.clean(data, t_r=2.0, confounds=np.zeros((99, 2)))
    with pytest.raises(ValueError, match="t_r must be"):
        signal.clean(data, t_r=0)


def _affine():
    a = np.diag([2.0, 3.0, 2.5, 1.0])
    a[:3, 3] = [-10, 4, 7]
    return a


@pytest.mark.parametrize("fwhm", [6.0, 4.0])
def test_smooth_matches_nilearn_3d_4d(fwhm):
    rng = np.random.default_rng(int(fwhm))
    data = rng.standard_normal((7, 6, 8, 3))
    data[2, 3, 4, 1] = np.nan
    before = data.copy()
    got = signal.smooth_volume(data, _affine(), fwhm)
    want = smooth_img(nib.Nifti1Image(data, _affine()), fwhm).get_fdata()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(np.isnan(data), np.isnan(before))
    got3 = signal.smooth_volume(data[..., 0], _affine(), fwhm)
    np.testing.assert_allclose(got3, want[..., 0], rtol=1e-10, atol=1e-12)


def test_smooth_sigma_from_fwhm_on_a_delta():
    """The variance of a smoothed delta is sigma^2 = (fwhm / sqrt(8 ln 2) / voxel)^2."""
    vol = np.zeros((41, 41, 41))
    vol[20, 20, 20] = 1.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    out = signal.smooth_volume(vol, affine, 8.0)
    profile = out.sum(axis=(1, 2))
    x = np.arange(41) - 20
    sigma_vox = 8.0 / np.sqrt(8 * np.log(2)) / 2.0
    np.testing.assert_allclose(np.sum(profile * x**2) / profile.sum(), sigma_vox**2, rtol=1e-3)


def test_smooth_zero_fwhm_is_copy():
    vol = np.arange(24.0).reshape(2, 3, 4)
    out = signal.smooth_volume(vol, np.eye(4), 0)
    np.testing.assert_array_equal(out, vol)
    assert out is not vol
    np.testing.assert_array_equal(signal.smooth_volume(vol, np.eye(4), None), vol)
