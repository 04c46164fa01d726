"""Small, fast report figures: arrays in, PNG bytes out.

Every function builds a :class:`matplotlib.figure.Figure` directly on the Agg canvas (no pyplot
state, no display needed) and returns the PNG bytes. Volumes are reoriented to RAS (closest
canonical) before slicing, so x grows to the subject's right (neurological convention).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

DPI = 80
MOTION_TRANSLATIONS = ("trans_x", "trans_y", "trans_z")
MOTION_ROTATIONS = ("rot_x", "rot_y", "rot_z")


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a 3D/4D array to the closest RAS orientation; return (data, new affine)."""
    from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

    ornt = io_orientation(affine)
    out = apply_orientation(np.asarray(data), ornt)
    return out, affine @ inv_ornt_aff(ornt, np.asarray(data).shape[:3])


def seed_voxel(seed_mask: np.ndarray, affine: np.ndarray, seed_mni: Sequence[float]) -> tuple:
    """Voxel (i, j, k) at the seed's centre of mass, else at ``seed_mni`` (clipped to the grid)."""
    mask = np.asarray(seed_mask, dtype=bool)
    if mask.any():
        ijk = np.rint(np.argwhere(mask).mean(axis=0))
    else:
        ijk = np.rint(np.linalg.inv(affine) @ np.append(np.asarray(seed_mni, float), 1.0))[:3]
    return tuple(int(np.clip(v, 0, n - 1)) for v, n in zip(ijk, mask.shape, strict=True))


def _robust(values: np.ndarray, low: float = 2.0, high: float = 98.0) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    vmin, vmax = np.percentile(finite, [low, high])
    return float(vmin), float(vmax if vmax > vmin else vmin + 1.0)


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def seed_figure(
    background: np.ndarray,
    seed_mask: np.ndarray,
    lesion_mask: np.ndarray | None,
    affine: np.ndarray,
    seed_mni: Sequence[float],
) -> bytes:
    """Slices through the seed (top row) and, when there is one, the lesion's centre of mass
    (bottom row): seed in yellow, lesion in red."""
    bg, aff = to_ras(background, affine)
    seed, _ = to_ras(np.asarray(seed_mask, bool), affine)
    lesion = None if lesion_mask is None else to_ras(np.asarray(lesion_mask, bool), affine)[0]
    centres = [seed_voxel(seed, aff, seed_mni)]
    if lesion is not None and lesion.any():
        centres.append(tuple(int(v) for v in np.rint(np.argwhere(lesion).mean(axis=0))))
    vmin, vmax = _robust(bg)
    fig = _new_figure(7.5, 2.8 * len(centres))
    for row, centre in enumerate(centres):
        _ortho_row(
            fig,
            row,
            len(centres),
            bg,
            (vmin, vmax),
            aff,
            centre,
            [(lesion, "red"), (seed, "yellow")],
        )
    fig.tight_layout()
    return _png(fig)


def _ortho_row(fig, row, n_rows, bg, limits, aff, centre, overlays) -> None:
    """Sagittal, coronal and axial slices through voxel ``centre`` with mask overlays."""
    from matplotlib.colors import ListedColormap

    i, j, k = centre
    vox = np.sqrt((aff[:3, :3] ** 2).sum(axis=0))
    views = [
        ("x", lambda a: a[i, :, :].T, vox[2] / vox[1]),
        ("y", lambda a: a[:, j, :].T, vox[2] / vox[0]),
        ("z", lambda a: a[:, :, k].T, vox[1] / vox[0]),
    ]
    world = aff @ np.array([i, j, k, 1.0])
    for n, (name, cut, aspect) in enumerate(views):
        ax = fig.add_subplot(n_rows, 3, 3 * row + n + 1)
        ax.imshow(
            cut(bg), cmap="gray", vmin=limits[0], vmax=limits[1], origin="lower", aspect=aspect
        )
        for mask, colour in overlays:
            if mask is not None:
                sl = cut(mask)
                ax.imshow(
                    np.ma.masked_where(~sl, sl), cmap=ListedColormap([colour]),
                    origin="lower", aspect=aspect, alpha=0.7, interpolation="nearest",
                )  # fmt: skip
        ax.set_title(f"{name} = {world[n]:.0f} mm", fontsize=8)
        _off(ax)
        if name == "z":
            ax.text(0.02, 0.02, "L", color="w", transform=ax.transAxes, fontsize=8)
            ax.text(0.92, 0.02, "R", color="w", transform=ax.transAxes, fontsize=8)


def _carpet_image(series: np.ndarray, max_rows: int) -> np.ndarray:
    x = np.asarray(series, dtype=float)
    if x.shape[1] > max_rows:
        x = x[:, np.linspace(0, x.shape[1] - 1, max_rows).astype(int)]
    x = x - x.mean(axis=0)
    sd = x.std(axis=0)
    x = np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)
    return x.T


