"""Interfaces that write a participant's derivatives into a staging directory and publish them.

Files are staged under ``output_dir/.strokedfc-staging/`` and moved to their final names only
when every run and the report of the participant succeeded (:class:`PublishParticipant`), so a
failure or an interrupt never leaves a half-written participant.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

N_STRIP_WINDOWS = 8


class _WriteRunInput(BaseInterfaceInputSpec):
    plan_file = File(exists=True, mandatory=True, desc="JSON of the RunPlan")
    sidecar_file = File(exists=True, mandatory=True, desc="JSON of the method sidecar fields")
    stage_dir = traits.Str(mandatory=True, desc="staging root mirroring output_dir")
    dfc = File(exists=True, mandatory=True)
    dfcmean = File(exists=True, mandatory=True)
    dfcstd = File(exists=True, mandatory=True)
    dfccv = File(exists=True, mandatory=True)
    sfc = File(exists=True, mandatory=True)
    denoised = File(exists=True, mandatory=True)
    seed_tsv = File(exists=True, mandatory=True)
    carpet_file = File(exists=True, mandatory=True)
    n_windows = traits.Int(mandatory=True)
    write_denoised = traits.Bool(True, usedefault=True)
    model_file = traits.Either(None, traits.Str, default=None, usedefault=True)


class _WriteRunOutput(TraitedSpec):
    report_file = File(exists=True, desc="JSON describing the run for the report")
    out_files = traits.List(traits.Str, desc="files written, relative to the staging root")


class WriteRunDerivatives(SimpleInterface):
    """Write one run's contract outputs (gzipped, BIDS names) and its dfc sidecar."""

    input_spec = _WriteRunInput
    output_spec = _WriteRunOutput

    def _run_interface(self, runtime):
        import nibabel as nib
        import pandas as pd

        from bids_app.outputs import atomic_save_nifti, atomic_write_json, derivative_path
        from bids_app.sidecars import dfc_sidecar

        plan = json.loads(Path(self.inputs.plan_file).read_text())
        method = json.loads(Path(self.inputs.sidecar_file).read_text())
        stage = Path(self.inputs.stage_dir)
        written: list[str] = []

        def dest(suffix_desc: str, ext: str, spatial: bool = True) -> Path:
            return derivative_path(
                stage,
                plan["subject"],
                plan["session"],
                plan["prefix"],
                space=plan["space_entity"] if spatial else None,
                suffix_desc=suffix_desc,
                ext=ext,
            )

        def put_nifti(src: str, suffix_desc: str, *, dtype=np.float32) -> None:
            img = nib.load(src)
            data = np.asarray(img.dataobj).astype(dtype)
            new = nib.Nifti1Image(data, img.affine)
            new.header.set_xyzt_units("mm", "sec")
            if data.ndim == 4:
                new.header.set_zooms(img.header.get_zooms()[:3] + (plan["repetition_time"],))
            out = dest(suffix_desc, ".nii.gz")
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_save_nifti(new, out)
            written.append(str(out.relative_to(stage)))

        put_nifti(self.inputs.dfc, "desc-dfc_boldmap")
        put_nifti(self.inputs.dfcmean, "desc-dfcmean_boldmap")
        put_nifti(self.inputs.dfcstd, "desc-dfcstd_boldmap")
        put_nifti(self.inputs.dfccv, "desc-dfccv_boldmap")
        put_nifti(self.inputs.sfc, "desc-sfc_boldmap")
        if self.inputs.write_denoised:
            put_nifti(self.inputs.denoised, "desc-denoised_bold")
        put_nifti(plan["brain_mask_file"], "desc-brain_mask", dtype=np.uint8)
        put_nifti(plan["seed_mask_file"], "label-seed_mask", dtype=np.uint8)
        if plan["lesion_mask_file"]:
            put_nifti(plan["lesion_mask_file"], "label-lesion_mask", dtype=np.uint8)

        seed = pd.read_csv(self.inputs.seed_tsv, sep="\t")
        path = dest("desc-seed_timeseries", ".tsv", spatial=False)
        seed.to_csv(path, sep="\t", index=False, float_format="%.8g")
        written.append(str(path.relative_to(stage)))
        if plan["confound_columns"]:  # strategy "none" regresses nothing: no table
            nuisance = pd.read_csv(plan["confounds_tsv"], sep="\t")
            path = dest("desc-nuisance_timeseries", ".tsv", spatial=False)
            nuisance.to_csv(path, sep="\t", index=False, float_format="%.8g")
            written.append(str(path.relative_to(stage)))

        sidecar = dfc_sidecar(plan, method, n_windows=self.inputs.n_windows)
        path = dest("desc-dfc_boldmap", ".json")
        atomic_write_json(path, sidecar)
        written.append(str(path.relative_to(stage)))

        prediction = None
        if self.inputs.model_file:
            prediction = _predict(self.inputs.model_file, self.inputs.dfc, plan["brain_mask_file"])
            path = dest("desc-prediction_severity", ".tsv", spatial=False)
            pd.DataFrame([prediction]).to_csv(path, sep="\t", index=False)
            written.append(str(path.relative_to(stage)))

        report = {
            "plan": plan,
            "sidecar": sidecar,
            "dfc": self.inputs.dfc,
            "dfcmean": self.inputs.dfcmean,
            "dfcstd": self.inputs.dfcstd,
            "denoised": self.inputs.denoised,
            "seed_tsv": self.inputs.seed_tsv,
            "carpet_file": self.inputs.carpet_file,
            "prediction": prediction,
        }
        report_file = os.path.join(runtime.cwd, "report.json")
        Path(report_file).write_text(json.dumps(report, default=str))
        self._results["report_file"] = report_file
        self._results["out_files"] = written
        return runtime


