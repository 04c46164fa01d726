"""A masked, compact, memory-mapped cache of every window's dFC map.

Layout of ``cache_dir``::

    data.dat       raw (n_rows, n_mask_voxels) array, C order, float16 (default) or float32
    index.tsv      row, subject, run_key, window (0-based within run), label
    mask.nii.gz    the cache mask: intersection of the included participants' brain masks
    manifest.json  inputs (paths, sizes, mtimes), dtype, subjects, shape/affine, labels

The cache is reused while the manifest matches (same input files, sizes, mtimes, dtype and
subjects), otherwise rebuilt; a change of labels only (e.g. another ``severe_max``) rewrites
the index. A build writes into a temporary sibling directory that is renamed into place, and
reads one run at a time, so memory stays bounded by one run.

Precision: float16 keeps 11 significant bits, i.e. a relative rounding error <= 2**-11
(about 4.9e-4) for |z| >= 6.1e-5 (float16's smallest normal number; below it the absolute
error is <= 3e-8). Fisher z of correlations (|z| <= ~19 for r clipped at 1 - 1e-16) are far
within float16's range; values are nevertheless clipped to +-65504 (float16 max) and
non-finite values (NaN) inside the mask are stored as 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.errors import InputError

CACHE_VERSION = 1
_DTYPES = {"float16": np.float16, "float32": np.float32}
_INDEX_COLUMNS = ["row", "subject", "run_key", "window", "label"]


@dataclass
class GroupCache:
    """An opened cache (see the module docstring for its layout)."""

    root: Path
    mask: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]
    index: pd.DataFrame
    data: np.memmap

    def __getstate__(self) -> dict:
        # Pickle (e.g. to DataLoader workers under "spawn") without copying the data.
        state = self.__dict__.copy()
        data = state.pop("data")
        state["_data_spec"] = (str(data.filename), data.dtype.str, data.shape)
        return state

    def __setstate__(self, state: dict) -> None:
        filename, dtype, shape = state.pop("_data_spec")
        self.__dict__.update(state)
        self.data = np.memmap(filename, dtype=np.dtype(dtype), mode="r", shape=tuple(shape))

    @property
    def n_voxels(self) -> int:
        """Number of voxels in the cache mask."""
        return int(self.data.shape[1])

    def _rows(self, rows) -> np.ndarray:
        rows = np.asarray(rows)
        if rows.ndim != 1:
            raise ValueError(f"rows must be 1D, got shape {rows.shape}")
        if rows.size and not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"rows must be integers, got dtype {rows.dtype}")
        n = self.data.shape[0]
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"rows must be in [0, {n}), got range [{rows.min()}, {rows.max()}]")
        return rows.astype(np.int64)

    def vectors(self, rows) -> np.ndarray:
        """Masked maps of ``rows`` as float32 ``(len(rows), n_voxels)``.

        Rows are read in ascending order (sequential disk access) and returned in the
        order requested; duplicates are allowed.
        """
        rows = self._rows(rows)
        out = np.empty((rows.size, self.data.shape[1]), dtype=np.float32)
        if rows.size == 0:
            return out
        order = np.argsort(rows, kind="stable")
        out[order] = self.data[rows[order]]
        return out

    def volumes(self, rows) -> np.ndarray:
        """Maps of ``rows`` as float32 ``(len(rows), *shape)``, zeros outside the mask."""
        return self.unmask(self.vectors(rows))

    def unmask(self, vectors) -> np.ndarray:
        """Put ``(..., n_voxels)`` vectors back on the grid: ``(..., *shape)``, 0 outside."""
        vectors = np.asarray(vectors)
        if vectors.shape[-1:] != (self.n_voxels,):
            raise ValueError(
                f"vectors must end with {self.n_voxels} voxels, got shape {vectors.shape}"
            )
        dtype = np.result_type(vectors.dtype, np.float32)
        out = np.zeros(vectors.shape[:-1] + tuple(self.shape), dtype=dtype)
        out[..., self.mask] = vectors
        return out


def _file_stamp(path: Path | None) -> dict | None:
    if path is None:
        return None
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _manifest(cohort, dtype: str) -> dict:
    labels = dict(zip(cohort.table["subject"], cohort.table["label"], strict=True))
    runs = [
        {
            "subject": r.subject,
            "run_key": r.run_key,
            "n_windows": int(r.n_windows),
            "dfc": _file_stamp(r.dfc_path),
            "mask": _file_stamp(r.mask_path),
        }
        for r in cohort.runs
    ]
    return {
        "inputs": {
            "version": CACHE_VERSION,
            "dtype": dtype,
            "shape": [int(n) for n in cohort.shape],
            "affine": np.round(np.asarray(cohort.affine, dtype=float), 6).tolist(),
            "subjects": sorted({r.subject for r in cohort.runs}),
            "runs": runs,
        },
        "labels": {s: int(labels[s]) for s in sorted({r.subject for r in cohort.runs})},
    }


def _index(cohort) -> pd.DataFrame:
    labels = dict(zip(cohort.table["subject"], cohort.table["label"], strict=True))
    parts = []
    for run in cohort.runs:
        n = int(run.n_windows)
        parts.append(
            pd.DataFrame(
                {
                    "subject": [run.subject] * n,
                    "run_key": [run.run_key] * n,
                    "window": np.arange(n),
                    "label": [int(labels[run.subject])] * n,
                }
            )
        )
    index = pd.concat(parts, ignore_index=True)
    index.insert(0, "row", np.arange(len(index)))
    return index


def _read_mask(path: Path, shape) -> np.ndarray:
    import nibabel as nib

    data = np.asanyarray(nib.load(path).dataobj)
    if data.shape[:3] != tuple(shape):
        raise InputError(f"brain mask shape {data.shape} differs from the grid {shape}", path)
    return data.reshape(tuple(shape)) > 0


def _read_run(path: Path, shape, n_windows: int) -> np.ndarray:
    import nibabel as nib

    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 3:
        data = data[..., None]
    if data.shape != (*shape, n_windows):
        raise InputError(f"dFC maps have shape {data.shape}, expected {(*shape, n_windows)}", path)
    return data


def _write_index(index: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    index.to_csv(tmp, sep="\t", index=False)
    os.replace(tmp, path)


def _build(cohort, root: Path, dtype: str, manifest: dict) -> None:
    import nibabel as nib

    shape = tuple(cohort.shape)
    mask = np.ones(shape, dtype=bool)
    for run in cohort.runs:
        mask &= _read_mask(run.mask_path, shape)
    if not mask.any():
        raise InputError(
            "the intersection of the included participants' brain masks is empty",
            cohort.runs[0].mask_path,
        )
    index = _index(cohort)
    mm = np.memmap(
        root / "data.dat", dtype=_DTYPES[dtype], mode="w+", shape=(len(index), int(mask.sum()))
    )
    limit = float(np.finfo(_DTYPES[dtype]).max)
    start = 0
    for run in cohort.runs:
        maps = _read_run(run.dfc_path, shape, int(run.n_windows))
        vectors = maps[mask].T  # (n_windows, n_vox)
        vectors = np.nan_to_num(vectors, nan=0.0, posinf=limit, neginf=-limit)
        mm[start : start + vectors.shape[0]] = np.clip(vectors, -limit, limit)
        start += vectors.shape[0]
        del maps, vectors
    mm.flush()
    del mm
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), np.asarray(cohort.affine))
    nib.save(mask_img, root / "mask.nii.gz")
    _write_index(index, root / "index.tsv")
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _swap_in(tmp: Path, cache_dir: Path) -> None:
    old = None
    if cache_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.old-", dir=cache_dir.parent))
        os.replace(cache_dir, old / cache_dir.name)
    os.replace(tmp, cache_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_cache(cohort, cache_dir: Path, *, dtype: str = "float16") -> GroupCache:
    """Build (or reuse) the window cache of ``cohort``'s included runs.

    Parameters
    ----------
    cohort : Cohort
        From :func:`bids_app.group.cohort.load_cohort`.
    cache_dir : Path
        Cache directory (created; replaced atomically on rebuild).
    dtype : {"float16", "float32"}
        Storage type (see the module docstring for the float16 rounding error).

    Returns
    -------
    GroupCache
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if not cohort.runs:
        raise ValueError("cohort has no included runs (every participant was excluded)")
    cache_dir = Path(cache_dir)
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    # Several jobs (e.g. one SLURM job per CNN fold) may start at once: one builds while the
    # others wait on the lock, then find a matching manifest and reuse the cache.
    with _build_lock(cache_dir):
        return _build_or_reuse(cohort, cache_dir, dtype)


