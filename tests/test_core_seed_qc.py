"""Seed sphere / mask / series, motion summaries and lesion helpers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from bids_app.core import lesion, qc, seed


def _affine(sizes=(3.0, 3.0, 3.0), origin=(-9.0, -12.0, -6.0)):
    a = np.diag([*sizes, 1.0])
    a[:3, 3] = origin
    return a


@pytest.mark.parametrize(
    ("sizes", "centre", "radius"),
    [((3.0, 3.0, 3.0), (0.0, 0.0, 0.0), 6.0), ((2.0, 3.0, 2.5), (1.3, -2.2, 4.1), 5.5)],
)
def test_sphere_voxel_count_matches_independent_count(sizes, centre, radius):
    shape = (9, 10, 11)
    affine = _affine(sizes)
    got = seed.sphere_mask(shape, affine, centre, radius)
    count = 0
    for i, j, k in itertools.product(*(range(n) for n in shape)):
        x = affine[0, 3] + sizes[0] * i
        y = affine[1, 3] + sizes[1] * j
        z = affine[2, 3] + sizes[2] * k
        inside = math.dist((x, y, z), centre) <= radius
        count += inside
        assert got[i, j, k] == inside
    assert got.sum() == count > 1


def test_sphere_paper_seed_on_3mm_grid():
    """Radius 6 mm on a 3 mm grid centred on a voxel: the 33 voxels with |d|^2 <= 4 (in voxels)."""
    affine = _affine(origin=(-90, -126, -72))
    got = seed.sphere_mask((61, 73, 61), affine, (-39.0, -21.0, 57.0), 6.0)
    offsets = [o for o in itertools.product(range(-2, 3), repeat=3) if sum(v * v for v in o) <= 4]
    assert got.sum() == len(offsets) == 33


def test_sphere_small_radius_is_nearest_voxel():
    affine = _affine()
    got = seed.sphere_mask((5, 6, 7), affine, (-4.4, -5.0, 1.6), 1.0)
    assert got.sum() == 1
    assert got[2, 2, 3]  # x: (-4.4+9)/3=1.53->2, y: (-5+12)/3=2.33->2, z: (1.6+6)/3=2.53->3
    with pytest.raises(ValueError, match="contains no voxel"):
        seed.sphere_mask((5, 6, 7), affine, (500.0, 0.0, 0.0), 4.0)


def test_seed_mask_and_errors():
    sphere = np.zeros((4, 4, 4), dtype=bool)
    sphere[1:3, 1:3, 1:3] = True  # 8 voxels
    brain = np.ones_like(sphere)
    brain[1, :, :] = False  # 4 sphere voxels remain in brain
    lesion_mask = np.zeros_like(sphere)
    lesion_mask[2, 1, 1] = True
    got = seed.seed_mask(sphere, brain, lesion_mask)
    want = sphere & brain & ~lesion_mask
    np.testing.assert_array_equal(got, want)
    assert got.sum() == 3
    with pytest.raises(ValueError, match="lies outside the brain mask"):
        seed.seed_mask(sphere, np.zeros_like(sphere))
    lesion_mask[2, 1:3, 1:3] = True  # all 4 in-brain sphere voxels
    with pytest.raises(ValueError, match="100% of the seed is lesioned"):
        seed.seed_mask(sphere, brain, lesion_mask)
    lesion_mask[2, 2, 2] = False  # 3 of 4
    with pytest.raises(ValueError, match="75% of the seed is lesioned"):
        seed.seed_mask(sphere, brain, lesion_mask)
    with pytest.raises(ValueError, match="seed mask is empty"):
        seed.seed_mask(sphere, brain, np.ones_like(sphere), max_lesion_fraction=1.0)


def test_seed_timeseries_2d_and_4d():
    rng = np.random.default_rng(0)
    data4 = rng.standard_normal((3, 4, 5, 12))
    mask = np.zeros((3, 4, 5), dtype=bool)
    mask[0, 1, 2] = mask[2, 3, 4] = mask[1, 1, 1] = True
    want = (data4[0, 1, 2] + data4[2, 3, 4] + data4[1, 1, 1]) / 3
    np.testing.assert_allclose(seed.seed_timeseries(data4, mask), want, rtol=1e-12)
    data2 = data4.reshape(-1, 12).T
    np.testing.assert_allclose(seed.seed_timeseries(data2, mask.ravel()), want, rtol=1e-12)
    with pytest.raises(ValueError, match="does not match"):
        seed.seed_timeseries(data2, mask)


def test_motion_summary_degrees_on_hand_made_frame():
    frame = pd.DataFrame(
        {
            "trans_x": [0.0, 0.5, -1.2],
            "trans_y": [0.1, 0.0, 0.3],
            "trans_z": [0.0, 0.2, 0.0],
            "rot_x": [0.0, 0.01, 0.0],
            "rot_y": [0.0, -0.04, 0.02],  # 0.04 rad = 2.2918 deg
            "rot_z": [0.0, 0.0, 0.0],
            "framewise_displacement": [np.nan, 1.0, 2.0],
        }
    )
    out = qc.motion_summary(frame)
    assert out["MaxTranslation"] == pytest.approx(1.2)
    assert out["MaxRotation"] == pytest.approx(0.04 * 180 / math.pi)
    assert out["MeanFD"] == pytest.approx(1.5)
    assert qc.is_high_motion(out, 2.0)  # rotation 2.29 deg > 2
    assert not qc.is_high_motion(out, 2.5)


def test_motion_summary_power_fd_without_column():
    frame = pd.DataFrame(
        {
            "trans_x": [0.0, 0.1, 0.1],
            "trans_y": [0.0, 0.0, -0.2],
            "trans_z": [0.0, 0.0, 0.0],
            "rot_x": [0.0, 0.002, 0.002],
            "rot_y": [0.0, 0.0, 0.0],
            "rot_z": [0.0, 0.0, 0.001],
        }
    )
    # frame 1: 0.1 + 50 * 0.002 = 0.2; frame 2: 0.2 + 50 * 0.001 = 0.25
    assert qc.motion_summary(frame)["MeanFD"] == pytest.approx(0.225)
    with pytest.raises(ValueError, match="lacks motion columns"):
        qc.motion_summary(frame.drop(columns="rot_z"))


def test_lesion_volume_and_side():
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [-10.0, 0.0, 0.0]  # x from -10 to +10 on 11 voxels
    mask = np.zeros((11, 4, 4), dtype=np.uint8)
    mask[1:3, 1, 1] = 1  # x = -8, -6
    mask[8, 1:3, 1] = 1  # x = +6
    mask[5, 0, 0] = 1  # x = 0, midline
    assert lesion.lesion_volume_ml(mask, affine) == pytest.approx(5 * 12 / 1000)  # 5 x 12 mm3
    assert lesion.lesion_side(mask, affine) == "n/a"  # 2 left vs 2 right: tie
    mask[9, 1, 1] = 1
    assert lesion.lesion_side(mask, affine) == "R"
    flipped = np.diag([-2.0, 2.0, 3.0, 1.0])  # LAS storage: voxel i at x = 10 - 2 i
    flipped[:3, 3] = [10.0, 0.0, 0.0]
    assert lesion.lesion_side(mask, flipped) == "L"
    assert lesion.lesion_side(np.zeros((3, 3, 3)), affine) == "n/a"


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("L", "L"),
        (" left ", "L"),
        ("RIGHT", "R"),
        ("r\t", "R"),
        (float("nan"), "n/a"),
        ("", "n/a"),
        ("n/a", "n/a"),
        (None, "n/a"),
        (pd.NA, "n/a"),
    ],
)
def test_normalise_side(value, want):
    assert lesion.normalise_side(value) == want


@pytest.mark.parametrize("value", ["both", "lr", 1])
def test_normalise_side_rejects(value):
    with pytest.raises(ValueError, match="lesion side must be"):
        lesion.normalise_side(value)
