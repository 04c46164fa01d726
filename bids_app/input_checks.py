"""NIfTI integrity checks and the constants shared by the input-discovery modules.

Used by :mod:`bids_app.inputs` (BOLD runs, brain masks) and :mod:`bids_app.lesion_inputs`
(lesion masks), so that neither depends on the other's helpers.
"""

from __future__ import annotations

from pathlib import Path

from bids_app.errors import InputError

#: Template spaces of the fMRIPrep outputs, in order of preference.
SPACE_PREFERENCE = ("MNI152NLin2009cAsym", "MNI152NLin6Asym", "MNI152NLin2009cSym")
#: pybids ``extension`` query of NIfTI images.
NIFTI_EXTENSIONS = [".nii.gz", ".nii"]


def check_nifti(path: Path) -> tuple[tuple[int, ...], object]:
    """Check that a NIfTI file is readable and complete; return its shape and affine.

    Only the header is parsed and the last volume read: for ``.nii`` the file size is
    compared with header offset + data size; for ``.nii.gz`` reading the last volume through
    ``dataobj`` decompresses the stream to its end, which detects truncation cheaply enough.

    Parameters
    ----------
    path : Path
        A ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    shape : tuple of int
    affine : numpy.ndarray

    Raises
    ------
    InputError
        If the file cannot be read or is truncated.
    """
    import nibabel as nib
    import numpy as np

    try:
        img = nib.load(str(path))
        shape, affine = tuple(int(n) for n in img.shape), img.affine
    except Exception as exc:
        raise InputError(f"unreadable NIfTI file ({exc})", path) from exc
    try:
        header = img.header
        offset = int(getattr(img.dataobj, "offset", header.get_data_offset()))
        needed = offset + int(np.prod(shape)) * header.get_data_dtype().itemsize
        if str(path).endswith(".gz"):
            # A complete single-member gzip ends with ISIZE = uncompressed size mod 2**32:
            # when it matches, the stream is whole without decompressing it (a 300 MB BOLD
            # takes seconds). Otherwise (multi-member gzip, or truncation) read to the end.
            if _gzip_isize(path) != needed % 2**32:
                np.asarray(img.dataobj[(Ellipsis, -1)])
        elif Path(path).stat().st_size < needed:
            raise OSError(f"file has {Path(path).stat().st_size} bytes, header needs {needed}")
    except Exception as exc:
        raise InputError(f"truncated or corrupt NIfTI file ({exc})", path) from exc
    return shape, affine


def _gzip_isize(path: Path) -> int:
    """The ISIZE field of a gzip file (its last 4 bytes, little-endian)."""
    with open(path, "rb") as fh:
        fh.seek(-4, 2)
        return int.from_bytes(fh.read(4), "little")
