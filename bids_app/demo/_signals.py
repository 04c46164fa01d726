"""Time series of the synthetic demo data: band-limited signals, latent states, head
motion and an fMRIPrep-shaped confounds table.

Everything here is a pure function of its arguments; randomness comes only from the
``numpy.random.Generator`` passed in, so a fixed seed gives identical outputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Radius (mm) of the sphere used to turn rotations into displacements (Power et al. 2012).
HEAD_RADIUS_MM = 50.0
MOTION_NAMES = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
#: Motion columns whose sign changes under a left-right mirror (x -> -x).
MIRROR_SIGN = np.array([-1.0, 1.0, 1.0, 1.0, -1.0, -1.0])
#: Seed coupling of the always-coupled region, and of the state regions in their state.
COUPLING_ALL = 0.85
COUPLING_STATE = 0.8
#: Amplitude (BOLD units, baseline about 1000) of the planted network signal.
NETWORK_AMPLITUDE = 6.0


def band_limited(
    rng: np.random.Generator,
    n_series: int,
    n_t: int,
    tr: float,
    low: float = 0.01,
    high: float = 0.1,
) -> np.ndarray:
    """Unit-variance Gaussian series with power only between ``low`` and ``high`` Hz.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n_series, n_t : int
        Number of series and of time points.
    tr : float
        Sampling interval in seconds.
    low, high : float
        Pass band in Hz.

    Returns
    -------
    numpy.ndarray
        ``(n_series, n_t)`` float64, each row zero-mean with unit standard deviation.
    """
    white = rng.standard_normal((n_series, n_t))
    return band_limit(white, tr, low, high)


def band_limit(data: np.ndarray, tr: float, low: float, high: float) -> np.ndarray:
    """Ideal (FFT) band-pass of the rows of ``data``, rescaled to unit variance.

    Parameters
    ----------
    data : numpy.ndarray
        ``(n_series, n_t)`` array; not modified.
    tr : float
        Sampling interval in seconds.
    low, high : float
        Pass band in Hz.

    Returns
    -------
    numpy.ndarray
        Filtered rows, zero-mean, unit standard deviation (rows without power stay 0).
    """
    n_t = data.shape[-1]
    freqs = np.fft.rfftfreq(n_t, d=tr)
    keep = (freqs >= low) & (freqs <= high)
    if not keep.any():  # very short series: keep the lowest non-zero frequency
        keep[min(1, freqs.size - 1)] = True
    spectrum = np.fft.rfft(data, axis=-1) * keep
    out = np.fft.irfft(spectrum, n=n_t, axis=-1)
    sd = out.std(axis=-1, keepdims=True)
    return np.divide(out, sd, out=np.zeros_like(out), where=sd > 0)


def state_sequence(
    rng: np.random.Generator, n_t: int, min_block: int = 30, max_block: int = 60
) -> np.ndarray:
    """Alternating latent states ``"A"``/``"B"`` in blocks of ``min_block..max_block`` volumes.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (first state and block lengths).
    n_t : int
        Number of volumes.
    min_block, max_block : int
        Inclusive range of block lengths.

    Returns
    -------
    numpy.ndarray
        ``(n_t,)`` array of ``"A"``/``"B"`` strings.
    """
    if min_block < 1 or max_block < min_block:
        raise ValueError(f"block range must satisfy 1 <= min <= max, got {min_block}..{max_block}")
    state = "AB"[int(rng.integers(2))]
    labels: list[str] = []
    while len(labels) < n_t:
        labels.extend([state] * int(rng.integers(min_block, max_block + 1)))
        state = "B" if state == "A" else "A"
    return np.array(labels[:n_t])


def motion_parameters(
    rng: np.random.Generator, n_t: int, n_dummy: int, spike_mm: float = 0.0
) -> np.ndarray:
    """Small random-walk head motion, optionally with a translation spike.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n_t : int
        Number of volumes.
    n_dummy : int
        Non-steady-state volumes (the spike is placed after them).
    spike_mm : float
        Size of a 3-volume jump added to ``trans_z`` (0 for none).

    Returns
    -------
    numpy.ndarray
        ``(n_t, 6)``: trans_x/y/z in mm (max below 1 mm without spike), rot_x/y/z in radians.
    """
    walk = np.cumsum(rng.standard_normal((n_t, 6)), axis=0)
    walk -= walk[:1]
    peak = np.abs(walk).max(axis=0)
    peak[peak == 0] = 1.0
    limits = np.concatenate([rng.uniform(0.15, 0.8, 3), rng.uniform(0.001, 0.008, 3)])
    motion = walk / peak * limits
    if spike_mm:
        start = n_dummy + max(0, (n_t - n_dummy) // 2 - 1)
        motion[start : start + 3, 2] += spike_mm
    return motion


def motion_regressors(motion: np.ndarray) -> np.ndarray:
    """Motion in mm (rotations as arc length on a 50 mm sphere), centred in time."""
    mm = motion * np.array([1.0, 1.0, 1.0, HEAD_RADIUS_MM, HEAD_RADIUS_MM, HEAD_RADIUS_MM])
    return mm - mm.mean(axis=0)


def framewise_displacement(motion: np.ndarray) -> np.ndarray:
    """Power framewise displacement (mm); NaN for the first volume, as fMRIPrep writes it."""
    step = np.abs(np.diff(motion, axis=0))
    fd = step[:, :3].sum(axis=1) + HEAD_RADIUS_MM * step[:, 3:].sum(axis=1)
    return np.concatenate([[np.nan], fd])


def _expand(name: str, series: np.ndarray, order: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A column, its backward difference (NaN first) and their squares, in ``order``."""
    deriv = np.concatenate([[np.nan], np.diff(series)])
    parts = {
        "": series,
        "_derivative1": deriv,
        "_power2": series**2,
        "_derivative1_power2": deriv**2,
    }
    return {name + key: parts[key] for key in order}


