"""Benchmark: one fMRIPrep-like participant at the real res-2 grid through the participant CLI.

Run with ``PYTHONPATH=. python bench/bench_participant.py [--keep DIR] [--repeats N]`` (no
pytest). It writes ONE participant in ``MNI152NLin2009cAsym`` res-2 space (97 x 115 x 97,
2 mm, affine ``[[2,0,0,-96],[0,2,0,-132],[0,0,2,-78]]``), 240 volumes, TR 2 s:

* ``desc-preproc_bold``: float32 ``.nii.gz``, as fMRIPrep writes it (its standard-space
  resampling outputs float32 and DerivativesDataSink keeps that dtype; no scl_slope), not
  skull-stripped (``SkullStripped: false``, fMRIPrep >= 21): a head ellipsoid of low signal
  around a brain ellipsoid (~210k voxels) with a planted seed network and 1 % noise;
* ``desc-brain_mask`` (the brain ellipsoid), fMRIPrep-named confounds (from
  ``bids_app.demo._signals``), raw placeholder BOLD, participants.tsv (right lesion, so the
  mirroring path runs), dataset_description.json files.

Then it runs ``python -m bids_app BIDS OUT participant -w WORK --nprocs 2`` in a subprocess
``--repeats`` times (fresh OUT and WORK each time) and reports the wall time and peak memory
of the whole process tree against the targets (90 s, 4 GB on 2 cores): ``/usr/bin/time -v``
(maximum RSS of any single process) and the sum of PSS over the process tree sampled every
0.2 s from /proc (shared pages counted once). It prints the slowest nipype nodes (durations
from each node's result file).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SHAPE = (97, 115, 97)
AFFINE = np.array([[2.0, 0, 0, -96], [0, 2.0, 0, -132], [0, 0, 2.0, -78], [0, 0, 0, 1]])
N_T, TR, N_DUMMY = 240, 2.0, 4
SPACE = "MNI152NLin2009cAsym"
TARGET_WALL_S, TARGET_PEAK_GB = 90.0, 4.0
SEED_MNI = (38.0, -22.0, 56.0)  # right M1: the lesion is right, the app mirrors to the left


def _mm_grid() -> np.ndarray:
    ijk = np.indices(SHAPE, dtype=np.float32).reshape(3, -1)
    return (AFFINE[:3, :3] @ ijk + AFFINE[:3, 3:]).T.reshape(SHAPE + (3,))


def _ellipsoid(xyz: np.ndarray, centre, radii) -> np.ndarray:
    return (((xyz - np.asarray(centre)) / np.asarray(radii)) ** 2).sum(axis=-1) <= 1.0


def _write_nifti(path: Path, data: np.ndarray, *, tr: float | None = None) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data, AFFINE)
    img.set_sform(AFFINE, code=4)
    img.set_qform(AFFINE, code=4)
    if tr is not None:
        img.header.set_zooms(img.header.get_zooms()[:3] + (tr,))
    img.header.set_xyzt_units("mm", "sec")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")


def simulate_bold(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """(97, 115, 97, 240) float32 BOLD, brain mask and tissue series for the confounds."""
    from bids_app.demo import _signals as sig

    xyz = _mm_grid()
    head = _ellipsoid(xyz, (0, -18, 10), (82, 104, 84))
    brain = _ellipsoid(xyz, (0, -18, 10), (70, 90, 65))
    network = np.exp(-(((xyz - np.asarray(SEED_MNI)) ** 2).sum(-1)) / (2 * 15.0**2))
    network += np.exp(-(((xyz - np.asarray((-38.0, -22.0, 56.0))) ** 2).sum(-1)) / (2 * 15.0**2))
    base = np.where(brain, 800.0 + 200.0 * np.cos(xyz[..., 1] / 30.0), 150.0) * head
    seed_signal = sig.band_limited(rng, 1, N_T, TR)[0]  # unit variance, 0.01-0.1 Hz
    motion = sig.motion_parameters(rng, N_T, N_DUMMY)
    drift = np.linspace(-1, 1, N_T)
    bold = np.zeros(SHAPE + (N_T,), dtype=np.float32)
    idx = np.flatnonzero(head)
    amp = (0.6 * network.reshape(-1)[idx]).astype(np.float32)
    base_v = base.reshape(-1)[idx].astype(np.float32)
    flat = bold.reshape(-1, N_T)
    for t0 in range(0, N_T, 24):
        t1 = min(t0 + 24, N_T)
        noise = rng.standard_normal((idx.size, t1 - t0), dtype=np.float32)
        noise += amp[:, None] * seed_signal[t0:t1].astype(np.float32)
        noise += (0.5 * drift[t0:t1] + 3.0 * motion[t0:t1, 0]).astype(np.float32)
        flat[idx, t0:t1] = base_v[:, None] * (1 + 0.01 * noise)
    flat[:, :N_DUMMY] *= 1.3  # non-steady-state volumes
    wm = bold[_ellipsoid(xyz, (26, -10, 20), (8, 20, 10))].mean(axis=0)
    csf = bold[_ellipsoid(xyz, (0, -10, 15), (4, 12, 6))].mean(axis=0)
    tissue = {"white_matter": wm, "csf": csf, "tcompcor": (wm + csf) / 2}
    return bold, brain, {"tissue": tissue, "motion": motion}


def write_dataset(root: Path, seed: int = 0) -> Path:
    """Write the one-participant raw BIDS dataset with fMRIPrep derivatives; returns root."""
    import pandas as pd

    from bids_app.demo import _signals as sig

    rng = np.random.default_rng(seed)
    bold, brain, extra = simulate_bold(rng)
    gs, dvars = sig.global_and_dvars(bold, brain)
    confounds = sig.confounds_table(
        rng, motion=extra["motion"], tissue=extra["tissue"], global_signal=gs, dvars=dvars,
        tr=TR, n_dummy=N_DUMMY,
    )  # fmt: skip
    name = "sub-01_task-rest"
    raw_affine = np.diag([24.0, 24.0, 24.0, 1.0])
    raw_affine[:3, 3] = -84.0
    import nibabel as nib

    raw = np.rint(1000 + 10 * rng.standard_normal((8, 8, 8, N_T))).astype(np.int16)
    (root / "sub-01" / "func").mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(raw, raw_affine), root / "sub-01" / "func" / f"{name}_bold.nii.gz")
    meta = {"RepetitionTime": TR, "TaskName": "rest"}
    _write_json(root / "sub-01" / "func" / f"{name}_bold.json", meta)
    _write_json(
        root / "dataset_description.json",
        {"Name": "bench participant", "BIDSVersion": "1.9.0", "DatasetType": "raw"},
    )
    _write_json(root / "task-rest_bold.json", meta)
    pd.DataFrame(
        [{"participant_id": "sub-01", "ul_fma": 30, "age": 60, "sex": "M",
          "illness_duration": 4, "lesion_side": "R"}]
    ).to_csv(root / "participants.tsv", sep="\t", index=False)  # fmt: skip
    prep = root / "derivatives" / "fmriprep"
    _write_json(
        prep / "dataset_description.json",
        {"Name": "fMRIPrep (synthetic)", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
         "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}]},
    )  # fmt: skip
    func = prep / "sub-01" / "func"
    stem = f"{name}_space-{SPACE}_res-2"
    _write_nifti(func / f"{stem}_desc-preproc_bold.nii.gz", bold, tr=TR)
    _write_json(func / f"{stem}_desc-preproc_bold.json", {**meta, "SkullStripped": False})
    _write_nifti(func / f"{stem}_desc-brain_mask.nii.gz", brain.astype(np.uint8))
    _write_json(func / f"{stem}_desc-brain_mask.json", {"Type": "Brain", "RawSources": []})
    confounds.to_csv(
        func / f"{name}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a"
    )
    _write_json(func / f"{name}_desc-confounds_timeseries.json", sig.confounds_sidecar(confounds))
    return root


def _tree_pss_kib(root_pid: int) -> int:
    """Sum of PSS (KiB) of root_pid and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    total = 0
    for pid in tree:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        total += int(match.group(1)) if match else 0
    return total


