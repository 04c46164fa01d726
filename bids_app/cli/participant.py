"""Participant level: collect inputs, plan (all checks), build and run the nipype workflow."""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from pathlib import Path

from bids_app.__about__ import __version__
from bids_app.config import Config
from bids_app.errors import StrokeDFCError

LOG = logging.getLogger("strokedfc")


def _plan_participant(part, config: Config, work: Path) -> list[Path]:
    """Plan every run of a participant; return the RunPlan JSON files."""
    from bids_app.prepare import plan_run
    from bids_app.sidecars import source_uri

    ex = config.execution
    datasets = {"fmriprep": ex.fmriprep_dir, "raw": ex.bids_dir}
    if ex.lesion_dir is not None:
        datasets = {"lesions": ex.lesion_dir, **datasets}
    files = []
    for run in part.runs:
        plan = plan_run(
            run,
            config=config.participant,
            table_side=part.lesion_side,
            work_dir=work,
            participants_tsv=ex.bids_dir / "participants.tsv",
        )
        info = plan.to_dict()
        info["sources"] = [source_uri(p, datasets) for p in plan.sources]
        path = work / "plans" / plan.prefix / "plan.json"
        path.write_text(json.dumps(info, indent=2))
        files.append(path)
    return files


def _load_plugin(path: Path | None, nprocs: int) -> tuple[str, dict]:
    """Nipype plugin and arguments, from --use-plugin (YAML, JSON or TOML) or --nprocs."""
    if path is None:
        if nprocs > 1:
            return "MultiProc", {"n_procs": nprocs, "raise_insufficient": False}
        return "Linear", {}
    from bids_app.errors import ConfigError

    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise ConfigError(f"cannot parse the nipype plugin file ({exc})", path) from None
    if not isinstance(data, dict) or "plugin" not in data:
        raise ConfigError("a nipype plugin file needs a 'plugin' key", path)
    return str(data["plugin"]), dict(data.get("plugin_args") or {})


