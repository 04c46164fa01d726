"""Apply a trained model (``fold-<k>/`` or ``final/`` of the group level) to one participant.

This is a research tool, not a clinical device: a prediction carries the cross-validated
participant-level accuracy of the model it came from and a disclaimer.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from bids_app.errors import InputError

DISCLAIMER = (
    "not a clinical device: a research prediction from resting-state dFC maps, trained on a "
    "small cohort; do not use it for diagnosis, prognosis or treatment decisions"
)
CLASS_NAMES = {0: "mild/moderate", 1: "severe"}


def load_model(path: str | Path):
    """Load ``model.pt`` (state_dict, ``weights_only=True``) and its ``model.json``.

    Parameters
    ----------
    path : str or Path
        ``model.pt`` or the folder holding it.

    Returns
    -------
    (VGG3D, dict)
        The network in eval mode on CPU and the metadata (``model.json`` plus ``mask``, the
        training brain mask as a 3D bool array, when ``mask.npy`` exists).
    """
    import torch

    from bids_app.group.cnn.model import VGG3D, VGG3DConfig

    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    meta_path = path.with_name("model.json")
    if not path.is_file():
        raise InputError("model file not found (train one with the group level)", path)
    if not meta_path.is_file():
        raise InputError("model.json missing next to the model file", meta_path)
    try:
        meta = json.loads(meta_path.read_text())
        config = VGG3DConfig(**meta["model_config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a VGG3D model description ({exc})", meta_path) from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read the model weights ({exc})", path) from exc
    model = VGG3D(config)
    model.load_state_dict(state)
    model.eval()
    mask_path = path.with_name(meta.get("mask_file") or "mask.npy")
    if mask_path.is_file():
        meta["mask"] = np.load(mask_path, allow_pickle=False).astype(bool)
    return model, meta


def predict_participant(
    model, meta: dict, dfc_4d: np.ndarray, mask3d: np.ndarray, *, batch_size: int = 8
) -> dict:
    """Classify one participant from its 4D dFC maps (soft vote over windows).

    Parameters
    ----------
    model : VGG3D
        From :func:`load_model`.
    meta : dict
        Its metadata (``in_shape``, optional ``mask``, ``cv_participant_accuracy``).
    dfc_4d : numpy.ndarray, shape (X, Y, Z, n_windows)
        Fisher-z dFC maps on the model's grid.
    mask3d : numpy.ndarray, shape (X, Y, Z)
        The participant's brain mask; voxels outside it (and outside the training mask) are
        set to 0, as in the group cache. NaNs are set to 0.

    Returns
    -------
    dict
        ``predicted_class`` ("severe" or "mild/moderate", mean probability >= 0.5 = severe),
        ``probability_mean``, ``probability_sd``, ``probability_min``, ``probability_max``
        (probability of severe over windows), ``n_windows``, ``cv_participant_accuracy``
        and ``disclaimer``.
    """
    import torch

    dfc = np.asarray(dfc_4d)
    mask = np.asarray(mask3d, dtype=bool)
    shape = tuple(meta.get("in_shape") or model.config.in_shape)
    if dfc.ndim != 4 or dfc.shape[:3] != shape:
        raise ValueError(f"dfc_4d must have shape {shape} + (n_windows,), got {dfc.shape}")
    if mask.shape != shape:
        raise ValueError(f"mask3d must have shape {shape}, got {mask.shape}")
    if dfc.shape[3] < 1:
        raise ValueError("dfc_4d has no windows")
    if meta.get("mask") is not None:
        mask = mask & np.asarray(meta["mask"], dtype=bool)
    vols = np.moveaxis(np.nan_to_num(dfc.astype(np.float32)), 3, 0) * mask[None]
    model.eval()
    probs = []
    with torch.no_grad():
        for start in range(0, vols.shape[0], batch_size):
            x = torch.from_numpy(np.ascontiguousarray(vols[start : start + batch_size]))[:, None]
            probs.append(torch.softmax(model(x).float(), dim=1)[:, 1].numpy())
    p = np.concatenate(probs).astype(float)
    return {
        "predicted_class": CLASS_NAMES[int(p.mean() >= 0.5)],
        "probability_mean": float(p.mean()),
        "probability_sd": float(p.std(ddof=1)) if p.size > 1 else 0.0,
        "probability_min": float(p.min()),
        "probability_max": float(p.max()),
        "n_windows": int(p.size),
        "cv_participant_accuracy": meta.get("cv_participant_accuracy"),
        "disclaimer": DISCLAIMER,
    }


def model_config(cache, cfg):
    """VGG3DConfig of ``cfg`` (width_multiplier, fc_width, dropout) on the cache's grid."""
    from bids_app.group.cnn.model import VGG3DConfig

    return VGG3DConfig(
        in_shape=tuple(cache.shape),
        width_multiplier=cfg.width_multiplier,
        fc_width=cfg.fc_width,
        dropout=cfg.dropout,
    )


def save_model(out: Path, state, cache, cfg, meta: dict) -> None:
    """Write ``model.pt`` (state_dict; skipped when ``state`` is None), ``model.json`` and
    ``mask.npy`` (the cache's brain mask) into ``out`` atomically."""
    import torch

    from bids_app.outputs import atomic_write_bytes, atomic_write_json

    buf = io.BytesIO()
    np.save(buf, np.asarray(cache.mask, dtype=bool), allow_pickle=False)
    atomic_write_bytes(out / "mask.npy", buf.getvalue())
    info = {"model": cfg.model, "mask_file": "mask.npy", "affine": np.asarray(cache.affine),
            "in_shape": list(cache.shape), "n_mask_voxels": int(np.sum(cache.mask)),
            "label_names": {"0": "mild/moderate", "1": "severe"}, **meta}  # fmt: skip
    if state is not None:
        info["model_config"] = dataclasses.asdict(model_config(cache, cfg))
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(out / "model.pt", buf.getvalue())
    atomic_write_json(out / "model.json", info)
