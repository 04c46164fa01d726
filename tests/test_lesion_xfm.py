"""T1w-space lesion masks are carried to the template with fMRIPrep's ITK composite .h5."""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from bids_app.errors import InputError
from bids_app.inputs import RunInputs
from bids_app.prepare import _lesion_on_template


def _write_itk_translation(path: Path, t_lps: tuple[float, float, float]) -> None:
    """An ITK CompositeTransform .h5 holding one affine (identity matrix, translation t_lps)."""
    with h5py.File(path, "w") as f:
        group = f.create_group("TransformGroup")
        comp = group.create_group("0")
        comp["TransformType"] = np.array([b"CompositeTransform_double_3_3"])
        aff = group.create_group("1")
        aff["TransformType"] = np.array([b"AffineTransform_double_3_3"])
        aff["TransformParameters"] = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, *t_lps], dtype=float)
        aff["TransformFixedParameters"] = np.zeros(3)


def _run(tmp_path: Path, xfm: Path) -> RunInputs:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-40.0, -40.0, -40.0]
    mask = tmp_path / "mask.nii.gz"
    nib.Nifti1Image(np.ones((41, 41, 41), np.uint8), affine).to_filename(mask)
    return RunInputs(
        subject="01",
        session=None,
        task="rest",
        entities={"sub": "01", "task": "rest"},
        bold=tmp_path / "bold.nii.gz",
        mask=mask,
        confounds=tmp_path / "confounds.tsv",
        bold_json=None,
        space="MNI152NLin2009cAsym",
        repetition_time=2.0,
        n_volumes=100,
        lesion=tmp_path / "lesion.nii.gz",
        lesion_space="T1w",
        lesion_xfm=xfm,
    )


def _centroid(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    ijk = np.argwhere(mask).mean(axis=0)
    return nib.affines.apply_affine(affine, ijk)


def test_t1w_lesion_moves_by_the_itk_translation(tmp_path):
    # ITK maps reference (fixed) points to moving points in LPS: x_moving = x_fixed + t.
    # In RAS the x and y components change sign, so a lesion at RAS x = +20 in T1w space lands
    # where x_fixed_ras - 10 = 20, i.e. at RAS x = +30 in the template (t_lps x = +10).
    xfm = tmp_path / "from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5"
    _write_itk_translation(xfm, (10.0, 0.0, 4.0))
    t1_affine = np.diag([1.0, 1.0, 1.0, 1.0])
    t1_affine[:3, 3] = [-30.0, -30.0, -30.0]
    lesion = np.zeros((61, 61, 61), bool)
    centre = np.array([20.0, -5.0, 8.0])
    ijk = np.round(centre - t1_affine[:3, 3]).astype(int)
    lesion[ijk[0] - 3 : ijk[0] + 4, ijk[1] - 3 : ijk[1] + 4, ijk[2] - 3 : ijk[2] + 4] = True
    moved, affine = _lesion_on_template(_run(tmp_path, xfm), lesion, t1_affine)
    assert moved.sum() > 0
    # z is not flipped between LPS and RAS: z_moving = z_fixed + 4 -> the lesion moves by -4.
    expected = centre + np.array([10.0, 0.0, -4.0])
    np.testing.assert_allclose(_centroid(moved, affine), expected, atol=1.0)


def test_broken_transform_is_a_clear_error(tmp_path):
    xfm = tmp_path / "from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5"
    xfm.write_bytes(b"not an hdf5 file")
    lesion = np.zeros((5, 5, 5), bool)
    lesion[2, 2, 2] = True
    with pytest.raises(InputError, match="transform"):
        _lesion_on_template(_run(tmp_path, xfm), lesion, np.eye(4))