def _unit_columns(columns: np.ndarray, n_dummy: int) -> np.ndarray:
    """Orthonormal columns over the steady-state rows, zero in the dummy rows (CompCor-like)."""
    out = np.zeros_like(columns)
    steady = columns[n_dummy:] - columns[n_dummy:].mean(axis=0)
    q, _ = np.linalg.qr(steady)
    out[n_dummy:] = q
    return np.round(out, 8)


def cosine_basis(n_t: int, tr: float, n_dummy: int, cutoff_s: float = 128.0) -> np.ndarray:
    """fMRIPrep/SPM discrete cosine high-pass basis over the steady-state volumes.

    Returns ``(n_t, k)`` with ``k = floor(2 * n * tr / cutoff_s)``; dummy rows are zero.
    """
    n = n_t - n_dummy
    k = int(np.floor(2 * n * tr / cutoff_s))
    basis = np.zeros((n_t, k))
    t = np.arange(n)
    for j in range(k):
        basis[n_dummy:, j] = np.sqrt(2.0 / n) * np.cos(np.pi * (t + 0.5) * (j + 1) / n)
    return basis


def confounds_table(
    rng: np.random.Generator,
    *,
    motion: np.ndarray,
    tissue: dict[str, np.ndarray],
    global_signal: np.ndarray,
    dvars: np.ndarray,
    tr: float,
    n_dummy: int,
) -> pd.DataFrame:
    """An fMRIPrep (>= 21) ``desc-confounds_timeseries`` table.

    Column names and grouping follow fMRIPrep's real files (as shipped in nilearn under
    ``interfaces/fmriprep/data``). Derivative columns, ``framewise_displacement``,
    ``rmsd``, ``dvars`` and ``std_dvars`` are NaN in the first row.

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness for the CompCor-like components.
    motion : numpy.ndarray
        ``(T, 6)`` trans (mm) and rot (rad) as written.
    tissue : dict
        ``white_matter``, ``csf`` and ``tcompcor`` mean-signal series ``(T,)``.
    global_signal : numpy.ndarray
        Mean in-brain signal of the written BOLD ``(T,)``.
    dvars : numpy.ndarray
        DVARS of the written BOLD (NaN first) ``(T,)``.
    tr : float
        Repetition time in seconds.
    n_dummy : int
        Number of non-steady-state volumes flagged by one-hot columns.

    Returns
    -------
    pandas.DataFrame
        One row per volume.
    """
    n_t = motion.shape[0]
    tissue_order = ("", "_derivative1", "_derivative1_power2", "_power2")
    motion_order = ("", "_derivative1", "_power2", "_derivative1_power2")
    cols: dict[str, np.ndarray] = {}
    cols.update(_expand("global_signal", global_signal, tissue_order))
    cols.update(_expand("csf", tissue["csf"], tissue_order))
    cols.update(_expand("white_matter", tissue["white_matter"], tissue_order))
    cols["csf_wm"] = (tissue["csf"] + tissue["white_matter"]) / 2.0
    cols["tcompcor"] = tissue["tcompcor"]
    steady_sd = np.nanmean(dvars[n_dummy + 1 :]) if n_t > n_dummy + 1 else 1.0  # approximation
    cols["std_dvars"] = dvars / (steady_sd or 1.0)
    cols["dvars"] = dvars
    fd = framewise_displacement(motion)
    cols["framewise_displacement"] = fd
    step = np.diff(motion, axis=0) * np.array([1, 1, 1] + [HEAD_RADIUS_MM] * 3)
    cols["rmsd"] = np.concatenate([[np.nan], np.sqrt((step**2).sum(axis=1) / 2.0)])
    sources = np.column_stack(
        [tissue["white_matter"], tissue["csf"], tissue["tcompcor"], rng.standard_normal((n_t, 9))]
    )
    sources[:, 3:] += np.cumsum(rng.standard_normal((n_t, 9)), axis=0) * 0.2
    comps = _unit_columns(sources, n_dummy)
    spec = (("t_comp_cor", 3, (2, 3, 4)), ("c_comp_cor", 3, (1, 5, 6)))
    spec += (("w_comp_cor", 4, (0, 7, 8, 9)), ("a_comp_cor", 5, (0, 1, 10, 11, 2)))
    for prefix, count, picks in spec:
        for k in range(count):
            cols[f"{prefix}_{k:02d}"] = comps[:, picks[k]]
    for k, series in enumerate(cosine_basis(n_t, tr, n_dummy).T):
        cols[f"cosine{k:02d}"] = np.round(series, 8)
    for k in range(n_dummy):
        cols[f"non_steady_state_outlier{k:02d}"] = (np.arange(n_t) == k).astype(float)
    for j, name in enumerate(MOTION_NAMES):
        cols.update(_expand(name, motion[:, j], motion_order))
    outliers = np.flatnonzero((np.nan_to_num(fd) > 0.5) | (np.nan_to_num(cols["std_dvars"]) > 1.5))
    for k, index in enumerate(outliers):
        cols[f"motion_outlier{k:02d}"] = (np.arange(n_t) == index).astype(float)
    return pd.DataFrame(cols) + 0.0  # no negative zeros in the TSV