def _predict(model_file: str, dfc_file: str, mask_file: str) -> dict:
    """Grade one run with a trained group-level model (imports torch lazily)."""
    import nibabel as nib

    from bids_app.group.cnn.predict import load_model, predict_participant

    model, meta = load_model(model_file)
    dfc = np.asarray(nib.load(dfc_file).dataobj, dtype=np.float32)
    mask = np.asarray(nib.load(mask_file).dataobj) > 0
    return dict(predict_participant(model, meta, dfc, mask))


class _ReportInput(BaseInterfaceInputSpec):
    subject = traits.Str(mandatory=True)
    stage_dir = traits.Str(mandatory=True)
    run_reports = traits.List(File(exists=True), mandatory=True)
    methods_html = traits.Str(mandatory=True)
    config_json = traits.Str(mandatory=True)
    max_motion = traits.Float(mandatory=True)
    seed_mni = traits.List(traits.Float, mandatory=True)


class _ReportOutput(TraitedSpec):
    # a string, not File(exists=True): publishing moves the staged report afterwards
    out_report = traits.Str()


class ParticipantReport(SimpleInterface):
    """Write ``sub-<label>.html`` and its figures into the staging directory."""

    input_spec = _ReportInput
    output_spec = _ReportOutput

    def _run_interface(self, runtime):
        from bids_app.reports.participant import write_participant_report

        runs = [
            _report_data(f, self.inputs.max_motion, self.inputs.seed_mni)
            for f in self.inputs.run_reports
        ]
        out = write_participant_report(
            self.inputs.stage_dir,
            self.inputs.subject,
            runs,
            methods_html=self.inputs.methods_html,
            config_summary=json.loads(self.inputs.config_json),
        )
        self._results["out_report"] = str(out)
        return runtime


