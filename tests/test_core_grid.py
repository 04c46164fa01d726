"""Output grid, resampling (vs nilearn.image.resample_img) and left-right mirroring."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from nibabel.affines import apply_affine
from nilearn.image import resample_img

from bids_app.core import grid, mirror


def test_output_grid_3mm_spm_box():
    shape, affine = grid.output_grid(3.0)
    assert shape == (61, 73, 61)
    assert np.all(np.diag(affine)[:3] > 0)
    corners = apply_affine(affine, [[0, 0, 0], [60, 72, 60]])
    np.testing.assert_allclose(corners, [[-90, -126, -72], [90, 90, 108]])
    xs = apply_affine(affine, np.c_[np.arange(61), np.zeros(61), np.zeros(61)])[:, 0]
    np.testing.assert_allclose(xs, -xs[::-1])  # symmetric about x = 0
    assert xs[30] == 0.0
    assert mirror.is_symmetric_grid(shape, affine)


def test_output_grid_2mm_and_errors():
    shape, affine = grid.output_grid(2)
    assert shape == (91, 109, 91)
    np.testing.assert_allclose(apply_affine(affine, [90, 108, 90]), [90, 90, 108])
    with pytest.raises(ValueError, match="does not divide"):
        grid.output_grid(5.0)
    with pytest.raises(ValueError, match="resolution must be a positive"):
        grid.output_grid(0)


def _src_image(rng):
    """A smooth field on an oblique, anisotropic source grid."""
    shape = (9, 11, 8)
    theta = 0.2
    rot = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([2.0, 2.5, 3.0])
    affine[:3, 3] = [-8.0, -12.0, -10.0]
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = apply_affine(affine, ijk)
    data = np.sin(xyz[:, 0] / 5) + np.cos(xyz[:, 1] / 7) + 0.05 * xyz[:, 2]
    data = data.reshape(shape) + 0.1 * rng.standard_normal(shape)
    return data, affine


@pytest.mark.parametrize(("interp", "order"), [("continuous", 3), ("linear", 1), ("nearest", 0)])
def test_resample_volume_matches_nilearn(interp, order):
    data, src_affine = _src_image(np.random.default_rng(0))
    target_shape = (6, 7, 5)
    target_affine = np.diag([3.0, 3.0, 3.0, 1.0])
    target_affine[:3, 3] = [-9.0, -4.0, -6.0]
    got = grid.resample_volume(data, src_affine, target_shape, target_affine, order=order)
    ref = resample_img(
        nib.Nifti1Image(data, src_affine),
        target_affine=target_affine,
        target_shape=target_shape,
        interpolation=interp,
        force_resample=True,
        copy_header=True,
    ).get_fdata()
    # the interior: target voxels whose source position is well inside the source grid
    ijk = apply_affine(np.linalg.inv(src_affine) @ target_affine, np.indices(target_shape).T)
    interior = np.all((ijk > 1) & (ijk < np.array(data.shape) - 2), axis=-1).T
    assert interior.sum() > 20
    np.testing.assert_allclose(got[interior], ref[interior], rtol=1e-6, atol=1e-9)


def test_resample_series_accepts_dataobj(tmp_path):
    rng = np.random.default_rng(1)
    data3, src_affine = _src_image(rng)
    series = np.stack([data3 * (t + 1) for t in range(4)], axis=-1).astype(np.float32)
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(series, src_affine), path)
    proxy = nib.load(path).dataobj
    target_shape, target_affine = (5, 6, 4), np.diag([4.0, 4.0, 4.0, 1.0])
    target_affine[:3, 3] = [-8, -6, -4]
    got = grid.resample_series(proxy, src_affine, target_shape, target_affine)
    assert got.shape == target_shape + (4,) and got.dtype == np.float32
    ref = resample_img(
        nib.Nifti1Image(series.astype(np.float64), src_affine),
        target_affine=target_affine,
        target_shape=target_shape,
        interpolation="linear",
        force_resample=True,
        copy_header=True,
    ).get_fdata()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_resample_mask_threshold_and_nearest():
    src_affine = np.diag([1.0, 1.0, 1.0, 1.0])
    mask = np.zeros((12, 12, 12), dtype=bool)
    mask[2:10, 3:9, 4:11] = True
    target_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    target_affine[:3, 3] = 0.5  # target centres halfway between source centres
    got = grid.resample_mask(mask, src_affine, (6, 6, 6), target_affine)
    # independent: the trilinear value at a point halfway between 2 voxels per axis is the
    # mean of the 2x2x2 block, keep it when > 0.5 (outside the source -> 0)
    ref = np.zeros((6, 6, 6), dtype=bool)
    for i, j, k in np.ndindex(6, 6, 6):
        block = mask[2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 2 * k : 2 * k + 2]
        if block.shape == (2, 2, 2):
            ref[i, j, k] = block.mean() > 0.5
    np.testing.assert_array_equal(got, ref)
    with pytest.raises(ValueError, match="threshold must be in"):
        grid.resample_mask(mask, src_affine, (6, 6, 6), target_affine, threshold=1.5)


def test_resample_does_not_mutate():
    data, src_affine = _src_image(np.random.default_rng(2))
    before = data.copy()
    grid.resample_volume(data, src_affine, (4, 4, 4), np.eye(4))
    np.testing.assert_array_equal(data, before)


def _blob_at(shape, affine, centre_mm, radius_mm=4.0):
    xyz = apply_affine(affine, np.indices(shape).reshape(3, -1).T).reshape(shape + (3,))
    return np.linalg.norm(xyz - np.asarray(centre_mm), axis=-1) <= radius_mm


@pytest.mark.parametrize("res", [3.0, 2.0])
def test_mirror_moves_blob_to_other_hemisphere(res):
    shape, affine = grid.output_grid(res)
    blob = _blob_at(shape, affine, (30.0, -18.0, 54.0))
    flipped = mirror.mirror_lr(blob, affine)
    idx = np.argwhere(flipped)
    centre = apply_affine(affine, idx).mean(axis=0)
    np.testing.assert_allclose(centre, [-30.0, -18.0, 54.0], atol=1e-9)
    np.testing.assert_array_equal(flipped, _blob_at(shape, affine, (-30.0, -18.0, 54.0)))
    assert blob.sum() == flipped.sum() and blob[idx[0][0], idx[0][1], idx[0][2]] == 0


def test_mirror_4d_and_axis_permutation():
    # x stored on voxel axis 1 (a permuted but symmetric grid), with a 4th (time) axis
    affine = np.array([[0, 2, 0, -5], [2, 0, 0, -3], [0, 0, 2, 1], [0, 0, 0, 1.0]])
    shape = (4, 6, 3)
    assert mirror.is_symmetric_grid(shape, affine)
    data = np.random.default_rng(3).standard_normal(shape + (5,))
    before = data.copy()
    out = mirror.mirror_lr(data, affine)
    np.testing.assert_array_equal(data, before)
    for ijk in np.ndindex(shape):
        x, y, z = apply_affine(affine, ijk)
        src = np.round(np.linalg.solve(affine[:3, :3], [-x, y, z] - affine[:3, 3])).astype(int)
        np.testing.assert_array_equal(out[ijk], data[tuple(src)])


def test_mirror_rejects_asymmetric_grids():
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-87.0, -126, -72]  # x from -87 to 93
    assert not mirror.is_symmetric_grid((61, 73, 61), affine)
    with pytest.raises(ValueError, match="symmetric about x = 0"):
        mirror.mirror_lr(np.zeros((61, 73, 61)), affine)
    oblique = np.eye(4)
    oblique[0, 1] = 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not mirror.is_symmetric_grid((3, 3, 3), oblique)
