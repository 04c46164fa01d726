"""Confound strategies, column selection, NaN filling and dummy-scan detection.

Confound strategies are data files (``bids_app/data/confounds/<name>.tsv``), XCP-D style.
The format, which user-supplied strategy files may also follow, is::

    # name: 26P
    # description: one line saying what the strategy is
    column
    trans_x
    trans_x_derivative1
    ...

Lines starting with ``#`` are comments (the ``name:`` / ``description:`` comments are
optional metadata), blank lines are ignored, an optional header line whose first field is
``column`` is skipped, and the first tab-separated field of every other line is a column
name of fMRIPrep's ``desc-confounds_timeseries.tsv``. A plain text file with one column
name per line is therefore also a valid strategy file.

Built-in strategies:

* ``24P``: 6 rigid-body motion parameters, their first derivatives, and the squares of both.
* ``26P``: 24P + ``white_matter`` + ``csf`` (the paper's model; no global signal).
* ``36P``: 24P + ``white_matter``, ``csf``, ``global_signal`` with their derivatives,
  squares and squared derivatives.
* ``none``: no regressors.
"""

from __future__ import annotations

import re
from importlib import resources
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from bids_app.errors import InputError

BUILTIN_STRATEGIES = ("24P", "26P", "36P", "none")

#: Columns that fMRIPrep leaves undefined (NaN) in the first row only: temporal
#: derivatives (and their squares), framewise displacement, DVARS variants and RMSD.
_FIRST_ROW_NAN = re.compile(r"derivative1|^framewise_displacement$|dvars$|^rmsd$")
_NON_STEADY = re.compile(r"^non_steady_state_outlier\d+$")


def _strategy_lines(name_or_path: str | PathLike) -> tuple[list[str], str]:
    """Return the raw lines of a strategy file and a printable source name."""
    text_name = str(name_or_path)
    if text_name in BUILTIN_STRATEGIES:
        ref = resources.files("bids_app").joinpath("data", "confounds", f"{text_name}.tsv")
        return ref.read_text(encoding="utf-8").splitlines(), text_name
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(
            f"confound strategy must be one of {', '.join(BUILTIN_STRATEGIES)} "
            f"or an existing file, got {text_name!r}"
        )
    try:
        return path.read_text(encoding="utf-8").splitlines(), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read confound strategy file ({exc})", path) from exc


def load_strategy(name_or_path: str | PathLike) -> list[str]:
    """Return the confound column names of a strategy.

    Parameters
    ----------
    name_or_path : str or PathLike
        A built-in strategy (``24P``, ``26P``, ``36P``, ``none``) or the path to a strategy
        file (see the module docstring for the format: one column name per line, ``#``
        comments, optional ``column`` header; extra tab-separated fields are ignored).

    Returns
    -------
    list of str
        Column names, in file order, without duplicates.

    Raises
    ------
    ValueError
        If ``name_or_path`` is neither a built-in name nor an existing file.
    InputError
        If a user file cannot be read or contains an invalid column name.
    """
    lines, source = _strategy_lines(name_or_path)
    columns: list[str] = []
    header_seen = False
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        field = line.split("\t")[0].strip()
        if not header_seen and not columns and field == "column":
            header_seen = True
            continue
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", field):
            raise InputError(f"invalid confound column name {field!r}", source)
        if field not in columns:
            columns.append(field)
    return columns


def strategy_description(name_or_path: str | PathLike) -> str:
    """Return the ``# description:`` line of a strategy file ('' if it has none).

    Parameters
    ----------
    name_or_path : str or PathLike
        As for :func:`load_strategy`.

    Returns
    -------
    str
        The description text.
    """
    lines, _ = _strategy_lines(name_or_path)
    for raw in lines:
        match = re.match(r"#\s*description:\s*(.*)$", raw.strip())
        if match:
            return match.group(1).strip()
    return ""


