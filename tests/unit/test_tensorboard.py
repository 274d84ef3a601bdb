"""TensorBoard event files of a run: what RunBoard writes reads back with TensorBoard's reader."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from crackkit.tensorboard import RunBoard


def _read(log_dir) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_epochs_metrics_curves_and_gallery(tmp_path):
    rows = [
        {
            "epoch": 1,
            "lr": 0.001,
            "loss": 0.9,
            "loss_seg": 0.7,
            "loss_dec": 0.2,
            "best": True,
            "n_train": 8,
            "val_f1_2px": 0.5,
            "val_ap": 0.75,
        },
        {"epoch": 2, "lr": 0.0005, "loss": 0.6, "loss_seg": 0.5, "loss_dec": 0.1, "n_train": 8},
    ]
    val = {
        "n_images": 4,
        "n_positive": 2,
        "decision_curve": {"precision": [0.5, 2 / 3, 1.0, 1.0], "recall": [1.0, 1.0, 0.5, 0.0]},
    }
    gallery = tmp_path / "gallery.png"
    Image.fromarray(np.full((10, 20, 3), 200, np.uint8)).save(gallery)
    test = {
        "split": "test",
        "checkpoint_epoch": 2,
        "n_gt_pixels": 100,
        "decision": {"ap_step": 0.8, "f1": 0.7},
        "pixel_2px": {"f1": 0.6, "precision": 0.5, "recall": 0.75},
        "dice": {"value": 0.4},
        "pixel_2px_curve": {"precision": [0.5, 0.8, 1.0], "recall": [0.9, 0.5, 0.1]},
    }
    with RunBoard(tmp_path) as board:
        board.epoch(rows[0], val)
        board.epoch(rows[1], None)
        board.evaluation(
            test,
            labels=np.array([1, 0, 1, 0]),
            scores=np.array([0.9, 0.2, 0.6, 0.7]),
            gallery=gallery,
        )
    acc = _read(tmp_path / "tensorboard")
    tags = acc.Tags()
    loss = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert loss == [(1, pytest.approx(0.9)), (2, pytest.approx(0.6))]
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx([0.001, 0.0005])
    assert [(e.step, e.value) for e in acc.Scalars("validation/f1_2px")] == [
        (1, pytest.approx(0.5))
    ]
    assert "train/best" not in tags["scalars"] and "train/epoch" not in tags["scalars"]
    assert [e.value for e in acc.Scalars("test/f1_2px")] == pytest.approx([0.6])
    assert acc.Scalars("test/dice")[0].step == 2
    assert {"validation/decision_pr", "test/decision_pr", "test/pixel_2px_pr"} <= set(
        tags["tensors"]
    )
    (image,) = acc.Images("test/gallery")
    assert (image.width, image.height) == (20, 10)


def test_a_curve_needs_both_classes(tmp_path):
    """No PR curve for a validation split of one class (CrackForest has no crack-free image)."""
    with RunBoard(tmp_path) as board:
        board.epoch(
            {"epoch": 1, "loss": 1.0},
            {
                "n_images": 3,
                "n_positive": 3,
                "decision_curve": {"precision": [1.0], "recall": [1.0]},
            },
        )
    assert "validation/decision_pr" not in _read(tmp_path / "tensorboard").Tags()["tensors"]
