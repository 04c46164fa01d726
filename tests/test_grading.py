"""Grading new patients: group --final-model, then participant --model PATH."""

from __future__ import annotations

import html.parser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _independent_data import SubjectSpec, write_dataset

from bids_app.cli.run import main

SHAPE = (23, 28, 23)
AFFINE = np.array([[8.0, 0, 0, -88.0], [0, 8.0, 0, -124.0], [0, 0, 8.0, -70.0], [0, 0, 0, 1]])
PARTICIPANT = ["--dummy-scans", "2", "--window-length", "10", "--window-step", "3"]
PARTICIPANT += ["--resolution", "9", "--seed-radius", "9", "--fwhm", "0"]
GROUP = ["--skip-states", "--final-model", "--n-folds", "2", "--epochs", "1"]
GROUP += ["--width-multiplier", "0.0625", "--fc-width", "8", "--batch-size", "8"]
GROUP += ["--n-permutations", "10", "--num-workers", "0", "--nthreads", "1", "--device", "cpu"]


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.text: list[str] = []

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


def test_final_model_grades_a_new_participant(tmp_path):
    subjects = [
        SubjectSpec("01", "L", lesion_centre=(-25.0, -5.0, 10.0)),
        SubjectSpec("02", "R", lesion_centre=(25.0, -5.0, 10.0)),
        SubjectSpec("03", "L", lesion_centre=(-25.0, 0.0, 12.0)),
        SubjectSpec("04", "n/a"),
    ]
    truth = write_dataset(tmp_path, subjects, shape=SHAPE, affine=AFFINE, n_volumes=50, res="8")
    table = pd.read_csv(truth["bids"] / "participants.tsv", sep="\t")
    table["ul_fma"] = [10, 45, 15, 50]  # two severe (<= 20), two mild/moderate
    table.to_csv(truth["bids"] / "participants.tsv", sep="\t", index=False)
    bids, out, work = str(truth["bids"]), tmp_path / "out", str(tmp_path / "work")
    lesions = ["--lesion-dir", str(truth["lesions"])]

    assert main([bids, str(out), "participant", "-w", work, *lesions, *PARTICIPANT]) == 0
    assert main([bids, str(out), "group", "-w", work, *GROUP]) == 0
    model = out / "group" / "cnn" / "final" / "model.pt"
    assert model.is_file()

    # grade participant 02 into a fresh derivatives folder with the trained model
    new = tmp_path / "graded"
    args = [bids, str(new), "participant", "-w", work, *lesions, *PARTICIPANT]
    assert main([*args, "--participant-label", "02", "--model", str(model)]) == 0
    pred = pd.read_csv(new / "sub-02/func/sub-02_task-rest_desc-prediction_severity.tsv", sep="\t")
    assert len(pred) == 1
    row = pred.iloc[0]
    assert row["predicted_class"] in ("severe", "mild/moderate")
    assert 0.0 <= row["probability_min"] <= row["probability_mean"] <= row["probability_max"] <= 1
    n_windows = (50 - 2 - 10) // 3 + 1
    assert row["n_windows"] == n_windows
    assert "not a clinical device" in row["disclaimer"].lower()

    parser = _Text()
    parser.feed((new / "sub-02.html").read_text())
    text = " ".join(parser.text)
    assert "Prediction" in text
    assert "not a clinical device" in text.lower()
    assert row["predicted_class"] in text


def test_model_option_must_name_an_existing_file(tmp_path, capsys):
    truth = write_dataset(tmp_path, [SubjectSpec("01")], shape=SHAPE, affine=AFFINE, n_volumes=50)
    args = [str(truth["bids"]), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "w")]
    assert main([*args, "--model", str(Path(tmp_path) / "missing.pt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pt: model file not found" in err[0]
