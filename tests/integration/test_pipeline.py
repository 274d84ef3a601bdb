"""The batch driver runs the four notebooks into one complete run folder."""

from __future__ import annotations

import csv
import json

import pytest

from crackkit.cli import main
from crackkit.config import SEED_REPORT_ROWS

SEED_SECTIONS = [
    "## Dataset",
    "## Run parameters",
    "### Decision",
    "pixel distance",
    "### Dice and IoU",
    "### Evaluation protocol",
    "### Oracle (tuned on this split)",
    "## Losses",
    "## Scores",
    "## Gallery",
    "## Environment",
    "### Output",
]


@pytest.fixture(scope="module")
def finished_run(module_kit_dirs):
    """One tiny pipeline run, shared by the tests of this module."""
    base = module_kit_dirs["base"]
    run_dir = base / "runs" / "tiny"
    code = main(["run", "--preset", "tiny", "--run", str(run_dir), "-p", "epochs", "2", "--quiet"])
    return code, run_dir


def test_driver_succeeds(finished_run, capsys):
    """crackkit run exits 0."""
    code, _ = finished_run
    assert code == 0


def test_run_folder_is_complete(finished_run):
    """Config, environment, metrics, history, log, checkpoints, plots, notebooks and report."""
    _, run = finished_run
    for rel in [
        "config.json",
        "environment.json",
        "dataset.json",
        "metrics.json",
        "history.csv",
        "run.log",
        "REPORT.md",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "plots/loss.png",
        "plots/loss_dec.png",
        "plots/loss_seg.png",
        "plots/loss_val.png",
        "plots/scores.png",
        "plots/gallery.png",
        "predictions/test_scores.csv",
    ]:
        assert (run / rel).is_file(), rel
    for stem in ["01_prepare", "02_train", "03_evaluate", "04_report"]:
        assert (run / "notebooks" / f"{stem}.ipynb").is_file()
        assert (run / "notebooks" / f"{stem}.html").stat().st_size > 1000


def test_environment_records_the_speed_switches_of_training_and_evaluation(finished_run):
    """Each process that built a model adds how its switches were settled to environment.json
    (static here: the test suite does not measure), and REPORT.md shows them."""
    _, run = finished_run
    env = json.loads((run / "environment.json").read_text())
    switches = env["speed_switches"]
    assert set(switches) == {"training", "inference"}
    assert set(switches["training"]["switches"]) == {"amp", "channels_last", "fft_conv"}
    inference = switches["inference"]["switches"]
    assert inference["eval_batch_size"] == {"choice": 4, "source": "fixed"}  # the tiny preset
    assert inference["fft_conv"]["source"] == "static"
    assert switches["inference"]["size"] == "3x64x128"
    assert "cpu" in switches["training"]["machine"]
    report = (run / "REPORT.md").read_text()
    assert "speed switches: training" in report and "speed switches: inference" in report


def test_metrics_json_has_the_seed_tables(finished_run):
    """metrics.json headlines decision, 2-pixel, Dice and IoU at the validation thresholds."""
    _, run = finished_run
    m = json.loads((run / "metrics.json").read_text())
    assert {
        "precision",
        "recall",
        "f1",
        "accuracy",
        "threshold",
        "tp",
        "fp",
        "fn",
        "tn",
        "ap_step",
        "ap_trapezoid",
        "auc",
        "threshold_source",
    } <= set(m["decision"])
    assert {"precision", "recall", "f1", "threshold", "f1_ci95"} <= set(m["pixel_2px"])
    assert {"value", "threshold", "value_ci95"} <= set(m["dice"])
    assert {"value", "threshold", "value_ci95"} <= set(m["iou"])
    d = m["decision"]
    assert d["tp"] + d["fp"] + d["fn"] + d["tn"] == m["n_images"] == 6
    assert m["protocol"]["thresholds"] in ("validation", "mixed")
    assert d["threshold"] == m["val_thresholds"]["decision"]
    if m["val_thresholds"]["pixel_2px"] is not None:
        assert m["pixel_2px"]["threshold"] == m["val_thresholds"]["pixel_2px"]
        assert m["dice"]["threshold"] == m["val_thresholds"]["dice"]
        assert m["iou"]["threshold"] == m["val_thresholds"]["iou"]
    for key in ("decision_oracle", "pixel_2px_oracle", "dice_oracle", "iou_oracle"):
        assert key in m, key
    assert not [k for k in m if k.endswith("_at_val_threshold")]


def test_history_has_one_row_per_epoch(finished_run):
    """history.csv has a row per epoch with losses and validation scores."""
    _, run = finished_run
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(r["loss_seg"] and r["loss_dec"] and r["val_f1_2px"] for r in rows)


def test_report_mirrors_the_seed(finished_run):
    """REPORT.md has the seed's sections and every row of its run-parameter table."""
    _, run = finished_run
    text = (run / "REPORT.md").read_text()
    for section in SEED_SECTIONS:
        assert section in text, section
    for label, _ in SEED_REPORT_ROWS:
        assert f"| {label} |" in text, label
    assert "Epoch 2/2 ==>" in text


def test_executed_notebooks_record_parameters(finished_run):
    """The executed train notebook records the injected parameters (papermill metadata)."""
    _, run = finished_run
    nb = json.loads((run / "notebooks" / "02_train.ipynb").read_text())
    assert nb["metadata"]["papermill"]["parameters"]["epochs"] == 2


def test_finished_run_is_not_overwritten(finished_run, capsys):
    """A second run into the same folder is refused and leaves the report untouched."""
    _, run = finished_run
    before = (run / "REPORT.md").read_bytes()
    code = main(["run", "--preset", "tiny", "--run", str(run), "--quiet"])
    assert code == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert (run / "REPORT.md").read_bytes() == before


def test_bad_parameter_exits_2(tmp_path, capsys):
    """An unknown -p name stops the driver before anything runs."""
    code = main(["run", "--preset", "tiny", "--run", str(tmp_path / "r"), "-p", "lrr", "1"])
    assert code == 2
    assert "unknown parameter 'lrr'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_run_folder_has_tensorboard_events(finished_run):
    """RUN/tensorboard holds the per-epoch losses of history.csv, the learning rate, the
    validation metrics, the test figures and the gallery image."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run = finished_run
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    with (run / "history.csv").open() as fh:
        history = list(csv.DictReader(fh))
    logged = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert logged == {int(r["epoch"]): pytest.approx(float(r["loss"])) for r in history}
    assert len(acc.Scalars("train/lr")) == len(history)
    assert acc.Scalars("validation/f1_2px")
    metrics = json.loads((run / "metrics.json").read_text())
    assert acc.Scalars("test/f1_2px")[0].value == pytest.approx(metrics["pixel_2px"]["f1"])
    assert acc.Images("test/gallery")
