"""SegDecNet training losses: segmentation BCE, decision BCE and the dynamic balance between them.

The mixed-supervision loss of Božič, Tabernik and Skočaj (2021) at 0-based epoch ``e`` of ``E`` is

    loss = λ · L_seg + δ · (1 - λ) · L_dec,    λ = 1 - e / E,

so the segmentation loss starts alone (weight 1, decision weight 0) and the decision loss takes
over linearly; at the last epoch ``e = E - 1`` the weights are ``1/E`` and ``δ · (E - 1) / E``.
Without dynamic balancing the weights are ``(1, δ)`` throughout.

With ``bce_loss_w`` (SegDecNet++'s ``BCE_LOSS_W``) each BCE weighs its positives by the training
set's negative-to-positive ratio: pixels for the segmentation loss, images for the decision loss.
The weighted segmentation loss may be taken on logits shifted by a constant (``seg_logit_offset``,
``log`` of its positive weight): the gradients are those of the published loss on a network whose
final bias is that constant higher, so the network's own output stays at the unweighted optimum, a
calibrated probability (see :meth:`SegDecLoss.from_config`).

Every loss is computed in float32, whatever the dtype of the logits (bf16 under autocast), and
returned as a tensor: nothing here calls ``.item()``, so a training step makes no host sync.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from crackkit.specs import DOWNSAMPLING

if TYPE_CHECKING:
    from crackkit.config import RunConfig

__all__ = [
    "SegDecLoss",
    "bce_class_weights",
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
    pos_weight: float | None = None,
    logit_offset: float = 0.0,
    segmented: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pixel-wise binary cross-entropy of the segmentation output, optionally weighted.

    When the output is coarser than the masks (``segdecnet`` predicts at 1/8), the masks and the
    weights are downsized as the original does (see :func:`downsample_target`). Every image
    counts, negatives included: their all-zero masks penalise positive logits; only an image
    whose mask is unknown (``segmented`` 0, an image-level positive) has no segmentation term.

    Args:
        seg_logits: (N, 1, h, w) logits, any float dtype.
        masks: (N, 1, H, W) targets in [0, 1] (bool or float); ``H = k·h``, ``W = k'·w``.
        weights: (N, 1, H, W) per-pixel weights multiplying the per-pixel loss, or None for 1.
        reduction: ``"mean"`` over all pixels of all images (the weighted sum divided by the pixel
            count, not by the weight total), ``"sum"``, or ``"none"`` for the (N, 1, h, w) map.
        pos_weight: weight of the positive term, ``-[w·y·log σ(z) + (1 - y)·log(1 - σ(z))]``
            (``BCEWithLogitsLoss(pos_weight=w)``), or None for 1.
        logit_offset: a constant added to the logits before the loss.
        segmented: (N,) 1 where the image's mask is known, 0 where it is not; None for all 1.
            With it, ``"mean"`` is ``(1/N) Σ_i s_i · mean_pixels(loss_i)``: the original's
            per-sample loss, no term for an unsegmented image, averaged over all N images.

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
    logits = seg_logits.float()
    if logit_offset:
        logits = logits + logit_offset
    per_pixel = F.binary_cross_entropy_with_logits(
        logits, target, reduction="none", pos_weight=_weight_tensor(pos_weight, logits)
    )
    if weights is not None:
        per_pixel = per_pixel * downsample_target(weights.float(), size)
    if segmented is not None:
        keep = segmented.to(per_pixel.dtype).reshape(-1, 1, 1, 1)
        per_pixel = per_pixel * keep
        if reduction == "mean":
            return per_pixel.mean(dim=(1, 2, 3)).sum() / per_pixel.shape[0]
    if reduction == "mean":
        return per_pixel.mean()
    if reduction == "sum":
        return per_pixel.sum()
    return per_pixel


def _weight_tensor(pos_weight: float | None, like: torch.Tensor) -> torch.Tensor | None:
    if pos_weight is None:
        return None
    return torch.tensor(float(pos_weight), dtype=like.dtype, device=like.device)


def decision_loss(
    dec_logits: torch.Tensor, labels: torch.Tensor, *, pos_weight: float | None = None
) -> torch.Tensor:
    """Binary cross-entropy of the image-level decision, averaged over the batch.

    Args:
        dec_logits: (N, 1) logits, any float dtype.
        labels: (N,) or (N, 1), 1 for an image with a crack (bool or float).
        pos_weight: weight of the positive term (as in :func:`segmentation_loss`), or None for 1.

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
    logits = dec_logits.float().reshape(-1)
    return F.binary_cross_entropy_with_logits(
        logits, labels.float().reshape(-1), pos_weight=_weight_tensor(pos_weight, logits)
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
    seg_pos_weight: float | None = None,
    dec_pos_weight: float | None = None,
    seg_logit_offset: float = 0.0,
    segmented: torch.Tensor | None = None,
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
        seg_pos_weight, dec_pos_weight: positive-class weights of the two BCEs, or None for 1.
        seg_logit_offset: constant added to the segmentation logits inside the loss.
        segmented: (N,) 1 for an image whose mask is known, 0 for an image-level positive (its
            only term is the decision's); None for all 1.

    Returns:
        float32 scalars ``{"loss": seg_weight·loss_seg + dec_weight·loss_dec, "loss_seg",
        "loss_dec"}``; only ``"loss"`` is meant for ``backward``.
    """
    loss_seg = segmentation_loss(
        seg_logits,
        masks,
        weights,
        pos_weight=seg_pos_weight,
        logit_offset=seg_logit_offset,
        segmented=segmented,
    )
    loss_dec = decision_loss(dec_logits, labels, pos_weight=dec_pos_weight)
    return {
        "loss": seg_weight * loss_seg + dec_weight * loss_dec,
        "loss_seg": loss_seg.detach(),
        "loss_dec": loss_dec.detach(),
    }


def bce_class_weights(
    crack_fraction: float, n_positive: int, n_negative: int
) -> tuple[float, float]:
    """SegDecNet++'s ``BCE_LOSS_W`` positive weights, ``(segmentation, decision)``.

    The segmentation weight is the training masks' background-to-crack pixel ratio,
    ``(1 - f) / f`` for a crack fraction ``f``; the decision weight the crack-free-to-crack image
    ratio. Each is 0 when its positive class is empty, as in the published code (so a training set
    without crack-free images, CrackForest's, gives the decision loss no positive term).
    """
    f = float(crack_fraction)
    seg = (1.0 - f) / f if f > 0 else 0.0
    dec = n_negative / n_positive if n_positive else 0.0
    return seg, dec


@dataclass(frozen=True)
class SegDecLoss:
    """The run's loss: :func:`total_loss` with the weights of :func:`loss_weights` at an epoch.

    Attributes:
        epochs: number of epochs ``E``.
        delta: decision-loss weight ``δ``.
        dynamic: dynamic balancing on.
        seg_pos_weight, dec_pos_weight: positive-class weights of the BCEs (None: unweighted).
        seg_logit_offset: constant added to the segmentation logits inside the loss.
        reduction: ``"mean"`` of the per-sample losses over the batch, or ``"sum"`` (the
            original's sub-iterations: gradient x N); the logged values are means either way.
        decision_target: ``"label"``, or ``"mask_max"``: the maximum of each image's mask as the
            segmentation loss sees it (downsized for a 1/8 output, as the original's
            ``seg_masks_.max()``); an image-level positive's target stays its label 1.
    """

    epochs: int
    delta: float
    dynamic: bool
    seg_pos_weight: float | None = None
    dec_pos_weight: float | None = None
    seg_logit_offset: float = 0.0
    reduction: str = "mean"
    decision_target: str = "label"

    @classmethod
    def from_config(
        cls,
        cfg: RunConfig,
        *,
        crack_fraction: float | None = None,
        n_positive: int = 0,
        n_negative: int = 0,
    ) -> SegDecLoss:
        """Read ``epochs``, ``delta_cls_loss``, ``dyn_balanced_loss`` and ``bce_loss_w``.

        With ``bce_loss_w`` the positive weights come from :func:`bce_class_weights` of the
        training set's ``crack_fraction`` and image counts. With ``seg_prior_init`` as well, the
        segmentation loss is taken on the logits plus ``log`` of its weight: the network's bias
        starts at ``logit(f)``, so the weighted loss starts at 0 (p = 0.5), where the published
        code starts it, and follows the same gradients, while the network's output stays a
        calibrated probability (the weighted loss's optimum is the true logit plus that ``log``).

        Raises:
            ValueError: ``bce_loss_w`` without a ``crack_fraction``.
        """
        base = {"reduction": cfg.loss_reduction, "decision_target": cfg.decision_target}
        if not cfg.bce_loss_w:
            return cls(cfg.epochs, cfg.delta_cls_loss, cfg.dyn_balanced_loss, **base)
        if crack_fraction is None:
            raise ValueError("bce_loss_w needs the training masks' crack_fraction")
        seg_w, dec_w = bce_class_weights(crack_fraction, n_positive, n_negative)
        offset = math.log(seg_w) if cfg.seg_prior_init and seg_w > 0 else 0.0
        return cls(
            cfg.epochs,
            cfg.delta_cls_loss,
            cfg.dyn_balanced_loss,
            seg_pos_weight=seg_w,
            dec_pos_weight=dec_w,
            seg_logit_offset=offset,
            **base,
        )

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
        segmented: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """:func:`total_loss` of one batch at 0-based ``epoch``, with ``"loss_mean"`` (the mean
        per-sample total, detached, for logs) and ``"loss"`` reduced as :attr:`reduction` says."""
        seg_weight, dec_weight = self.weights(epoch)
        if self.decision_target == "mask_max":
            target = downsample_target(masks.float(), tuple(seg_logits.shape[-2:]))
            target = target.amax(dim=(1, 2, 3))
            if segmented is not None:
                target = torch.where(segmented > 0, target, labels.float().reshape(-1))
            labels = target
        out = total_loss(
            dec_logits,
            seg_logits,
            labels,
            masks,
            weights,
            seg_weight=seg_weight,
            dec_weight=dec_weight,
            seg_pos_weight=self.seg_pos_weight,
            dec_pos_weight=self.dec_pos_weight,
            seg_logit_offset=self.seg_logit_offset,
            segmented=segmented,
        )
        out["loss_mean"] = out["loss"].detach()
        if self.reduction == "sum":
            out["loss"] = out["loss"] * dec_logits.shape[0]
        return out
