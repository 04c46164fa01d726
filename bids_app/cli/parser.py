"""The ``strokedfc`` argument parser (BIDS-Apps conventions, fMRIPrep/XCP-D habits).

Options are parsed with ``argparse.SUPPRESS`` defaults, so the namespace holds only what
the user typed; :func:`bids_app.cli.run.build_config` layers them over the ``--config-file``
and the dataclass defaults of :mod:`bids_app.config`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bids_app.__about__ import __version__
from bids_app.cli._group_options import add_group_options
from bids_app.config import CONFOUND_STRATEGIES, SPACES, WINDOW_SHAPES

#: option dest -> config section ("execution", "participant" or "group")
SECTION: dict[str, str] = {}


def _float_or_none(value: str) -> float | None:
    if value.lower() in ("none", "off", "0"):
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {value!r}") from None


def _dummy_scans(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {value!r}") from None


def _add(group, section: str, *flags: str, **kwargs) -> None:
    action = group.add_argument(*flags, **kwargs)
    SECTION[action.dest] = section


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``strokedfc``."""
    p = argparse.ArgumentParser(
        prog="strokedfc",
        description=(
            "strokedfc: sliding-window seed-based dynamic functional connectivity of stroke "
            "rs-fMRI from fMRIPrep derivatives (participant level), and 3D-CNN grading of "
            "upper-limb motor impairment, connectivity states and group statistics (group level)."
        ),
        argument_default=argparse.SUPPRESS,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("bids_dir", type=Path, help="the root of the raw BIDS dataset")
    p.add_argument("output_dir", type=Path, help="where derivatives (and the group level) go")
    p.add_argument("analysis_level", choices=["participant", "group"], help="processing stage")
    p.add_argument("--version", action="version", version=f"strokedfc {__version__}")

    g = p.add_argument_group("Selecting data")
    _add(
        g,
        "execution",
        "--participant-label",
        "--participant_label",
        dest="participant_label",
        nargs="+",
        metavar="LABEL",
        help="participants to process (with or without 'sub-'); default all",
    )
    _add(
        g,
        "execution",
        "--session-label",
        "--session_label",
        dest="session_label",
        nargs="+",
        metavar="LABEL",
        help="sessions to process (with or without 'ses-'); default all",
    )
    _add(
        g,
        "execution",
        "-t",
        "--task-id",
        dest="task_id",
        metavar="TASK",
        help="task of the resting-state runs (default: rest)",
    )
    _add(
        g,
        "execution",
        "--bids-filter-file",
        dest="bids_filter_file",
        type=Path,
        metavar="FILE",
        help="a JSON file of PyBIDS filters, as fMRIPrep's (key 'bold')",
    )
    _add(
        g,
        "execution",
        "--fmriprep-dir",
        dest="fmriprep_dir",
        type=Path,
        metavar="DIR",
        help="fMRIPrep derivatives (default: <bids_dir>/derivatives/fmriprep)",
    )
    _add(
        g,
        "execution",
        "--lesion-dir",
        dest="lesion_dir",
        type=Path,
        metavar="DIR",
        help="a derivative dataset with lesion masks (optional)",
    )
    _add(
        g,
        "participant",
        "--space",
        choices=SPACES,
        help="template space of the fMRIPrep outputs to use (default: the best available of "
        + ", ".join(SPACES)
        + ")",
    )

    g = p.add_argument_group("Execution")
    _add(
        g,
        "execution",
        "-w",
        "--work-dir",
        dest="work_dir",
        type=Path,
        metavar="DIR",
        help="working directory (default: ./work); also holds the group cache",
    )
    _add(
        g,
        "execution",
        "--nprocs",
        "--n-cpus",
        "--n_cpus",
        dest="nprocs",
        type=int,
        metavar="N",
        help="parallel processes (default: 1)",
    )
    _add(
        g,
        "execution",
        "--omp-nthreads",
        dest="omp_nthreads",
        type=int,
        metavar="N",
        help="threads per process for numerical libraries (default: 1)",
    )
    _add(
        g,
        "execution",
        "--use-plugin",
        dest="use_plugin",
        type=Path,
        metavar="FILE",
        help="a nipype plugin file (YAML/TOML: plugin, plugin_args), e.g. for SLURM",
    )
    _add(
        g,
        "execution",
        "--config-file",
        dest="config_file",
        type=Path,
        metavar="FILE",
        help="a TOML file with any of these options (command-line options take precedence)",
    )
    _add(
        g,
        "execution",
        "--random-seed",
        dest="random_seed",
        type=int,
        metavar="SEED",
        help="seed of every random choice (default: 0)",
    )
    _add(
        g,
        "execution",
        "--overwrite",
        dest="overwrite",
        action="store_true",
        help="redo participants already processed (also with another configuration)",
    )
    _add(
        g,
        "execution",
        "--stop-on-first-crash",
        dest="stop_on_first_crash",
        action="store_true",
        help="stop at the first failing participant or node",
    )
    _add(
        g,
        "execution",
        "--skip-bids-validation",
        "--skip_bids_validation",
        dest="skip_bids_validation",
        action="store_true",
        help="skip the check that bids_dir is a BIDS dataset",
    )
    _add(
        g,
        "execution",
        "--no-denoised-output",
        dest="write_denoised",
        action="store_false",
        help="do not write the denoised BOLD series",
    )
    _add(
        g,
        "execution",
        "-v",
        "--verbose",
        dest="verbose",
        action="count",
        help="more log output (-vv for debug); tracebacks on errors",
    )

    g = p.add_argument_group("Participant level: method (defaults from Gao et al. 2025)")
    _add(
        g,
        "participant",
        "--dummy-scans",
        dest="dummy_scans",
        type=_dummy_scans,
        metavar="N|auto",
        help="initial volumes to drop; 'auto' uses fMRIPrep's non-steady-state columns "
        "(default: 10)",
    )
    _add(
        g,
        "participant",
        "--confounds",
        dest="confounds",
        metavar="STRATEGY|FILE",
        help="nuisance strategy: "
        + ", ".join(CONFOUND_STRATEGIES)
        + " (36P includes the global signal) or a file listing columns (default: 26P)",
    )
    _add(
        g,
        "participant",
        "--high-pass",
        dest="high_pass",
        type=_float_or_none,
        metavar="HZ",
        help="high-pass cut-off in Hz, or 'none' (default: 0.01)",
    )
    _add(
        g,
        "participant",
        "--low-pass",
        dest="low_pass",
        type=_float_or_none,
        metavar="HZ",
        help="low-pass cut-off in Hz, or 'none' (default: 0.1)",
    )
    _add(
        g,
        "participant",
        "--fwhm",
        dest="fwhm",
        type=float,
        metavar="MM",
        help="Gaussian smoothing FWHM in mm; 0 for none (default: 6)",
    )
    _add(
        g,
        "participant",
        "--resolution",
        dest="resolution",
        type=float,
        metavar="MM",
        help="output grid voxel size in mm on the SPM bounding box (default: 3, 61x73x61)",
    )
    _add(
        g,
        "participant",
        "--seed-mni",
        dest="seed_mni",
        type=float,
        nargs=3,
        metavar=("X", "Y", "Z"),
        help="seed centre in MNI mm, ipsilesional M1 (default: -38 -22 56)",
    )
    _add(
        g,
        "participant",
        "--seed-radius",
        dest="seed_radius",
        type=float,
        metavar="MM",
        help="seed sphere radius in mm (not given by the paper; default: 6)",
    )
    _add(
        g,
        "participant",
        "--window-length",
        dest="window_length",
        type=int,
        metavar="TRS",
        help="sliding-window length in TRs (default: 22)",
    )
    _add(
        g,
        "participant",
        "--window-step",
        dest="window_step",
        type=int,
        metavar="TRS",
        help="sliding-window step in TRs (default: 1)",
    )
    _add(
        g,
        "participant",
        "--window-shape",
        dest="window_shape",
        choices=WINDOW_SHAPES,
        help="window taper (default: hamming, as DPABI TDA)",
    )
    _add(
        g,
        "participant",
        "--max-motion",
        dest="max_motion",
        type=float,
        metavar="MM_DEG",
        help="flag runs whose max translation (mm) or rotation (degrees) exceeds this "
        "(default: 2)",
    )
    _add(
        g,
        "participant",
        "--lesion-side-column",
        dest="lesion_side_column",
        metavar="COLUMN",
        help="participants.tsv column with the lesion side (default: lesion_side)",
    )
    _add(
        g,
        "execution",
        "--model",
        dest="model",
        metavar="PATH|NAME",
        help="participant level: a trained model (group/cnn/final/model.pt) to grade each "
        "participant; group level: the classifier, vgg3d (default) or logreg",
    )

    add_group_options(p, _add)
    return p
