"""Batched inference and evaluation of a SegDecNet model on a split.

:func:`predict` runs the model under ``torch.inference_mode`` in batches and returns full-resolution
crack probabilities, image-level scores and the mean validation losses; :func:`compute_metrics`
turns them into the seed report's metrics (decision, 2-pixel tolerance, plain pixel, Dice, IoU,
ODS/OIS) with the functions of :mod:`crackkit.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from crackkit import metrics as M
from crackkit.data.dataset import CrackDataset
from crackkit.losses import decision_loss, segmentation_loss
from crackkit.runtime import autocast

__all__ = ["Predictions", "predict", "compute_metrics", "evaluate", "to_input"]


@dataclass
class Predictions:
    """Model outputs on a split.

    probs: (N, H, W) float32 in [0, 1]; masks: (N, H, W) bool; scores: (N,) float in [0, 1];
    labels: (N,) int in {0, 1}; losses: mean ``loss_seg`` and ``loss_dec`` over the split.
    """

    probs: np.ndarray
    masks: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    losses: dict[str, float]


def to_input(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 (N, C, H, W) on the host -> float (N, C, H, W) in [0, 1] on ``device``."""
    x = images.to(device, non_blocking=True).float().div_(255.0)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def full_resolution(seg_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Segmentation logits (N, 1, h, w) -> (N, 1, H, W), bilinear when the model outputs less."""
    if tuple(seg_logits.shape[-2:]) == tuple(size):
        return seg_logits
    return F.interpolate(seg_logits.float(), size=size, mode="bilinear", align_corners=False)


@torch.inference_mode()
def predict(
    model: nn.Module,
    dataset: CrackDataset,
    device: torch.device,
    *,
    batch_size: int = 16,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    num_workers: int = 0,
    progress: bool = False,
    desc: str = "predict",
) -> Predictions:
    """Run ``model`` over every sample of ``dataset`` in order (with ``channels_last``, the
    model's weights are put in that memory format too)."""
    was_training = model.training
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    probs, masks, scores, labels = [], [], [], []
    seg_sum = torch.zeros((), device=device)
    dec_sum = torch.zeros((), device=device)
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        x = to_input(batch["image"], device, channels_last)
        y = batch["mask"].to(device, non_blocking=True)
        lab = batch["label"].to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            dec, seg = model(x)
        dec, seg = dec.float(), seg.float()
        n = x.shape[0]
        seg_sum += segmentation_loss(seg, y) * n
        dec_sum += decision_loss(dec, lab) * n
        prob = torch.sigmoid(full_resolution(seg, tuple(y.shape[-2:])))
        probs.append(prob[:, 0].cpu())
        masks.append(batch["mask"][:, 0] > 0.5)
        scores.append(torch.sigmoid(dec[:, 0]).cpu())
        labels.append(batch["label"])
    model.train(was_training)
    n_total = len(dataset)
    return Predictions(
        probs=torch.cat(probs).numpy().astype(np.float32, copy=False),
        masks=torch.cat(masks).numpy(),
        scores=torch.cat(scores).numpy().astype(np.float64),
        labels=torch.cat(labels).numpy().astype(np.int64),
        losses={
            "loss_seg": float(seg_sum) / n_total,
            "loss_dec": float(dec_sum) / n_total,
        },
    )


def compute_metrics(
    pred: Predictions, *, tolerance: int = 2, decision_threshold: float | None = None
) -> dict[str, Any]:
    """The report's metrics from predictions.

    Returns a JSON-ready dict with ``decision`` (at ``decision_threshold`` or the best-F threshold),
    ``pixel_2px`` (tolerance sweep; the name keeps the seed's wording whatever ``tolerance`` is),
    ``pixel`` (no tolerance), ``dice``, ``iou``, ``ods``, ``ois`` and the split's counts.
    """
    out: dict[str, Any] = {"n_images": int(len(pred.labels)), "n_positive": int(pred.labels.sum())}
    dec = M.decision_metrics(pred.labels, pred.scores, threshold=decision_threshold)
    out["decision"] = dec.to_dict()
    has_cracks = bool(pred.masks.reshape(len(pred.masks), -1).any(axis=1).any())
    if has_cracks:
        views = M.segmentation_metrics(pred.probs, pred.masks, tolerance=tolerance)
        sweep = views["tolerance"]
        out["pixel_2px"] = sweep.to_dict()
        out["pixel_2px_curve"] = {
            "threshold": sweep.thresholds.tolist(),
            "precision": sweep.precision.tolist(),
            "recall": sweep.recall.tolist(),
            "f1": sweep.f1.tolist(),
        }
        out["pixel"] = views["pixel"].to_dict()
        out.update(views["dice_iou"].to_dict())
        out.update(views["ods_ois"])
    return out


def evaluate(
    model: nn.Module,
    dataset: CrackDataset,
    device: torch.device,
    *,
    tolerance: int = 2,
    decision_threshold: float | None = None,
    **predict_kwargs: Any,
) -> tuple[dict[str, Any], Predictions]:
    """Predict and compute metrics; returns ``(metrics, predictions)``."""
    pred = predict(model, dataset, device, **predict_kwargs)
    metrics = compute_metrics(pred, tolerance=tolerance, decision_threshold=decision_threshold)
    metrics["loss_seg"] = pred.losses["loss_seg"]
    metrics["loss_dec"] = pred.losses["loss_dec"]
    return metrics, pred
