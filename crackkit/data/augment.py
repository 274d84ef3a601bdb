"""Training augmentation: crackkit's and the seed fork's two versions, one draw per sample.

Every draw takes its randomness from a generator the caller seeds from ``(seed, epoch, index)``,
so a sample's augmentation does not depend on worker count or on a resume. Modes
(``augmentation_mode``):

* ``crackkit``: every training image; flipped left-right and up-down with probability 0.5 each
  (one draw in four turns both, a rotation by 180 degrees), then brightness ``+-0.1`` (of the
  full range) and contrast ``0.8-1.2`` around the image mean.
* ``fork-2022-02``: the seed fork's ``dataset.py`` as of February 2022 (maticsuc/
  mixed-segdec-net-comind2021 @ 07f76b76): training **and validation** images, positives and
  negatives; with probability 0.5, a left-right flip, an up-down flip and a rotation by 180
  degrees, each drawn on its own with probability 0.1 (the image unchanged with probability
  0.865).
* ``fork-2022-04``: the same file as of April 2022 (@ 8f5655fa; the seed run's version by the
  evidence in the docs): **training positives only**; with probability 0.5, the two flips, the
  rotation and ``ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.2)`` (on the image
  alone) each drawn on its own with probability 0.5 (geometry unchanged with probability 0.625).

Flips and rotations move image and mask together. The jitter follows torchvision's
``ColorJitter``: factors from ``U[0.8, 1.2]`` (hue shift ``U[-0.2, 0.2]``), the four operations in a
random order, on the image in [0, 1] in the channel order the network is fed (the fork fed BGR);
crackkit then rounds it back to 8 bits (the fork kept floats: a difference of at most half a
grey level).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Draw", "apply_draw", "draw_augmentation", "unflip"]

#: Net geometric transform codes: none, left-right, up-down, both (= rotation by 180 degrees).
NONE, HFLIP, VFLIP, ROT180 = 0, 1, 2, 3


@dataclass(frozen=True)
class Draw:
    """One sample's augmentation.

    Attributes:
        flip: net geometric transform, :data:`NONE`, :data:`HFLIP`, :data:`VFLIP` or
            :data:`ROT180`.
        brightness, contrast: crackkit's photometric change (0 and 1: none).
        jitter: the fork's ColorJitter, ``(order (4,), brightness, contrast, saturation, hue)``,
            or None.
    """

    flip: int = NONE
    brightness: float = 0.0
    contrast: float = 1.0
    jitter: tuple[tuple[int, ...], float, float, float, float] | None = None


def draw_augmentation(
    mode: str, rng: np.random.Generator, *, positive: bool, validation: bool = False
) -> Draw | None:
    """The augmentation of one sample, or None where the mode leaves it alone.

    Args:
        mode: ``augmentation_mode``.
        rng: the sample's generator (seeded from ``(seed, epoch, index)``).
        positive: the sample has a crack (``fork-2022-04`` augments positives only).
        validation: a validation sample (only ``fork-2022-02`` augments those).
    """
    if mode == "crackkit":
        if validation:
            return None
        rotate = rng.random() < 0.25
        h, v = bool(rotate ^ (rng.random() < 0.5)), bool(rotate ^ (rng.random() < 0.5))
        return Draw(
            flip=HFLIP * h + VFLIP * v,
            brightness=float(rng.uniform(-0.1, 0.1)),
            contrast=float(rng.uniform(0.8, 1.2)),
        )
    if mode == "fork-2022-02":
        if rng.random() >= 0.5:
            return Draw()
        h, v, r = (bool(rng.random() < 0.1) for _ in range(3))
        return Draw(flip=HFLIP * (h ^ r) + VFLIP * (v ^ r))
    if mode == "fork-2022-04":
        if validation or not positive or rng.random() >= 0.5:
            return Draw()
        h, v, r, cj = (bool(rng.random() < 0.5) for _ in range(4))
        jitter = None
        if cj:
            order = tuple(int(i) for i in rng.permutation(4))
            b, c, s = (float(rng.uniform(0.8, 1.2)) for _ in range(3))
            jitter = (order, b, c, s, float(rng.uniform(-0.2, 0.2)))
        return Draw(flip=HFLIP * (h ^ r) + VFLIP * (v ^ r), jitter=jitter)
    raise ValueError(f"unknown augmentation_mode {mode!r}")


def _geometry(flip: int, array: np.ndarray) -> np.ndarray:
    if flip & HFLIP:
        array = array[:, ::-1]
    if flip & VFLIP:
        array = array[::-1]
    return array


def apply_draw(draw: Draw, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply a draw to ``image`` (H, W, C) uint8 and ``mask`` (H, W)."""
    image, mask = _geometry(draw.flip, image), _geometry(draw.flip, mask)
    if draw.brightness != 0.0 or draw.contrast != 1.0:
        img = image.astype(np.float32)
        mean = img.mean()
        img = (img - mean) * draw.contrast + mean + 255.0 * draw.brightness
        image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if draw.jitter is not None:
        image = _color_jitter(image, *draw.jitter)
    return image, mask


def _color_jitter(
    image: np.ndarray, order: tuple[int, ...], b: float, c: float, s: float, hue: float
) -> np.ndarray:
    """torchvision's ColorJitter with given factors on (H, W, C) uint8; grey images skip the
    saturation and hue steps, as torchvision does for one channel."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
    ops = {
        0: lambda t: TF.adjust_brightness(t, b),
        1: lambda t: TF.adjust_contrast(t, c),
        2: lambda t: TF.adjust_saturation(t, s),
        3: lambda t: TF.adjust_hue(t, hue),
    }
    for i in order:
        if x.shape[0] == 1 and i in (2, 3):
            continue
        x = ops[i](x)
    out = torch.clamp(torch.round(x * 255.0), 0, 255).to(torch.uint8)
    return out.numpy().transpose(1, 2, 0)


def unflip(flip: int, array):
    """Undo a net geometric transform on a (..., H, W) tensor or array (each is its own
    inverse)."""
    import torch

    dims = [d for bit, d in ((HFLIP, -1), (VFLIP, -2)) if flip & bit]
    if not dims:
        return array
    if isinstance(array, torch.Tensor):
        return torch.flip(array, dims)
    return np.flip(array, axis=tuple(dims)).copy()