def carpet_figure(before: np.ndarray, after: np.ndarray, tr: float, max_rows: int = 400) -> bytes:
    """Carpet plots (voxels x time, each voxel z-scored) before and after denoising."""
    fig = _new_figure(8.0, 3.0)
    for n, (title, series) in enumerate((("before denoising", before), ("after", after))):
        img = _carpet_image(series, max_rows)
        vmin, vmax = _robust(img)
        ax = fig.add_subplot(1, 2, n + 1)
        t_end = img.shape[1] * tr
        ax.imshow(
            img, cmap="gray", vmin=vmin, vmax=vmax, aspect="auto",
            interpolation="nearest", extent=(0, t_end, img.shape[0], 0),
        )  # fmt: skip
        ax.set_title(f"{title} ({img.shape[1]} volumes)", fontsize=8)
        ax.set_xlabel("time (s)", fontsize=8)
        ax.set_ylabel("voxels", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)


def motion_figure(motion, max_motion: float, tr: float) -> bytes:
    """Translations (mm), rotations (degrees, from radians) with +/- threshold, and FD (mm)."""
    t = np.arange(len(motion)) * tr
    fig = _new_figure(8.0, 4.2)
    axes = [fig.add_subplot(3, 1, n + 1) for n in range(3)]
    for col in MOTION_TRANSLATIONS:
        axes[0].plot(t, motion[col].to_numpy(float), lw=0.8, label=col)
    for col in MOTION_ROTATIONS:
        axes[1].plot(t, np.degrees(motion[col].to_numpy(float)), lw=0.8, label=col)
    for ax, unit in ((axes[0], "mm"), (axes[1], "deg")):
        for sign in (-1, 1):
            ax.axhline(sign * max_motion, color="red", ls="--", lw=0.8)
        ax.set_ylabel(unit, fontsize=8)
        ax.legend(fontsize=6, ncol=3, loc="upper right")
    fd = motion["framewise_displacement"].to_numpy(float)
    axes[2].plot(t, fd, color="k", lw=0.8)
    axes[2].set_ylabel("FD (mm)", fontsize=8)
    axes[2].set_xlabel("time (s)", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)


def _axial_slices(mask: np.ndarray, n: int) -> np.ndarray:
    zs = np.flatnonzero(mask.any(axis=(0, 1)))
    if zs.size == 0:
        zs = np.arange(mask.shape[2])
    return np.unique(np.linspace(zs[0], zs[-1], n + 2)[1:-1].round().astype(int))


def dfc_summary_figure(
    dfc_mean: np.ndarray,
    dfc_std: np.ndarray,
    brain_mask: np.ndarray,
    affine: np.ndarray,
    n_slices: int = 6,
) -> bytes:
    """Axial slices of the mean (top) and standard deviation (bottom) of windowed z maps."""
    mean, _ = to_ras(dfc_mean, affine)
    std, _ = to_ras(dfc_std, affine)
    mask, _ = to_ras(np.asarray(brain_mask, bool), affine)
    zs = _axial_slices(mask, n_slices)
    vmax = float(np.nanpercentile(np.abs(mean[mask]), 99)) if mask.any() else 1.0
    smax = float(np.nanpercentile(std[mask], 99)) if mask.any() else 1.0
    rows = (("mean z", mean, "RdBu_r", -vmax, vmax), ("std z", std, "viridis", 0.0, smax))
    fig = _new_figure(1.3 * len(zs) + 1.0, 3.0)
    grid = fig.subplots(2, len(zs), squeeze=False)
    for r, (label, vol, cmap, lo, hi) in enumerate(rows):
        for c, z in enumerate(zs):
            ax = grid[r, c]
            sl = np.ma.masked_where(~mask[:, :, z].T, vol[:, :, z].T)
            im = ax.imshow(sl, cmap=cmap, vmin=lo, vmax=hi or 1.0, origin="lower")
            _off(ax)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
        fig.colorbar(im, ax=list(grid[r]), shrink=0.8)
    return _png(fig)


def window_strip_figure(
    window_maps: np.ndarray,
    window_indices: Sequence[int],
    window_onsets: Sequence[float],
    brain_mask: np.ndarray,
    seed_mask: np.ndarray,
    affine: np.ndarray,
    seed_mni: Sequence[float],
) -> bytes:
    """One axial slice through the seed for each shown window, titled with index and onset."""
    maps, aff = to_ras(window_maps, affine)
    mask, _ = to_ras(np.asarray(brain_mask, bool), affine)
    seed, _ = to_ras(np.asarray(seed_mask, bool), affine)
    k = seed_voxel(seed, aff, seed_mni)[2]
    inside = maps[mask] if mask.any() else maps.reshape(-1, maps.shape[-1])
    finite = np.abs(inside[np.isfinite(inside)])
    vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    n = maps.shape[-1]
    fig = _new_figure(1.1 * n + 0.8, 1.8)
    for w in range(n):
        ax = fig.add_subplot(1, n, w + 1)
        sl = np.ma.masked_where(~mask[:, :, k].T, maps[:, :, k, w].T)
        im = ax.imshow(sl, cmap="RdBu_r", vmin=-(vmax or 1.0), vmax=vmax or 1.0, origin="lower")
        ax.set_title(f"w{window_indices[w]}\n{window_onsets[w]:g} s", fontsize=7)
        _off(ax)
    fig.colorbar(im, ax=fig.axes, shrink=0.8)
    return _png(fig)


def seed_series_figure(seed_series: np.ndarray, tr: float) -> bytes:
    """The mean seed time series of the denoised data."""
    y = np.asarray(seed_series, dtype=float)
    fig = _new_figure(8.0, 1.8)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(np.arange(y.size) * tr, y, color="C0", lw=0.9)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("seed", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)
