"""Group level: cohort, memory-mapped cache, CNN cross-validation, states, statistics, report.

Never imports nipype. Each part writes under ``output_dir/group/``; the report
``output_dir/group.html`` is written last.
"""

from __future__ import annotations

import json
import logging
import os
import uuid

from bids_app.__about__ import __version__
from bids_app.config import Config

LOG = logging.getLogger("strokedfc")


def run_group_level(config: Config) -> int:
    """Run the group level; return the exit status."""
    from bids_app.group.cache import build_cache
    from bids_app.group.cohort import load_cohort
    from bids_app.outputs import atomic_write_json
    from bids_app.provenance import write_run_config

    ex, gcfg = config.execution, config.group
    out = ex.output_dir
    cohort = load_cohort(
        ex.bids_dir,
        out,
        score_column=gcfg.score_column,
        severe_max=gcfg.severe_max,
        include_high_motion=gcfg.include_high_motion,
        participant_labels=ex.participant_label or None,
    )
    table = cohort.table
    excluded = table[~table["included"]]
    for _, row in excluded.iterrows():
        LOG.info("excluded %s: %s", row["participant_id"], row["exclusion_reason"])
    included = table[table["included"]]
    LOG.info(
        "cohort: %d participants included (%d severe, %d mild/moderate), %d excluded",
        len(included),
        int((included["label"] == 1).sum()),
        int((included["label"] == 0).sum()),
        len(excluded),
    )
    run_uuid = uuid.uuid4().hex[:12]
    write_run_config(out, config.to_toml(), run_uuid)
    cache = build_cache(cohort, ex.work_dir / "group_cache", dtype=gcfg.cache_dtype)
    LOG.info(
        "group cache: %d windows x %d voxels (%s)", len(cache.index), cache.n_voxels, cache.root
    )

    group_dir = out / "group"
    cnn_summary = states_summary = stats_summary = None
    if not gcfg.skip_cnn:
        from bids_app.group.cnn.run import run_cnn

        cnn_summary = run_cnn(
            cohort, cache, gcfg, out_dir=group_dir / "cnn", random_seed=ex.random_seed, log=LOG
        )
        _close_distributed()
        if int(os.environ.get("RANK", "0")) != 0:
            return 0  # under torchrun, rank 0 alone goes on to states, statistics, report
        if gcfg.folds is not None:
            LOG.info("folds %s done; run again without --folds to aggregate", gcfg.folds)
            return 0
    from bids_app.group.demographics import write_demographics
    from bids_app.group.lesions import write_lesion_overlap

    stats_dir = group_dir / "stats"
    demographics = write_demographics(cohort, out_dir=stats_dir, score_column=gcfg.score_column)
    lesions = write_lesion_overlap(cohort, out_dir=stats_dir)
    if not gcfg.skip_states:
        from bids_app.group.states import run_states
        from bids_app.group.stats import run_stats

        states_summary = run_states(
            cohort, cache, gcfg, out_dir=group_dir / "states", random_seed=ex.random_seed
        )
        stats_summary = run_stats(
            cohort, cache, states_summary, gcfg, out_dir=stats_dir, random_seed=ex.random_seed
        )
    stats_summary = dict(stats_summary or {}, lesions=lesions, demographics_rows=len(demographics))

    from bids_app.group.report import write_group_report

    report = write_group_report(
        out,
        cohort=cohort,
        cfg=gcfg,
        cnn_summary=cnn_summary,
        states_summary=states_summary,
        stats_summary=stats_summary,
        methods_html=group_methods_html(config),
    )
    atomic_write_json(
        group_dir / "group_run.json",
        {
            "Version": __version__,
            "RunUUID": run_uuid,
            "Config": json.loads(json.dumps(config.to_dict(), default=str)),
        },
    )
    LOG.info("group report: %s", report)
    return 0


def _close_distributed() -> None:
    """Destroy torch's process group if torchrun's CNN training created one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def group_methods_html(config: Config) -> str:
    """Methods paragraph of the group level (HTML)."""
    g = config.group
    cv = (
        "stratified folds over participants (all windows of a participant in one fold)"
        if g.cv_unit == "subject"
        else "stratified folds over windows, as in the original study (windows of the same "
        "participant in training and test: the accuracy measures participant identification)"
    )
    return (
        f"<p>Group analyses used strokedfc {__version__}. Participants with {g.score_column} "
        f"&le; {g.severe_max:g} formed the severe group (SSP, positive class), the others the "
        f"mild/moderate group (MSP). The {g.model} classifier was evaluated with {g.n_folds}-fold "
        f"cross-validation, {cv}; {g.n_permutations} test-label permutations per fold gave "
        "p-values. Connectivity states were found with k-medians (L1 distance) on exemplar "
        "windows (local maxima of the spatial standard deviation), as in Allen et al. (2014), "
        "then all windows were assigned starting from the exemplar centroids. State-wise group "
        f"differences used a GLM two-sample t-test with covariates {', '.join(g.covariates)}, "
        f"|t| &gt; {g.t_threshold:g} and clusters of at least {g.cluster_size} voxels "
        "(uncorrected, as in Gao et al. 2025), and a permutation family-wise error correction "
        f"with {g.fwe_permutations} permutations (nilearn).</p>"
    )
