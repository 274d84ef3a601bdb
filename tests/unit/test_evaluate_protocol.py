"""The evaluation protocol on tiny folder data sets with stub networks whose outputs are known.

Native resolution (images and masks twice the input size), nearest x8 upsampling of a 1/8
output, thresholds from the validation split, the original's all-image mean, seg_black and the
bootstrap interval, each against hand-computed values.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from crackkit.checkpoint import validation_thresholds
from crackkit.config import make_config
from crackkit.data.dataset import CrackDataset
from crackkit.data.folder import scan_split, write_sample
from crackkit.evaluate import compute_metrics, count_split, evaluate

PROB = 0.7725  # between the grid thresholds 0.770 and 0.775
CFG = make_config({"input_height": 64, "input_width": 128, "eval_batch_size": 2})


class StubNet(nn.Module):
    """Fixed segmentation probabilities; the decision follows the image's brightness.

    seg_prob: (h, w) at the output size (h = H / stride); score = sigmoid(20 (mean - 0.5)).
    """

    def __init__(self, seg_prob: np.ndarray, stride: int = 1) -> None:
        super().__init__()
        self.output_stride = stride
        logits = torch.logit(torch.tensor(seg_prob, dtype=torch.float64)).float()
        self.register_buffer("logits", logits[None, None])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dec = 20.0 * (x.mean(dim=(1, 2, 3)) - 0.5)
        return dec[:, None], self.logits.expand(x.shape[0], 1, -1, -1)


def _folder(tmp_path, items):
    """items: (stem, height, width, brightness, mask) -> the test split's samples."""
    for stem, h, w, value, mask in items:
        image = np.full((h, w, 3), value, dtype=np.uint8)
        write_sample(tmp_path, "test", stem, image, mask, image_ext=".png")
    return scan_split(tmp_path, "test")


def _row_mask(h, w, row):
    m = np.zeros((h, w), dtype=bool)
    m[row, :] = True
    return m


def _col_mask(h, w, col):
    m = np.zeros((h, w), dtype=bool)
    m[:, col] = True
    return m


def _f1(p, r):
    return 2 * p * r / (p + r)


@pytest.fixture
def native_split(tmp_path):
    """a: 128x256 (twice the input), one full row; b: 96x200, one full column; c: crack-free."""
    return _folder(
        tmp_path,
        [
            ("a", 128, 256, 255, _row_mask(128, 256, 60)),
            ("b", 96, 200, 255, _col_mask(96, 200, 100)),
            ("c", 64, 128, 255, np.zeros((64, 128), dtype=bool)),
        ],
    )


