"""Thin nipype interfaces around the numerical core (file in, file out).

Each interface loads its inputs, calls pure functions of :mod:`bids_app.core` and writes
its results into the node's directory. The arrays are the method; the interfaces only move
them between files.
"""

from __future__ import annotations

import os

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

N_CARPET_VOXELS = 800


def _mask(path: str) -> np.ndarray:
    import nibabel as nib

    return np.asanyarray(nib.load(path).dataobj) > 0


class _ScaledVolumes:
    """Volumes ``offset..T`` of an unscaled array, scaled to float32 one at a time."""

    def __init__(self, raw: np.ndarray, slope: float, inter: float, offset: int):
        self.raw, self.slope, self.inter, self.offset = raw, slope, inter, offset
        self.shape = raw.shape[:3] + (raw.shape[3] - offset,)

    def __getitem__(self, index):
        t = index[-1] + self.offset
        vol = np.asarray(self.raw[..., t], dtype=np.float32)
        return vol * np.float32(self.slope) + np.float32(self.inter)


class _ResampleBoldInput(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="preprocessed BOLD in template space")
    dummy_scans = traits.Int(0, usedefault=True, desc="initial volumes to drop")
    resolution = traits.Float(3.0, usedefault=True, desc="output grid voxel size (mm)")
    mirror = traits.Bool(False, usedefault=True, desc="flip left-right about x = 0")


class _ResampleBoldOutput(TraitedSpec):
    out_file = File(exists=True, desc="BOLD on the output grid (float32)")


class ResampleBold(SimpleInterface):
    """Drop dummy scans, resample onto the SPM-box output grid, mirror if asked."""

    input_spec = _ResampleBoldInput
    output_spec = _ResampleBoldOutput

    def _run_interface(self, runtime):
        import nibabel as nib

        from bids_app.core.grid import output_grid, resample_series
        from bids_app.core.mirror import mirror_lr

        img = nib.load(self.inputs.bold_file)
        proxy = img.dataobj
        # One decompression of the whole file (slicing a .nii.gz volume by volume would
        # decompress it again for every volume), kept in its stored dtype.
        raw = proxy.get_unscaled() if hasattr(proxy, "get_unscaled") else np.asarray(proxy)
        slope = float(getattr(proxy, "slope", 1.0))
        inter = float(getattr(proxy, "inter", 0.0))
        shape, affine = output_grid(self.inputs.resolution)
        volumes = _ScaledVolumes(raw, slope, inter, self.inputs.dummy_scans)
        data = resample_series(volumes, img.affine, shape, affine, order=1, dtype=np.float32)
        del raw
        if self.inputs.mirror:
            data = mirror_lr(data, affine)
        out = os.path.join(runtime.cwd, "bold_grid.nii")
        hdr = nib.Nifti1Header()
        hdr.set_xyzt_units("mm", "sec")
        nib.Nifti1Image(data.astype(np.float32, copy=False), affine, hdr).to_filename(out)
        self._results["out_file"] = out
        return runtime


class _DenoiseInput(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="BOLD on the output grid")
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the output grid")
    confounds_file = File(exists=True, mandatory=True, desc="selected confounds (retained rows)")
    t_r = traits.Float(mandatory=True, desc="repetition time (s)")
    high_pass = traits.Either(None, traits.Float, default=0.01, usedefault=True)
    low_pass = traits.Either(None, traits.Float, default=0.1, usedefault=True)
    fwhm = traits.Float(6.0, usedefault=True, desc="smoothing FWHM (mm)")


class _DenoiseOutput(TraitedSpec):
    out_file = File(exists=True, desc="denoised, smoothed BOLD (float32)")
    carpet_file = File(exists=True, desc="npz with 'before' and 'after' voxel samples (T x n)")


