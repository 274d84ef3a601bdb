"""Deterministic synthetic pavement-crack data set: the kit's built-in default, no download.

Backgrounds are built from the texture photographs that scikit-image ships (gravel, brick, grass):
two randomly cropped, scaled, turned and flipped textures are blended (gravel and grass through a
larger quilt of their patches, so that fine grain does not repeat), given a random brightness and
contrast, smooth shading (gradient, blotches, vignetting), a slight colour cast, and distractors:
stains, oil spots, shadows and light patches. A crack is a random walk whose heading wanders
around a main direction at three scales (drift, meander, zigzag), with up to two branches; it is
1-5 px wide with a width that varies along the path and darkens the background by 30-75 %, with
anti-aliased edges and faded ends. The image then gets a slight optical blur and sensor noise.

The mask marks the pixels where the crack's darkening reaches at least half its full depth, before
blur and noise, so it follows the visible crack rather than a wider band. Negatives get the same
backgrounds and distractors, no crack and an all-zero mask. Distractors are blobs and soft
regions, never thin lines, so that every thin dark line in an image is labelled.

:func:`generate_dataset` writes the layout of :mod:`crackkit.data.folder` under
``root / spec.name``. Each sample has its own random stream derived from ``(seed, split, index)``,
so the same :class:`SyntheticSpec` always gives byte-identical files (on the same library
versions) and the splits are independent.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import shutil
import socket
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage, special
from tqdm.auto import tqdm

from crackkit.data.folder import DatasetError, write_sample

__all__ = [
    "GENERATOR_VERSION",
    "SyntheticSpec",
    "ensure_synthetic",
    "generate_dataset",
    "generate_sample",
]

GENERATOR_VERSION = 2
"""Bumped whenever the generator's output changes; a folder made by another version is rebuilt."""

