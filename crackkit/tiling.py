"""Tiled inference: tile plans, the blending window, the tile modes, test-time flips and scale.

The machinery :class:`crackkit.predict.Predictor` runs an image through when it is larger than
the network's input window; it knows nothing of folders, files or runs. A tile plan
(:func:`tile_plan`, :class:`TilePlan`) says where the windows lie, :func:`blend_window` how each
window's map is weighted, :func:`predict_tiled` runs the windows through a forward function and
blends them in one of :data:`TILE_MODES`.

Whole or tiled. An image no larger than the tile (both sides) runs whole. Under ``tile="auto"``
(the run's input size as the tile) so does an image of at most :data:`AUTO_WHOLE_TILES` tiles'
area: near the training size the whole image needs no blending and little memory.

Tiling. The tile is the network's input window, ``tile=(H, W)``: by default the run's input size
(``input_height x input_width``), so the network sees inputs of the size it was trained on. Its
sides must be a size the networks take (multiples of 8, ``floor(H/64) * floor(W/64) >= 2``);
anything else raises :class:`~crackkit.config.ConfigError` naming the value. The windows lie on a
grid of stride ``tile - overlap`` per axis (``overlap`` default a quarter of each side, at most
the side minus one), starting at the image's near edge, the last one aligned to its far edge; an
image narrower than the tile along one axis is reflection-padded to the tile there. Each window's
map is weighted by a separable window ``w(y) w(x)``, ``w`` a Hann window ``sin^2(pi (k + 1/2) / n)``
over the ``n`` pixels a window keeps, floored at :data:`WINDOW_FLOOR` so that every kept pixel,
those at the image's edges too, has a positive weight; the map of the image is
``sum(w * p) / sum(w)`` over the windows covering each pixel, accumulated in float32 one batch of
windows at a time. The decision of a tiled image: its score is the **maximum over the windows**
of their scores (a crack anywhere in the photo makes it a crack photo).

Tile modes (``tile_mode``). FeatureNorm normalises each feature map over the whole input, per
sample and channel, so a window's map is not the crop of the whole image's map: it is normalised
over the window only, and the convolutions see a zero border at the window's rim. The last
FeatureNorm, which ends the segmentation map, weighs most: it gives every window's logits zero
mean and a scale set by the window's own spread, so that a crack-free window is stretched as if
it held cracks.

* ``"global"`` (the default): plain windows whose segmentation logits are blended *before* that
  last FeatureNorm (read from the module by a forward hook; for ``segdecnet`` upsampled x8 from
  its 1/8 map first), and the last FeatureNorm is then applied once, with the mean and the
  unbiased standard deviation of the whole image's blended map, as the whole image would have
  it; the sigmoid gives the probabilities. The earlier layers stay normalised per window. Same
  cost as plain tiles. It needs the PyTorch network: for an ONNX graph the default falls back
  to ``"plain"`` (and asking for ``"global"`` is refused).
* ``"plain"``: every window's probabilities, each normalised over its window, are blended.
* ``"context"``: as plain, but every window keeps only its central part and drops a margin of
  ``context`` pixels at each side (default a quarter of the overlap), the image being
  reflection-padded by that margin so that its own border pixels are in some window's central
  part. Each kept pixel is then predicted with at least ``context`` pixels of real (or reflected)
  surroundings, away from the zero border of the window's convolutions. Same grid, window size
  and cost as plain tiles; ``2 * context <= overlap`` keeps every pixel covered.

Measured by ``benchmarks/tiling.py`` on the 46 CrackForest test images (320x480, a SegDecNet++
run trained at 320x480, 2-pixel F1 0.8476 whole), tiles of 160x240 with the default overlap
(40x60, 9 windows per image): ``global`` 0.8275 (-0.020), ``plain`` 0.7944 (-0.053),
``context`` 0.7571 (-0.090), hence the default; for a ``--preset cfd`` run (9 epochs, seed 0,
0.8503 whole) ``global`` 0.8311 (-0.019), ``plain`` 0.8005, ``context`` 0.7680. Tiles of the
run's own input size (the default tile) see the image at the scale and extent the network was
trained on.

Test-time augmentation: the image and the views of :data:`TTA_VIEWS` (its left-right and up-down
mirrors) are predicted each and their maps, flipped back, averaged. Scale: a photo is resized
(bilinear) by the scale before prediction and its map resized back to the photo's size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy.special import expit
from torch import nn
from tqdm.auto import tqdm

from crackkit.config import ConfigError
from crackkit.inference import full_resolution
from crackkit.model import FeatureNorm
from crackkit.specs import check_input_size, smallest_input

__all__ = [
    "AUTO_WHOLE_TILES",
    "DEFAULT_TILE_MODE",
    "TILE_MODES",
    "TTA_VIEWS",
    "WINDOW_FLOOR",
    "Forward",
    "TilePlan",
    "blend_window",
    "final_norm",
    "flip_view",
    "forward_pre_norm",
    "predict_tiled",
    "resize_image",
    "resize_prob",
    "resolve_options",
    "scaled_size",
    "tile_plan",
]

#: How a tiled image's windows are used (see the module docstring).
TILE_MODES = ("global", "plain", "context")
#: The mode prediction uses unless told otherwise.
DEFAULT_TILE_MODE = "global"
#: Under ``tile="auto"``, an image runs whole while its area is at most this many tiles.
AUTO_WHOLE_TILES = 4
#: The blending window's floor: no kept pixel of a window weighs less than this.
WINDOW_FLOOR = 1e-3
#: The views test-time augmentation averages: the image and its two mirrors.
TTA_VIEWS = ("identity", "flip_left_right", "flip_up_down")
#: Images with at least this many windows show a progress bar over their windows.
_PROGRESS_MIN_WINDOWS = 4
#: Runs images (windows) of one size: uint8 (h, w, C) each -> ``(prob (h, w) float32, score)``
#: each, in order.
Forward = Callable[[list[np.ndarray]], list[tuple[np.ndarray, float]]]


def _pair(value: Any, name: str) -> tuple[int, int]:
    """An int or a (rows, cols) pair of ints as a pair; ConfigError naming ``name`` otherwise."""
    items = (value, value) if isinstance(value, int | np.integer) else value
    try:
        a, b = items
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name} must be an integer or a pair of integers (rows, cols), got {value!r}"
        ) from None
    if any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in (a, b)):
        raise ConfigError(
            f"{name} must be an integer or a pair of integers (rows, cols), got {value!r}"
        )
    return int(a), int(b)


def _check_tile(tile: Any) -> tuple[int, int]:
    """A tile size the networks take, as ``(height, width)``; ConfigError naming it otherwise."""
    try:
        th, tw = tile
    except (TypeError, ValueError):
        raise ConfigError(f"tile must be (height, width), 'auto' or None, got {tile!r}") from None
    if any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in (th, tw)):
        raise ConfigError(f"tile must be two integers (height, width), got {tile!r}")
    th, tw = int(th), int(tw)
    try:
        check_input_size(th, tw)
    except ValueError:
        h, w = smallest_input(max(th, 1), max(tw, 1))
        raise ConfigError(
            f"tile {th}x{tw} is not a size the network takes: both sides must be positive "
            "multiples of 8 and floor(H/64) * floor(W/64) >= 2 (the decision head needs two "
            f"cells); the nearest valid tile is {h}x{w} (the smallest are 64x128 and 128x64)"
        ) from None
    return th, tw


def _check_scale(scale: Any) -> float:
    if isinstance(scale, bool) or not isinstance(scale, int | float | np.integer | np.floating):
        raise ConfigError(f"scale must be a number > 0, got {scale!r}")
    value = float(scale)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"scale must be a finite number > 0, got {scale!r}")
    return value


def _axis_plan(length: int, size: int, overlap: int, margin: int):
    """((pad_lo, pad_hi), window starts) along one axis of ``length`` pixels."""
    padded = length + 2 * margin
    if padded <= size:  # one window; the image sits in its middle, margins included
        lo = (size - length) // 2
        return (lo, size - length - lo), (0,)
    stride = size - overlap
    n = -(-(padded - size) // stride) + 1
    return (margin, margin), tuple(min(i * stride, padded - size) for i in range(n))


@dataclass(frozen=True)
class TilePlan:
    """Where the windows of a tiled image lie (:func:`tile_plan`).

    Attributes:
        size: ``(height, width)`` of the image.
        tile: ``(height, width)`` of every window: the network's input.
        overlap: ``(rows, cols)`` shared by consecutive windows.
        margin: ``(rows, cols)`` each window drops at each side (0 for plain tiles).
        pads: ``((top, bottom), (left, right))`` reflection padding of the image.
        rows: top row of each row of windows in the padded image, ascending; the last one is
            aligned to the far edge. ``cols``: the same for the left columns.
    """

    size: tuple[int, int]
    tile: tuple[int, int]
    overlap: tuple[int, int]
    margin: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @property
    def windows(self) -> list[tuple[int, int]]:
        """``(top, left)`` of every window in the padded image, row by row."""
        return [(r, c) for r in self.rows for c in self.cols]

    @property
    def padded_size(self) -> tuple[int, int]:
        (top, bottom), (left, right) = self.pads
        return self.size[0] + top + bottom, self.size[1] + left + right

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def weight(self) -> np.ndarray:
        """(tile_h, tile_w) float32 blending weight of a window (:func:`blend_window`)."""
        wy = blend_window(self.tile[0], self.margin[0])
        wx = blend_window(self.tile[1], self.margin[1])
        return np.outer(wy, wx).astype(np.float32)


def blend_window(size: int, margin: int = 0) -> np.ndarray:
    """1-D blending weight of a window of ``size`` pixels that drops ``margin`` at each side.

    A Hann window ``sin^2(pi (k + 1/2) / n)`` over the ``n = size - 2 margin`` kept pixels,
    floored at :data:`WINDOW_FLOOR`; 0 on the dropped margins. float64 (size,).
    """
    kept = size - 2 * margin
    if margin < 0 or kept < 1:
        raise ValueError(f"a window of {size} px cannot drop {margin} px at each side")
    k = np.arange(kept, dtype=np.float64)
    out = np.zeros(size, dtype=np.float64)
    out[margin : size - margin] = np.maximum(np.sin(np.pi * (k + 0.5) / kept) ** 2, WINDOW_FLOOR)
    return out


def tile_plan(
    height: int,
    width: int,
    tile: tuple[int, int],
    overlap: int | tuple[int, int],
    margin: int | tuple[int, int] = 0,
) -> TilePlan:
    """The windows covering a ``height x width`` image (see the module docstring).

    Along each axis the image is reflection-padded by ``margin`` at both ends (or, when it and
    its margins fit in one window, to the window's size, split between both ends), and windows of
    the tile's side start every ``side - overlap`` pixels from the near edge, the last one
    aligned to the far edge. Every image pixel then lies in the kept part (the window less its
    margins) of at least one window when ``2 * margin <= overlap``.

    Raises:
        ConfigError: a bad tile, an overlap not in ``[0, side)`` or a margin not in
            ``[0, overlap / 2]``; the message names the value.
    """
    th, tw = _check_tile(tile)
    (oh, ow), (mh, mw) = _pair(overlap, "overlap"), _pair(margin, "context")
    for side, o, m in ((th, oh, mh), (tw, ow, mw)):
        if not 0 <= o < side:
            raise ConfigError(
                f"overlap {o} px must be >= 0 and smaller than the tile side {side} "
                f"(tile {th}x{tw})"
            )
        if not 0 <= 2 * m <= o:
            raise ConfigError(
                f"context {m} px must be >= 0 and at most half the overlap ({o} px): the "
                "windows' kept parts must still cover the image"
            )
    pads_h, rows = _axis_plan(int(height), th, oh, mh)
    pads_w, cols = _axis_plan(int(width), tw, ow, mw)
    return TilePlan(
        size=(int(height), int(width)),
        tile=(th, tw),
        overlap=(oh, ow),
        margin=(mh, mw),
        pads=(pads_h, pads_w),
        rows=rows,
        cols=cols,
    )


def flip_view(array: np.ndarray, view: str) -> np.ndarray:
    """``array`` (H, W, ...) seen in a view of :data:`TTA_VIEWS` (each view is its own inverse)."""
    if view == "flip_left_right":
        return array[:, ::-1]
    if view == "flip_up_down":
        return array[::-1]
    return array


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``height x width`` times ``scale``, rounded, at least one pixel each way."""
    if scale == 1.0:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_image(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, C) resized to ``size`` (H', W') by Pillow's bilinear filter."""
    if array.shape[:2] == tuple(size):
        return array
    gray = array.shape[-1] == 1
    img = Image.fromarray(np.ascontiguousarray(array[..., 0] if gray else array))
    out = np.asarray(img.resize((size[1], size[0]), Image.Resampling.BILINEAR))
    return out[..., None] if gray else out


def resize_prob(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 (H, W) resized to ``size`` by Pillow's bilinear filter, kept in [0, 1]."""
    if prob.shape == tuple(size):
        return prob
    img = Image.fromarray(np.ascontiguousarray(prob, dtype=np.float32))
    out = np.asarray(img.resize((size[1], size[0]), Image.Resampling.BILINEAR), np.float32)
    return np.clip(out, 0.0, 1.0)


def _normalised_prob(pre: np.ndarray, norm: FeatureNorm) -> np.ndarray:
    """Probabilities from a whole image's blended pre-normalisation logits: the published
    FeatureNorm ``scale * (x - mean) / sqrt(std + eps) + bias`` over the whole image (unbiased
    std, float64), then the sigmoid. float32 (H, W)."""
    x = pre.astype(np.float64)
    std = float(x.std(ddof=1)) if x.size > 1 else math.nan
    scale = float(norm.scale.detach().float().reshape(-1)[0])
    bias = float(norm.bias.detach().float().reshape(-1)[0])
    logits = scale * (x - x.mean()) / math.sqrt(std + norm.eps) + bias
    return expit(logits).astype(np.float32)


def final_norm(model: nn.Module | None) -> FeatureNorm | None:
    """The FeatureNorm that ends a SegDecNet's segmentation map (None for other models)."""
    decoder = getattr(model, "decoder", None)
    stages = getattr(decoder, "out", None) if decoder is not None else None
    stages = stages if stages is not None else getattr(model, "seg_head", None)
    if isinstance(stages, nn.Sequential) and len(stages) and isinstance(stages[-1], FeatureNorm):
        return stages[-1]
    return None


def resolve_options(
    tile: Any,
    overlap: Any,
    tile_mode: Any,
    context: Any,
    scale: Any,
    auto_tile: tuple[int, int] | None,
) -> tuple[tuple[int, int] | None, tuple[int, int] | None, tuple[int, int] | None, float]:
    """The checked ``(tile, overlap, context, scale)`` of :meth:`Predictor.configure`.

    ``auto_tile`` is the run's input size; None checks what can be checked without it.

    Raises:
        ConfigError: a bad value, named.
    """
    if tile_mode not in TILE_MODES:
        raise ConfigError(
            f"tile_mode must be one of {', '.join(map(repr, TILE_MODES))}, got {tile_mode!r}"
        )
    scale = _check_scale(scale)
    if isinstance(tile, str):
        if tile != "auto":
            raise ConfigError(f"tile must be (height, width), 'auto' or None, got {tile!r}")
        if auto_tile is None:
            for value, name in ((overlap, "overlap"), (context, "context")):
                if value is not None:
                    _pair(value, name)
            return None, None, None, scale
        tile = auto_tile
    if tile is None:
        return None, None, None, scale
    tile = _check_tile(tile)
    overlap = _pair((tile[0] // 4, tile[1] // 4) if overlap is None else overlap, "overlap")
    if tile_mode != "context":
        if context is not None and _pair(context, "context") != (0, 0):
            raise ConfigError(
                f"context {context!r} applies to tile_mode 'context', not {tile_mode!r}"
            )
        context = (0, 0)
    else:
        context = _pair(
            (overlap[0] // 4, overlap[1] // 4) if context is None else context, "context"
        )
    tile_plan(tile[0], tile[1], tile, overlap, context)  # checks the overlap and the context
    return tile, overlap, context, scale


@torch.inference_mode()
def predict_tiled(
    array: np.ndarray,
    plan: TilePlan,
    forward: Forward,
    *,
    norm: FeatureNorm | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[np.ndarray, float]:
    """One image (H, W, C) uint8 by the windows of ``plan``: blended map, max score.

    ``forward`` runs windows of the tile's size (see :data:`Forward`), ``batch_size`` at a time.
    ``norm`` is the network's final FeatureNorm in mode ``"global"`` (the windows' logits before
    it are blended, then normalised over the whole image: :func:`forward_pre_norm`); None blends
    the windows' probabilities (modes ``"plain"`` and ``"context"``, whose margins are in
    ``plan``). ``progress``: a progress bar for images of at least 4 windows.
    """
    (top, _), (left, _) = plan.pads
    padded = np.pad(array, (*plan.pads, (0, 0)), mode="reflect")
    th, tw = plan.tile
    weight = plan.weight()
    acc = np.zeros(padded.shape[:2], np.float32)
    total = np.zeros(padded.shape[:2], np.float32)
    score = -math.inf
    windows = plan.windows
    with tqdm(
        total=len(windows),
        desc="tiles",
        unit="tile",
        leave=False,
        disable=not progress or len(windows) < _PROGRESS_MIN_WINDOWS,
    ) as bar:
        for start in range(0, len(windows), batch_size):
            chunk = windows[start : start + batch_size]
            crops = [padded[r : r + th, c : c + tw] for r, c in chunk]
            if norm is None:
                outputs = forward(crops)
            else:
                outputs = forward_pre_norm(norm, forward, crops)
            for (r, c), (prob, tile_score) in zip(chunk, outputs, strict=True):
                acc[r : r + th, c : c + tw] += weight * prob
                total[r : r + th, c : c + tw] += weight
                score = max(score, float(tile_score))
            bar.update(len(chunk))
    h, w = array.shape[:2]
    blended = acc[top : top + h, left : left + w] / total[top : top + h, left : left + w]
    if norm is not None:
        return _normalised_prob(blended, norm), score
    return np.clip(blended, 0.0, 1.0), score


def forward_pre_norm(
    norm: FeatureNorm, forward: Forward, arrays: list[np.ndarray]
) -> list[tuple[np.ndarray, float]]:
    """``forward`` on valid-size windows, with each window's segmentation logits before ``norm``
    (the final FeatureNorm, at the window's size) instead of its probabilities."""
    captured: list[torch.Tensor] = []
    handle = norm.register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0].detach().float())
    )
    try:
        outputs = forward(arrays)
    finally:
        handle.remove()
    size = arrays[0].shape[:2]
    pre = full_resolution(captured[-1].contiguous(), size)[:, 0].cpu().numpy()
    return [(p, s) for p, (_, s) in zip(pre, outputs, strict=True)]
