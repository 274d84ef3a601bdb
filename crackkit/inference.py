"""The one inference path: uint8 images in, decision scores and crack probabilities out.

Evaluation (:func:`crackkit.evaluate.count_split`, images resized to the input size) and
prediction on photos (:class:`crackkit.predict.Predictor`, images at their own size, padded) both
call :func:`forward`, so a model computes the same thing in both.

* Input: uint8 ``(N, C, H, W)`` scaled by 1/255 (:func:`to_input`), channels-last where the
  :class:`~crackkit.runtime.Placement` says so, under its autocast dtype.
* Output: the logits in float32, the image scores ``sigmoid(decision logit)`` and the crack
  probabilities ``sigmoid(segmentation logit)`` at the input size. A ``segdecnet`` map (1/8 of
  the input, ``model.output_stride`` 8) is brought there by nearest-neighbour upsampling x8, as the
  published network returns it (:func:`full_resolution`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from crackkit.runtime import Placement, autocast

__all__ = ["Outputs", "forward", "full_resolution", "to_input"]


class Outputs(NamedTuple):
    """What :func:`forward` returns, all on the model's device.

    Attributes:
        dec: (N, 1) float32 decision logits.
        seg: (N, 1, h, w) float32 segmentation logits at the network's output size.
        scores: (N,) float32 image-level crack probabilities.
        probs: (N, 1, H, W) float32 crack probabilities at the input size.
    """

    dec: torch.Tensor
    seg: torch.Tensor
    scores: torch.Tensor
    probs: torch.Tensor


def to_input(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 (N, C, H, W) on the host -> float (N, C, H, W) in [0, 1] on ``device``."""
    x = images.to(device, non_blocking=True).float().div_(255.0)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def full_resolution(seg_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Segmentation logits (N, 1, h, w) -> (N, 1, H, W) by nearest-neighbour upsampling.

    Each output cell becomes an ``(H / h) x (W / w)`` block (x8 for ``segdecnet``), as the
    published network returns its map; equal sizes are returned unchanged.

    Raises:
        ValueError: ``(H, W)`` is not an integer multiple of ``(h, w)``.
    """
    h, w = seg_logits.shape[-2:]
    height, width = size
    if (h, w) == (height, width):
        return seg_logits
    if h < 1 or w < 1 or height % h or width % w:
        raise ValueError(
            f"cannot upsample a {h}x{w} segmentation output to {height}x{width}: the size must "
            "be an integer multiple of the output size"
        )
    out = seg_logits.float()
    return out.repeat_interleave(height // h, dim=-2).repeat_interleave(width // w, dim=-1)


def forward(model: nn.Module, images: torch.Tensor, placement: Placement) -> Outputs:
    """Run ``model`` on a batch of uint8 ``images`` (N, C, H, W) placed as ``placement`` says.

    Gradients are as the caller's mode has them: wrap the call in ``torch.inference_mode()``.
    """
    x = to_input(images, placement.device, placement.channels_last)
    with autocast(placement.device, placement.amp_dtype):
        dec, seg = model(x)
    dec, seg = dec.float(), seg.float()
    probs = torch.sigmoid(full_resolution(seg, (int(x.shape[-2]), int(x.shape[-1]))))
    return Outputs(dec=dec, seg=seg, scores=torch.sigmoid(dec[:, 0]), probs=probs)