def _report_data(report_file: str, max_motion: float, seed_mni: list[float]):
    import nibabel as nib
    import pandas as pd

    from bids_app.reports.participant import RunReportData

    info = json.loads(Path(report_file).read_text())
    plan, sidecar = info["plan"], info["sidecar"]

    def load(path: str) -> np.ndarray:
        return np.asarray(nib.load(path).dataobj)

    dfc_img = nib.load(info["dfc"])
    n_win = dfc_img.shape[3]
    idx = np.unique(np.linspace(0, n_win - 1, min(N_STRIP_WINDOWS, n_win)).astype(int))
    windows = np.stack(
        [np.asarray(dfc_img.dataobj[..., int(i)], dtype=np.float32) for i in idx], -1
    )
    background = _template_background(dfc_img.shape[:3], dfc_img.affine)
    if background is None:  # fall back on the temporal SD of the denoised series
        background = np.asarray(nib.load(info["denoised"]).dataobj, dtype=np.float32).std(axis=3)
    carpet = np.load(info["carpet_file"])
    qc = dict(plan["qc"])
    qc.update(
        LesionVolume=plan["lesion_volume_ml"],
        SeedVoxels=plan["seed_voxels"],
        SeedLesionOverlap=plan["seed_lesion_overlap"],
        LesionSide=plan["lesion_side"],
        Mirrored=plan["mirrored"],
        NumberOfWindows=n_win,
        DummyScans=plan["dummy_scans"],
    )
    return RunReportData(
        prefix=plan["prefix"],
        background=background,
        affine=dfc_img.affine,
        brain_mask=load(plan["brain_mask_file"]) > 0,
        seed_mask=load(plan["seed_mask_file"]) > 0,
        lesion_mask=load(plan["lesion_mask_file"]) > 0 if plan["lesion_mask_file"] else None,
        seed_mni=tuple(seed_mni),
        carpet_before=carpet["before"],
        carpet_after=carpet["after"],
        motion=pd.read_csv(plan["motion_tsv"], sep="\t"),
        max_motion=max_motion,
        dfc_mean=load(info["dfcmean"]),
        dfc_std=load(info["dfcstd"]),
        window_maps=windows,
        window_indices=[int(i) for i in idx],
        window_onsets=[sidecar["WindowOnsets"][i] for i in idx],
        seed_series=pd.read_csv(info["seed_tsv"], sep="\t")["seed"].to_numpy(),
        tr=plan["repetition_time"],
        qc=qc,
        prediction=_report_prediction(info.get("prediction")),
    )


def _template_background(shape: tuple, affine: np.ndarray) -> np.ndarray | None:
    """nilearn's packaged MNI152 (2009a sym) T1 template on the output grid, if available.

    Every run of a participant shares the output grid: the template is loaded and resampled
    once per grid (cached; callers only read the array).
    """
    return _template_on_grid(tuple(int(n) for n in shape), tuple(map(tuple, np.asarray(affine))))


@functools.lru_cache(maxsize=2)
def _template_on_grid(shape: tuple, affine_rows: tuple) -> np.ndarray | None:
    affine = np.asarray(affine_rows, dtype=float)
    try:
        from nilearn.datasets import load_mni152_template

        from bids_app.core.grid import resample_volume

        tpl = load_mni152_template(resolution=2)
        data = np.asarray(tpl.dataobj, dtype=np.float32)
        return resample_volume(data, tpl.affine, tuple(shape), affine, order=1)
    except Exception:  # noqa: BLE001 - a report background is never worth a crash
        return None


def _report_prediction(pred: dict | None) -> dict | None:
    """Map :func:`bids_app.group.cnn.predict.predict_participant` keys to the report's."""
    if pred is None:
        return None
    accuracy = pred.get("cv_participant_accuracy")
    return {
        "PredictedClass": pred["predicted_class"],
        "ProbabilityMean": f"{pred['probability_mean']:.3f} (P severe)",
        "ProbabilitySpread": (
            f"SD {pred['probability_sd']:.3f}, range {pred['probability_min']:.3f}-"
            f"{pred['probability_max']:.3f} over {pred['n_windows']} windows"
        ),
        "CVAccuracy": "n/a" if accuracy is None else f"{100 * accuracy:.1f} %",
        "Disclaimer": pred.get("disclaimer"),
    }


class _PublishInput(BaseInterfaceInputSpec):
    subject = traits.Str(mandatory=True)
    stage_dir = traits.Str(mandatory=True)
    output_dir = traits.Str(mandatory=True)
    config_hash = traits.Str(mandatory=True)
    out_report = traits.Str(mandatory=True, desc="only a dependency: publish last")


class _PublishOutput(TraitedSpec):
    files = traits.List(traits.Str)


class PublishParticipant(SimpleInterface):
    """Move the staged files to their final names and mark the participant complete."""

    input_spec = _PublishInput
    output_spec = _PublishOutput

    def _run_interface(self, runtime):
        from bids_app.outputs import mark_participant_complete, publish_stage

        output_dir = Path(self.inputs.output_dir)
        files = publish_stage(self.inputs.stage_dir, output_dir)
        mark_participant_complete(output_dir, self.inputs.subject, self.inputs.config_hash, files)
        self._results["files"] = files
        return runtime