class Denoise(SimpleInterface):
    """Detrend, band-pass and regress (confounds filtered with the data), then smooth."""

    input_spec = _DenoiseInput
    output_spec = _DenoiseOutput

    def _run_interface(self, runtime):
        import nibabel as nib
        import pandas as pd

        from bids_app.core.signal import clean, smooth_volume

        img = nib.load(self.inputs.in_file)
        data = np.asarray(img.dataobj, dtype=np.float32)
        mask = _mask(self.inputs.mask_file)
        series = data[mask].T  # (T, V)
        try:
            table = pd.read_csv(self.inputs.confounds_file, sep="\t")
        except pd.errors.EmptyDataError:  # strategy "none": a table without columns
            table = pd.DataFrame()
        confounds = table.to_numpy(dtype=np.float64) if table.shape[1] else None
        cleaned = clean(
            series,
            t_r=self.inputs.t_r,
            confounds=confounds,
            high_pass=self.inputs.high_pass,
            low_pass=self.inputs.low_pass,
        )
        # Filter edge effects and the intercept-free regression can leave a small temporal
        # mean; the window taper multiplies the series before demeaning (DPABI), so a mean
        # would become a signal shared by all voxels. Remove it over the whole run.
        cleaned -= cleaned.mean(axis=0, keepdims=True)
        sample = np.unique(np.linspace(0, series.shape[1] - 1, N_CARPET_VOXELS).astype(int))
        carpet = os.path.join(runtime.cwd, "carpet.npz")
        np.savez_compressed(carpet, before=series[:, sample], after=cleaned[:, sample])
        out4d = np.zeros(data.shape, dtype=np.float32)
        out4d[mask] = cleaned.T
        del data, series, cleaned
        if self.inputs.fwhm > 0:
            out4d = smooth_volume(out4d, img.affine, self.inputs.fwhm).astype(np.float32)
            out4d[~mask] = 0.0
        out = os.path.join(runtime.cwd, "denoised.nii")
        nib.Nifti1Image(out4d, img.affine, img.header).to_filename(out)
        self._results["out_file"] = out
        self._results["carpet_file"] = carpet
        return runtime


class _SeedDFCInput(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="denoised BOLD on the output grid")
    mask_file = File(exists=True, mandatory=True, desc="brain mask")
    seed_file = File(exists=True, mandatory=True, desc="seed mask")
    lesion_file = traits.Either(None, File(exists=True), default=None, usedefault=True)
    window_length = traits.Int(mandatory=True)
    window_step = traits.Int(1, usedefault=True)
    window_shape = traits.Enum("hamming", "rectangular", "hann", usedefault=True)


class _SeedDFCOutput(TraitedSpec):
    dfc = File(exists=True, desc="4D Fisher-z maps, one per window")
    dfcmean = File(exists=True)
    dfcstd = File(exists=True)
    dfccv = File(exists=True)
    sfc = File(exists=True, desc="static (whole-run) Fisher-z map")
    seed_tsv = File(exists=True, desc="seed time series")
    n_windows = traits.Int()


class SeedDFC(SimpleInterface):
    """Seed series, sliding-window dFC (all windows at once), summaries and static map."""

    input_spec = _SeedDFCInput
    output_spec = _SeedDFCOutput

    def _run_interface(self, runtime):
        import nibabel as nib
        import pandas as pd

        from bids_app.core.dfc import dfc_summary, sliding_window_dfc, static_fc

        img = nib.load(self.inputs.in_file)
        data = np.asarray(img.dataobj, dtype=np.float32)
        brain = _mask(self.inputs.mask_file)
        seed = _mask(self.inputs.seed_file)
        lesion = np.zeros_like(brain)
        if isdefined(self.inputs.lesion_file) and self.inputs.lesion_file:
            lesion = _mask(self.inputs.lesion_file)
        seed_series = data[seed].astype(np.float64).mean(axis=0)
        voxels = data[brain]  # (V, T)
        valid = ~lesion[brain]
        z = sliding_window_dfc(
            voxels,
            seed_series,
            window_length=self.inputs.window_length,
            step=self.inputs.window_step,
            shape=self.inputs.window_shape,
            valid=valid,
        )
        mean, std, cv = dfc_summary(z)
        static = static_fc(voxels, seed_series, valid=valid)

        def save(name: str, values: np.ndarray) -> str:
            values = np.atleast_2d(values)
            vol = np.zeros(brain.shape + (values.shape[0],), dtype=np.float32)
            vol[brain] = values.T
            if vol.shape[-1] == 1:
                vol = vol[..., 0]
            path = os.path.join(runtime.cwd, name)
            nib.Nifti1Image(vol, img.affine).to_filename(path)
            return path

        self._results["dfc"] = save("dfc.nii", z)
        self._results["dfcmean"] = save("dfcmean.nii", mean)
        self._results["dfcstd"] = save("dfcstd.nii", std)
        self._results["dfccv"] = save("dfccv.nii", cv)
        self._results["sfc"] = save("sfc.nii", static)
        seed_tsv = os.path.join(runtime.cwd, "seed.tsv")
        pd.DataFrame({"seed": seed_series}).to_csv(seed_tsv, sep="\t", index=False)
        self._results["seed_tsv"] = seed_tsv
        self._results["n_windows"] = int(z.shape[0])
        return runtime
