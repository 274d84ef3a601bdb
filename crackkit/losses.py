"""SegDecNet training losses: segmentation BCE, decision BCE and the dynamic balance between them.

The mixed-supervision loss of Božič, Tabernik and Skočaj (2021) at 0-based epoch ``e`` of ``E`` is

    loss = λ · L_seg + δ · (1 - λ) · L_dec,    λ = 1 - e / E,

so the segmentation loss starts alone (weight 1, decision weight 0) and the decision loss takes
over linearly; at the last epoch ``e = E - 1`` the weights are ``1/E`` and ``δ · (E - 1) / E``.
Without dynamic balancing the weights are ``(1, δ)`` throughout.

Every loss is computed in float32, whatever the dtype of the logits (bf16 under autocast), and
returned as a tensor: nothing here calls ``.item()``, so a training step makes no host sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from crackkit.specs import DOWNSAMPLING

if TYPE_CHECKING:
    from crackkit.config import RunConfig

__all__ = [
    "SegDecLoss",
    "decision_loss",
    "downsample_target",
    "loss_weights",
    "segmentation_loss",
    "total_loss",
]

REDUCTIONS = ("mean", "sum", "none")


def loss_weights(epoch: int, epochs: int, delta: float, dynamic: bool) -> tuple[float, float]:
    """Weights of the segmentation and decision losses at one epoch.

    Args:
        epoch: 0-based epoch ``e``, ``0 <= e < epochs``.
        epochs: number of epochs ``E`` of the run, ``>= 1``.
        delta: ``δ``, the decision-loss weight (``delta_cls_loss``).
        dynamic: dynamic balancing (``dyn_balanced_loss``).

    Returns:
        ``(seg_weight, dec_weight)``: ``(1 - e/E, δ · e/E)`` when ``dynamic``, else ``(1, δ)``.

    Raises:
        ValueError: ``epochs < 1`` or ``epoch`` outside ``[0, epochs)``.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch must be in [0, {epochs}) (0-based), got {epoch}")
    if not dynamic:
        return 1.0, float(delta)
    progress = epoch / epochs
    return 1.0 - progress, float(delta) * progress