_GENERATOR = "crackkit.data.synthetic"
_SPLIT_KEYS = {"train": 0, "val": 1, "test": 2}
_TEXTURES = ("gravel", "brick", "grass")
_QUILTED = ("gravel", "grass")
_ATLAS_SIZE = 2048
_MAX_WIDTH = 5.0
_MIN_WIDTH = 1.0
_MAX_INNER_DISTANCE = 3.0


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and composition of a synthetic data set.

    Attributes:
        height, width: image size in pixels (at least 8).
        train, val, test: number of images per split (train at least 1; 0 omits a split).
        negative_fraction: share of crack-free images in each split, in [0, 1).
        seed: seed of the whole data set.
    """

    height: int
    width: int
    train: int
    val: int
    test: int
    negative_fraction: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("height", "width", "train", "val", "test", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"SyntheticSpec.{name} must be an int, got {value!r}")
        if self.height < 8 or self.width < 8:
            raise ValueError(
                f"SyntheticSpec size must be at least 8x8, got {self.height}x{self.width}"
            )
        if self.train < 1 or self.val < 0 or self.test < 0:
            raise ValueError("SyntheticSpec needs train >= 1, val >= 0 and test >= 0")
        if not 0.0 <= float(self.negative_fraction) < 1.0:
            raise ValueError(
                f"SyntheticSpec.negative_fraction must be in [0, 1), got {self.negative_fraction!r}"
            )
        if self.seed < 0:
            raise ValueError(f"SyntheticSpec.seed must be >= 0, got {self.seed}")
        for name in ("height", "width", "train", "val", "test", "seed"):  # plain JSON-able types
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "negative_fraction", float(self.negative_fraction))

    @property
    def name(self) -> str:
        """Folder name encoding every field, e.g. ``synthetic-96x160-320-64-96-neg30-s0``."""
        percent = f"{100.0 * float(self.negative_fraction):.10g}"
        return (
            f"synthetic-{self.height}x{self.width}-{self.train}-{self.val}-{self.test}"
            f"-neg{percent}-s{self.seed}"
        )

    def split_sizes(self) -> dict[str, int]:
        """Number of images of each non-empty split."""
        sizes = {"train": self.train, "val": self.val, "test": self.test}
        return {split: n for split, n in sizes.items() if n > 0}

    def negatives(self, n: int) -> int:
        """Number of negatives in a split of ``n`` images: ``round(n * negative_fraction)``."""
        return round(n * float(self.negative_fraction))


# ----------------------------------------------------------------------------------------------
# Building blocks


@cache
def _texture(name: str, level: int = 0) -> np.ndarray:
    """Texture photo as float32 in [0, 1], box-downsampled ``level`` times by 2; read-only."""
    import skimage.data

    tex = getattr(skimage.data, name)().astype(np.float32) / 255.0
    for _ in range(level):
        h, w = tex.shape[0] // 2 * 2, tex.shape[1] // 2 * 2
        tex = tex[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    tex.setflags(write=False)
    return tex


@cache
def _texture_atlas(name: str, level: int) -> np.ndarray:
    """A larger, non-repeating texture: a quilt of randomly cropped, turned and flipped patches.

    One 512-pixel photo covers too little ground once scaled down to pavement-grain size, and
    mirroring it shows kaleidoscope seams. The quilt blends patch overlaps with weights whose
    squares sum to one, which keeps the local contrast of these stochastic textures. It is
    ``_ATLAS_SIZE`` pixels square, uint8, built from a fixed seed, and read-only.
    """
    src = _texture(name, level)
    mean = float(src.mean())
    patch = src.shape[0] // 2
    overlap = patch // 4
    stride = patch - overlap
    n = -(-(_ATLAS_SIZE + overlap) // stride) + 1
    rng = np.random.default_rng(np.random.SeedSequence(_TEXTURES.index(name), spawn_key=(level,)))
    ramp = np.sin(np.linspace(0.0, np.pi / 2, overlap + 2)[1:-1])
    window = np.concatenate([ramp, np.ones(patch - 2 * overlap), ramp[::-1]]).astype(np.float32)
    window2d = window[:, None] * window[None, :]
    canvas = np.zeros((n * stride + overlap,) * 2, dtype=np.float32)
    for i in range(n):
        for j in range(n):
            y = rng.integers(0, src.shape[0] - patch + 1)
            x = rng.integers(0, src.shape[1] - patch + 1)
            piece = np.rot90(src[y : y + patch, x : x + patch], rng.integers(4))
            if rng.random() < 0.5:
                piece = piece[:, ::-1]
            canvas[i * stride : i * stride + patch, j * stride : j * stride + patch] += window2d * (
                piece - mean
            )
    atlas = canvas[overlap : overlap + _ATLAS_SIZE, overlap : overlap + _ATLAS_SIZE] + mean
    atlas = np.clip(np.rint(atlas * 255.0), 0, 255).astype(np.uint8)
    atlas.setflags(write=False)
    return atlas


def _warped_texture(
    rng: np.random.Generator, name: str, h: int, w: int, scale: float
) -> np.ndarray:
    """``(h, w)`` float32 view of a texture in [0, 1] at about ``scale`` texture pixels per pixel.

    Quilted textures are cropped at a random place, turned by a multiple of 90 degrees, maybe
    flipped and resampled separably (cheap). The others (brick) are rotated by any angle, with
    the scale capped so that the rotated view fits inside the photo: mirrored borders would show.
    """
    if name in _QUILTED:
        level = int(np.clip(np.floor(np.log2(max(scale, 1.0))), 0, 3))
        step = scale / 2**level
        view = np.rot90(_texture_atlas(name, level), rng.integers(4))
        if rng.random() < 0.5:
            view = view[:, ::-1]
        need_h, need_w = int((h - 1) * step) + 2, int((w - 1) * step) + 2
        if need_h <= view.shape[0] and need_w <= view.shape[1]:
            y0 = rng.integers(0, view.shape[0] - need_h + 1)
            x0 = rng.integers(0, view.shape[1] - need_w + 1)
            return _resample(view[y0 : y0 + need_h, x0 : x0 + need_w], h, w, step) / np.float32(255)
    scale = min(scale, 0.98 * min(_texture(name, 0).shape) / math.hypot(h, w))
    level = int(np.clip(np.floor(np.log2(max(scale, 1.0))), 0, 3))
    step = scale / 2**level
    tex = _texture(name, level)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    c, s = math.cos(angle), math.sin(angle)
    matrix = step * np.array([[c, -s], [s, c]])
    if rng.random() < 0.5:
        matrix[:, 1] *= -1.0
    slack = max(0.0, min(tex.shape) / 2.0 - step * math.hypot(h, w) / 2.0)
    centre_in = np.array(tex.shape) / 2.0 + rng.uniform(-slack, slack, 2)
    offset = centre_in - matrix @ np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    return ndimage.affine_transform(
        tex, matrix, offset=offset, output_shape=(h, w), order=1, mode="mirror", output=np.float32
    )


def _resample(src: np.ndarray, h: int, w: int, step: float) -> np.ndarray:
    """Bilinear ``(h, w)`` float32 sample of ``src`` at ``step`` source pixels per output pixel."""
    ys = np.arange(h) * step
    xs = np.arange(w) * step
    yi = np.minimum(ys.astype(np.int64), src.shape[0] - 2)
    xi = np.minimum(xs.astype(np.int64), src.shape[1] - 2)
    fy = (ys - yi).astype(np.float32)[:, None]
    fx = (xs - xi).astype(np.float32)[None, :]
    rows = src[yi].astype(np.float32) * (1 - fy) + src[yi + 1].astype(np.float32) * fy
    return rows[:, xi] * (1 - fx) + rows[:, xi + 1] * fx


@lru_cache(maxsize=64)
def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` row-normalised Gaussian weights that smoothly upsample a coarse grid."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)[:, None]
    weights = np.exp(-0.5 * ((pos - np.arange(n_in)[None, :]) / 0.7) ** 2)
    weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
    weights.setflags(write=False)
    return weights


def _smooth_field(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """``(h, w)`` smooth random field, amplitude about 1, ``cells`` blobs along the short side."""
    short = min(h, w)
    gh = max(2, round(cells * h / short) + 1)
    gw = max(2, round(cells * w / short) + 1)
    grid = rng.normal(0.0, 2.4, (gh, gw)).astype(np.float32)  # 2.4 undoes the smoothing loss
    rows = _interp_matrix(h, gh) @ grid
    cols = _interp_matrix(w, gw)
    field = np.zeros((h, w), dtype=np.float32)
    for k in range(gw):  # a sum of outer products: no large BLAS call, which stalls when busy
        field += rows[:, k : k + 1] * cols[None, :, k]
    return field


def _blob_weight(
    rng: np.random.Generator, h: int, w: int, radius: float, aspect: float, softness: float
) -> tuple[tuple[slice, slice], np.ndarray]:
    """A soft, irregular, roughly elliptic blob: its bounding window and weights in [0, 1]."""
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = radius, radius * aspect
    reach = int(math.ceil(max(ry, rx) * (1.5 + softness))) + 1
    y0, y1 = max(0, int(cy) - reach), min(h, int(cy) + reach + 1)
    x0, x1 = max(0, int(cx) - reach), min(w, int(cx) + reach + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    c, s = math.cos(angle), math.sin(angle)
    dy, dx = yy - cy, xx - cx
    u, v = (c * dx + s * dy) / rx, (-s * dx + c * dy) / ry
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    edge = np.ones_like(theta)
    for k in range(2, 6):
        edge += rng.uniform(0.0, 0.22 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    weight = special.expit((edge - rho) / softness)
    return (slice(y0, y1), slice(x0, x1)), weight.astype(np.float32)


def _luminance(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """``(h, w)`` float32 pavement-like grey background with smooth shading, roughly in [0, 1]."""
    size_factor = math.sqrt(360.0 / max(h, 32))
    primary = "gravel" if rng.random() < 0.85 else "brick"
    secondary = _TEXTURES[rng.integers(len(_TEXTURES))]
    lum = _warped_texture(rng, primary, h, w, rng.uniform(1.0, 3.2) * size_factor)
    mix = rng.uniform(0.15, 0.5)
    lum = (1.0 - mix) * lum + mix * _warped_texture(
        rng, secondary, h, w, rng.uniform(0.8, 3.5) * size_factor
    )
    if rng.random() < 0.35:  # smoother, concrete-like surfaces
        lum = ndimage.gaussian_filter(lum, rng.uniform(0.6, 1.6))
    lum = (lum - lum.mean()) / max(float(lum.std()), 1e-6)
    lum = rng.uniform(0.42, 0.62) + rng.uniform(0.05, 0.13) * lum

    yy = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    shading = 1.0 + rng.uniform(0.0, 0.18) * (math.cos(angle) * xx + math.sin(angle) * yy)
    shading = shading + rng.uniform(0.0, 0.08) * _smooth_field(rng, h, w, rng.uniform(1.5, 4.0))
    shading = shading - rng.uniform(0.0, 0.25) * (xx**2 + yy**2) / 2.0
    return (lum * shading).astype(np.float32)


def _colourize(rng: np.random.Generator, lum: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` float32: ``lum`` with a slight colour cast that drifts smoothly."""
    h, w = lum.shape
    cast = 1.0 + rng.normal(0.0, 0.025, 3) + rng.choice([0.0, 1.0]) * np.array([0.03, 0.0, -0.03])
    chroma = rng.uniform(0.0, 0.03) * _smooth_field(rng, h, w, 3.0)
    rgb = np.empty((h, w, 3), dtype=np.float32)
    rgb[:, :, 0] = lum * (np.float32(cast[0]) * (1.0 + chroma))
    rgb[:, :, 1] = lum * np.float32(cast[1])
    rgb[:, :, 2] = lum * (np.float32(cast[2]) * (1.0 - chroma))
    return rgb


