"""Sidecar metadata and the methods text of the participant level (pure functions)."""

from __future__ import annotations

from pathlib import Path

from bids_app.config import ParticipantConfig
from bids_app.core.grid import SPM_BBOX


def grid_description(resolution: float, shape: tuple[int, int, int]) -> str:
    """Describe the output grid for the ``Resolution`` sidecar field."""
    lo, hi = SPM_BBOX
    return (
        f"{resolution:g} mm isotropic grid of {shape[0]}x{shape[1]}x{shape[2]} voxels on the SPM "
        f"bounding box [{lo[0]} {lo[1]} {lo[2]}; {hi[0]} {hi[1]} {hi[2]}] mm "
        "(symmetric about x = 0)"
    )


def source_uri(path: str | Path, datasets: dict[str, Path]) -> str:
    """Return a BIDS URI ``bids:<name>:<relative path>`` or the path when outside every dataset."""
    path = Path(path).absolute()
    for name, root in datasets.items():
        try:
            return f"bids:{name}:{path.relative_to(Path(root).absolute()).as_posix()}"
        except ValueError:
            continue
    return str(path)


def method_fields(config: ParticipantConfig, shape: tuple[int, int, int]) -> dict:
    """Sidecar fields that depend on the configuration only."""
    return {
        "WindowLength": int(config.window_length),
        "WindowStep": int(config.window_step),
        "WindowShape": config.window_shape,
        "SeedMNI": [float(v) for v in config.seed_mni],
        "SeedRadius": float(config.seed_radius),
        "HighPass": config.high_pass,
        "LowPass": config.low_pass,
        "SmoothingFWHM": float(config.fwhm),
        "ConfoundStrategy": str(config.confounds),
        "MaxMotionThreshold": float(config.max_motion),
        "Resolution": grid_description(config.resolution, shape),
    }


def dfc_sidecar(plan: dict, method: dict, *, n_windows: int) -> dict:
    """Build the ``desc-dfc_boldmap.json`` sidecar of one run.

    Parameters
    ----------
    plan : dict
        :meth:`bids_app.prepare.RunPlan.to_dict` plus ``sources`` as BIDS URIs.
    method : dict
        :func:`method_fields` output.
    n_windows : int
        Number of windows in the 4D map.
    """
    tr = float(plan["repetition_time"])
    step = int(method["WindowStep"])
    qc = plan["qc"]
    return {
        "Description": "Sliding-window seed-based dynamic functional connectivity: one "
        "Fisher-z map (atanh of Pearson r with the seed series) per window",
        "Units": "z",
        "RepetitionTime": tr,
        "WindowLength": int(method["WindowLength"]),
        "WindowStep": step,
        "WindowShape": method["WindowShape"],
        "NumberOfWindows": int(n_windows),
        "WindowOnsets": [round(k * step * tr, 6) for k in range(n_windows)],
        "SeedMNI": method["SeedMNI"],
        "SeedRadius": method["SeedRadius"],
        "SeedVoxels": int(plan["seed_voxels"]),
        "SeedLesionOverlap": int(plan["seed_lesion_overlap"]),
        "Mirrored": bool(plan["mirrored"]),
        "LesionSide": plan["lesion_side"],
        "DummyScans": int(plan["dummy_scans"]),
        "Confounds": list(plan["confound_columns"]),
        "ConfoundStrategy": method["ConfoundStrategy"],
        "HighPass": method["HighPass"],
        "LowPass": method["LowPass"],
        "SmoothingFWHM": method["SmoothingFWHM"],
        "MaxTranslation": float(qc["MaxTranslation"]),
        "MaxRotation": float(qc["MaxRotation"]),
        "MeanFD": float(qc["MeanFD"]),
        "HighMotion": bool(qc["HighMotion"]),
        "MaxMotionThreshold": method["MaxMotionThreshold"],
        "LesionVolume": plan["lesion_volume_ml"],
        "Sources": list(plan["sources"]),
        "Resolution": method["Resolution"],
    }


def methods_markdown(config: ParticipantConfig, *, version: str) -> str:
    """The methods paragraph (boilerplate for papers) with references, as Markdown."""
    hp = "none" if config.high_pass is None else f"{config.high_pass:g} Hz"
    lp = "none" if config.low_pass is None else f"{config.low_pass:g} Hz"
    dummy = (
        "the volumes flagged by fMRIPrep as non-steady-state"
        if config.dummy_scans == "auto"
        else f"the first {config.dummy_scans} volumes"
    )
    x, y, z = config.seed_mni
    return f"""\
# Methods (strokedfc {version})

Dynamic functional connectivity was computed with strokedfc {version}, which implements the
method of Gao et al. (2025) on fMRIPrep derivatives (Esteban et al., 2019). For each run,
{dummy} were discarded. The preprocessed BOLD series in template space was resampled (trilinear
interpolation, by world coordinates, one volume at a time) onto a {config.resolution:g} mm grid on
the SPM bounding box [-90 -126 -72; 90 90 108] mm. Brains of participants with right-hemisphere
lesions were mirrored about the mid-sagittal plane (x = 0) so that the lesion lies in the left
hemisphere for everyone. Denoising followed nilearn's `signal.clean` (Abraham et al., 2014):
linear detrending of data and confounds, the same Butterworth band-pass filter ({hp} to {lp})
applied to data and confounds, then least-squares regression of the filtered confounds (strategy
{config.confounds}; 26P = 24 head-motion parameters, white matter and CSF, no global signal), so
that the regression does not re-introduce filtered frequencies. Series were then smoothed with a
{config.fwhm:g} mm FWHM Gaussian kernel. The seed was a {config.seed_radius:g} mm sphere at MNI
({x:g}, {y:g}, {z:g}) (ipsilesional M1), restricted to the brain mask and excluding lesion
voxels; the seed series was the mean of its voxels. Sliding windows of {config.window_length} TRs
shifted by {config.window_step} TR were tapered with a {config.window_shape} window applied to the
seed and voxel series, and the Pearson correlation within each window was Fisher z-transformed,
as in DPABI's Temporal Dynamic Analysis (Yan et al., 2016). Voxels outside the brain, inside the
lesion or with zero variance were set to 0. The mean, standard deviation and coefficient of
variation of z across windows and the static (whole-run) seed map were also computed. Runs whose
maximum translation or rotation exceeded {config.max_motion:g} mm or degrees were flagged.

## References
- Gao et al. (2025). Assessment of functional decline in stroke patients using 3D deep learning
  and dynamic functional connectivity based on resting-state fMRI. Front. Neurol. 16:1666991.
- Esteban et al. (2019). fMRIPrep: a robust preprocessing pipeline for functional MRI.
  Nat. Methods 16:111-116.
- Abraham et al. (2014). Machine learning for neuroimaging with scikit-learn. Front. Neuroinform.
  8:14.
- Yan et al. (2016). DPABI: Data Processing & Analysis for (Resting-State) Brain Imaging.
  Neuroinformatics 14:339-351.
- Friston et al. (1996). Movement-related effects in fMRI time-series. Magn. Reson. Med.
  35:346-355.
"""
