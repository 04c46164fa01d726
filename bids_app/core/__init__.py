"""Pure numerical core: numpy/scipy functions, arrays in, arrays out, inputs never mutated.

Only numpy is imported here; scipy is imported inside the functions that need it.
(``bids_app.core.confounds`` is imported on its own: ``from bids_app.core import confounds``.)
"""

from bids_app.core.dfc import (
    dfc_summary,
    n_windows,
    sliding_window_dfc,
    static_fc,
    window_onsets,
    window_taper,
)
from bids_app.core.grid import (
    SPM_BBOX,
    output_grid,
    resample_mask,
    resample_series,
    resample_volume,
)
from bids_app.core.lesion import lesion_side, lesion_volume_ml, normalise_side
from bids_app.core.mirror import is_symmetric_grid, mirror_lr
from bids_app.core.qc import framewise_displacement, is_high_motion, motion_summary
from bids_app.core.seed import seed_mask, seed_timeseries, sphere_mask
from bids_app.core.signal import clean, smooth_volume

__all__ = [
    "SPM_BBOX",
    "clean",
    "dfc_summary",
    "framewise_displacement",
    "is_high_motion",
    "is_symmetric_grid",
    "lesion_side",
    "lesion_volume_ml",
    "mirror_lr",
    "motion_summary",
    "n_windows",
    "normalise_side",
    "output_grid",
    "resample_mask",
    "resample_series",
    "resample_volume",
    "seed_mask",
    "seed_timeseries",
    "smooth_volume",
    "sphere_mask",
    "sliding_window_dfc",
    "static_fc",
    "window_onsets",
    "window_taper",
]
