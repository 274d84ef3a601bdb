"""Tests for crackkit.losses: the dynamic balance, segmentation and decision BCE, their sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crackkit.config import make_config
from crackkit.losses import (
    SegDecLoss,
    decision_loss,
    downsample_target,
    loss_weights,
    segmentation_loss,
    total_loss,
)


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [(0, (1.0, 0.0)), (5, (0.5, 0.005)), (9, (0.1, 0.009))],
)
def test_dynamic_weights_follow_the_schedule(epoch: int, expected: tuple[float, float]) -> None:
    """With E=10 and δ=0.01 the weights are (1 - e/10, 0.01·e/10)."""
    seg, dec = loss_weights(epoch, 10, 0.01, dynamic=True)
    assert seg == pytest.approx(expected[0])
    assert dec == pytest.approx(expected[1])


@pytest.mark.parametrize("epoch", [0, 3, 9])
def test_static_weights_are_one_and_delta(epoch: int) -> None:
    """Without dynamic balancing the weights are (1, δ) at every epoch."""
    assert loss_weights(epoch, 10, 0.25, dynamic=False) == (1.0, 0.25)


@pytest.mark.parametrize(("epoch", "epochs"), [(-1, 10), (10, 10), (0, 0)])
def test_weights_refuse_bad_epochs(epoch: int, epochs: int) -> None:
    """An epoch outside [0, E) or E < 1 is refused."""
    with pytest.raises(ValueError, match="epoch"):
        loss_weights(epoch, epochs, 1.0, dynamic=True)


def _hand_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    x, y = logits.double(), targets.double()
    return x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x.abs()))


def test_full_resolution_loss_equals_torch_bce() -> None:
    """At full resolution the loss is torch's mean BCE-with-logits and the hand formula."""
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 16, 24)
    masks = (torch.rand(3, 1, 16, 24) > 0.8).float()
    loss = segmentation_loss(logits, masks)
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(logits, masks))
    assert loss.item() == pytest.approx(_hand_bce(logits, masks).mean().item(), rel=1e-6)


def test_weights_multiply_the_pixel_loss() -> None:
    """Zero logits cost ln 2 a pixel; weights 2 and 0.5 give a mean of ln 2 · 2.5 / 2."""
    logits = torch.zeros(1, 1, 1, 2)
    masks = torch.tensor([[[[1.0, 0.0]]]])
    weights = torch.tensor([[[[2.0, 0.5]]]])
    loss = segmentation_loss(logits, masks, weights)
    assert loss.item() == pytest.approx(math.log(2) * 2.5 / 2)
    per_pixel = segmentation_loss(logits, masks, weights, reduction="none")
    torch.testing.assert_close(per_pixel, torch.tensor([[[[2.0, 0.5]]]]) * math.log(2))
    assert segmentation_loss(logits, masks, weights, reduction="sum").item() == pytest.approx(
        math.log(2) * 2.5
    )


