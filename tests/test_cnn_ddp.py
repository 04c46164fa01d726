"""DistributedDataParallel on CPU (gloo): ``torchrun --nproc_per_node 2`` vs one process.

Slow: starts two worker processes. Tolerance: DDP splits each global batch over the ranks,
so BatchNorm statistics (per rank) and the sample order differ from one process; metrics are
compared within 0.25 (balanced accuracy, fractions; with a strong planted effect both reach
>= 0.9 here) and the learning-rate schedule must be identical. Every rank must return the
identical summary (metrics gathered / all-reduced).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bids_app.config import GroupConfig
from bids_app.group.cache import build_cache
from bids_app.group.cnn.run import run_cnn
from bids_app.group.cohort import load_cohort
from tests._group_fixtures import make_participant_outputs

REPO = Path(__file__).resolve().parents[1]
CFG = dict(
    model="vgg3d", n_folds=2, folds=[1], width_multiplier=0.125, fc_width=16, dropout=0.0,
    epochs=5, lr=1e-2, batch_size=4, n_permutations=50, num_workers=0, device="cpu",
)  # fmt: skip

SCRIPT = """
import json, os, sys
import torch
torch.set_num_threads(1)
from pathlib import Path
from bids_app.config import GroupConfig
from bids_app.group.cache import open_cache
from bids_app.group.cohort import load_cohort
from bids_app.group.cnn.run import run_cnn
tmp = Path(sys.argv[1])
cohort = load_cohort(tmp / "bids", tmp / "out")
cache = open_cache(tmp / "cache")
cfg = GroupConfig(**json.loads(sys.argv[2]))
summary = run_cnn(cohort, cache, cfg, out_dir=tmp / "ddp", random_seed=0)
(tmp / f"rank-{os.environ['RANK']}.json").write_text(json.dumps(summary))
"""


@pytest.mark.slow
def test_torchrun_two_ranks_matches_one_process(tmp_path):
    import torch

    torch.set_num_threads(1)
    study = make_participant_outputs(
        tmp_path, n_subjects=8, shape=(9, 11, 10), n_windows=8, rng=0, group_effect=3.0
    )
    cohort = load_cohort(study.bids_dir, study.output_dir)
    cache = build_cache(cohort, tmp_path / "cache")
    single = run_cnn(cohort, cache, GroupConfig(**CFG), out_dir=tmp_path / "one", random_seed=0)
    script = tmp_path / "ddp_worker.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(script), str(tmp_path), json.dumps(CFG)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank holds the same gathered result
    ddp = ranks[0]
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert single["metrics"]["participant"]["balanced_accuracy"]["mean"] >= 0.75  # it learned
    for level in ("window", "participant"):
        a = ddp["metrics"][level]["balanced_accuracy"]["mean"]
        b = single["metrics"][level]["balanced_accuracy"]["mean"]
        assert abs(a - b) <= 0.25, (level, a, b)
    curves_ddp = (tmp_path / "ddp" / "fold-1" / "curves.tsv").read_text().splitlines()
    curves_one = (tmp_path / "one" / "fold-1" / "curves.tsv").read_text().splitlines()
    assert len(curves_ddp) == len(curves_one) == 6
    lr_ddp = [line.split("\t")[-1] for line in curves_ddp]
    assert lr_ddp == [line.split("\t")[-1] for line in curves_one]  # same schedule
    # rank 0 alone wrote the outputs, and they are complete
    assert (tmp_path / "ddp" / "splits.tsv").exists()
    assert (tmp_path / "ddp" / "fold-1" / "model.pt").exists()