def _add_distractors(rng: np.random.Generator, rgb: np.ndarray) -> None:
    """Darken or lighten ``rgb`` in place with stains, oil spots, shadows and light patches."""
    h, w = rgb.shape[:2]
    short = min(h, w)
    min_radius = max(4.0, 0.05 * short)
    for _ in range(rng.poisson(1.2)):  # stains: soft, irregular, moderately dark
        radius = max(min_radius, rng.uniform(0.06, 0.25) * short)
        aspect, softness = rng.uniform(0.5, 2.5), rng.uniform(0.1, 0.4)
        window, weight = _blob_weight(rng, h, w, radius, aspect, softness)
        rgb[window] *= (1.0 - rng.uniform(0.06, 0.3) * weight)[:, :, None]
    if rng.random() < 0.3:  # oil spot: darker, rounder, slightly tinted
        radius = max(min_radius, rng.uniform(0.05, 0.16) * short)
        aspect, softness = rng.uniform(0.7, 1.5), rng.uniform(0.08, 0.25)
        window, weight = _blob_weight(rng, h, w, radius, aspect, softness)
        tint = np.array([1.0, 0.95, 0.85], dtype=np.float32) if rng.random() < 0.5 else np.ones(3)
        depth = rng.uniform(0.2, 0.45)
        rgb[window] *= 1.0 - depth * weight[:, :, None] * tint[None, None, :]
    if rng.random() < 0.3:  # light patch: dried spots, paint remains
        radius = max(min_radius, rng.uniform(0.05, 0.2) * short)
        aspect, softness = rng.uniform(0.5, 2.0), rng.uniform(0.15, 0.4)
        window, weight = _blob_weight(rng, h, w, radius, aspect, softness)
        rgb[window] *= (1.0 + rng.uniform(0.05, 0.2) * weight)[:, :, None]
    if rng.random() < 0.25:  # shadow: a soft-edged dark region along a wavy boundary
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        dist = math.cos(angle) * (xx - w / 2) + math.sin(angle) * (yy - h / 2)
        dist = dist - rng.uniform(-0.3, 0.5) * short + 0.08 * short * _smooth_field(rng, h, w, 2.0)
        softness = rng.uniform(0.03, 0.12) * short
        weight = special.expit(dist / softness)
        rgb *= (1.0 - rng.uniform(0.12, 0.4) * weight)[:, :, None]