def run_participant_level(config: Config) -> int:
    """Process every selected participant; return the exit status."""
    from nipype import config as ncfg

    from bids_app.inputs import collect_participants
    from bids_app.outputs import check_rerun, discard_stage, new_stage
    from bids_app.provenance import (
        container_info,
        write_citation,
        write_dataset_description,
        write_run_config,
    )
    from bids_app.sidecars import method_fields, methods_markdown
    from bids_app.workflows.participant import init_participant_wf

    ex, pcfg = config.execution, config.participant
    participants = collect_participants(
        ex.bids_dir,
        ex.fmriprep_dir,
        participant_labels=ex.participant_label or None,
        session_labels=ex.session_label or None,
        task=ex.task_id,
        space=pcfg.space,
        bids_filters=ex.bids_filters or None,
        lesion_dir=ex.lesion_dir,
        lesion_side_column=pcfg.lesion_side_column,
    )
    run_uuid = f"{uuid.uuid4().hex[:12]}"
    work = ex.work_dir / f"participant_{run_uuid}"
    config_hash = config.participant_hash()

    todo, failed = [], []
    for part in participants:
        try:
            if check_rerun(ex.output_dir, part.subject, config_hash, ex.overwrite):
                LOG.info("sub-%s already complete with this configuration: skipped", part.subject)
                continue
            todo.append((part, _plan_participant(part, config, work / f"sub-{part.subject}")))
        except StrokeDFCError as exc:
            if ex.stop_on_first_crash or len(participants) == 1:
                raise
            print(f"strokedfc: error: {exc}", file=sys.stderr)
            failed.append(part.subject)
    if not todo:
        return 1 if failed else 0

    from bids_app.core.grid import output_grid

    shape, _ = output_grid(pcfg.resolution)
    ex.output_dir.mkdir(parents=True, exist_ok=True)
    sidecar_file = work / "method.json"
    sidecar_file.write_text(json.dumps(method_fields(pcfg, shape)))
    methods = methods_markdown(pcfg, version=__version__)
    methods_html = _markdown_to_html(methods)
    config_json = json.dumps(config.to_dict(), default=str)

    write_dataset_description(
        ex.output_dir,
        source_datasets=[ex.bids_dir.as_uri(), ex.fmriprep_dir.as_uri()],
        container=container_info(),
    )
    write_citation(ex.output_dir, methods)
    write_run_config(ex.output_dir, config.to_toml(), run_uuid)

    ncfg.update_config(
        {
            "execution": {
                "crashdump_dir": str(work / "crash"),
                "crashfile_format": "txt",
                "stop_on_first_crash": ex.stop_on_first_crash,
                "poll_sleep_duration": 0.1,
                "remove_unnecessary_outputs": False,
                "create_report": False,
            },
            "monitoring": {"enabled": False},
            "logging": {
                "workflow_level": "INFO" if ex.verbose else "WARNING",
                "interface_level": "INFO" if ex.verbose else "WARNING",
            },
        }
    )
    from nipype import logging as nlogging

    nlogging.update_logging(ncfg)
    plugin, plugin_args = _load_plugin(ex.use_plugin, ex.nprocs)
    os.environ.setdefault("OMP_NUM_THREADS", str(ex.omp_nthreads))

    from nipype.pipeline import engine as pe

    top = pe.Workflow(name="strokedfc_wf", base_dir=str(work))
    stages = {}
    for part, plans in todo:
        stages[part.subject] = new_stage(ex.output_dir, tag=f"sub-{part.subject}")
        top.add_nodes(
            [
                init_participant_wf(
                    subject=part.subject,
                    plan_files=plans,
                    sidecar_file=sidecar_file,
                    config=pcfg,
                    stage_dir=stages[part.subject],
                    output_dir=ex.output_dir,
                    config_hash=config_hash,
                    config_json=config_json,
                    methods_html=methods_html,
                    write_denoised=ex.write_denoised,
                    model_file=ex.model_file,
                    omp_nthreads=ex.omp_nthreads,
                )
            ]
        )
    LOG.info(
        "processing %d participant(s) with nipype %s (work directory %s)", len(todo), plugin, work
    )
    # nipype's scheduler calls gc.collect() at every poll: freezing the objects that exist now
    # (the built workflow) keeps that cheap (measured: half the CPU of a res-2 participant).
    import gc

    gc.collect()
    gc.freeze()
    try:
        top.run(plugin=plugin, plugin_args=plugin_args)
    except RuntimeError as exc:
        LOG.error("%s", exc)
    finally:
        for stage in stages.values():
            discard_stage(stage)

    from bids_app.outputs import participant_status

    for part, _ in todo:
        record = participant_status(ex.output_dir, part.subject)
        if record is None or record.get("ConfigHash") != config_hash:
            failed.append(part.subject)
            print(
                f"strokedfc: error: sub-{part.subject}: processing failed; crash files in "
                f"{work / 'crash'}",
                file=sys.stderr,
            )
        else:
            LOG.info("sub-%s: done (%s)", part.subject, ex.output_dir / f"sub-{part.subject}.html")
    return 1 if failed else 0


def _markdown_to_html(text: str) -> str:
    """Tiny Markdown subset (headings, bullets, paragraphs) to HTML for the report."""
    import html

    out, para = [], []

    def flush():
        if para:
            out.append(f"<p>{html.escape(' '.join(para))}</p>")
            para.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            flush()
            level = min(len(stripped) - len(stripped.lstrip("#")) + 2, 6)
            out.append(f"<h{level}>{html.escape(stripped.lstrip('#').strip())}</h{level}>")
        elif stripped.startswith("- "):
            flush()
            out.append(f"<li>{html.escape(stripped[2:])}</li>")
        elif not stripped:
            flush()
        elif line.startswith("  ") and out and out[-1].startswith("<li>"):
            out[-1] = out[-1][:-5] + " " + html.escape(stripped) + "</li>"
        else:
            para.append(stripped)
    flush()
    return "\n".join(out)
