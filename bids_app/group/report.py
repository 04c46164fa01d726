"""Group-level outputs for humans: tables with JSON sidecars, maps, figures, the HTML page.

``write_group_report`` writes ONE self-contained page ``output_dir/group.html`` (inline CSS,
no scripts, no network) whose figures are PNG files under ``output_dir/group/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


# ----------------------------------------------------------------------------- files
def write_table(df: pd.DataFrame, path: Path, columns: dict, extra: dict | None = None) -> Path:
    """Write ``df`` as TSV (``n/a`` for missing) and a JSON sidecar describing its columns.

    Parameters
    ----------
    df : DataFrame
    path : Path
        ``.tsv`` path; the sidecar is the same name with ``.json``.
    columns : dict
        Column name -> description (every column of ``df`` must be described).
    extra : dict, optional
        Additional top-level sidecar entries (e.g. the atlas name and version).
    """
    from bids_app.outputs import atomic_write_json, atomic_write_text

    missing = [c for c in df.columns if c not in columns]
    if missing:
        raise ValueError(f"columns without description for {Path(path).name}: {missing}")
    path = Path(path)
    atomic_write_text(path, df.to_csv(sep="\t", index=False, na_rep="n/a"))
    sidecar = {c: {"Description": columns[c]} for c in df.columns}
    sidecar.update(extra or {})
    atomic_write_json(path.with_suffix(".json"), sidecar)
    return path


def save_map(volume: np.ndarray, affine: np.ndarray, stem: Path, dtype=np.float32) -> Path:
    """Save a 3D volume as ``<stem>.nii.gz`` (atomic); returns the path."""
    import nibabel as nib

    from bids_app.outputs import atomic_save_nifti

    img = nib.Nifti1Image(np.asarray(volume, dtype=dtype), np.asarray(affine, dtype=float))
    img.header.set_xyzt_units("mm")
    path = Path(str(stem) + ".nii.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save_nifti(img, path)


def save_montage(
    volume: np.ndarray,
    path: Path,
    *,
    title: str = "",
    symmetric: bool = False,
    n_slices: int = 8,
    cmap: str | None = None,
) -> Path:
    """Axial slice montage (PNG, matplotlib Agg) of a 3D volume in voxel order (RAS grid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vol = np.asarray(volume, dtype=float)
    if vol.ndim != 3:
        raise ValueError(f"volume must be 3D, got shape {vol.shape}")
    nz = np.flatnonzero(np.abs(vol).sum(axis=(0, 1)) > 0)
    lo, hi = (nz[0], nz[-1]) if nz.size else (0, vol.shape[2] - 1)
    zs = np.unique(np.linspace(lo, hi, min(n_slices, hi - lo + 1)).round().astype(int))
    vmax = float(np.abs(vol).max()) or 1.0
    vmin = -vmax if symmetric else 0.0
    cmap = cmap or ("RdBu_r" if symmetric else "hot")
    fig, axes = plt.subplots(1, zs.size, figsize=(1.6 * zs.size + 0.8, 2.3), squeeze=False)
    for ax, z in zip(axes[0], zs, strict=True):
        im = ax.imshow(vol[:, :, z].T, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(f"z={z}", fontsize=7)
        ax.axis("off")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