def _smooth_1d(rng: np.random.Generator, n: int, length: float) -> np.ndarray:
    """Smooth noise of ``n`` samples, unit expected variance, correlation ``length`` samples."""
    sigma = max(length, 1.0)
    radius = int(4 * sigma + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    noise = ndimage.convolve1d(rng.standard_normal(n), kernel, mode="wrap")
    return noise / math.sqrt(float(np.sum(kernel**2)))


def _walk(
    rng: np.random.Generator, start: np.ndarray, heading: float, length: float, step: float
) -> np.ndarray:
    """``(N, 2)`` points of a meandering, jagged path that keeps a main direction.

    The heading wanders around ``heading`` at three scales: a slow drift over a third of the
    path, a meander over about 15 px and a zigzag over about 3 px; rare kinks add sharp turns.
    """
    n = max(2, int(length / step))
    theta = (
        heading
        + rng.uniform(0.15, 0.5) * _smooth_1d(rng, n, length / step / 3.0)
        + rng.uniform(0.15, 0.35) * _smooth_1d(rng, n, 15.0 / step)
        + rng.uniform(0.2, 0.5) * _smooth_1d(rng, n, 3.0 / step)
    )
    kinks = np.where(rng.random(n) < 0.01 * step, rng.normal(0.0, 0.35, n), 0.0)
    theta = theta + np.cumsum(kinks)
    moves = step * np.stack([np.sin(theta), np.cos(theta)], axis=1)
    return start[None, :] + np.concatenate([np.zeros((1, 2)), np.cumsum(moves, axis=0)[:-1]])


def _crack_strokes(
    rng: np.random.Generator, h: int, w: int, from_inside: bool = False
) -> list[np.ndarray]:
    """Strokes of one crack as ``(N, 4)`` arrays of (y, x, width, relative depth)."""
    step = 0.5
    diag = math.hypot(h, w)
    if not from_inside and rng.random() < 0.6:  # enter from an edge, heading roughly inwards
        side = rng.integers(4)
        t = rng.uniform(0.1, 0.9)
        start = [(0.0, t * w), (h - 1.0, t * w), (t * h, 0.0), (t * h, w - 1.0)][side]
        inward = [np.pi / 2, -np.pi / 2, 0.0, np.pi][side]
        heading = inward + rng.uniform(-0.9, 0.9)
        length = rng.uniform(0.5, 1.3) * diag
        main = _walk(rng, np.array(start), heading, length, step)
        fade_start = False  # the crack goes on beyond the border
    else:  # start inside and run both ways
        start = np.array([rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w])
        heading = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.3, 0.8) * diag
        ahead = _walk(rng, start, heading, length, step)
        back = _walk(rng, start, heading + np.pi, rng.uniform(0.1, 0.5) * diag, step)
        main = np.concatenate([back[::-1], ahead[1:]])
        fade_start = True

    base_width = _MIN_WIDTH + (_MAX_WIDTH - _MIN_WIDTH) * rng.beta(1.3, 2.2)
    strokes = [_stroke(rng, main, base_width, 1.0, fade_start=fade_start)]
    for _ in range(rng.choice(3, p=[0.35, 0.4, 0.25])):
        lo = int(0.1 * len(main))
        at = rng.integers(lo, max(lo + 1, int(0.9 * len(main))))
        direction = main[min(at + 4, len(main) - 1)] - main[max(at - 4, 0)]
        heading = math.atan2(direction[0], direction[1])
        heading += rng.choice([-1.0, 1.0]) * rng.uniform(0.45, 1.3)
        branch = _walk(rng, main[at], heading, rng.uniform(0.15, 0.5) * length, step)
        width = max(_MIN_WIDTH, base_width * rng.uniform(0.45, 0.9))
        strokes.append(_stroke(rng, branch, width, rng.uniform(0.75, 1.0), fade_start=False))
    return strokes


