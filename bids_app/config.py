"""Run configuration: plain dataclasses, serialisable to and from TOML.

The command line builds a :class:`Config`; every option can also come from a TOML file
(``--config-file``) whose tables mirror the sections below. Nothing here is global:
workflow builders and group functions receive the section they need as an argument.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bids_app.errors import ConfigError

CONFOUND_STRATEGIES = ("24P", "26P", "36P", "none")
WINDOW_SHAPES = ("hamming", "rectangular", "hann")
SPACES = ("MNI152NLin2009cAsym", "MNI152NLin6Asym", "MNI152NLin2009cSym")


@dataclass
class ExecutionConfig:
    """Where things are and how they run (not part of the method)."""

    bids_dir: Path | None = None
    output_dir: Path | None = None
    analysis_level: str = "participant"
    fmriprep_dir: Path | None = None
    lesion_dir: Path | None = None
    work_dir: Path | None = None
    participant_label: list[str] = field(default_factory=list)
    session_label: list[str] = field(default_factory=list)
    task_id: str = "rest"
    bids_filters: dict = field(default_factory=dict)
    nprocs: int = 1
    omp_nthreads: int = 1
    use_plugin: Path | None = None
    random_seed: int = 0
    overwrite: bool = False
    stop_on_first_crash: bool = False
    skip_bids_validation: bool = False
    write_denoised: bool = True
    model_file: Path | None = None
    verbose: int = 0


@dataclass
class ParticipantConfig:
    """Method options of the participant level (defaults from the paper)."""

    space: str | None = None
    dummy_scans: int | str = 10
    confounds: str = "26P"
    high_pass: float | None = 0.01
    low_pass: float | None = 0.1
    fwhm: float = 6.0
    resolution: float = 3.0
    seed_mni: tuple[float, float, float] = (-38.0, -22.0, 56.0)
    seed_radius: float = 6.0
    window_length: int = 22
    window_step: int = 1
    window_shape: str = "hamming"
    max_motion: float = 2.0
    lesion_side_column: str = "lesion_side"

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the option and the value received."""
        if self.window_length < 2:
            raise ConfigError(f"--window-length must be >= 2 TRs, got {self.window_length}")
        if self.window_step < 1:
            raise ConfigError(f"--window-step must be >= 1 TR, got {self.window_step}")
        if self.window_shape not in WINDOW_SHAPES:
            raise ConfigError(
                f"--window-shape must be one of {', '.join(WINDOW_SHAPES)}, "
                f"got {self.window_shape!r}"
            )
        if not isinstance(self.dummy_scans, int) and self.dummy_scans != "auto":
            raise ConfigError(
                f"--dummy-scans must be an integer or 'auto', got {self.dummy_scans!r}"
            )
        if isinstance(self.dummy_scans, int) and self.dummy_scans < 0:
            raise ConfigError(f"--dummy-scans must be >= 0, got {self.dummy_scans}")
        if self.resolution <= 0:
            raise ConfigError(f"--resolution must be > 0 mm, got {self.resolution}")
        if self.seed_radius <= 0:
            raise ConfigError(f"--seed-radius must be > 0 mm, got {self.seed_radius}")
        if self.fwhm < 0:
            raise ConfigError(f"--fwhm must be >= 0 mm, got {self.fwhm}")
        if self.max_motion <= 0:
            raise ConfigError(f"--max-motion must be > 0, got {self.max_motion}")
        hp, lp = self.high_pass, self.low_pass
        if hp is not None and hp <= 0:
            raise ConfigError(f"--high-pass must be > 0 Hz (or 'none'), got {hp}")
        if lp is not None and lp <= 0:
            raise ConfigError(f"--low-pass must be > 0 Hz (or 'none'), got {lp}")
        if hp is not None and lp is not None and hp >= lp:
            raise ConfigError(f"--high-pass ({hp}) must be below --low-pass ({lp})")
        if len(self.seed_mni) != 3:
            raise ConfigError(f"--seed-mni needs 3 coordinates, got {list(self.seed_mni)}")