def _original_downsize(x: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """The 2021 loader's downsize written out: reflect-pad by 8, 17x17 window means, stride 8."""
    a = np.pad(x.double().numpy(), ((0, 0), (0, 0), (factor, factor), (factor, factor)), "reflect")
    n, c, h, w = x.shape
    k = 2 * factor + 1
    out = np.zeros((n, c, h // factor, w // factor))
    for i in range(h // factor):
        for j in range(w // factor):
            window = a[:, :, i * factor : i * factor + k, j * factor : j * factor + k]
            out[:, :, i, j] = window.mean(axis=(2, 3))
    return torch.from_numpy(out)


def test_downsized_target_worked_example() -> None:
    """A crack pixel at (3, 5) of a 32x48 mask: reflection counts it twice in the first cells."""
    mask = torch.zeros(1, 1, 32, 48)
    mask[0, 0, 3, 5] = 1.0
    target = downsample_target(mask, (4, 6)).double()
    expected = torch.zeros(1, 1, 4, 6, dtype=torch.float64)
    expected[0, 0, :2, :2] = torch.tensor([[4.0, 2.0], [2.0, 1.0]]) / 289
    torch.testing.assert_close(target, expected)


def test_coarse_output_uses_the_original_downsized_targets_and_weights() -> None:
    """For a 1/8 output the target and the weights are downsized as the original loader does."""
    torch.manual_seed(1)
    logits = torch.randn(2, 1, 8, 16)
    masks = torch.zeros(2, 1, 64, 128)
    masks[0, 0, 3, 5] = 1.0
    masks[1, 0, 15:17, 40:48] = 1.0
    weights = 1.0 + torch.rand(2, 1, 64, 128)
    target = _original_downsize(masks)
    expected = (_hand_bce(logits, target) * _original_downsize(weights)).mean()
    loss = segmentation_loss(logits, masks, weights)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_target_size_must_be_eight_times_the_output() -> None:
    """A target that is not 8x the output is refused with both sizes in the message."""
    with pytest.raises(ValueError, match="32x48 target to the 5x6"):
        downsample_target(torch.zeros(1, 1, 32, 48), (5, 6))


@pytest.mark.parametrize("shape", [(2, 1, 4, 6), (2, 1, 32, 48)])
def test_negatives_are_penalised_for_positive_logits(shape: tuple[int, ...]) -> None:
    """An all-zero mask with logits +2 costs softplus(2) per pixel, not zero."""
    logits = torch.full(shape, 2.0)
    loss = segmentation_loss(logits, torch.zeros(2, 1, 32, 48))
    assert loss.item() == pytest.approx(math.log1p(math.exp(2.0)), rel=1e-6)


def test_bf16_logits_give_float32_losses() -> None:
    """Losses of bf16 logits are float32 and equal the float32 computation on the same values."""
    torch.manual_seed(2)
    seg = torch.randn(2, 1, 4, 6).bfloat16()
    dec = torch.randn(2, 1).bfloat16()
    masks = (torch.rand(2, 1, 32, 48) > 0.9).float()
    labels = torch.tensor([True, False])
    seg_loss = segmentation_loss(seg, masks)
    dec_loss = decision_loss(dec, labels)
    assert seg_loss.dtype == dec_loss.dtype == torch.float32
    torch.testing.assert_close(seg_loss, segmentation_loss(seg.float(), masks))
    torch.testing.assert_close(
        dec_loss, F.binary_cross_entropy_with_logits(dec.float(), labels.float()[:, None])
    )


@pytest.mark.parametrize(
    ("logits_shape", "masks_shape"),
    [((2, 1, 5, 6), (2, 1, 32, 48)), ((2, 1, 4, 6), (3, 1, 32, 48)), ((2, 4, 6), (2, 32, 48))],
)
def test_segmentation_loss_refuses_bad_shapes(
    logits_shape: tuple[int, ...], masks_shape: tuple[int, ...]
) -> None:
    """Non-dividing sizes, batch mismatches and 3-D tensors are refused."""
    with pytest.raises(ValueError):
        segmentation_loss(torch.zeros(logits_shape), torch.zeros(masks_shape))


def test_unknown_reduction_is_refused() -> None:
    """An unknown reduction name is refused with the valid ones."""
    with pytest.raises(ValueError, match="mean"):
        segmentation_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), reduction="avg")


@pytest.mark.parametrize("label_shape", [(3,), (3, 1)])
def test_decision_loss_equals_torch_bce(label_shape: tuple[int, ...]) -> None:
    """The decision loss is torch's mean BCE-with-logits for (N,) or (N, 1) labels."""
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    labels = torch.tensor([1.0, 0.0, 0.0]).reshape(label_shape)
    expected = F.binary_cross_entropy_with_logits(logits, labels.reshape(3, 1))
    torch.testing.assert_close(decision_loss(logits, labels), expected)


def test_decision_loss_refuses_label_count_mismatch() -> None:
    """Labels must count one per image."""
    with pytest.raises(ValueError):
        decision_loss(torch.zeros(3, 1), torch.zeros(2))


def test_total_loss_is_the_weighted_sum() -> None:
    """loss = seg_weight·loss_seg + dec_weight·loss_dec; the parts are detached for logging."""
    torch.manual_seed(3)
    seg = torch.randn(2, 1, 4, 6, requires_grad=True)
    dec = torch.randn(2, 1, requires_grad=True)
    masks = (torch.rand(2, 1, 32, 48) > 0.9).float()
    labels = torch.tensor([1.0, 0.0])
    out = total_loss(dec, seg, labels, masks, seg_weight=0.75, dec_weight=0.2)
    assert set(out) == {"loss", "loss_seg", "loss_dec"}
    torch.testing.assert_close(out["loss"], 0.75 * out["loss_seg"] + 0.2 * out["loss_dec"])
    assert not out["loss_seg"].requires_grad and not out["loss_dec"].requires_grad
    out["loss"].backward()
    assert seg.grad is not None and seg.grad.abs().sum() > 0
    assert dec.grad is not None and dec.grad.abs().sum() > 0


def test_segdec_loss_reads_the_config() -> None:
    """SegDecLoss takes E, δ and the balancing switch from a RunConfig."""
    cfg = make_config({"epochs": 4, "delta_cls_loss": 0.5, "dyn_balanced_loss": True})
    criterion = SegDecLoss.from_config(cfg)
    assert criterion == SegDecLoss(epochs=4, delta=0.5, dynamic=True)
    assert criterion.weights(2) == loss_weights(2, 4, 0.5, dynamic=True) == (0.5, 0.25)
    seg, dec = torch.zeros(1, 1, 4, 6), torch.zeros(1, 1)
    out = criterion(dec, seg, torch.ones(1), torch.zeros(1, 1, 32, 48), epoch=2)
    torch.testing.assert_close(out["loss"], torch.tensor(0.75 * math.log(2)))
