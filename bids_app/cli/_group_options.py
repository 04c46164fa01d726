"""Group-level options of the ``strokedfc`` parser (cohort, 3D-CNN, states and statistics).

Kept apart from :mod:`bids_app.cli.parser` for size only; :func:`add_group_options` is called
by :func:`bids_app.cli.parser.build_parser` with its option-registering helper, so every
option is recorded in :data:`bids_app.cli.parser.SECTION` like the others.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _k(value: str) -> str:
    if value != "auto" and not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer, got {value!r}")
    return value


def add_group_options(p: argparse.ArgumentParser, add: Callable[..., None]) -> None:
    """Add the group-level argument groups to ``p``.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The parser being built.
    add : callable
        ``add(group, section, *flags, **kwargs)``: adds one option to an argument group and
        records its config section (``bids_app.cli.parser._add``).
    """
    g = p.add_argument_group("Group level: labels and cohort")
    add(
        g,
        "group",
        "--score-column",
        dest="score_column",
        metavar="COLUMN",
        help="participants.tsv column with the UL-FMA score (default: ul_fma)",
    )
    add(
        g,
        "group",
        "--severe-max",
        dest="severe_max",
        type=float,
        metavar="SCORE",
        help="scores <= this are 'severe', the positive class (default: 20)",
    )
    add(
        g,
        "group",
        "--include-high-motion",
        dest="include_high_motion",
        action="store_true",
        help="keep participants flagged HighMotion",
    )

    g = p.add_argument_group("Group level: 3D-CNN cross-validation")
    add(g, "group", "--skip-cnn", dest="skip_cnn", action="store_true", help="do not run the CNN")
    add(
        g,
        "group",
        "--cv-unit",
        dest="cv_unit",
        choices=["subject", "window"],
        help="subject: honest participant-level folds (default); window: the paper's protocol, "
        "windows of one participant in training and test (measures participant identification)",
    )
    add(g, "group", "--n-folds", dest="n_folds", type=int, metavar="K", help="folds (default: 10)")
    add(
        g,
        "group",
        "--folds",
        dest="folds",
        type=int,
        nargs="+",
        metavar="K",
        help="run only these folds (1-based), e.g. one job per fold; a later run aggregates",
    )
    add(
        g,
        "group",
        "--final-model",
        dest="final_model",
        action="store_true",
        help="also train one model on all included participants (group/cnn/final/)",
    )
    add(
        g,
        "group",
        "--width-multiplier",
        dest="width_multiplier",
        type=float,
        metavar="F",
        help="scale the channel counts of the Table 1 network (default: 1)",
    )
    add(
        g,
        "group",
        "--fc-width",
        dest="fc_width",
        type=int,
        metavar="N",
        help="width of the two hidden fully connected layers (default: 4096)",
    )
    add(g, "group", "--dropout", dest="dropout", type=float, metavar="P", help="(default: 0.7)")
    add(
        g,
        "group",
        "--lr",
        dest="lr",
        type=float,
        metavar="LR",
        help="Adam learning rate (default: 1e-3)",
    )
    add(
        g,
        "group",
        "--adam-eps",
        dest="adam_eps",
        type=float,
        metavar="EPS",
        help="(default: 1e-3)",
    )
    add(g, "group", "--batch-size", dest="batch_size", type=int, metavar="N", help="(default: 32)")
    add(g, "group", "--epochs", dest="epochs", type=int, metavar="N", help="(default: 50)")
    add(
        g,
        "group",
        "--device",
        dest="device",
        choices=["auto", "cpu", "cuda"],
        help="training device; cuda without a GPU is an error (default: auto)",
    )
    add(
        g,
        "group",
        "--nthreads",
        dest="nthreads",
        type=int,
        metavar="N",
        help="torch CPU threads (default: torch's choice)",
    )
    add(
        g,
        "group",
        "--num-workers",
        dest="num_workers",
        type=int,
        metavar="N",
        help="DataLoader worker processes (default: 2)",
    )
    add(
        g,
        "group",
        "--no-mixed-precision",
        dest="mixed_precision",
        action="store_false",
        help="disable mixed precision on CUDA",
    )
    add(
        g,
        "group",
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="keep tensors NCDHW (channels-last 3D is faster on CUDA and on CPU)",
    )
    add(
        g,
        "group",
        "--n-permutations",
        dest="n_permutations",
        type=int,
        metavar="N",
        help="test-label shuffles per fold (default: 1000)",
    )
    add(
        g,
        "group",
        "--permutation-retrain",
        dest="permutation_retrain",
        type=int,
        metavar="N",
        help="also retrain N times with shuffled training labels (default: 0)",
    )
    add(
        g,
        "group",
        "--cache-dtype",
        dest="cache_dtype",
        choices=["float16", "float32"],
        help="dtype of the memory-mapped group cache (default: float16)",
    )

    g = p.add_argument_group("Group level: connectivity states and statistics")
    add(
        g,
        "group",
        "--skip-states",
        dest="skip_states",
        action="store_true",
        help="do not run states and group statistics",
    )
    add(
        g,
        "group",
        "--k-range",
        dest="k_range",
        type=int,
        nargs=2,
        metavar=("KMIN", "KMAX"),
        help="numbers of states to try (default: 2 8)",
    )
    add(
        g,
        "group",
        "--k",
        dest="k",
        type=_k,
        metavar="auto|K",
        help="number of states: auto (elbow) or an integer (default: auto)",
    )
    add(
        g,
        "group",
        "--kmeans-replicates",
        dest="kmeans_replicates",
        type=int,
        metavar="N",
        help="k-medians restarts (default: 10)",
    )
    add(
        g,
        "group",
        "--min-participation",
        dest="min_participation",
        type=float,
        metavar="F",
        help="states seen in fewer participants than this fraction are not tested (default: 0.5)",
    )
    add(
        g,
        "group",
        "--covariates",
        dest="covariates",
        nargs="*",
        metavar="COLUMN",
        help="participants.tsv covariates of the GLM (default: age sex illness_duration)",
    )
    add(
        g,
        "group",
        "--t-threshold",
        dest="t_threshold",
        type=float,
        metavar="T",
        help="two-sided |t| threshold, uncorrected (default: 2.0)",
    )
    add(
        g,
        "group",
        "--cluster-size",
        dest="cluster_size",
        type=int,
        metavar="VOXELS",
        help="minimum cluster size (default: 50)",
    )
    add(
        g,
        "group",
        "--fwe-permutations",
        dest="fwe_permutations",
        type=int,
        metavar="N",
        help="permutations for family-wise error correction; 0 to skip (default: 1000)",
    )