def _stroke(
    rng: np.random.Generator,
    points: np.ndarray,
    base_width: float,
    depth: float,
    fade_start: bool,
) -> np.ndarray:
    """``(N, 4)`` stroke: the points, a width wandering around ``base_width`` and a relative
    depth near ``depth`` that fades to zero at the end (and at the start if ``fade_start``)."""
    n = len(points)
    width = base_width * np.exp(0.35 * _smooth_1d(rng, n, 40.0)) + 0.35 * _smooth_1d(rng, n, 3.0)
    width = np.clip(width, _MIN_WIDTH, _MAX_WIDTH)
    rel = depth * (1.0 + 0.12 * _smooth_1d(rng, n, 60.0))
    ramp = np.arange(n, dtype=np.float64) / max(min(rng.uniform(20.0, 80.0), 0.25 * n), 1.0)
    fade = np.minimum(1.0, ramp[::-1])
    if fade_start:
        fade = np.minimum(fade, ramp)
    rel = np.clip(rel, 0.0, 1.0) * fade
    return np.column_stack([points, width, rel])


def _render_strokes(strokes: list[np.ndarray], h: int, w: int) -> np.ndarray:
    """``(h, w)`` float32 crack strength in [0, 1]: anti-aliased coverage times relative depth."""
    pts = np.concatenate(strokes)
    margin = _MAX_WIDTH
    y, x = pts[:, 0], pts[:, 1]
    pts = pts[(y > -margin) & (y < h + margin) & (x > -margin) & (x < w + margin) & (pts[:, 3] > 0)]
    strength = np.zeros(h * w, dtype=np.float32)
    if len(pts) == 0:
        return strength.reshape(h, w)
    reach = int(math.ceil(_MAX_WIDTH / 2 + 1))
    offsets = np.arange(-reach, reach + 1)
    oy, ox = np.meshgrid(offsets, offsets, indexing="ij")
    cy, cx = np.rint(pts[:, 0]).astype(np.int64), np.rint(pts[:, 1]).astype(np.int64)
    py, px = cy[:, None] + oy.ravel()[None, :], cx[:, None] + ox.ravel()[None, :]
    dist = np.hypot(py - pts[:, 0:1], px - pts[:, 1:2])
    coverage = np.clip(pts[:, 2:3] / 2.0 + 0.5 - dist, 0.0, 1.0) * pts[:, 3:4]
    keep = (py >= 0) & (py < h) & (px >= 0) & (px < w) & (coverage > 0)
    np.maximum.at(strength, (py[keep] * w + px[keep]), coverage[keep].astype(np.float32))
    return strength.reshape(h, w)