def test_metrics_are_counted_at_native_size(native_split):
    """A constant map predicts every pixel up to 0.770; counts are of the native masks.

    a: |G| 256, |D| 5 x 256 = 1280 of 32768 pixels -> P 0.0390625, R 1.
    b: |G| 96, |D| 96 x 5 = 480 of 19200 pixels -> P 0.025, R 1.
    At half size, a alone would give P 640 / 8192 = 0.078125: the native counts differ.
    """
    ds = CrackDataset(native_split, CFG, train=False)
    model = StubNet(np.full((64, 128), PROB))
    pred = count_split(model, ds, torch.device("cpu"), batch_size=2)
    assert pred.sizes == [(128, 256), (96, 200), (64, 128)]
    assert pred.n_resized == 2 and pred.input_size == (64, 128) and pred.output_stride == 1
    metrics = compute_metrics(pred, bootstrap=200)
    assert metrics["n_gt_pixels"] == 256 + 96
    pa, pb = 1280 / 32768, 480 / 19200
    oracle = metrics["pixel_2px_oracle"]
    assert oracle["threshold"] == 0.1 and oracle["n_images"] == 2
    assert oracle["precision"] == pytest.approx((pa + pb) / 2, abs=1e-12)
    assert oracle["recall"] == 1.0
    assert oracle["f1"] == pytest.approx((_f1(pa, 1) + _f1(pb, 1)) / 2, abs=1e-12)
    dice_a, dice_b = 2 * 256 / (32768 + 256), 2 * 96 / (19200 + 96)
    assert metrics["dice"]["value"] == pytest.approx((dice_a + dice_b) / 2, abs=1e-12)
    assert metrics["iou"]["value"] == pytest.approx((256 / 32768 + 96 / 19200) / 2, abs=1e-12)
    # The original's mean: all three images (c counts 0), prob > t.
    orig = metrics["pixel_2px_original_mean_oracle"]
    assert orig["n_images"] == 3
    assert orig["f1"] == pytest.approx((_f1(pa, 1) + _f1(pb, 1)) / 3, abs=1e-12)
    # No validation thresholds: the headline falls back to the oracle and says so.
    assert metrics["pixel_2px"]["threshold_source"] == "oracle"
    assert metrics["protocol"]["thresholds"] == "oracle"
    assert metrics["protocol"]["n_resized"] == 2
    # Bootstrap of the headline F1 over the two crack images, against a plain loop.
    values = [_f1(pa, 1), _f1(pb, 1)]
    rng = np.random.default_rng(0)
    means = sorted(sum(values[j] for j in rng.integers(0, 2, size=2)) / 2 for _ in range(200))
    pos = 0.025 * 199
    lo = means[math.floor(pos)] + (means[math.ceil(pos)] - means[math.floor(pos)]) * (pos % 1)
    pos = 0.975 * 199
    hi = means[math.floor(pos)] + (means[math.ceil(pos)] - means[math.floor(pos)]) * (pos % 1)
    assert metrics["pixel_2px"]["f1_ci95"] == pytest.approx([lo, hi], abs=1e-12)
    json.dumps(metrics)


def test_headline_uses_the_validation_thresholds(native_split):
    """2px at 0.8 (above every probability) is 0 while its oracle is not; Dice at 0.3."""
    ds = CrackDataset(native_split, CFG, train=False)
    val = {"decision": 0.5, "pixel_2px": 0.8, "dice": 0.3, "iou": 0.3}
    metrics, _ = evaluate(
        StubNet(np.full((64, 128), PROB)), ds, torch.device("cpu"), val_thresholds=val
    )
    assert metrics["val_thresholds"] == val
    p = metrics["pixel_2px"]
    assert (p["precision"], p["recall"], p["f1"], p["threshold"]) == (0.0, 0.0, 0.0, 0.8)
    assert p["threshold_source"] == "validation"
    assert metrics["pixel_2px_oracle"]["f1"] > 0
    assert metrics["dice"]["threshold"] == 0.3
    assert metrics["dice"]["value"] == pytest.approx(metrics["dice_oracle"]["value"], abs=1e-12)
    assert metrics["decision"]["threshold"] == 0.5
    assert (metrics["decision"]["tp"], metrics["decision"]["fp"]) == (2, 1)
    assert metrics["protocol"]["thresholds"] == "validation"
    assert metrics["pixel_2px_original_mean"]["threshold"] == 0.8
    assert metrics["pixel_2px_original_mean"]["f1"] == 0.0


def test_validation_threshold_not_counted_is_refused(native_split):
    """compute_metrics cannot take a pixel threshold count_split() did not count."""
    ds = CrackDataset(native_split, CFG, train=False)
    pred = count_split(StubNet(np.full((64, 128), PROB)), ds, torch.device("cpu"))
    with pytest.raises(ValueError, match="was not counted"):
        compute_metrics(pred, val_thresholds={"pixel_2px": 0.3333})


