"""``strokedfc-demo-data``: write the synthetic demo dataset."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

PROG = "strokedfc-demo-data"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``strokedfc-demo-data``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Write a small synthetic stroke rs-fMRI BIDS dataset with fMRIPrep-shaped "
            "derivatives (derivatives/fmriprep), lesion masks (derivatives/lesions) and the "
            "planted ground truth (code/groundtruth.json)."
        ),
    )
    parser.add_argument("out_dir", metavar="DIR", type=Path, help="dataset root to create")
    add = parser.add_argument
    add("--participants", type=int, default=12, help="number of participants (default 12)")
    add("--random-seed", type=int, default=0, help="seed; same seed, same bytes (default 0)")
    add("--n-volumes", type=int, default=240, help="volumes per run incl. dummies (240)")
    add("--tr", type=float, default=2.0, help="repetition time in seconds (default 2.0)")
    add("--resolution", type=float, default=4.0, help="BOLD voxel size in mm (default 4.0)")
    add("--sessions", type=int, default=0, help="sessions per participant; 0: no ses- (0)")
    add("--runs", type=int, default=1, help="runs per session; 1: no run- entity (default 1)")
    add("--dummy-scans", type=int, default=4, help="non-steady-state volumes (default 4)")
    add("--effect-size", type=float, default=0.6, help="group coupling difference (0.6)")
    add(
        "--lesion-mask-style",
        choices=("derivative", "atlas"),
        default="derivative",
        help="label-lesion_mask (BIDS derivative) or ATLAS R2.0 label-L_desc-T1lesion names",
    )
    add("--overwrite", action="store_true", help="replace DIR if it holds a previous demo")
    add("-v", "--verbose", action="store_true", help="log progress; tracebacks on error")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``strokedfc-demo-data``; returns the exit status (0 on success).

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when the dataset cannot be written (one line on stderr).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format=f"{PROG}: %(message)s",
    )
    from bids_app.demo.synthetic import generate_dataset
    from bids_app.errors import StrokeDFCError

    try:
        truth = generate_dataset(
            args.out_dir,
            n_participants=args.participants,
            n_volumes=args.n_volumes,
            tr=args.tr,
            resolution=args.resolution,
            n_sessions=args.sessions,
            n_runs=args.runs,
            n_dummy=args.dummy_scans,
            random_seed=args.random_seed,
            effect_size=args.effect_size,
            lesion_mask_style=args.lesion_mask_style,
            overwrite=args.overwrite,
        )
    except (StrokeDFCError, ValueError, OSError) as exc:
        if args.verbose:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    n = len(truth.participants)
    logging.getLogger("strokedfc.demo").info("wrote %d participants to %s", n, args.out_dir)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
