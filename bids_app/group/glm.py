"""Pure second-level GLM pieces: design matrix, vectorised OLS t-map, cluster extraction."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: 26-connectivity in 3D (faces, edges and corners).
STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)


def design_matrix(
    group: np.ndarray, covariates: pd.DataFrame | None = None
) -> tuple[np.ndarray, list[str]]:
    """Design with intercept, group and covariates (categorical ones one-hot, first dropped).

    Parameters
    ----------
    group : array_like (n,)
        1 for MSP, 0 for SSP: the ``group`` coefficient is MSP minus SSP.
    covariates : DataFrame, optional
        One column per covariate, n rows, no missing values. Columns that are not numeric
        (strings, categories, booleans) are one-hot encoded with the first level (sorted)
        dropped; numeric columns are mean-centred.

    Returns
    -------
    X : ndarray (n, p)
    names : list of str
        Column names: ``intercept``, ``group``, then covariates (``sex[M]`` style dummies).
    """
    group = np.asarray(group, dtype=float).ravel()
    if not np.all(np.isin(group, (0.0, 1.0))):
        raise ValueError(f"group must hold only 0 and 1, got {np.unique(group)}")
    cols = [np.ones_like(group), group]
    names = ["intercept", "group"]
    if covariates is not None:
        if len(covariates) != group.size:
            raise ValueError(f"covariates must have {group.size} rows, got {len(covariates)}")
        for name in covariates.columns:
            values = covariates[name]
            if values.isna().any():
                raise ValueError(f"covariate {name!r} has missing values")
            if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
                levels = sorted(values.astype(str).unique())
                for level in levels[1:]:
                    cols.append((values.astype(str).to_numpy() == level).astype(float))
                    names.append(f"{name}[{level}]")
            else:
                v = values.to_numpy(dtype=float)
                cols.append(v - v.mean())
                names.append(str(name))
    return np.column_stack(cols), names


def glm_tmap(Y, design, contrast) -> np.ndarray:
    """OLS t-statistic of a contrast at every column of ``Y`` (vectorised).

    Parameters
    ----------
    Y : array_like (n, V)
    design : array_like (n, p), full column rank, n > p
    contrast : array_like (p,)

    Returns
    -------
    ndarray (V,) float64
        t = c'b / sqrt(s^2 c'(X'X)^-1 c) with s^2 = RSS / (n - p); 0 where the residual
        variance is 0.
    """
    Y = np.asarray(Y, dtype=np.float64)
    X = np.asarray(design, dtype=np.float64)
    c = np.asarray(contrast, dtype=np.float64).ravel()
    if Y.ndim != 2 or X.ndim != 2 or Y.shape[0] != X.shape[0]:
        raise ValueError(f"Y (n, V) and design (n, p) must share n, got {Y.shape}, {X.shape}")
    n, p = X.shape
    if c.size != p:
        raise ValueError(f"contrast must have {p} entries, got {c.size}")
    if n <= p:
        raise ValueError(f"need more observations than regressors, got n={n}, p={p}")
    if np.linalg.matrix_rank(X) < p:
        raise ValueError("design is rank deficient (a covariate is constant or collinear)")
    xtx_inv = np.linalg.inv(X.T @ X)
    beta = xtx_inv @ X.T @ Y
    resid = Y - X @ beta
    s2 = (resid**2).sum(axis=0) / (n - p)
    se = np.sqrt(s2 * float(c @ xtx_inv @ c))
    effect = c @ beta
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, effect / se, 0.0)
    return t


def find_clusters(
    stat: np.ndarray, threshold: float, min_size: int, *, sign: int = 1
) -> list[dict]:
    """Clusters (26-connectivity) of ``sign * stat > threshold`` with at least ``min_size`` voxels.

    Parameters
    ----------
    stat : ndarray, 3D
    threshold : float (>= 0)
    min_size : int (>= 1)
    sign : {1, -1}
        1: positive clusters; -1: negative clusters (formed separately).

    Returns
    -------
    list of dict
        ``mask`` (3D bool), ``size``, ``peak_ijk`` (tuple), ``peak`` (stat at the peak, the
        voxel of largest ``sign * stat``), largest clusters first.
    """
    from scipy import ndimage

    stat = np.asarray(stat, dtype=float)
    if stat.ndim != 3:
        raise ValueError(f"stat must be 3D, got shape {stat.shape}")
    if sign not in (1, -1):
        raise ValueError(f"sign must be 1 or -1, got {sign}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}")
    signed = sign * np.nan_to_num(stat)
    labels, n = ndimage.label(signed > threshold, structure=STRUCTURE_26)
    out = []
    for lab in range(1, n + 1):
        mask = labels == lab
        size = int(mask.sum())
        if size < min_size:
            continue
        masked = np.where(mask, signed, -np.inf)
        peak = np.unravel_index(int(np.argmax(masked)), stat.shape)
        out.append(
            {
                "mask": mask,
                "size": size,
                "peak_ijk": tuple(int(v) for v in peak),
                "peak": float(stat[peak]),
            }
        )
    out.sort(key=lambda d: (-d["size"], -abs(d["peak"])))
    return out


def cluster_letters(n: int) -> list[str]:
    """Spreadsheet-style indices: A..Z, AA, AB, ..."""
    out = []
    for i in range(n):
        s, k = "", i
        while True:
            s = chr(ord("A") + k % 26) + s
            k = k // 26 - 1
            if k < 0:
                break
        out.append(s)
    return out