@dataclass
class GroupConfig:
    """Options of the group level (CNN cross-validation, states, statistics)."""

    score_column: str = "ul_fma"
    severe_max: float = 20.0
    include_high_motion: bool = False
    model: str = "vgg3d"
    width_multiplier: float = 1.0
    fc_width: int = 4096
    dropout: float = 0.7
    lr: float = 1e-3
    adam_eps: float = 1e-3
    lr_step_epochs: int = 10
    lr_gamma: float = 0.5
    batch_size: int = 32
    epochs: int = 50
    device: str = "auto"
    nthreads: int | None = None
    num_workers: int = 2
    mixed_precision: bool = True
    channels_last: bool = True
    cv_unit: str = "subject"
    n_folds: int = 10
    validation_fraction: float = 0.1
    n_permutations: int = 1000
    permutation_retrain: int = 0
    folds: list[int] | None = None
    final_model: bool = False
    cache_dtype: str = "float16"
    skip_cnn: bool = False
    skip_states: bool = False
    k_range: tuple[int, int] = (2, 8)
    k: str = "auto"
    kmeans_replicates: int = 10
    kmeans_max_iter: int = 100
    min_participation: float = 0.5
    covariates: list[str] = field(default_factory=lambda: ["age", "sex", "illness_duration"])
    t_threshold: float = 2.0
    cluster_size: int = 50
    fwe_permutations: int = 1000

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the option and the value received."""
        checks = [
            (
                self.model in ("vgg3d", "logreg"),
                f"--model must be vgg3d or logreg, got {self.model!r}",
            ),
            (
                self.cv_unit in ("subject", "window"),
                f"--cv-unit must be subject or window, got {self.cv_unit!r}",
            ),
            (
                self.device in ("auto", "cpu", "cuda"),
                f"--device must be auto, cpu or cuda, got {self.device!r}",
            ),
            (self.n_folds >= 2, f"--n-folds must be >= 2, got {self.n_folds}"),
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}"),
            (
                self.width_multiplier > 0,
                f"--width-multiplier must be > 0, got {self.width_multiplier}",
            ),
            (self.fc_width >= 1, f"--fc-width must be >= 1, got {self.fc_width}"),
            (
                self.n_permutations >= 0,
                f"--n-permutations must be >= 0, got {self.n_permutations}",
            ),
            (
                self.fwe_permutations >= 0,
                f"--fwe-permutations must be >= 0, got {self.fwe_permutations}",
            ),
            (
                self.cache_dtype in ("float16", "float32"),
                f"cache dtype must be float16 or float32, got {self.cache_dtype!r}",
            ),
            (
                0 <= self.min_participation <= 1,
                f"--min-participation must be in [0, 1], got {self.min_participation}",
            ),
            (
                len(self.k_range) == 2 and 2 <= self.k_range[0] <= self.k_range[1],
                f"--k-range must be two integers 2 <= kmin <= kmax, got {list(self.k_range)}",
            ),
            (
                self.k == "auto" or str(self.k).isdigit(),
                f"--k must be 'auto' or an integer, got {self.k!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.folds is not None:
            bad = [f for f in self.folds if not 1 <= f <= self.n_folds]
            if bad:
                raise ConfigError(f"--folds must lie in 1..{self.n_folds}, got {bad}")


@dataclass
class Config:
    """The whole run configuration, as written to ``logs/config-*.toml``."""

    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    participant: ParticipantConfig = field(default_factory=ParticipantConfig)
    group: GroupConfig = field(default_factory=GroupConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain, TOML-serialisable dictionary (paths as strings, None left out).

        A disabled filter (``high_pass``/``low_pass`` None) is written as ``"none"`` so that
        re-running from the saved file does not bring the default cut-off back.
        """
        sections = {}
        for name in ("execution", "participant", "group"):
            values = asdict(getattr(self, name))
            for key in _NONE_MEANS_OFF.intersection(values):
                if values[key] is None:
                    values[key] = "none"
            sections[name] = _plain(values)
        return sections

    def to_toml(self) -> str:
        """Serialise to TOML text."""
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def participant_hash(self) -> str:
        """Hash of everything that changes the participant-level outputs."""
        method = _plain(asdict(self.participant))
        method["task_id"] = self.execution.task_id
        method["session_label"] = sorted(self.execution.session_label)
        method["bids_filters"] = self.execution.bids_filters
        method["write_denoised"] = self.execution.write_denoised
        method["model_file"] = str(self.execution.model_file or "")
        # Where the inputs come from changes the outputs too (e.g. a lesion directory added).
        method["fmriprep_dir"] = str(self.execution.fmriprep_dir or "")
        method["lesion_dir"] = str(self.execution.lesion_dir or "")
        text = json.dumps(method, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(obj: Any) -> Any:
    """Convert paths/tuples to TOML-friendly values; drop None (TOML has no null)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


#: options for which None means "off" (written as "none" in TOML, which has no null)
_NONE_MEANS_OFF = {"high_pass", "low_pass"}

_PATH_FIELDS = {
    "bids_dir",
    "output_dir",
    "fmriprep_dir",
    "lesion_dir",
    "work_dir",
    "use_plugin",
    "model_file",
}


def section_from_dict(cls: type, values: dict[str, Any], *, source: str) -> Any:
    """Build a config section from a dictionary, rejecting unknown keys.

    Parameters
    ----------
    cls : type
        One of the section dataclasses.
    values : dict
        Keys are field names (dashes allowed in place of underscores).
    source : str
        Where the values came from, for error messages.
    """
    known = {f.name for f in fields(cls)}
    kwargs = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"unknown option {key!r} in [{cls.__name__}]", source)
        if name in _NONE_MEANS_OFF and isinstance(value, str):
            if value.strip().lower() not in ("none", "off"):
                raise ConfigError(f"{key} must be a number or 'none', got {value!r}", source)
            value = None
        if name in _PATH_FIELDS and value is not None:
            value = Path(value)
        if isinstance(value, list) and name in ("seed_mni", "k_range"):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def load_toml(path: Path) -> dict[str, dict[str, Any]]:
    """Read a TOML configuration file into ``{section: {option: value}}``.

    Top-level keys are accepted too and are assigned to the section that defines them.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("configuration file not found", path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not a valid TOML file ({exc})", path) from None
    sections: dict[str, dict[str, Any]] = {"execution": {}, "participant": {}, "group": {}}
    owners = {
        f.name: sec
        for sec, cls in (
            ("execution", ExecutionConfig),
            ("participant", ParticipantConfig),
            ("group", GroupConfig),
        )
        for f in fields(cls)
    }
    for key, value in data.items():
        if key in sections and isinstance(value, dict):
            sections[key].update(value)
            continue
        name = key.replace("-", "_")
        if name not in owners:
            raise ConfigError(f"unknown option {key!r}", path)
        sections[owners[name]][name] = value
    return sections
