"""evaluate_run, REPORT.md and the cross-data-set evaluation on a hand-made run folder.

The run's checkpoint is real, but the network is a stub with known outputs (``load_model`` is
patched), so the figures can be checked by hand; images and masks are twice the input size.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from crackkit import pipeline
from crackkit.checkpoint import load_checkpoint, save_checkpoint
from crackkit.cli import main
from crackkit.config import make_config
from crackkit.data.folder import write_sample
from crackkit.run import Run
from crackkit.runtime import Placement
from crackkit.specs import CHECKPOINT_FORMAT

PROB = 0.7725
VAL = {"decision": 0.5, "pixel_2px": 0.3, "dice": 0.35, "iou": 0.4}
RECORD = {
    "name": "tinyset",
    "license": "CC BY 4.0 (test fixture)",
    "citation": "Nobody et al., A tiny crack set, 2099",
    "negatives_source": "crack-free rows drawn by the test",
}


class StubNet(nn.Module):
    """Constant crack probability PROB at full resolution; score from the image's brightness."""

    output_stride = 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dec = 20.0 * (x.mean(dim=(1, 2, 3)) - 0.5)
        logit = float(np.log(PROB / (1 - PROB)))
        seg = torch.full((x.shape[0], 1, *x.shape[-2:]), logit)
        return dec[:, None], seg


def _write_set(root, rows_per_split, h=128, w=256, record=True):
    """Each image bright, with one full crack row (row index given); -1 means crack-free."""
    for split, rows in rows_per_split.items():
        for k, row in enumerate(rows):
            mask = np.zeros((h, w), dtype=bool)
            if row >= 0:
                mask[row, :] = True
            image = np.full((h, w, 3), 230, dtype=np.uint8)
            write_sample(root, split, f"{split}{k}", image, mask, image_ext=".png")
    if record:
        (root / "dataset.json").write_text(json.dumps(RECORD))
    return root


def _make_run(tmp_path, data_root, *, validated=True):
    cfg = make_config(
        {
            "dataset": str(data_root),
            "input_height": 64,
            "input_width": 128,
            "eval_batch_size": 2,
            "amp": "off",
            "channels_last": "off",
            "device": "cpu",
        }
    )
    run = Run.create(cfg, tmp_path / "run")
    pipeline.prepare(cfg, run, progress=False)  # writes the run's dataset.json, as training does
    metrics = {
        "decision": {"threshold": VAL["decision"]},
        "pixel_2px": {"threshold": VAL["pixel_2px"]},
        "dice": {"threshold": VAL["dice"]},
        "iou": {"threshold": VAL["iou"]},
    }
    best = {"score": 0.5, "epoch": 2, "metrics": metrics} if validated else {"epoch": None}
    state = {
        "model": {},
        "config": cfg.to_dict(),
        "format": CHECKPOINT_FORMAT,
        "epoch": 2,
        "best": best,
        "history": [],
    }
    save_checkpoint(run.path / "checkpoints" / ("best.pt" if validated else "last.pt"), state)
    return run.path, cfg


@pytest.fixture
def stub_model(monkeypatch):
    def load_model(path, device="cpu", *, inference=False):
        state = load_checkpoint(path)
        placement = Placement(torch.device("cpu"), None, False)
        return StubNet(), make_config(state["config"]), state, placement

    monkeypatch.setattr(pipeline, "load_model", load_model)


@pytest.fixture
def data_root(tmp_path):
    return _write_set(
        tmp_path / "data",
        {"train": [10, 20], "val": [30, -1], "test": [40, 60, -1]},
    )


def _native_crack_pixels(root, split):
    return sum(
        int((np.asarray(Image.open(p)) > 127).sum()) for p in (root / split / "masks").iterdir()
    )


