"""``strokedfc`` entry point: parse, build the configuration, dispatch, report errors.

User errors (:class:`bids_app.errors.StrokeDFCError`) become one line on stderr,
``strokedfc: error: <file>: <problem>``, and a non-zero exit; tracebacks only with ``-v``.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path

from bids_app.cli.parser import SECTION, build_parser
from bids_app.config import (
    Config,
    ExecutionConfig,
    GroupConfig,
    ParticipantConfig,
    load_toml,
    section_from_dict,
)
from bids_app.errors import ConfigError, StrokeDFCError

LOG = logging.getLogger("strokedfc")

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def build_config(argv: list[str] | None = None) -> Config:
    """Parse the command line (and ``--config-file``) into a validated :class:`Config`."""
    ns = vars(build_parser().parse_args(argv))
    bids_dir = ns.pop("bids_dir").absolute()
    output_dir = ns.pop("output_dir").absolute()
    level = ns.pop("analysis_level")
    config_file = ns.pop("config_file", None)
    filter_file = ns.pop("bids_filter_file", None)
    model = ns.pop("model", None)

    sections = {"execution": {}, "participant": {}, "group": {}}
    if config_file is not None:
        sections = load_toml(config_file)
    for dest, value in ns.items():
        sections[SECTION[dest]][dest] = value
    if model is not None:
        if level == "participant":
            sections["execution"]["model_file"] = Path(model).absolute()
        else:
            sections["group"]["model"] = model
    sections["execution"].update(bids_dir=bids_dir, output_dir=output_dir, analysis_level=level)
    if filter_file is not None:
        sections["execution"]["bids_filters"] = _read_filter_file(filter_file)

    source = str(config_file) if config_file else "command line"
    execution = section_from_dict(ExecutionConfig, sections["execution"], source=source)
    participant = section_from_dict(ParticipantConfig, sections["participant"], source=source)
    group = section_from_dict(GroupConfig, sections["group"], source=source)
    participant.validate()
    group.validate()
    _finish_execution(execution)
    return Config(execution=execution, participant=participant, group=group)


def _read_filter_file(path: Path) -> dict:
    try:
        filters = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError("BIDS filter file not found", path) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON ({exc.msg}, line {exc.lineno})", path) from None
    if not isinstance(filters, dict):
        raise ConfigError("a BIDS filter file must hold a JSON object", path)
    return filters


def _finish_execution(ex: ExecutionConfig) -> None:
    """Fill defaults that depend on other options and check the directories."""
    from bids_app.inputs import normalise_label

    if not ex.bids_dir.is_dir():
        raise ConfigError("bids_dir does not exist or is not a directory", ex.bids_dir)
    if ex.output_dir.resolve() == ex.bids_dir.resolve():
        raise ConfigError("output_dir must not be the input bids_dir", ex.output_dir)
    if ex.fmriprep_dir is None:
        ex.fmriprep_dir = ex.bids_dir / "derivatives" / "fmriprep"
    ex.fmriprep_dir = ex.fmriprep_dir.absolute()
    if ex.lesion_dir is not None:
        ex.lesion_dir = ex.lesion_dir.absolute()
    if ex.work_dir is None:
        ex.work_dir = Path.cwd() / "work"
    ex.work_dir = ex.work_dir.absolute()
    if ex.work_dir.resolve().is_relative_to(ex.bids_dir.resolve()):
        raise ConfigError(
            "the work directory must not be inside bids_dir (inputs are never modified)",
            ex.work_dir,
        )
    if not ex.skip_bids_validation and not (ex.bids_dir / "dataset_description.json").is_file():
        raise ConfigError(
            "not a BIDS dataset: dataset_description.json is missing "
            "(use --skip-bids-validation to go on)",
            ex.bids_dir,
        )
    ex.participant_label = [
        normalise_label(lbl, entity="participant") for lbl in ex.participant_label
    ]
    ex.session_label = [normalise_label(lbl, entity="session") for lbl in ex.session_label]
    if ex.nprocs < 1:
        raise ConfigError(f"--nprocs must be >= 1, got {ex.nprocs}")
    if ex.omp_nthreads < 1:
        raise ConfigError(f"--omp-nthreads must be >= 1, got {ex.omp_nthreads}")
    if ex.use_plugin is not None and not ex.use_plugin.is_file():
        raise ConfigError("nipype plugin file not found", ex.use_plugin)
    if ex.model_file is not None and not ex.model_file.is_file():
        raise ConfigError("model file not found", ex.model_file)


def setup_logging(verbose: int) -> None:
    """Log to stderr: INFO by default, DEBUG with -vv."""
    level = logging.DEBUG if verbose >= 2 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s [strokedfc] %(levelname)s: %(message)s", "%H:%M:%S")
    )
    LOG.handlers[:] = [handler]
    LOG.setLevel(level)
    LOG.propagate = False


def _raise_on_sigterm() -> None:
    """Turn SIGTERM (SLURM's kill, ``docker stop``) into KeyboardInterrupt, so that staging
    directories and temporary files are cleaned up as on Ctrl-C."""
    import signal
    import threading

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    """Run ``strokedfc``; return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = sum(a.count("v") for a in argv if a.startswith("-") and set(a[1:]) == {"v"})
    verbose += argv.count("--verbose")
    _raise_on_sigterm()
    try:
        config = build_config(argv)
        setup_logging(config.execution.verbose)
        if config.execution.analysis_level == "participant":
            from bids_app.cli.participant import run_participant_level

            return run_participant_level(config)
        from bids_app.cli.group import run_group_level

        return run_group_level(config)
    except StrokeDFCError as exc:
        if verbose:
            traceback.print_exc()
        print(f"strokedfc: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            "strokedfc: interrupted; no partial outputs were left under their final names",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - last-resort handler of the command line
        if verbose:
            traceback.print_exc()
        print(
            f"strokedfc: error: unexpected {type(exc).__name__}: {exc} "
            "(run with -v for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
