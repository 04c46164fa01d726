"""The run configuration round-trips through TOML and names bad values."""

from __future__ import annotations

import tomllib

import pytest

from bids_app.config import (
    Config,
    GroupConfig,
    ParticipantConfig,
    load_toml,
    section_from_dict,
)
from bids_app.errors import ConfigError


def test_saved_toml_restores_a_disabled_filter(tmp_path):
    cfg = Config(participant=ParticipantConfig(high_pass=None, low_pass=0.08))
    path = tmp_path / "config.toml"
    path.write_text(cfg.to_toml())
    assert tomllib.loads(path.read_text())["participant"]["high_pass"] == "none"
    sections = load_toml(path)
    back = section_from_dict(ParticipantConfig, sections["participant"], source=str(path))
    assert back.high_pass is None
    assert back.low_pass == pytest.approx(0.08)
    assert back.seed_mni == (-38.0, -22.0, 56.0)


def test_bad_filter_string_names_the_option(tmp_path):
    with pytest.raises(ConfigError, match="high_pass must be a number or 'none', got 'low'"):
        section_from_dict(ParticipantConfig, {"high_pass": "low"}, source="x.toml")


def test_unknown_option_is_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[participant]\nwindow_lenght = 30\n")
    sections = load_toml(path)
    with pytest.raises(ConfigError, match="window_lenght"):
        section_from_dict(ParticipantConfig, sections["participant"], source=str(path))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"window_length": 1}, "--window-length must be >= 2 TRs, got 1"),
        ({"window_shape": "gauss"}, "got 'gauss'"),
        ({"high_pass": 0.2, "low_pass": 0.1}, "must be below --low-pass"),
        ({"dummy_scans": -1}, "--dummy-scans must be >= 0, got -1"),
    ],
)
def test_participant_validation_names_option_and_value(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ParticipantConfig(**changes).validate()


def test_group_validation_names_option_and_value():
    with pytest.raises(ConfigError, match=r"--folds must lie in 1..10, got \[11\]"):
        GroupConfig(folds=[11]).validate()


def test_participant_hash_depends_on_method_and_inputs_not_on_execution():
    a, b = Config(), Config()
    assert a.participant_hash() == b.participant_hash()
    b.execution.nprocs = 8
    assert a.participant_hash() == b.participant_hash()
    b.participant.fwhm = 4.0
    assert a.participant_hash() != b.participant_hash()
    c = Config()
    c.execution.lesion_dir = "/data/lesions"
    assert a.participant_hash() != c.participant_hash()