def _render_thin(strokes: list[np.ndarray], h: int, w: int) -> np.ndarray:
    """Render strokes, narrowing them where the mask would get thicker than ``_MAX_WIDTH``.

    Tight turns and branches leaving at a shallow angle merge into patches wider than any single
    stroke; the width of the strokes near such a patch is reduced until no mask pixel lies more
    than ``_MAX_INNER_DISTANCE`` from the background (the distance at the centre of a 5-px line).
    """
    for _ in range(8):
        strength = _render_strokes(strokes, h, w)
        mask = strength >= 0.5
        if not mask.any():
            return strength
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        y0, y1 = max(0, rows[0] - 1), min(h, rows[-1] + 2)
        x0, x1 = max(0, cols[0] - 1), min(w, cols[-1] + 2)
        thick = np.zeros((h, w), dtype=bool)
        inner = ndimage.distance_transform_edt(mask[y0:y1, x0:x1])
        thick[y0:y1, x0:x1] = inner > _MAX_INNER_DISTANCE
        if not thick.any():
            return strength
        near = ndimage.binary_dilation(thick, iterations=int(_MAX_WIDTH))
        for stroke in strokes:
            cy = np.clip(np.rint(stroke[:, 0]).astype(np.int64), 0, h - 1)
            cx = np.clip(np.rint(stroke[:, 1]).astype(np.int64), 0, w - 1)
            hit = near[cy, cx]
            stroke[hit, 2] = np.maximum(_MIN_WIDTH, 0.75 * stroke[hit, 2])
    return _render_strokes(strokes, h, w)


