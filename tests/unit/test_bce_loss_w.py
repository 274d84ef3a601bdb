"""SegDecNet++'s class-weighted BCE (bce_loss_w) and its calibrated form with seg_prior_init."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from crackkit.checkpoint import Checkpoints
from crackkit.config import make_config
from crackkit.data.dataset import load_splits
from crackkit.losses import SegDecLoss, bce_class_weights, decision_loss, segmentation_loss
from crackkit.model import build_model, init_segmentation_prior, segmentation_bias
from crackkit.train import train


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_class_weights_are_the_negative_to_positive_ratios():
    # 2 % crack pixels: 98 / 2 = 49; 3 crack images and 1 crack-free: 1 / 3
    assert bce_class_weights(0.02, 3, 1) == pytest.approx((49.0, 1 / 3))
    # the published code's empty cases: no crack pixel or no crack image gives 0
    assert bce_class_weights(0.0, 0, 5) == (0.0, 0.0)
    assert bce_class_weights(0.5, 4, 0) == (1.0, 0.0)


def test_weighted_segmentation_loss_by_hand():
    """-[w·y·log σ(z+c) + (1-y)·log(1-σ(z+c))], averaged over the four pixels."""
    z = np.array([[-2.0, 0.5], [1.0, -0.25]])
    y = np.array([[1.0, 0.0], [1.0, 0.0]])
    w, c = 7.0, 0.3
    p = _sigmoid(z + c)
    expected = np.mean(-(w * y * np.log(p) + (1 - y) * np.log(1 - p)))
    got = segmentation_loss(
        torch.tensor(z)[None, None], torch.tensor(y)[None, None], pos_weight=w, logit_offset=c
    )
    assert float(got) == pytest.approx(expected, rel=1e-6)
    plain = np.mean(-(y * np.log(_sigmoid(z)) + (1 - y) * np.log(1 - _sigmoid(z))))
    assert float(segmentation_loss(torch.tensor(z)[None, None], torch.tensor(y)[None, None])) == (
        pytest.approx(plain, rel=1e-6)
    )


def test_weighted_decision_loss_by_hand():
    d = np.array([0.4, -1.2, 2.0])
    y = np.array([1.0, 0.0, 1.0])
    w = 0.25
    expected = np.mean(-(w * y * np.log(_sigmoid(d)) + (1 - y) * np.log(1 - _sigmoid(d))))
    got = decision_loss(torch.tensor(d)[:, None], torch.tensor(y), pos_weight=w)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_off_by_default_and_off_in_the_seed_preset():
    assert make_config().bce_loss_w is False
    assert make_config(preset="crack500").bce_loss_w is False
    loss = SegDecLoss.from_config(make_config())
    assert (loss.seg_pos_weight, loss.dec_pos_weight, loss.seg_logit_offset) == (None, None, 0.0)
    with pytest.raises(ValueError, match="crack_fraction"):
        SegDecLoss.from_config(make_config({"bce_loss_w": True}))


def test_the_offset_is_taken_only_with_the_prior():
    published = SegDecLoss.from_config(
        make_config({"bce_loss_w": True, "seg_prior_init": False}),
        crack_fraction=0.02,
        n_positive=3,
        n_negative=1,
    )
    assert (published.seg_pos_weight, published.seg_logit_offset) == (pytest.approx(49.0), 0.0)
    assert published.dec_pos_weight == pytest.approx(1 / 3)
    calibrated = SegDecLoss.from_config(
        make_config({"bce_loss_w": True}), crack_fraction=0.02, n_positive=3, n_negative=1
    )
    assert calibrated.seg_logit_offset == pytest.approx(math.log(49.0))


@pytest.mark.parametrize("architecture", ["segdecnet", "segdecnet++"])
def test_calibrated_form_follows_the_published_gradients(architecture):
    """The published start (bias 0, weighted loss on the logits) and crackkit's calibrated one
    (bias logit(f), weighted loss on the logits + log w) give every parameter the same
    segmentation gradient, and the calibrated network's logits are the published ones minus
    log w. (The decision head reads the segmentation map, so its input moves by the same constant,
    as with seg_prior_init alone: epoch 0 of the dynamic balance weighs the decision loss 0.)"""
    f = 0.05
    torch.manual_seed(0)
    published = build_model(architecture, 3, 64, 128)
    calibrated = copy.deepcopy(published)
    init_segmentation_prior(calibrated, f)
    kw = dict(crack_fraction=f, n_positive=3, n_negative=1)
    loss_p = SegDecLoss.from_config(
        make_config({"bce_loss_w": True, "seg_prior_init": False, "dyn_balanced_loss": True}), **kw
    )
    loss_c = SegDecLoss.from_config(
        make_config({"bce_loss_w": True, "dyn_balanced_loss": True}), **kw
    )
    x = torch.rand(4, 3, 64, 128)
    masks = torch.zeros(4, 1, 64, 128)
    masks[:3, :, 20:23, 10:90] = 1.0
    labels = torch.tensor([1.0, 1.0, 1.0, 0.0])
    outputs = {}
    for name, model, loss_fn in (("p", published, loss_p), ("c", calibrated, loss_c)):
        dec, seg = model(x)
        loss = loss_fn(dec, seg, labels, masks, epoch=0)["loss"]
        loss.backward()
        outputs[name] = (seg.detach(), float(loss.detach()))
    assert outputs["c"][1] == pytest.approx(outputs["p"][1], rel=1e-5)
    shift = outputs["p"][0] - outputs["c"][0]
    assert torch.allclose(shift, torch.full_like(shift, math.log((1 - f) / f)), atol=1e-4)
    checked = 0
    for (name, a), b in zip(published.named_parameters(), calibrated.parameters(), strict=True):
        if a.grad is None:
            assert b.grad is None, name
            continue
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), name
        checked += int(bool(a.grad.abs().sum() > 0))
    assert checked > 10  # the encoder's and the segmentation output's parameters
    assert float(segmentation_bias(calibrated).detach().flatten()[0]) == pytest.approx(
        math.log(f / (1 - f))
    )


def test_a_run_with_bce_loss_w_logs_its_weights(bar_folder, tmp_path):
    cfg = make_config(
        {"dataset": str(bar_folder), "augmentation": False, "epochs": 1, "bce_loss_w": True},
        preset="tiny",
    )
    lines: list[str] = []
    result = train(
        cfg,
        load_splits(bar_folder),
        Checkpoints(tmp_path / "run" / "checkpoints"),
        history_path=tmp_path / "run" / "history.csv",
        progress=False,
        log=lines.append,
    )
    (line,) = [s for s in lines if s.startswith("Class-weighted BCE")]
    # 3 masks of 2 x 95 crack pixels among 4 x 64 x 128: (32768 - 570) / 570; 1 crack-free of 4
    assert f"segmentation pos_weight {(32768 - 570) / 570:.3f}" in line
    assert "decision pos_weight 0.333" in line
    assert f"logits + {math.log((32768 - 570) / 570):.4f}" in line
    assert math.isfinite(result.history[0]["loss"])