@contextlib.contextmanager
def _build_lock(cache_dir: Path):
    import fcntl

    with open(cache_dir.parent / f".{cache_dir.name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build_or_reuse(cohort, cache_dir: Path, dtype: str) -> GroupCache:
    manifest = _manifest(cohort, dtype)
    existing = cache_dir / "manifest.json"
    if existing.is_file() and (cache_dir / "data.dat").is_file():
        try:
            old = json.loads(existing.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("inputs") == manifest["inputs"]:
            if old.get("labels") != manifest["labels"]:
                _write_index(_index(cohort), cache_dir / "index.tsv")
                existing.write_text(json.dumps(manifest, indent=1))
            return open_cache(cache_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.tmp-", dir=cache_dir.parent))
    try:
        _build(cohort, tmp, dtype, manifest)
        _swap_in(tmp, cache_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return open_cache(cache_dir)


def open_cache(cache_dir: Path) -> GroupCache:
    """Open an existing cache read-only.

    Raises
    ------
    InputError
        When a cache file is missing or inconsistent.
    """
    import nibabel as nib

    cache_dir = Path(cache_dir)
    for name in ("manifest.json", "index.tsv", "mask.nii.gz", "data.dat"):
        if not (cache_dir / name).is_file():
            raise InputError(f"group cache file {name} is missing; rebuild the cache", cache_dir)
    manifest = json.loads((cache_dir / "manifest.json").read_text())["inputs"]
    shape = tuple(int(n) for n in manifest["shape"])
    mask_img = nib.load(cache_dir / "mask.nii.gz")
    mask = np.asanyarray(mask_img.dataobj) > 0
    index = pd.read_csv(cache_dir / "index.tsv", sep="\t", dtype={"subject": str})
    dtype = _DTYPES[manifest["dtype"]]
    n_rows, n_vox = len(index), int(mask.sum())
    expected = n_rows * n_vox * np.dtype(dtype).itemsize
    if (cache_dir / "data.dat").stat().st_size != expected or list(
        index.columns
    ) != _INDEX_COLUMNS:
        raise InputError("group cache is inconsistent (size or index); rebuild it", cache_dir)
    data = np.memmap(cache_dir / "data.dat", dtype=dtype, mode="r", shape=(n_rows, n_vox))
    return GroupCache(
        root=cache_dir,
        mask=mask,
        affine=np.asarray(manifest["affine"], dtype=float),
        shape=shape,
        index=index,
        data=data,
    )
