"""File layout of the synthetic demo data: raw BIDS, fMRIPrep derivatives, lesion masks.

Writes what :func:`bids_app.demo.synthetic.generate_dataset` simulates: NIfTI images
(byte-reproducible), JSON sidecars, TSV tables (``participants.tsv``, confounds) and the
dataset-level description files; also prepares (and guards) the output folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bids_app.demo import _signals as sig
from bids_app.errors import InputError


def prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``out_dir`` unless it is a previous demo and ``overwrite`` is set."""
    import shutil

    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a directory", out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise InputError("directory is not empty (use --overwrite to replace it)", out_dir)
        if not (out_dir / "code" / "groundtruth.json").is_file():
            raise InputError("not a strokedfc demo dataset; refusing to delete it", out_dir)
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def write_json(path: Path, content: dict) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")


def write_tsv(path: Path, table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(
        path, sep="\t", index=False, na_rep="n/a", float_format="%.10g", lineterminator="\n"
    )


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, *, tr=None, code=4) -> None:
    """Write ``.nii.gz`` byte-reproducibly (gzip mtime 0, no file name in the header)."""
    import gzip

    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=code)
    img.set_qform(affine, code=code)
    if tr is not None:
        img.header.set_zooms(img.header.get_zooms()[:3] + (tr,))
    img.header.set_xyzt_units("mm", "sec")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(img.to_bytes(), compresslevel=4, mtime=0))


def bids_prefix(sub: str, ses: str | None, run: int | None) -> tuple[Path, str]:
    """Folder (relative) and file-name prefix of a run: ``sub-X[_ses-Y]_task-rest[_run-N]``."""
    folder = Path(sub) / (f"ses-{ses}" if ses else "") / "func"
    prefix = sub + (f"_ses-{ses}" if ses else "") + "_task-rest" + (f"_run-{run}" if run else "")
    return folder, prefix


def write_run(
    out_dir: Path,
    rng: np.random.Generator,
    *,
    prefix: tuple[Path, str],
    bold: np.ndarray,
    affine: np.ndarray,
    mask: np.ndarray,
    confounds,
    space: str,
    tr: float,
) -> None:
    """Raw placeholder BOLD and the fMRIPrep derivatives of one run."""
    folder, name = prefix
    n_t = bold.shape[-1]
    raw_affine = np.diag([24.0, 24.0, 24.0, 1.0])
    raw_affine[:3, 3] = -84.0
    raw = np.rint(1000 + 10 * rng.standard_normal((8, 8, 8, n_t))).astype(np.int16)
    write_nifti(out_dir / folder / f"{name}_bold.nii.gz", raw, raw_affine, tr=tr, code=1)
    write_json(out_dir / folder / f"{name}_bold.json", {"RepetitionTime": tr, "TaskName": "rest"})
    prep = out_dir / "derivatives" / "fmriprep" / folder
    stem = f"{name}_space-{space}"
    write_nifti(prep / f"{stem}_desc-preproc_bold.nii.gz", bold, affine, tr=tr)
    meta = {"RepetitionTime": tr, "SkullStripped": True, "TaskName": "rest"}
    write_json(prep / f"{stem}_desc-preproc_bold.json", meta)
    write_nifti(prep / f"{stem}_desc-brain_mask.nii.gz", mask.astype(np.uint8), affine)
    write_json(prep / f"{stem}_desc-brain_mask.json", {"Type": "Brain"})
    write_tsv(prep / f"{name}_desc-confounds_timeseries.tsv", confounds)
    write_json(prep / f"{name}_desc-confounds_timeseries.json", sig.confounds_sidecar(confounds))


def lesion_path(out_dir: Path, sub: str, style: str) -> Path:
    """Where a participant's lesion mask goes (BIDS-derivative or ATLAS R2.0 naming)."""
    anat = out_dir / "derivatives" / "lesions" / sub / "anat"
    if style == "atlas":
        return anat / f"{sub}_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz"
    return anat / f"{sub}_space-MNI152NLin2009cAsym_label-lesion_mask.nii.gz"


def write_static(out_dir: Path, plans: list[dict], *, tr: float) -> None:
    """Dataset-level files: descriptions, README, participants table and task sidecar."""
    import pandas as pd

    from bids_app.__about__ import __url__, __version__

    gen = {"Name": "strokedfc-demo-data", "Version": __version__, "CodeURL": __url__}
    write_json(
        out_dir / "dataset_description.json",
        {"Name": "strokedfc synthetic stroke rs-fMRI demo", "BIDSVersion": "1.9.0",
         "DatasetType": "raw", "License": "CC0", "GeneratedBy": [gen]},
    )  # fmt: skip
    (out_dir / "README").write_text(
        "Synthetic resting-state fMRI of stroke patients generated by strokedfc-demo-data.\n"
        "Not real data. The planted ground truth is in code/groundtruth.json.\n"
    )
    write_json(out_dir / "task-rest_bold.json", {"RepetitionTime": tr, "TaskName": "rest"})
    columns = ["participant_id", "ul_fma", "age", "sex", "illness_duration", "lesion_side"]
    write_tsv(
        out_dir / "participants.tsv", pd.DataFrame([{c: p[c] for c in columns} for p in plans])
    )
    write_json(
        out_dir / "participants.json",
        {
            "ul_fma": {"Description": "Upper-limb Fugl-Meyer motor score (0-66)"},
            "age": {"Description": "Age", "Units": "year"},
            "sex": {"Description": "Sex", "Levels": {"M": "male", "F": "female"}},
            "illness_duration": {"Description": "Time since stroke", "Units": "month"},
            "lesion_side": {"Description": "Hemisphere of the lesion (L/left or R/right)"},
        },
    )
    for name, desc in (("fmriprep", "fMRIPrep (synthetic)"), ("lesions", "Lesion masks")):
        tool = "fMRIPrep (synthetic)" if name == "fmriprep" else "strokedfc-demo-data"
        write_json(
            out_dir / "derivatives" / name / "dataset_description.json",
            {"Name": desc, "BIDSVersion": "1.9.0", "DatasetType": "derivative",
             "GeneratedBy": [{**gen, "Name": tool}], "SourceDatasets": [{"URL": "bids::"}]},
        )  # fmt: skip
