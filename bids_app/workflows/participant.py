"""Participant-level nipype workflows (niworkflows style: ``init_*_wf(*, ...)`` factories).

Every check that can fail on bad input has already run in :func:`bids_app.prepare.plan_run`;
the workflow does the heavy, volume-wise work and stages its outputs, which are published
only when the whole participant (all runs and the report) succeeded.
"""

from __future__ import annotations

import json
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_app.config import ParticipantConfig
from bids_app.interfaces.bold import Denoise, ResampleBold, SeedDFC
from bids_app.interfaces.derivatives import (
    ParticipantReport,
    PublishParticipant,
    WriteRunDerivatives,
)


def init_run_wf(
    *,
    plan_file: Path,
    sidecar_file: Path,
    config: ParticipantConfig,
    stage_dir: Path,
    write_denoised: bool = True,
    model_file: Path | None = None,
    omp_nthreads: int = 1,
    name: str = "run_wf",
) -> pe.Workflow:
    """Build the workflow of one BOLD run: resample and mirror, denoise, dFC, write.

    Workflow Graph
        inputnode -> resample -> denoise -> dfc -> write -> outputnode

    Parameters
    ----------
    plan_file : Path
        JSON of the run's :class:`bids_app.prepare.RunPlan`.
    sidecar_file : Path
        JSON of :func:`bids_app.sidecars.method_fields`.
    config : ParticipantConfig
        Method options.
    stage_dir : Path
        The participant's staging root.
    write_denoised : bool
        Write the denoised series.
    model_file : Path, optional
        A trained group-level model to grade the run with.
    omp_nthreads : int
        Threads for the numerical libraries of each node.
    name : str
        Workflow name.

    Outputs
    -------
    report_file
        JSON describing the run for the participant report.
    """
    plan = json.loads(Path(plan_file).read_text())
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = "Resampling, mirroring, denoising and sliding-window seed dFC of one run."
    inputnode = pe.Node(niu.IdentityInterface(fields=["bold_file"]), name="inputnode")
    inputnode.inputs.bold_file = plan["bold"]
    outputnode = pe.Node(
        niu.IdentityInterface(fields=["report_file", "out_files"]), name="outputnode"
    )

    resample = pe.Node(
        ResampleBold(
            dummy_scans=plan["dummy_scans"], resolution=config.resolution, mirror=plan["mirrored"]
        ),
        name="resample",
        n_procs=omp_nthreads,
        mem_gb=4.0,
    )
    denoise = pe.Node(
        Denoise(
            mask_file=plan["brain_mask_file"],
            confounds_file=plan["confounds_tsv"],
            t_r=plan["repetition_time"],
            high_pass=config.high_pass,
            low_pass=config.low_pass,
            fwhm=config.fwhm,
        ),
        name="denoise",
        n_procs=omp_nthreads,
        mem_gb=2.0,
    )
    dfc = pe.Node(
        SeedDFC(
            mask_file=plan["brain_mask_file"],
            seed_file=plan["seed_mask_file"],
            lesion_file=plan["lesion_mask_file"],
            window_length=config.window_length,
            window_step=config.window_step,
            window_shape=config.window_shape,
        ),
        name="dfc",
        n_procs=omp_nthreads,
        mem_gb=2.0,
    )
    write = pe.Node(
        WriteRunDerivatives(
            plan_file=str(plan_file),
            sidecar_file=str(sidecar_file),
            stage_dir=str(stage_dir),
            write_denoised=write_denoised,
            model_file=None if model_file is None else str(model_file),
        ),
        name="write",
        mem_gb=1.0,
    )
    # fmt: off
    workflow.connect([
        (inputnode, resample, [("bold_file", "bold_file")]),
        (resample, denoise, [("out_file", "in_file")]),
        (denoise, dfc, [("out_file", "in_file")]),
        (denoise, write, [("out_file", "denoised"), ("carpet_file", "carpet_file")]),
        (dfc, write, [("dfc", "dfc"), ("dfcmean", "dfcmean"), ("dfcstd", "dfcstd"),
                      ("dfccv", "dfccv"), ("sfc", "sfc"), ("seed_tsv", "seed_tsv"),
                      ("n_windows", "n_windows")]),
        (write, outputnode, [("report_file", "report_file"), ("out_files", "out_files")]),
    ])
    # fmt: on
    return workflow


def init_participant_wf(
    *,
    subject: str,
    plan_files: list[Path],
    sidecar_file: Path,
    config: ParticipantConfig,
    stage_dir: Path,
    output_dir: Path,
    config_hash: str,
    config_json: str,
    methods_html: str,
    write_denoised: bool = True,
    model_file: Path | None = None,
    omp_nthreads: int = 1,
    name: str | None = None,
) -> pe.Workflow:
    """Build the workflow of one participant: every run, the report, then publishing.

    Parameters
    ----------
    subject : str
        Participant label (no ``sub-``).
    plan_files : list of Path
        One RunPlan JSON per run.
    sidecar_file : Path
        JSON of :func:`bids_app.sidecars.method_fields`.
    config : ParticipantConfig
        Method options.
    stage_dir : Path
        Staging root of this participant (under ``output_dir``).
    output_dir : Path
        Final derivatives directory.
    config_hash : str
        Recorded in the completion marker (reruns with another configuration are refused).
    config_json : str
        Configuration shown in the report.
    methods_html : str
        Methods paragraph shown in the report.
    write_denoised : bool
        Write the denoised series.
    model_file : Path, optional
        A trained model to grade each run with.
    omp_nthreads : int
        Threads per node.
    name : str, optional
        Workflow name (default ``sub_<label>_wf``).
    """
    workflow = pe.Workflow(name=name or f"sub_{subject}_wf")
    merge = pe.Node(niu.Merge(len(plan_files)), name="merge_reports")
    report = pe.Node(
        ParticipantReport(
            subject=subject,
            stage_dir=str(stage_dir),
            methods_html=methods_html,
            config_json=config_json,
            max_motion=config.max_motion,
            seed_mni=[float(v) for v in config.seed_mni],
        ),
        name="report",
        mem_gb=1.0,
    )
    publish = pe.Node(
        PublishParticipant(
            subject=subject,
            stage_dir=str(stage_dir),
            output_dir=str(output_dir),
            config_hash=config_hash,
        ),
        name="publish",
    )
    for i, plan_file in enumerate(plan_files, start=1):
        run_wf = init_run_wf(
            plan_file=plan_file,
            sidecar_file=sidecar_file,
            config=config,
            stage_dir=stage_dir,
            write_denoised=write_denoised,
            model_file=model_file,
            omp_nthreads=omp_nthreads,
            name=f"run_{i:02d}_wf",
        )
        workflow.connect(run_wf, "outputnode.report_file", merge, f"in{i}")
    workflow.connect(merge, "out", report, "run_reports")
    workflow.connect(report, "out_report", publish, "out_report")
    return workflow