def confounds_sidecar(table: pd.DataFrame) -> dict:
    """Per-column metadata in the shape of fMRIPrep's confounds JSON (CompCor entries)."""
    meta: dict = {}
    masks = {"t": "tCompCor", "c": "CSF", "w": "WM", "a": "combined"}
    for col in table.columns:
        if "_comp_cor_" in col:
            kind = col[0]
            meta[col] = {
                "Method": "tCompCor" if kind == "t" else "aCompCor",
                "Mask": masks[kind],
                "Retained": True,
            }
        elif col.startswith("cosine"):
            meta[col] = {"Method": "Discrete cosine basis", "Cutoff": 128.0, "Units": "s"}
        elif col.startswith("non_steady_state_outlier"):
            meta[col] = {"Method": "Non-steady-state volume (synthetic ground truth)"}
    return meta


def global_and_dvars(bold: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean in-mask signal and DVARS (RMS of the volume-to-volume change, NaN first)."""
    series = bold[mask].astype(np.float64)
    dvars = np.sqrt(np.mean(np.diff(series, axis=1) ** 2, axis=0))
    return np.round(series.mean(axis=0), 6), np.concatenate([[np.nan], np.round(dvars, 6)])


def simulate_run(
    rng: np.random.Generator,
    *,
    space: dict,
    lesion: np.ndarray,
    states: np.ndarray,
    group_coupling: float,
    n_volumes: int,
    n_dummy: int,
    tr: float,
    spike_mm: float,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Simulate one run in canonical space.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    space : dict
        ``shape``, ``resolution``, ``index`` (brain voxel indices), ``coords`` (their world
        mm) and ``regions`` (name -> boolean over brain voxels).
    lesion : numpy.ndarray
        Boolean over brain voxels.
    states : numpy.ndarray
        Latent state (``"A"``/``"B"``) of every volume (dummies included).
    group_coupling : float
        Seed coupling of the group-effect region.
    n_volumes, n_dummy : int
        Volumes in the run and non-steady-state volumes.
    tr : float
        Repetition time (s).
    spike_mm : float
        Translation spike (mm, 0 for none).

    Returns
    -------
    tuple
        ``(bold, motion, tissue)``: int16 ``shape + (T,)`` volume, ``(T, 6)`` motion and the
        planted tissue mean-signal series (``white_matter``, ``csf``, ``tcompcor``).
    """
    from scipy.ndimage import gaussian_filter

    n_t, coords, f32 = n_volumes, space["coords"], np.float32
    n_vox = coords.shape[0]
    base = (1000.0 + 0.8 * coords[:, 2] - 0.6 * np.abs(coords[:, 0])).astype(f32)[:, None]
    excess = np.where(np.arange(n_t) < n_dummy, 0.8 * 0.5 ** np.arange(n_t), 0.0).astype(f32)
    white = rng.standard_normal(space["shape"] + (n_t,), dtype=f32)
    sigma = 3.0 / space["resolution"]
    gaussian_filter(white, sigma=(sigma, sigma, sigma, 0), output=white)
    data = band_limit(white[space["index"]], tr, 0.01, 0.1) * f32(5.0)  # neural noise
    del white
    thermal = rng.standard_normal((n_vox, n_t), dtype=f32) * f32(3.0)
    data += thermal + base * (1.0 + excess)

    seed, *private = band_limited(rng, 5, n_t, tr)
    couplings = {
        "seed": 1.0,
        "coupled_all": COUPLING_ALL,
        "state_a": np.where(states == "A", COUPLING_STATE, 0.0),
        "state_b": np.where(states == "B", COUPLING_STATE, 0.0),
        "group": group_coupling,
    }
    for k, (name, rho) in enumerate(couplings.items()):
        shared = rho * seed + np.sqrt(1.0 - np.square(rho)) * private[k - 1 if k else 0]
        data[space["regions"][name]] += (NETWORK_AMPLITUDE * shared).astype(f32)

    wm = np.round(band_limited(rng, 1, n_t, tr, 0.005, 0.1)[0] * 4.0, 6)
    csf = np.round(band_limited(rng, 1, n_t, tr, 0.01, 0.25)[0] * 4.0, 6)
    motion = motion_parameters(rng, n_t, n_dummy, spike_mm)
    series = np.vstack([wm, csf, motion_regressors(motion).T, np.linspace(-0.5, 0.5, n_t)])
    loadings = np.column_stack(
        [
            rng.uniform(0.5, 1.5, n_vox),  # white matter
            rng.uniform(0.0, 1.2, n_vox),  # csf
            rng.normal(0.0, 6.0, (n_vox, 6)),  # motion (per mm)
            rng.normal(0.0, 6.0, n_vox),  # linear drift over the run
        ]
    )
    loadings[lesion, :2] = 0.0  # no physiological signal in the lesion
    data += (loadings @ series).astype(f32)
    # lesion: darker, no neural signal or network, less noise (scanner effects remain)
    data[lesion] = (0.7 * base[lesion] * (1.0 + excess) + 0.7 * thermal[lesion]).astype(f32) + (
        loadings[lesion] @ series
    ).astype(f32)
    bold = np.zeros(space["shape"] + (n_t,), dtype=np.int16)
    bold[space["index"]] = np.clip(np.rint(data), 0, np.iinfo(np.int16).max).astype(np.int16)
    tissue = {
        "white_matter": np.round(420.0 * (1.0 + excess) + wm, 6),
        "csf": np.round(880.0 * (1.0 + excess) + csf, 6),
        "tcompcor": np.round(600.0 * (1.0 + excess) + 0.5 * (wm + csf), 6),
    }
    return bold, motion, tissue
