"""Builders of tiny raw-BIDS + fMRIPrep-derivative datasets for tests (not a test module)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

NILEARN_FMRIPREP = Path(__import__("nilearn").__file__).parent / "interfaces" / "fmriprep" / "data"
_REAL_CONFOUNDS = NILEARN_FMRIPREP / "test-v21_desc-confounds_timeseries.tsv"
GRID = (5, 6, 7)


def affine(zooms: float = 2.0, shift: float = 0.0) -> np.ndarray:
    """A simple RAS affine with isotropic ``zooms``."""
    aff = np.diag([zooms, zooms, zooms, 1.0])
    aff[:3, 3] = [-4.0 + shift, -5.0, -6.0]
    return aff


def write_nifti(path: Path, shape, aff=None, *, seed: int = 0, dtype=np.float32) -> Path:
    """Write a small random NIfTI image (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).random(shape)
    data = (data > 0.3 if dtype == np.uint8 else data).astype(dtype)
    img = nib.Nifti1Image(data, affine() if aff is None else aff)
    if len(shape) == 4:
        img.header.set_xyzt_units("mm", "sec")
        img.header["pixdim"][4] = 2.0
    nib.save(img, path)
    return path


def write_json(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def write_confounds(path: Path, n_rows: int, *, seed: int = 0, n_nonsteady: int = 0) -> Path:
    """Confounds with the column names of nilearn's real fMRIPrep v21 file."""
    columns = [c for c in pd.read_csv(_REAL_CONFOUNDS, sep="\t", nrows=0).columns]
    columns = [c for c in columns if not c.startswith("non_steady_state_outlier")]
    values = np.random.default_rng(seed).normal(size=(n_rows, len(columns)))
    table = pd.DataFrame(values, columns=columns)
    for col in columns:
        if "derivative1" in col or col in ("framewise_displacement", "dvars", "std_dvars", "rmsd"):
            table.loc[0, col] = np.nan
    for k in range(n_nonsteady):
        table[f"non_steady_state_outlier{k:02d}"] = np.eye(n_rows)[k]
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path


def make_raw(bids_dir: Path, participants: list[dict] | None = None, *, tr: float | None = 2.0):
    """Raw BIDS root: dataset_description, participants.tsv, top-level task sidecar."""
    write_json(bids_dir / "dataset_description.json", {"Name": "raw", "BIDSVersion": "1.8.0"})
    if participants is not None:
        pd.DataFrame(participants).to_csv(bids_dir / "participants.tsv", sep="\t", index=False)
    if tr is not None:
        write_json(bids_dir / "task-rest_bold.json", {"RepetitionTime": tr, "TaskName": "rest"})
    return bids_dir


def make_derivatives_root(root: Path, name: str = "fMRIPrep") -> Path:
    write_json(
        root / "dataset_description.json",
        {
            "Name": name,
            "BIDSVersion": "1.8.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": name}],
        },
    )
    return root


def run_stem(sub: str, ses: str | None, task: str, extra: dict | None = None) -> str:
    parts = [f"sub-{sub}"] + ([f"ses-{ses}"] if ses else []) + [f"task-{task}"]
    parts += [f"{k}-{v}" for k, v in (extra or {}).items()]
    return "_".join(parts)


def add_run(
    fmriprep_dir: Path,
    sub: str,
    *,
    ses: str | None = None,
    task: str = "rest",
    extra: dict | None = None,
    space: str = "MNI152NLin2009cAsym",
    res: str | None = "2",
    grid=GRID,
    n_vols: int = 30,
    tr: float | None = 2.0,
    confounds: str | None = "timeseries",
    n_conf_rows: int | None = None,
    mask: bool = True,
    mask_affine=None,
    bids_dir: Path | None = None,
    seed: int = 0,
) -> dict:
    """Add one fMRIPrep BOLD run (bold, sidecar, mask, confounds); return the paths."""
    stem = run_stem(sub, ses, task, extra)
    func = fmriprep_dir / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "func"
    sp = f"space-{space}" + (f"_res-{res}" if res else "")
    paths = {"bold": func / f"{stem}_{sp}_desc-preproc_bold.nii.gz"}
    write_nifti(paths["bold"], (*grid, n_vols), seed=seed)
    paths["bold_json"] = write_json(
        func / f"{stem}_{sp}_desc-preproc_bold.json",
        {"RepetitionTime": tr, "SkullStripped": False} if tr else {"SkullStripped": False},
    )
    if mask:
        paths["mask"] = write_nifti(
            func / f"{stem}_{sp}_desc-brain_mask.nii.gz",
            grid,
            mask_affine,
            dtype=np.uint8,
        )
    if confounds:
        paths["confounds"] = write_confounds(
            func / f"{stem}_desc-confounds_{confounds}.tsv", n_conf_rows or n_vols, seed=seed
        )
    if bids_dir is not None:
        raw_func = bids_dir / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "func"
        paths["raw_bold"] = write_nifti(raw_func / f"{stem}_bold.nii.gz", (2, 2, 2, 2))
    return paths


def listing(*roots: Path) -> set[str]:
    """Every path (files and folders) under ``roots``, with its size and mtime."""
    out = set()
    for root in roots:
        for p in sorted(root.rglob("*")):
            st = p.stat()
            out.add(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return out