def downsample_target(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bring a full-resolution target to the 1/8 segmentation output as the original does.

    The original data loader (``Dataset.downsize`` of the 2021 code) reflection-pads the map by 8
    pixels and averages it over 17x17 windows with stride 8: a soft target, the fraction of crack
    pixels around each output cell (weight maps are downsized the same way).

    Args:
        target: (N, C, H, W) float, ``H = 8 h`` and ``W = 8 w``.
        size: ``(h, w)``, the output size; equal to ``(H, W)`` returns ``target`` unchanged.

    Returns:
        (N, C, h, w) float.

    Raises:
        ValueError: ``(H, W)`` is not 8 times ``size``.
    """
    height, width = target.shape[-2:]
    h, w = size
    if (height, width) == (h, w):
        return target
    factor = DOWNSAMPLING
    if (height, width) != (h * factor, w * factor):
        raise ValueError(
            f"cannot downsize a {height}x{width} target to the {h}x{w} segmentation output: "
            f"the target must be {factor} times the output size"
        )
    padded = F.pad(target, (factor,) * 4, mode="reflect")
    return F.avg_pool2d(padded, kernel_size=2 * factor + 1, stride=factor)


def segmentation_loss(
    seg_logits: torch.Tensor,
    masks: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    """Pixel-wise binary cross-entropy of the segmentation output, optionally weighted.

    When the output is coarser than the masks (``segdecnet`` predicts at 1/8), the masks and the
    weights are downsized as the original does (see :func:`downsample_target`). Every image
    counts, negatives included: their all-zero masks penalise positive logits.

    Args:
        seg_logits: (N, 1, h, w) logits, any float dtype.
        masks: (N, 1, H, W) targets in [0, 1] (bool or float); ``H = k·h``, ``W = k'·w``.
        weights: (N, 1, H, W) per-pixel weights multiplying the per-pixel loss, or None for 1.
        reduction: ``"mean"`` over all pixels of all images (the weighted sum divided by the pixel
            count, not by the weight total), ``"sum"``, or ``"none"`` for the (N, 1, h, w) map.

    Returns:
        float32 scalar, or (N, 1, h, w) float32 for ``reduction="none"``.

    Raises:
        ValueError: bad shapes or an unknown ``reduction``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; valid: {', '.join(REDUCTIONS)}")
    if seg_logits.ndim != 4 or masks.ndim != 4 or seg_logits.shape[:2] != masks.shape[:2]:
        raise ValueError(
            "seg_logits and masks must be (N, 1, h, w) and (N, 1, H, W); got "
            f"{tuple(seg_logits.shape)} and {tuple(masks.shape)}"
        )
    if weights is not None and weights.shape != masks.shape:
        raise ValueError(
            f"weights must have the masks' shape {tuple(masks.shape)}, got {tuple(weights.shape)}"
        )
    size = tuple(seg_logits.shape[-2:])
    target = downsample_target(masks.float(), size)
    per_pixel = F.binary_cross_entropy_with_logits(seg_logits.float(), target, reduction="none")
    if weights is not None:
        per_pixel = per_pixel * downsample_target(weights.float(), size)
    if reduction == "mean":
        return per_pixel.mean()
    if reduction == "sum":
        return per_pixel.sum()
    return per_pixel


def decision_loss(dec_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the image-level decision, averaged over the batch.

    Args:
        dec_logits: (N, 1) logits, any float dtype.
        labels: (N,) or (N, 1), 1 for an image with a crack (bool or float).

    Returns:
        float32 scalar.

    Raises:
        ValueError: the label count differs from the batch size.
    """
    if labels.numel() != dec_logits.shape[0] or dec_logits.numel() != dec_logits.shape[0]:
        raise ValueError(
            f"dec_logits must be (N, 1) and labels (N,); got {tuple(dec_logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    return F.binary_cross_entropy_with_logits(
        dec_logits.float().reshape(-1), labels.float().reshape(-1)
    )


def total_loss(
    dec_logits: torch.Tensor,
    seg_logits: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    seg_weight: float,
    dec_weight: float,
) -> dict[str, torch.Tensor]:
    """Weighted sum of the segmentation and decision losses of one batch.

    Args:
        dec_logits: (N, 1) decision logits.
        seg_logits: (N, 1, h, w) segmentation logits.
        labels: (N,) image labels, 1 = crack.
        masks: (N, 1, H, W) ground-truth masks.
        weights: (N, 1, H, W) per-pixel segmentation-loss weights, or None.
        seg_weight: weight of the segmentation loss (see :func:`loss_weights`).
        dec_weight: weight of the decision loss.

    Returns:
        float32 scalars ``{"loss": seg_weight·loss_seg + dec_weight·loss_dec, "loss_seg",
        "loss_dec"}``; only ``"loss"`` is meant for ``backward``.
    """
    loss_seg = segmentation_loss(seg_logits, masks, weights)
    loss_dec = decision_loss(dec_logits, labels)
    return {
        "loss": seg_weight * loss_seg + dec_weight * loss_dec,
        "loss_seg": loss_seg.detach(),
        "loss_dec": loss_dec.detach(),
    }


@dataclass(frozen=True)
class SegDecLoss:
    """The run's loss: :func:`total_loss` with the weights of :func:`loss_weights` at an epoch.

    Attributes:
        epochs: number of epochs ``E``.
        delta: decision-loss weight ``δ``.
        dynamic: dynamic balancing on.
    """

    epochs: int
    delta: float
    dynamic: bool

    @classmethod
    def from_config(cls, cfg: RunConfig) -> SegDecLoss:
        """Read ``epochs``, ``delta_cls_loss`` and ``dyn_balanced_loss`` from a run config."""
        return cls(cfg.epochs, cfg.delta_cls_loss, cfg.dyn_balanced_loss)

    def weights(self, epoch: int) -> tuple[float, float]:
        """``(seg_weight, dec_weight)`` at 0-based ``epoch``."""
        return loss_weights(epoch, self.epochs, self.delta, self.dynamic)

    def __call__(
        self,
        dec_logits: torch.Tensor,
        seg_logits: torch.Tensor,
        labels: torch.Tensor,
        masks: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        epoch: int,
    ) -> dict[str, torch.Tensor]:
        """:func:`total_loss` of one batch at 0-based ``epoch``."""
        seg_weight, dec_weight = self.weights(epoch)
        return total_loss(
            dec_logits,
            seg_logits,
            labels,
            masks,
            weights,
            seg_weight=seg_weight,
            dec_weight=dec_weight,
        )
