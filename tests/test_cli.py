"""The ``strokedfc`` command line: version, help, option parsing, config file precedence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bids_app.__about__ import __version__
from bids_app.cli.run import build_config, main

ISSUE_OPTIONS = [
    "--participant-label",
    "--participant_label",
    "--session-label",
    "-t",
    "--task-id",
    "--bids-filter-file",
    "--fmriprep-dir",
    "--lesion-dir",
    "--space",
    "-w",
    "--work-dir",
    "--nprocs",
    "--omp-nthreads",
    "--use-plugin",
    "--config-file",
    "--random-seed",
    "--overwrite",
    "--stop-on-first-crash",
    "--skip-bids-validation",
    "-v",
    "--dummy-scans",
    "--confounds",
    "--high-pass",
    "--low-pass",
    "--fwhm",
    "--resolution",
    "--seed-mni",
    "--seed-radius",
    "--window-length",
    "--window-step",
    "--window-shape",
    "--max-motion",
    "--lesion-side-column",
    "--no-denoised-output",
]


@pytest.fixture
def bids(tmp_path) -> Path:
    root = tmp_path / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    return root


def _base(bids: Path) -> list[str]:
    return [str(bids), str(bids.parent / "out"), "participant", "-w", str(bids.parent / "work")]


def test_version_in_process(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"strokedfc {__version__}"


def test_version_as_module():
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "bids_app", "--version"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"strokedfc {__version__}"


def test_help_lists_every_option_of_the_issue(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    tokens = set(text.replace(",", " ").replace("[", " ").replace("]", " ").split())
    missing = [opt for opt in ISSUE_OPTIONS if opt not in tokens]
    assert not missing


@pytest.mark.parametrize(
    ("args", "section", "name", "expected"),
    [
        (["--participant-label", "sub-01", "02"], "execution", "participant_label", ["01", "02"]),
        (["--participant_label", "03"], "execution", "participant_label", ["03"]),
        (["--session-label", "ses-1"], "execution", "session_label", ["1"]),
        (["-t", "motor"], "execution", "task_id", "motor"),
        (["--task-id", "rest2"], "execution", "task_id", "rest2"),
        (["--nprocs", "2"], "execution", "nprocs", 2),
        (["--omp-nthreads", "3"], "execution", "omp_nthreads", 3),
        (["--random-seed", "42"], "execution", "random_seed", 42),
        (["--overwrite"], "execution", "overwrite", True),
        (["--stop-on-first-crash"], "execution", "stop_on_first_crash", True),
        (["--no-denoised-output"], "execution", "write_denoised", False),
        (["-v"], "execution", "verbose", 1),
        (["-vv"], "execution", "verbose", 2),
        (["--space", "MNI152NLin6Asym"], "participant", "space", "MNI152NLin6Asym"),
        (["--dummy-scans", "auto"], "participant", "dummy_scans", "auto"),
        (["--dummy-scans", "5"], "participant", "dummy_scans", 5),
        (["--confounds", "36P"], "participant", "confounds", "36P"),
        (["--high-pass", "0.008"], "participant", "high_pass", 0.008),
        (["--high-pass", "none"], "participant", "high_pass", None),
        (["--low-pass", "0.08"], "participant", "low_pass", 0.08),
        (["--fwhm", "0"], "participant", "fwhm", 0.0),
        (["--resolution", "2"], "participant", "resolution", 2.0),
        (["--seed-mni", "38", "-22", "56"], "participant", "seed_mni", (38.0, -22.0, 56.0)),
        (["--seed-radius", "10"], "participant", "seed_radius", 10.0),
        (["--window-length", "30"], "participant", "window_length", 30),
        (["--window-step", "2"], "participant", "window_step", 2),
        (["--window-shape", "rectangular"], "participant", "window_shape", "rectangular"),
        (["--max-motion", "3"], "participant", "max_motion", 3.0),
        (["--lesion-side-column", "side"], "participant", "lesion_side_column", "side"),
    ],
)
def test_option_reaches_the_configuration(bids, args, section, name, expected):
    config = build_config(_base(bids) + args)
    assert getattr(getattr(config, section), name) == expected


def test_defaults_are_the_papers(bids):
    p = build_config(_base(bids)).participant
    assert (p.window_length, p.window_step, p.window_shape) == (22, 1, "hamming")
    assert (p.high_pass, p.low_pass, p.fwhm, p.resolution) == (0.01, 0.1, 6.0, 3.0)
    assert tuple(p.seed_mni) == (-38.0, -22.0, 56.0)
    assert (p.confounds, p.dummy_scans, p.max_motion) == ("26P", 10, 2.0)


def test_directories_and_filter_file(bids, tmp_path):
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"bold": {"acquisition": "mb4"}}))
    fmriprep, lesions = tmp_path / "fp", tmp_path / "les"
    config = build_config(
        _base(bids)
        + ["--bids-filter-file", str(filters), "--fmriprep-dir", str(fmriprep)]
        + ["--lesion-dir", str(lesions)]
    )
    ex = config.execution
    assert ex.bids_filters == {"bold": {"acquisition": "mb4"}}
    assert ex.fmriprep_dir == fmriprep.absolute()
    assert ex.lesion_dir == lesions.absolute()
    assert ex.work_dir == (tmp_path / "work").absolute()
    assert build_config(_base(bids)).execution.fmriprep_dir == bids / "derivatives" / "fmriprep"


def test_config_file_values_used_and_command_line_overrides(bids, tmp_path):
    toml = tmp_path / "strokedfc.toml"
    toml.write_text(
        "[participant]\nwindow_length = 30\nfwhm = 4.0\nseed_mni = [40.0, -20.0, 50.0]\n"
        "[execution]\nnprocs = 2\n"
    )
    config = build_config(_base(bids) + ["--config-file", str(toml), "--fwhm", "8"])
    assert config.participant.window_length == 30  # from the file
    assert tuple(config.participant.seed_mni) == (40.0, -20.0, 50.0)
    assert config.execution.nprocs == 2
    assert config.participant.fwhm == 8.0  # the command line wins
    assert config.participant.window_step == 1  # default untouched


def test_config_file_top_level_keys(bids, tmp_path):
    toml = tmp_path / "flat.toml"
    toml.write_text('window_shape = "hann"\nwindow_step = 3\n')
    config = build_config(_base(bids) + ["--config-file", str(toml), "--window-step", "2"])
    assert config.participant.window_shape == "hann"
    assert config.participant.window_step == 2


def test_written_run_config_round_trips(bids, tmp_path):
    import tomllib

    config = build_config(_base(bids) + ["--window-length", "17", "--high-pass", "none"])
    toml = tmp_path / "again.toml"
    toml.write_text(config.to_toml())
    data = tomllib.loads(toml.read_text())
    assert data["participant"]["window_length"] == 17
    again = build_config(_base(bids) + ["--config-file", str(toml)])
    assert again.participant.window_length == 17
    assert again.participant_hash() != build_config(_base(bids)).participant_hash()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--window-length", "1"], "--window-length"),
        (["--window-step", "0"], "--window-step"),
        (["--high-pass", "0.2", "--low-pass", "0.1"], "--high-pass"),
        (["--fwhm", "-1"], "--fwhm"),
        (["--seed-radius", "0"], "--seed-radius"),
        (["--nprocs", "0"], "--nprocs"),
        (["--resolution", "0"], "--resolution"),
        (["--use-plugin", "/nonexistent/plugin.yml"], "plugin"),
        (["--participant-label", "../x"], "../x"),
    ],
)
def test_bad_option_values_give_one_line(bids, capsys, args, needle):
    assert main(_base(bids) + args) != 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("strokedfc: error:"), lines
    assert needle in lines[0]
    assert "Traceback" not in err
    assert not (bids.parent / "out").exists()


def test_config_file_errors_name_the_file(bids, tmp_path, capsys):
    toml = tmp_path / "bad.toml"
    toml.write_text("[participant]\nno_such_option = 1\n")
    assert main(_base(bids) + ["--config-file", str(toml)]) != 0
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("strokedfc: error:") and "no_such_option" in line
    assert str(toml) in line
    toml.write_text("window_length = [")
    assert main(_base(bids) + ["--config-file", str(toml)]) != 0
    assert str(toml) in capsys.readouterr().err


def test_bids_validation_and_skip(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    args = [str(raw), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "w")]
    assert main(args) != 0
    assert "dataset_description.json" in capsys.readouterr().err
    assert build_config(args + ["--skip-bids-validation"]).execution.skip_bids_validation


def test_no_denoised_output_end_to_end(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from _independent_data import SubjectSpec, write_dataset

    affine = np.array([[8.0, 0, 0, -88], [0, 8.0, 0, -124], [0, 0, 8.0, -70], [0, 0, 0, 1]])
    truth = write_dataset(
        tmp_path, [SubjectSpec("05")], shape=(23, 28, 23), affine=affine, n_volumes=40, res="8"
    )
    (tmp_path / "two.txt").write_text("white_matter\ncsf\n")
    args = [str(truth["bids"]), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "w")]
    args += ["--dummy-scans", "0", "--window-length", "10", "--resolution", "9"]
    args += ["--seed-radius", "9", "--fwhm", "0", "--confounds", str(tmp_path / "two.txt")]
    assert main(args + ["--no-denoised-output", "--participant-label", "sub-05"]) == 0
    func = tmp_path / "out" / "sub-05" / "func"
    assert list(func.glob("*_desc-dfc_boldmap.nii.gz"))
    assert not list(func.glob("*_desc-denoised_bold.nii.gz"))
