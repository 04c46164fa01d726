"""The group HTML page: parses, every section, every image exists, leakage note when due."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from _group_fixtures import make_participant_outputs

from bids_app.config import GroupConfig
from bids_app.group.cache import build_cache
from bids_app.group.cohort import load_cohort
from bids_app.group.demographics import write_demographics
from bids_app.group.lesions import write_lesion_overlap
from bids_app.group.report import save_montage, write_group_report
from bids_app.group.states import run_states
from bids_app.group.stats import run_stats

SECTIONS = ["headline", "cohort", "demographics", "lesions", "cnn", "states", "stats", "methods"]
LEAK = "windows of the same participant sit in training and test"


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.srcs, self.links, self.scripts = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.srcs.append(attrs["src"])
        if tag in ("link", "script"):
            self.scripts += 1


@pytest.fixture(scope="module")
def group_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grp")
    study = make_participant_outputs(
        tmp, n_subjects=8, shape=(5, 6, 7), n_windows=12, rng=1, extra_participants=["sub-77"]
    )
    cohort = load_cohort(study.bids_dir, study.output_dir)
    cache = build_cache(cohort, tmp / "cache", dtype="float32")
    cfg = GroupConfig(
        k_range=(2, 3),
        kmeans_replicates=2,
        kmeans_max_iter=10,
        min_participation=0.0,
        cluster_size=2,
        fwe_permutations=20,
    )
    out = study.output_dir
    states = run_states(cohort, cache, cfg, out_dir=out / "group" / "states", random_seed=0)
    stats = run_stats(cohort, cache, states, cfg, out_dir=out / "group" / "stats", random_seed=0)
    write_demographics(cohort, out_dir=out / "group" / "stats")
    write_lesion_overlap(cohort, out_dir=out / "group" / "stats")
    fig = save_montage(study.brain_masks["01"].astype(float), out / "group/cnn/figures/roc.png")
    assert fig.is_file()
    return out, cohort, cfg, states, stats


def _cnn(unit):
    m = {"balanced_accuracy": {"mean": 0.61, "sd": 0.1}}
    return {
        "cv_unit": unit,
        "metrics": {"participant": m, "window": m},
        "leakage_warning": "Cross-validation was over windows." if unit == "window" else None,
        "figures": ["figures/roc.png"],
        "pooled": {
            "n_participants": 8,
            "balanced_accuracy": 0.625,
            "auc": 0.7,
            "p_value": 0.2345,
            "n_permutations": 1000,
        },
    }


@pytest.mark.parametrize("unit", ["window", "subject"])
def test_report_sections_images_and_leakage(group_run, unit):
    out, cohort, cfg, states, stats = group_run
    path = write_group_report(
        out,
        cohort=cohort,
        cfg=cfg,
        cnn_summary=_cnn(unit),
        states_summary=states,
        stats_summary=stats,
        methods_html="<p>Methods text.</p>",
    )
    assert path == out / "group.html"
    text = path.read_text()
    parser = _Collect()
    parser.feed(text)
    assert parser.ids == SECTIONS
    assert parser.scripts == 0 and "http://" not in text.split("<ol>")[0]
    assert len(parser.srcs) >= 4
    for src in parser.srcs:
        assert not Path(src).is_absolute() and (out / src).is_file(), src
    assert "roc.png" in " ".join(parser.srcs)
    assert (LEAK in text) == (unit == "window")
    assert ("Leakage warning" in text) == (unit == "window")
    # the headline comes first
    assert text.index('id="headline"') < text.index('id="cohort"')
    assert "sub-77" in text  # excluded participant listed
    assert "FWE-corrected" in text and "Uncorrected clusters" in text
    assert "k-medians" in text and "Allen et al. (2014)" in text
    # the pooled participant-level permutation test is stated next to the headline numbers
    headline = text[text.index('id="headline"') : text.index('id="cohort"')]
    assert "62.50% balanced accuracy of the 8 participants" in headline
    assert "p = 0.234 (1000 shuffles" in headline


def test_report_marks_skipped_parts(group_run):
    out, cohort, cfg, _, _ = group_run
    text = write_group_report(
        out,
        cohort=cohort,
        cfg=cfg,
        cnn_summary=None,
        states_summary=None,
        stats_summary=None,
        methods_html="",
    ).read_text()
    parser = _Collect()
    parser.feed(text)
    assert parser.ids == SECTIONS
    assert "Not run: CNN classification" in text
    assert "Not run: connectivity-state analysis" in text