def generate_sample(
    rng: np.random.Generator, height: int, width: int, positive: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic pavement image and its crack mask.

    Args:
        rng: source of randomness; the result depends only on its state.
        height, width: image size in pixels.
        positive: draw a crack (True) or a crack-free image (False).

    Returns:
        ``image``: ``(H, W, 3)`` uint8; ``mask``: ``(H, W)`` bool, all False for a negative.
    """
    lum = _luminance(rng, height, width)
    mask = np.zeros((height, width), dtype=bool)
    if positive:
        min_pixels = max(min(12, height * width // 16), int(0.002 * height * width))
        for attempt in range(8):
            strokes = _crack_strokes(rng, height, width, from_inside=attempt >= 2)
            strength = _render_thin(strokes, height, width)
            mask = strength >= 0.5
            if np.count_nonzero(mask) >= min_pixels:
                break
        if not mask.any():  # practically never: a short straight crack through the centre
            xs = np.arange(width // 4, width - width // 4, 0.5)
            line = np.column_stack([np.full(len(xs), height // 2), xs, np.full(len(xs), 2.0)])
            strength = _render_strokes([np.column_stack([line, np.ones(len(xs))])], height, width)
            mask = strength >= 0.5
        lum *= 1.0 - np.float32(rng.uniform(0.3, 0.75)) * strength
    lum = ndimage.gaussian_filter(lum, rng.uniform(0.3, 0.7))
    lum += np.float32(rng.uniform(0.004, 0.025)) * rng.standard_normal(lum.shape, dtype=np.float32)
    rgb = _colourize(rng, lum)
    _add_distractors(rng, rgb)
    rgb *= 255.0
    np.rint(rgb, out=rgb)
    image = np.clip(rgb, 0, 255, out=rgb).astype(np.uint8)
    return image, mask


# ----------------------------------------------------------------------------------------------
# The data set on disk


def _metadata(spec: SyntheticSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "source": "synthetic",
        "generator": _GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "params": dataclasses.asdict(spec),
        "image_ext": ".png",
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_complete(folder: Path, spec: SyntheticSpec) -> bool:
    data = _read_json(folder / "dataset.json")
    if data is None:
        return False
    expected = _metadata(spec)
    return all(data.get(key) == value for key, value in expected.items())


def _split_rngs(spec: SyntheticSpec, split: str, n: int) -> tuple[np.ndarray, list]:
    key = _SPLIT_KEYS[split]
    order = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(key,)))
    is_negative = np.zeros(n, dtype=bool)
    is_negative[: spec.negatives(n)] = True
    is_negative = order.permutation(is_negative)
    seeds = [np.random.SeedSequence(spec.seed, spawn_key=(key, i)) for i in range(n)]
    return is_negative, seeds


def _remove_stale_partials(root: Path, name: str) -> None:
    """Delete temporary folders left by crashed generations of ``name`` on this host."""
    if os.name != "posix":
        return
    host = socket.gethostname()
    for partial in root.glob(f".{name}.partial-*"):
        owner = _read_json(partial / ".owner.json") or {}
        pid = owner.get("pid")
        if owner.get("host") != host or not isinstance(pid, int) or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(partial, ignore_errors=True)
        except OSError:
            pass


def generate_dataset(spec: SyntheticSpec, root: str | Path, *, progress: bool = True) -> Path:
    """Write the synthetic data set ``spec`` under ``root / spec.name`` unless it is already there.

    Generation runs in a temporary hidden sibling folder that is renamed into place only when
    complete, so an interrupted run never looks finished. A finished folder (its ``dataset.json``
    matches the spec and the generator version) is returned untouched; one made by another
    generator version is replaced.

    Args:
        spec: what to generate.
        root: parent folder, e.g. ``crackkit.paths.PROCESSED_DIR``.
        progress: show a progress bar.

    Returns:
        The data set folder.

    Raises:
        DatasetError: the target folder exists but was not written by this generator.
    """
    root = Path(root)
    final = root / spec.name
    if _is_complete(final, spec):
        return final
    outdated = False
    if final.exists():
        previous = _read_json(final / "dataset.json")
        if previous is None or previous.get("generator") != _GENERATOR:
            raise DatasetError(
                f"{final}: folder exists but is not a complete synthetic data set (no matching "
                "dataset.json); delete it to regenerate"
            )
        outdated = True
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(root, spec.name)
    partial = root / f".{spec.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    partial.mkdir()
    try:
        owner = {"host": socket.gethostname(), "pid": os.getpid()}
        (partial / ".owner.json").write_text(json.dumps(owner))
        meta = _metadata(spec)
        meta["counts"] = _write_splits(spec, partial, progress)
        (partial / ".owner.json").unlink()
        (partial / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
        if outdated:
            stale = final.with_name(f".{spec.name}.outdated-{os.getpid()}-{secrets.token_hex(4)}")
            os.rename(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(partial, final)
        except OSError:
            if not _is_complete(final, spec):  # not a concurrent twin: a real failure
                raise
            shutil.rmtree(partial, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def _write_splits(spec: SyntheticSpec, folder: Path, progress: bool) -> dict[str, dict[str, int]]:
    """Generate and write every sample; PNG encoding runs on threads, overlapping generation."""
    sizes = spec.split_sizes()
    counts: dict[str, dict[str, int]] = {}
    pending: deque[Future] = deque()
    with (
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="synthetic-png") as pool,
        tqdm(total=sum(sizes.values()), desc=spec.name, unit="img", disable=not progress) as bar,
    ):
        for split, n in sizes.items():
            is_negative, seeds = _split_rngs(spec, split, n)
            for i, (negative, seed) in enumerate(zip(is_negative, seeds, strict=True)):
                image, mask = generate_sample(
                    np.random.default_rng(seed), spec.height, spec.width, not negative
                )
                stem = f"{split}-{i:05d}"
                pending.append(pool.submit(write_sample, folder, split, stem, image, mask, ".png"))
                while pending and (len(pending) > 4 or pending[0].done()):
                    pending.popleft().result()
                    bar.update()
            negatives = int(is_negative.sum())
            counts[split] = {"positives": n - negatives, "negatives": negatives, "sum": n}
        while pending:
            pending.popleft().result()
            bar.update()
    return counts


ensure_synthetic = generate_dataset
"""Alias used by the pipeline: make sure the data set exists and return its folder."""