#: Runs the CLI with the garbage collector's current objects frozen just before the workflow
#: runs: nipype's MultiProc loop calls gc.collect() at every poll (every 0.05 s here), which
#: walks the whole heap of the parent (pybids, nipype) each time.
FREEZE_GC = """
import gc, sys
import nipype.pipeline.engine.workflows as workflows
run = workflows.Workflow.run
def frozen_run(self, *args, **kwargs):
    gc.collect()
    gc.freeze()
    return run(self, *args, **kwargs)
workflows.Workflow.run = frozen_run
from bids_app.cli.run import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli(bids: Path, out: Path, work: Path, nprocs: int = 2, freeze_gc: bool = False) -> dict:
    """Run the participant CLI once; wall time, max single-process RSS, peak tree PSS."""
    start = [sys.executable, "-c", FREEZE_GC] if freeze_gc else [sys.executable, "-m", "bids_app"]
    cmd = start + [str(bids), str(out), "participant", "-w", str(work), "--nprocs", str(nprocs)]
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(timer + cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_pss_kib(proc.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    log = proc.communicate()[0].decode(errors="replace")
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", log)
    cpu = [re.search(rf"{k} time \(seconds\): ([\d.]+)", log) for k in ("User", "System")]
    return {
        "cpu_s": sum(float(m.group(1)) for m in cpu) if all(cpu) else float("nan"),
        "rc": proc.returncode,
        "wall_s": wall,
        "max_rss_gb": int(rss.group(1)) / 2**20 if rss else float("nan"),
        "tree_pss_gb": peak[0] / 2**20,
        "log": log,
    }


def node_times(work: Path, top: int = 12) -> list[tuple[float, str]]:
    """(duration s, node) of the slowest nipype nodes, from their result files."""
    from nipype.utils.filemanip import loadpkl

    rows = []
    for res in work.rglob("result_*.pklz"):
        try:
            runtime = loadpkl(res).runtime
            rows.append((float(runtime.duration), str(res.parent.relative_to(work))))
        except Exception as exc:  # noqa: BLE001 - best effort on nipype internals
            why = type(exc).__name__  # e.g. the report's output was moved when published
            rows.append(
                (float("nan"), f"{res.parent.relative_to(work)} (result unreadable: {why})")
            )
    return sorted(rows, key=lambda row: -row[0] if row[0] == row[0] else 0.0)[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="use/keep this folder (dataset reused)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--freeze-gc", action="store_true", help="also time runs with gc.freeze() (see FREEZE_GC)"
    )
    args = parser.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="strokedfc-bench-"))
    bids = root / "bids"
    try:
        if not (bids / "participants.tsv").exists():
            t0 = time.perf_counter()
            write_dataset(bids)
            print(f"dataset written in {time.perf_counter() - t0:.0f} s: {bids}")
        bold = next((bids / "derivatives").rglob("*desc-preproc_bold.nii.gz"))
        print(f"grid {SHAPE}, {N_T} volumes, float32, {bold.stat().st_size / 2**20:.0f} MiB gz")
        variants = [False, True] if args.freeze_gc else [False]
        for rep, freeze in ((r, f) for f in variants for r in range(args.repeats)):
            out, work = root / f"out{rep}", root / f"work{rep}"
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
            res = run_cli(bids, out, work, freeze_gc=freeze)
            if freeze:
                print("(with gc.freeze() before the workflow runs)")
            if res["rc"] != 0:
                print(res["log"][-4000:])
                print(f"run {rep + 1}: FAILED (exit {res['rc']})")
                return 1
            print(
                f"run {rep + 1}: wall {res['wall_s']:6.1f} s ({res['wall_s'] / TARGET_WALL_S:.2f}"
                f" x the {TARGET_WALL_S:.0f} s target); peak tree PSS {res['tree_pss_gb']:.2f} GB"
                f", max single-process RSS {res['max_rss_gb']:.2f} GB "
                f"({res['tree_pss_gb'] / TARGET_PEAK_GB:.2f} x the {TARGET_PEAK_GB:.0f} GB target)"
            )
            print(
                f"       CPU (user + sys, whole tree) {res['cpu_s']:.1f} s (less sensitive to"
                " the machine's load than the wall time; idle 2 cores: wall between CPU/2 and CPU)"
            )
            nodes = node_times(work)
            for secs, node in nodes:
                print(f"    {secs:7.1f} s  {node}")
            outside = res["wall_s"] - sum(secs for secs, _ in nodes if secs == secs)  # NaN: failed
            print(f"    {outside:7.1f} s  outside the nodes (start-up, planning, nipype, report)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