def test_segdecnet_output_is_upsampled_by_nearest_blocks(tmp_path):
    """A 1/8 map with one high cell predicts exactly that cell's 8x8 block at every threshold.

    Bilinear upsampling would spread the cell over its neighbours and leave its border below
    the high value, so Dice would not be 1 at every threshold below 0.9.
    """
    mask = np.zeros((64, 128), dtype=bool)
    mask[16:24, 24:32] = True
    samples = _folder(tmp_path, [("a", 64, 128, 255, mask)])
    cells = np.full((8, 16), 0.02)
    cells[2, 3] = 0.9
    ds = CrackDataset(samples, CFG, train=False)
    pred = count_split(StubNet(cells, stride=8), ds, torch.device("cpu"))
    assert pred.output_stride == 8
    cols = [pred.counts.column(t) for t in pred.sweep if t < 0.9]  # 0.9 in float32 is below 0.9
    assert set(pred.counts.pred_pos[0, cols].tolist()) == {64}
    assert set(pred.counts.tp_plain[0, cols].tolist()) == {64}
    metrics = compute_metrics(pred)
    assert metrics["dice"]["value"] == 1.0 and metrics["iou"]["value"] == 1.0
    assert metrics["protocol"]["output_upsampling"].startswith("nearest-neighbour x8")


def test_seg_black_zeroes_images_decided_crack_free(tmp_path):
    """Two equal crack images, a dark one (score ~0) and a bright one (score ~1).

    Without seg_black both score F1 f = 2P/(1+P), P = 5 x 128 / 8192; with it, the dark image
    is zeroed at the decision threshold 0.5: its F1 and recall are 0, the means halve.
    """
    mask = _row_mask(64, 128, 30)
    samples = _folder(tmp_path, [("dark", 64, 128, 0, mask), ("bright", 64, 128, 255, mask)])
    ds = CrackDataset(samples, CFG, train=False)
    model = StubNet(np.full((64, 128), PROB))
    val = {"decision": 0.5, "pixel_2px": 0.5, "dice": 0.5, "iou": 0.5}
    cpu = torch.device("cpu")
    off, _ = evaluate(model, ds, cpu, val_thresholds=val, seg_black=False)
    on, _ = evaluate(model, ds, cpu, val_thresholds=val, seg_black=True)
    p = 5 * 128 / 8192
    f = 2 * p / (1 + p)
    assert off["pixel_2px"]["f1"] == pytest.approx(f, abs=1e-12)
    assert on["pixel_2px"]["f1"] == pytest.approx(f / 2, abs=1e-12)
    assert on["pixel_2px"]["recall"] == pytest.approx(0.5, abs=1e-12)
    assert on["dice"]["value"] == pytest.approx(off["dice"]["value"] / 2, abs=1e-12)
    assert on["protocol"]["seg_black"] == {
        "enabled": True,
        "decision_threshold": 0.5,
        "n_blackened": 1,
    }
    assert off["protocol"]["seg_black"]["enabled"] is False
    assert on["decision"] == off["decision"]
    # seg_black=None takes the run parameter of the data set's configuration.
    ds_on = CrackDataset(samples, CFG.replace(seg_black=True), train=False)
    cfg_on, _ = evaluate(model, ds_on, cpu, val_thresholds=val)
    assert cfg_on["pixel_2px"] == on["pixel_2px"]


def test_validation_thresholds_of_a_checkpoint():
    """best.pt: from its recorded metrics; last.pt: from its epoch's history row; else None."""
    best_metrics = {
        "decision": {"threshold": 0.61},
        "pixel_2px": {"threshold": 0.305},
        "dice": {"threshold": 0.4},
        "iou": {"threshold": 0.45},
    }
    state = {"epoch": 4, "best": {"epoch": 4, "metrics": best_metrics}}
    assert validation_thresholds(state) == {
        "decision": 0.61,
        "pixel_2px": 0.305,
        "dice": 0.4,
        "iou": 0.45,
    }
    row = {
        "epoch": 6,
        "val_dec_threshold": 0.7,
        "val_threshold_2px": 0.2,
        "val_f1_2px": 0.5,
        "val_dice_threshold": 0.25,
        "val_iou_threshold": 0.3,
    }
    last = {"epoch": 6, "best": {"epoch": 4, "metrics": best_metrics}, "history": [row]}
    assert validation_thresholds(last) == {
        "decision": 0.7,
        "pixel_2px": 0.2,
        "dice": 0.25,
        "iou": 0.3,
    }
    unvalidated = {"epoch": 3, "best": {"epoch": None, "metrics": None}, "history": []}
    assert set(validation_thresholds(unvalidated).values()) == {None}
