"""AAL region labels at MNI coordinates, from the atlas vendored in ``bids_app/data/atlas``.

The atlas is the 116-region AAL (Tzourio-Mazoyer et al. 2002) as distributed with MRIcron
(1 mm MNI grid); see ``bids_app/data/atlas/README.md`` for provenance and licence. It is read
once per process and needs no network and no TemplateFlow home.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from bids_app.errors import InputError

ATLAS_NAME = "AAL"
ATLAS_VERSION = "AAL (116 regions; Tzourio-Mazoyer 2002), MRIcron 1.2.20211006 distribution"
ATLAS_DIR = Path(__file__).resolve().parent.parent / "data" / "atlas"
OUTSIDE = "outside_atlas"


@functools.lru_cache(maxsize=2)
def load_atlas(atlas_dir: str | None = None) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Load the AAL volume, its affine and the index -> name table.

    Parameters
    ----------
    atlas_dir : str, optional
        Folder holding ``aal.nii.gz`` and ``aal_labels.tsv``; the vendored copy by default.

    Returns
    -------
    data : ndarray of int
        3D region indices (0 = outside every region).
    affine : ndarray (4, 4)
        Voxel to MNI mm.
    names : dict
        Region index -> name (``"Angular_R"`` style).

    Raises
    ------
    InputError
        When the atlas files are missing (e.g. a broken installation without package data).
    """
    import nibabel as nib

    folder = ATLAS_DIR if atlas_dir is None else Path(atlas_dir)
    image_path = folder / "aal.nii.gz"
    labels_path = folder / "aal_labels.tsv"
    for path in (image_path, labels_path):
        if not path.is_file():
            raise InputError(
                "AAL atlas file not found; the package data (bids_app/data/atlas) is missing "
                "from this installation: reinstall strokedfc",
                path,
            )
    img = nib.load(str(image_path))
    data = np.asarray(img.dataobj).astype(np.int16)
    names: dict[int, str] = {}
    for line in labels_path.read_text().splitlines()[1:]:
        if line.strip():
            index, name = line.split("\t")[:2]
            names[int(index)] = name
    return data, np.asarray(img.affine, dtype=float), names


def label_at(mni_xyz, *, atlas_dir: str | None = None) -> str:
    """AAL region name at an MNI coordinate (nearest atlas voxel).

    Parameters
    ----------
    mni_xyz : sequence of 3 float
        MNI coordinate in mm.
    atlas_dir : str, optional
        Alternative atlas folder (tests).

    Returns
    -------
    str
        The region name (e.g. ``"Angular_R"``), or ``"outside_atlas"`` when the nearest voxel
        is unlabelled or outside the atlas field of view.
    """
    xyz = np.asarray(mni_xyz, dtype=float).ravel()
    if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
        raise ValueError(f"mni_xyz must be 3 finite numbers, got {mni_xyz!r}")
    data, affine, names = load_atlas(atlas_dir)
    ijk = np.rint(np.linalg.solve(affine, np.r_[xyz, 1.0])[:3]).astype(int)
    if np.any(ijk < 0) or np.any(ijk >= np.asarray(data.shape)):
        return OUTSIDE
    return names.get(int(data[tuple(ijk)]), OUTSIDE)


def voxel_to_mni(ijk, affine: np.ndarray) -> tuple[float, float, float]:
    """World (MNI mm) coordinate of a voxel index on a grid with ``affine``."""
    ijk = np.asarray(ijk, dtype=float).ravel()
    if ijk.shape != (3,):
        raise ValueError(f"ijk must have 3 entries, got {ijk.tolist()}")
    x, y, z = (np.asarray(affine, dtype=float) @ np.r_[ijk, 1.0])[:3]
    return float(x), float(y), float(z)
