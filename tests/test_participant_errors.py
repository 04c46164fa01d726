"""Bad input at the participant level: one clear error line, no traceback, nothing written.

Each case builds a tiny independent dataset (``tests/_independent_data.py``), breaks one thing
and runs ``strokedfc`` in-process.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _independent_data import SubjectSpec, write_dataset  # noqa: E402

from bids_app.cli.run import main  # noqa: E402

SHAPE = (23, 28, 23)
AFFINE = np.array([[8.0, 0, 0, -88.0], [0, 8.0, 0, -124.0], [0, 0, 8.0, -70.0], [0, 0, 0, 1]])
N_VOL = 40
OPTIONS = ["--dummy-scans", "2", "--window-length", "10", "--resolution", "9"]
OPTIONS += ["--seed-radius", "9", "--fwhm", "0"]


def _dataset(root: Path, subjects=None) -> dict:
    subjects = subjects or [SubjectSpec("01", "R", lesion_centre=(30.0, 5.0, 20.0), coupling=True)]
    truth = write_dataset(root, subjects, shape=SHAPE, affine=AFFINE, n_volumes=N_VOL, res="8")
    strategy = root / "wm_csf.txt"
    strategy.write_text("white_matter\ncsf\n")
    truth["options"] = [*OPTIONS, "--confounds", str(strategy)]
    return truth


def _run(root: Path, truth: dict, *extra: str, out: Path | None = None) -> int:
    out = root / "out" if out is None else out
    args = [str(truth["bids"]), str(out), "participant", "-w", str(root / "work")]
    return main([*args, "--lesion-dir", str(truth["lesions"]), *truth["options"], *extra])


def _assert_one_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("strokedfc: error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _assert_nothing_written(root: Path, sub: str = "01") -> None:
    out = root / "out"
    assert not (out / f"sub-{sub}").exists()
    assert not (out / f"sub-{sub}.html").exists()
    assert not (out / "logs" / f"sub-{sub}_status.json").exists()
    assert not out.exists(), sorted(str(p) for p in out.rglob("*"))


def _rewrite_confounds(path: Path, change) -> None:
    table = pd.read_csv(path, sep="\t")
    change(table).to_csv(path, sep="\t", index=False, na_rep="n/a")


def _drop_csf(truth):
    path = truth["subjects"]["01"]["confounds"]
    _rewrite_confounds(path, lambda t: t.drop(columns=["csf"]))
    return [path.name, "csf"], []


def _nan_inside(truth):
    path = truth["subjects"]["01"]["confounds"]

    def change(t):
        t.loc[5, "white_matter"] = np.nan
        return t

    _rewrite_confounds(path, change)
    return [path.name, "NaN", "white_matter"], []


def _nan_in_derivative(truth):
    path = truth["subjects"]["01"]["confounds"]

    def change(t):
        t.loc[7, "trans_x_derivative1"] = np.nan
        return t

    _rewrite_confounds(path, change)
    return [path.name, "NaN", "trans_x_derivative1"], ["--confounds", "26P"]


def _short_confounds(truth):
    path = truth["subjects"]["01"]["confounds"]
    _rewrite_confounds(path, lambda t: t.iloc[:-1])
    return [path.name, "rows"], []


def _no_tr(truth):
    path = truth["subjects"]["01"]["bold_json"]
    meta = json.loads(path.read_text())
    del meta["RepetitionTime"]
    path.write_text(json.dumps(meta))
    return [truth["subjects"]["01"]["bold"].name, "RepetitionTime"], []


def _too_short(truth):
    return [truth["subjects"]["01"]["bold"].name, "volumes"], ["--dummy-scans", "31"]


def _mask_grid(truth):
    path = truth["subjects"]["01"]["mask"]
    img = nib.load(str(path))
    shifted = img.affine.copy()
    shifted[:3, 3] += 4.0
    nib.Nifti1Image(np.asarray(img.dataobj), shifted).to_filename(str(path))
    return [path.name, "grid"], []


def _no_fmriprep(truth):
    import shutil

    shutil.rmtree(truth["fmriprep"])
    return ["fmriprep", "no fMRIPrep derivatives"], []


def _unknown_label(truth):
    return ["'99'"], ["--participant-label", "99"]


def _path_label(truth):
    return ["../x", "label"], ["--participant-label", "../x"]


def _slash_label(truth):
    return ["01/02", "label"], ["--participant_label", "01/02"]


def _side_contradiction(truth):
    path = truth["bids"] / "participants.tsv"
    table = pd.read_csv(path, sep="\t")
    table["lesion_side"] = "L"
    table.to_csv(path, sep="\t", index=False)
    return ["participants.tsv", "lesion side"], []


def _seed_outside_brain(truth):
    path = truth["subjects"]["01"]["mask"]
    img = nib.load(str(path))
    data = np.asarray(img.dataobj).copy()
    data[:, :, 13:] = 0  # no brain above z = 34 mm: the M1 seed (z = 56) is outside
    nib.Nifti1Image(data, img.affine).to_filename(str(path))
    return [path.name, "seed"], []


def _seed_off_grid(truth):
    return ["seed"], ["--seed-mni", "0", "0", "200"]


def _truncate(key):
    def case(truth):
        path = truth["subjects"]["01"][key]
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
        return [path.name], []

    case.__name__ = f"_truncated_{key}"
    return case


def _not_gzip(truth):
    path = truth["subjects"]["01"]["bold"]
    path.write_bytes(gzip.compress(b"this is not a NIfTI header" * 20))
    return [path.name], []


CASES = [
    _no_fmriprep,
    _no_tr,
    _too_short,
    _drop_csf,
    _nan_inside,
    _nan_in_derivative,
    _short_confounds,
    _mask_grid,
    _unknown_label,
    _path_label,
    _slash_label,
    _side_contradiction,
    _seed_outside_brain,
    _seed_off_grid,
    _truncate("bold"),
    _truncate("mask"),
    _truncate("lesion"),
    _not_gzip,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, capsys, case):
    truth = _dataset(tmp_path)
    needles, extra = case(truth)
    capsys.readouterr()
    assert _run(tmp_path, truth, *extra) != 0
    _assert_one_error(capsys, *needles)
    _assert_nothing_written(tmp_path)


def test_verbose_shows_the_traceback(tmp_path, capsys):
    truth = _dataset(tmp_path)
    _drop_csf(truth)
    capsys.readouterr()
    assert _run(tmp_path, truth, "-v") != 0
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("strokedfc: error:")
    _assert_nothing_written(tmp_path)


def test_output_dir_equal_to_bids_dir_is_refused(tmp_path, capsys):
    truth = _dataset(tmp_path)
    before = _hashes(tmp_path)
    capsys.readouterr()
    assert _run(tmp_path, truth, out=truth["bids"]) != 0
    _assert_one_error(capsys, "output_dir")
    assert _hashes(tmp_path) == before


def test_work_dir_inside_bids_dir_is_refused(tmp_path, capsys):
    truth = _dataset(tmp_path)
    capsys.readouterr()
    assert _run(tmp_path, truth, "-w", str(truth["bids"] / "work")) != 0
    _assert_one_error(capsys, "work")
    assert not (truth["bids"] / "work").exists()
    _assert_nothing_written(tmp_path)


def _hashes(root: Path) -> dict:
    return {
        p.relative_to(root): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_inputs_never_modified_and_bad_participant_skipped(tmp_path, capsys):
    """A good and a bad participant: the good one is processed, the bad one left alone."""
    subjects = [
        SubjectSpec("01", "R", lesion_centre=(30.0, 5.0, 20.0), coupling=True),
        SubjectSpec("02", "n/a"),
    ]
    truth = _dataset(tmp_path / "in", subjects)
    _drop_csf(truth)  # breaks sub-01
    before = _hashes(tmp_path / "in")
    capsys.readouterr()
    rc = _run(tmp_path, truth)
    err = capsys.readouterr().err
    assert rc != 0
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("strokedfc: error:")]
    assert len(errors) == 1 and "sub-01" in errors[0] and "csf" in errors[0]
    assert _hashes(tmp_path / "in") == before
    out = tmp_path / "out"
    assert (out / "sub-02.html").is_file()
    assert (out / "logs" / "sub-02_status.json").is_file()
    assert not (out / "sub-01").exists()
    assert not (out / "sub-01.html").exists()
    assert not (out / "logs" / "sub-01_status.json").exists()


def test_seed_off_grid_is_an_option_error(tmp_path, capsys):
    truth = _dataset(tmp_path)
    capsys.readouterr()
    assert _run(tmp_path, truth, "--seed-mni", "0", "0", "200") != 0
    line = _assert_one_error(capsys, "--seed-mni")
    assert "unexpected" not in line


def test_run_too_short_for_the_band_pass_is_refused_before_work(tmp_path, capsys):
    subjects = [SubjectSpec("01", "n/a")]
    truth = write_dataset(tmp_path, subjects, shape=SHAPE, affine=AFFINE, n_volumes=30, res="8")
    truth["options"] = [*OPTIONS, "--confounds", "24P"]
    capsys.readouterr()
    assert _run(tmp_path, truth) != 0
    _assert_one_error(capsys, truth["subjects"]["01"]["bold"].name)
    _assert_nothing_written(tmp_path)
