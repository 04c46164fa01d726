"""Synthetic demo data: a small stroke rs-fMRI BIDS dataset with fMRIPrep-shaped derivatives.

``generate_dataset`` (in :mod:`bids_app.demo.synthetic`) writes it and returns the planted
:class:`GroundTruth`, also stored as ``<dataset>/code/groundtruth.json``. This module stays
import-light: the generator is imported on first use.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["GroundTruth", "ParticipantTruth", "RunTruth", "generate_dataset", "load_groundtruth"]


@dataclass(frozen=True)
class RunTruth:
    """Planted truth of one run: entities and the latent state of each kept volume."""

    session: str | None
    run: int | None
    states: tuple[str, ...]
    high_motion: bool
    max_translation_mm: float


@dataclass(frozen=True)
class ParticipantTruth:
    """Planted truth of one participant (coordinates in world mm, MNI)."""

    participant_id: str
    lesion_side: str
    severity: str
    ul_fma: int
    lesion_centre_canonical: tuple[float, float, float]
    lesion_centre_written: tuple[float, float, float]
    lesion_radius_mm: float
    lesion_mask: str | None
    group_coupling: float
    runs: tuple[RunTruth, ...]


@dataclass(frozen=True)
class GroundTruth:
    """What the demo generator planted (see ``code/groundtruth.json``).

    ``regions`` maps a name to ``{"centre_mni", "radius_mm", "coupling"}`` in the canonical
    lesion-left space; ``nuisance`` lists the confound columns added to the BOLD data.
    """

    regions: dict
    right_lesioned: tuple[str, ...]
    participants: tuple[ParticipantTruth, ...]
    group_effect: dict
    nuisance: dict
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-serialisable dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GroundTruth:
        """Rebuild from :meth:`to_dict` output (e.g. a loaded ``groundtruth.json``)."""
        parts = []
        for p in data["participants"]:
            runs = tuple(RunTruth(**{**r, "states": tuple(r["states"])}) for r in p["runs"])
            fields = {k: tuple(v) if k.startswith("lesion_centre") else v for k, v in p.items()}
            parts.append(ParticipantTruth(**{**fields, "runs": runs}))
        return cls(
            regions=data["regions"],
            right_lesioned=tuple(data["right_lesioned"]),
            participants=tuple(parts),
            group_effect=data["group_effect"],
            nuisance=data["nuisance"],
            settings=data.get("settings", {}),
        )


def load_groundtruth(path: str | Path) -> GroundTruth:
    """Read ``code/groundtruth.json`` written by :func:`generate_dataset`."""
    return GroundTruth.from_dict(json.loads(Path(path).read_text()))


def __getattr__(name: str):
    if name == "generate_dataset":
        from bids_app.demo.synthetic import generate_dataset

        return generate_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