def select_confounds(
    confounds: pd.DataFrame, columns: list[str], *, path: str | PathLike | None = None
) -> pd.DataFrame:
    """Select confound columns and fill fMRIPrep's first-row NaNs.

    fMRIPrep leaves the first row of temporal derivatives (``*derivative1*``),
    ``framewise_displacement``, ``dvars``/``std_dvars`` and ``rmsd`` undefined. Following
    ``nilearn.interfaces.fmriprep.load_confounds`` (``prepare_output`` in
    ``load_confounds_utils.py``: ``confounds.iloc[0, mask_nan] = confounds.iloc[1, mask_nan]``),
    such a NaN is replaced by the value of the second row. Any other NaN is an error.

    Parameters
    ----------
    confounds : pandas.DataFrame
        The fMRIPrep confounds table (not modified).
    columns : list of str
        Columns to select, in output order.
    path : str or PathLike, optional
        The confounds file, named in error messages.

    Returns
    -------
    pandas.DataFrame
        A new float64 frame with exactly ``columns`` (no columns -> ``n_rows x 0``).

    Raises
    ------
    InputError
        If columns are missing or contain NaN other than the allowed first-row NaN.
    """
    missing = [c for c in columns if c not in confounds.columns]
    if missing:
        raise InputError(f"confound columns not found: {', '.join(missing)}", path)
    selected = confounds.loc[:, list(columns)].copy()
    try:
        selected = selected.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"non-numeric values in confound columns ({exc})", path) from exc
    if selected.shape[1] == 0:
        return selected.reset_index(drop=True)
    values = selected.to_numpy(copy=True)
    n_rows = values.shape[0]
    for j, name in enumerate(selected.columns):
        nan_rows = np.flatnonzero(np.isnan(values[:, j]))
        if nan_rows.size == 0:
            continue
        fillable = _FIRST_ROW_NAN.search(name) is not None and n_rows > 1
        if fillable and nan_rows.tolist() == [0] and not np.isnan(values[1, j]):
            values[0, j] = values[1, j]
            continue
        bad = nan_rows[1:] if fillable and nan_rows[0] == 0 else nan_rows
        row = int(bad[0]) if bad.size else int(nan_rows[0])
        raise InputError(
            f"NaN in confound column {name!r} at row {row} (0-based, excluding header)", path
        )
    return pd.DataFrame(values, columns=list(selected.columns))


def non_steady_state_count(confounds: pd.DataFrame) -> int:
    """Count the leading volumes that fMRIPrep flags as non-steady-state.

    Parameters
    ----------
    confounds : pandas.DataFrame
        The fMRIPrep confounds table, with ``non_steady_state_outlierXX`` one-hot columns.

    Returns
    -------
    int
        Number of consecutive flagged volumes from the first one (0 if no column or the
        first volume is not flagged).
    """
    cols = [c for c in confounds.columns if _NON_STEADY.match(str(c))]
    if not cols:
        return 0
    flags = confounds.loc[:, cols].fillna(0).to_numpy(dtype=np.float64).any(axis=1)
    unflagged = np.flatnonzero(~flags)
    return int(unflagged[0]) if unflagged.size else int(flags.size)


def resolve_dummy_scans(dummy_scans: int | str, confounds: pd.DataFrame) -> int:
    """Return the number of initial volumes to drop.

    Parameters
    ----------
    dummy_scans : int or "auto"
        A non-negative count, or ``"auto"`` for :func:`non_steady_state_count`.
    confounds : pandas.DataFrame
        The fMRIPrep confounds table (used for ``"auto"``).

    Returns
    -------
    int
        Number of volumes to drop.

    Raises
    ------
    ValueError
        If ``dummy_scans`` is neither ``"auto"`` nor an integer >= 0.
    """
    if isinstance(dummy_scans, str):
        if dummy_scans == "auto":
            return non_steady_state_count(confounds)
        if not dummy_scans.isdigit():
            raise ValueError(f"dummy_scans must be 'auto' or an integer >= 0, got {dummy_scans!r}")
        return int(dummy_scans)
    if isinstance(dummy_scans, bool) or not isinstance(dummy_scans, (int, np.integer)):
        raise ValueError(f"dummy_scans must be 'auto' or an integer >= 0, got {dummy_scans!r}")
    if dummy_scans < 0:
        raise ValueError(f"dummy_scans must be 'auto' or an integer >= 0, got {dummy_scans}")
    return int(dummy_scans)
