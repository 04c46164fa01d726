"""Lesion masks, ``participants.tsv`` and the lesion side of each participant.

Part of the input discovery of :func:`bids_app.inputs.collect_participants`: finds the lesion
mask of a run (a template-space mask, or a T1w-space one with fMRIPrep's T1w-to-template
transform) in the lesion, raw-BIDS and fMRIPrep layouts, reads ``participants.tsv``, and
normalises and reconciles the lesion side. Errors are one-line
:class:`~bids_app.errors.InputError` messages that name the file concerned.
"""

from __future__ import annotations

from pathlib import Path

from bids_app.errors import InputError
from bids_app.input_checks import NIFTI_EXTENSIONS, SPACE_PREFERENCE, check_nifti


def _lesion_candidates(layout, source_rank: int, sub: str, ses: str | None, space: str) -> list:
    """(sort key, path, lesion space) for every lesion mask of ``sub`` in ``layout``."""
    out = []
    for f in layout.get(subject=sub, extension=NIFTI_EXTENSIONS):
        ent = f.get_entities()
        f_space, label, suffix = ent.get("space"), ent.get("label"), ent.get("suffix")
        template = (
            suffix == "mask"
            and f_space not in (None, "T1w")
            and (label == "lesion" or (label == "L" and ent.get("desc") == "T1lesion"))
        )
        t1w = label == "lesion" and (
            (suffix == "roi" and f_space is None) or (suffix == "mask" and f_space == "T1w")
        )
        if not (template or t1w) or ent.get("session") not in (None, ses):
            continue
        pref = SPACE_PREFERENCE.index(f_space) if f_space in SPACE_PREFERENCE else 99
        key = (ent.get("session") != ses, t1w, source_rank, f_space != space, pref, f.path)
        out.append((key, Path(f.path), "T1w" if t1w else f_space))
    return out


def find_lesion(layouts: list, fmriprep_layout, sub: str, ses: str | None, space: str) -> tuple:
    """Find the lesion mask of one run.

    Parameters
    ----------
    layouts : list of bids.BIDSLayout
        Layouts searched, in order of priority (lesion dataset, raw BIDS, fMRIPrep).
    fmriprep_layout : bids.BIDSLayout
        Where the T1w-to-template transform of a T1w-space mask is looked up.
    sub, ses : str
        Participant and (or None) session labels of the run.
    space : str
        Template space of the BOLD run (preferred for template-space masks).

    Returns
    -------
    tuple
        ``(lesion, lesion_space, lesion_xfm)``; three Nones when no mask is found.

    Raises
    ------
    InputError
        If the mask is unreadable, or is in T1w space without the transform.
    """
    candidates = []
    for rank, layout in enumerate(layouts):
        candidates += _lesion_candidates(layout, rank, sub, ses, space)
    if not candidates:
        return None, None, None
    _, lesion, lesion_space = min(candidates, key=lambda c: c[0])
    check_nifti(lesion)
    if lesion_space != "T1w":
        return lesion, lesion_space, None
    xfms = fmriprep_layout.get(
        subject=sub, suffix="xfm", mode="image", extension=".h5", **{"from": "T1w", "to": space}
    )
    xfms = sorted(
        (x for x in xfms if x.get_entities().get("session") in (None, ses)),
        key=lambda x: (x.get_entities().get("session") != ses, x.path),
    )
    if not xfms:
        raise InputError(
            f"lesion mask is in T1w space but fMRIPrep's sub-{sub}[_ses-*]_from-T1w_to-{space}"
            f"_mode-image_xfm.h5 was not found under {fmriprep_layout.root}",
            lesion,
        )
    return lesion, lesion_space, Path(xfms[0].path)


def normalise_side(value, *, participant: str, path) -> str:
    """Return the lesion side of a participants.tsv cell as ``"L"``, ``"R"`` or ``"n/a"``.

    Empty cells, ``n/a``, ``na`` and ``nan`` give ``"n/a"``; ``l``/``left``/``r``/``right``
    (any case) give ``"L"``/``"R"``; anything else raises InputError naming ``path``.
    """
    text = "" if value is None else str(value).strip().lower()
    if text in ("", "n/a", "nan", "na"):
        return "n/a"
    sides = {"l": "L", "left": "L", "r": "R", "right": "R"}
    if text not in sides:
        raise InputError(
            f"lesion side of participant {participant!r} must be L, R, left or right "
            f"(any case) or n/a, got {value!r}",
            path,
        )
    return sides[text]


def participants_table(bids_dir: Path) -> tuple[dict, Path]:
    """Read ``bids_dir/participants.tsv`` (all cells as strings).

    Returns
    -------
    rows : dict
        Rows keyed by bare participant label; empty when the file is absent.
    path : Path
        The participants.tsv path (for error messages).
    """
    import pandas as pd

    path = Path(bids_dir) / "participants.tsv"
    if not path.is_file():
        return {}, path
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as exc:
        raise InputError(f"unreadable participants table ({exc})", path) from exc
    if "participant_id" not in table.columns:
        raise InputError("participants.tsv has no participant_id column", path)
    rows = {}
    for row in table.to_dict(orient="records"):
        pid = str(row["participant_id"]).strip()
        rows[pid[4:] if pid.startswith("sub-") else pid] = row
    return rows, path


def reconcile_lesion_side(table_side: str, mask_side: str, *, participant: str, path) -> str:
    """Combine the lesion side from participants.tsv with the one estimated from the mask.

    Parameters
    ----------
    table_side, mask_side : {"L", "R", "n/a"}
    participant : str
        Label, for the error message.
    path : str or PathLike
        The file named in the error (participants.tsv or the lesion mask).

    Returns
    -------
    str
        The known side ("n/a" when neither is known).

    Raises
    ------
    InputError
        If both are known and disagree.
    """
    for name, value in (("table_side", table_side), ("mask_side", mask_side)):
        if value not in ("L", "R", "n/a"):
            raise ValueError(f"{name} must be 'L', 'R' or 'n/a', got {value!r}")
    if "n/a" not in (table_side, mask_side) and table_side != mask_side:
        raise InputError(
            f"participant '{participant}': lesion side {table_side} in participants.tsv "
            f"but the lesion mask lies mostly in the {mask_side} hemisphere",
            path,
        )
    return table_side if table_side != "n/a" else mask_side