def test_evaluate_run_headlines_validation_thresholds_at_native_size(
    tmp_path, data_root, stub_model
):
    """Headline thresholds are the checkpoint's; counts are of the native 128x256 masks.

    Two crack images, each one row of 256 pixels: |D| = 5 x 256 of 32768 pixels, predicted
    everywhere at 0.3 -> P = 0.0390625, R = 1; the crack-free image adds 0 to the original mean.
    """
    run, _ = _make_run(tmp_path, data_root)
    metrics = pipeline.evaluate_run(run, progress=False, bootstrap=100)
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["val_thresholds"] == VAL == metrics["val_thresholds"]
    for key in ("decision", "pixel_2px", "dice", "iou"):
        assert on_disk[key]["threshold"] == VAL[key]
        assert on_disk[key]["threshold_source"] == "validation"
    assert on_disk["n_gt_pixels"] == _native_crack_pixels(data_root, "test") == 512
    p = 5 * 256 / 32768
    assert on_disk["pixel_2px"]["precision"] == pytest.approx(p, abs=1e-12)
    assert on_disk["pixel_2px"]["f1"] == pytest.approx(2 * p / (1 + p), abs=1e-12)
    assert on_disk["pixel_2px"]["f1_ci95"] == pytest.approx([2 * p / (1 + p)] * 2, abs=1e-12)
    assert on_disk["pixel_2px_original_mean"]["f1"] == pytest.approx(
        2 / 3 * 2 * p / (1 + p), abs=1e-12
    )
    assert on_disk["dice"]["value"] == pytest.approx(512 / (32768 + 256), abs=1e-12)
    for key in (
        "decision_oracle",
        "pixel_2px_oracle",
        "pixel_oracle",
        "dice_oracle",
        "iou_oracle",
        "pixel_2px_original_mean_oracle",
        "ods",
        "ois",
        "protocol",
    ):
        assert key in on_disk, key
    assert "pixel_2px_at_val_threshold" not in on_disk
    assert on_disk["decision"]["ap_step"] is not None and "ap" not in on_disk["decision"]
    assert on_disk["protocol"]["n_resized"] == 3
    assert (run / "plots" / "gallery.png").stat().st_size > 1000
    assert (run / "predictions" / "test_scores.csv").is_file()

    text = pipeline.report_run(run).read_text()
    assert "### Evaluation protocol" in text and "validation split" in text
    assert "Oracle (tuned on this split)" in text
    for value in RECORD.values():
        assert value in text
    assert "AP (step-wise)" in text and "AP (trapezoidal)" in text
    assert "original: all images, crack-free count 0" in text
    assert "Published" not in text  # not a CRACK500 run


def test_without_validation_metrics_the_oracle_is_labelled(tmp_path, data_root, stub_model):
    """A checkpoint without validation metrics: every threshold is the oracle, and so labelled."""
    run, _ = _make_run(tmp_path, data_root, validated=False)
    metrics = pipeline.evaluate_run(run, progress=False, bootstrap=0)
    assert set(metrics["val_thresholds"].values()) == {None}
    assert metrics["protocol"]["thresholds"] == "oracle"
    assert "no validation metrics" in metrics["protocol"]["note"]
    assert metrics["pixel_2px"]["threshold"] == metrics["pixel_2px_oracle"]["threshold"]
    text = pipeline.report_run(run).read_text()
    assert "no validation metrics" in text
    assert "**oracle (tuned on this split)**" in text


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cross_dataset_evaluation(tmp_path, data_root, stub_model, capsys):
    """The run on another folder: its own folder under cross/, the run's files untouched."""
    run, _ = _make_run(tmp_path, data_root)
    pipeline.evaluate_run(run, progress=False, bootstrap=0)
    pipeline.report_run(run)
    own = {p: _digest(p) for p in run.rglob("*") if p.is_file() and "cross" not in p.parts}
    other = _write_set(
        tmp_path / "other set",
        {"train": [5], "test": [8, 50]},
        h=64,
        w=128,
        record=False,
    )
    eval_md = pipeline.evaluate_dataset(run, other, progress=False, bootstrap=0)
    out = run / "cross" / "other_set-test"
    assert eval_md == out / "EVAL.md"
    for name in ("metrics.json", "scores.csv", "gallery.png", "EVAL.md"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val_thresholds"] == VAL and metrics["pixel_2px"]["threshold"] == 0.3
    assert metrics["n_images"] == 2 and metrics["n_gt_pixels"] == 2 * 128
    split_counts = {"positives": 2, "negatives": 0, "sum": 2}
    assert metrics["dataset"]["counts"] == {"test": split_counts, "sum": split_counts}
    assert metrics["dataset"]["root"] == str(other) and metrics["dataset"]["name"] == str(other)
    assert {p: _digest(p) for p in own} == own
    text = eval_md.read_text()
    assert "evaluated on" in text and "Evaluation protocol" in text and "Oracle" in text
    with pytest.raises(pipeline.RunDirError, match="already holds an evaluation"):
        pipeline.evaluate_dataset(run, other, progress=False)
    code = main(["evaluate", "--run", str(run), "--dataset", str(other), "--overwrite", "--quiet"])
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out / "EVAL.md")
    assert (
        main(["evaluate", "--run", str(run), "--dataset", str(tmp_path / "nope"), "--quiet"]) == 2
    )


def test_cross_evaluation_on_crack500_shows_published_rows(
    tmp_path, data_root, stub_model, kit_dirs
):
    """On a prepared set named crack500, the published rows sit beside validation figures."""
    run, _ = _make_run(tmp_path, data_root)
    _write_set(kit_dirs["processed"] / "crack500", {"train": [5], "test": [8]}, h=64, w=128)
    text = pipeline.evaluate_dataset(run, "crack500", progress=False, bootstrap=0).read_text()
    table = text.split("Published 2-pixel results on CRACK500")[1].split("\n\n###")[0]
    assert "Seed run (SegDecNet, crack500_run6_5)" in table
    assert "threshold tuned on the test split" in table
    assert "| **This run** |" in table and "threshold from the validation split" in table
    assert "oracle" not in table.lower()
    assert RECORD["license"] in text
