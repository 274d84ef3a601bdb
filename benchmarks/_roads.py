"""A second synthetic road generator, apart from ``crackkit.data.synthetic``, for benchmarks that
must not be tuned on the kit's own data: asphalt with distractors that look like cracks to a
careless detector.

Each image is asphalt (grey level, shading, blotches at three scales, aggregate speckle), and with
their own probabilities: a saw-cut joint (a long straight dark groove, 3-6 px, not a crack), lane
paint (a worn bright stripe 14-34 px wide, white or yellow), 1-3 stains (soft dark blobs) and oil
spots. A positive has 1-2 cracks: random walks that meander and zigzag around a main direction,
1-4 px wide, darkening the surface by 35-65 %; the mask is the crack's own pixels. Then blur and
sensor noise.

Every sample has its own generator seeded from ``(seed, split, index)``; the same call gives the
same files. Files follow crackkit's folder layout through ``crackkit.data.folder.write_sample``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from crackkit.data.folder import write_sample

__all__ = ["make_roads", "road_image"]

_SPLITS = {"train": 0, "val": 1, "test": 2}
_MARKER = "roads.json"


def _blotches(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), sigma, mode="wrap")
    return field / (field.std() + 1e-6)


def _walk(rng: np.random.Generator, h: int, w: int) -> list[tuple[float, float]]:
    """A crack path: from one border region across the image, heading wandering."""
    y, x = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
    main = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.5, 1.2) * max(h, w)
    points, step = [(x, y)], 2.0
    meander = 0.0
    for _ in range(int(length / step)):
        meander = 0.85 * meander + rng.normal(0, 0.25)  # pulled back to the main direction
        heading = main + 0.6 * np.tanh(meander) + rng.normal(0, 0.35)
        x, y = x + step * np.cos(heading), y + step * np.sin(heading)
        points.append((x, y))
        if not (-10 < x < w + 10 and -10 < y < h + 10):
            break
    return points


def road_image(rng: np.random.Generator, h: int, w: int, crack: bool):
    """(h, w, 3) uint8 image and (h, w) bool mask."""
    level = rng.uniform(85, 150)
    surface = level * (
        1
        + 0.10 * _blotches(rng, h, w, 24)
        + 0.06 * _blotches(rng, h, w, 6)
        + 0.05 * _blotches(rng, h, w, 1.2)
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    surface *= 1 + rng.uniform(-0.15, 0.15) * (xx / w - 0.5) + rng.uniform(-0.15, 0.15) * (yy / h)
    speckle = rng.random((h, w))
    surface[speckle < 0.03] *= rng.uniform(0.55, 0.8)
    surface[speckle > 0.97] *= rng.uniform(1.2, 1.45)
    rgb = np.repeat(surface[..., None], 3, axis=2) * rng.uniform(0.95, 1.05, 3)

    def paint(shape: Image.Image, factor: np.ndarray | float, soft: float = 0.0) -> None:
        alpha = shape.filter(ImageFilter.GaussianBlur(soft)) if soft else shape
        a = np.asarray(alpha, np.float32)[..., None] / 255.0
        rgb[:] = rgb * (1 - a) + rgb * a * factor

    if rng.random() < 0.6:  # lane paint: a worn bright stripe
        stripe = Image.new("L", (w, h), 0)
        width = rng.uniform(14, 34)
        angle = rng.uniform(-0.35, 0.35) + (np.pi / 2 if rng.random() < 0.5 else 0)
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        dx, dy = np.cos(angle) * 2 * max(h, w), np.sin(angle) * 2 * max(h, w)
        ImageDraw.Draw(stripe).line([(cx - dx, cy - dy), (cx + dx, cy + dy)], 255, int(width))
        wear = np.clip(0.75 + 0.35 * _blotches(rng, h, w, 3), 0.2, 1.0)[..., None]
        colour = np.array([235, 232, 225]) if rng.random() < 0.6 else np.array([230, 190, 60])
        a = np.asarray(stripe.filter(ImageFilter.GaussianBlur(0.8)), np.float32)[..., None] / 255
        a = a * wear
        rgb[:] = rgb * (1 - a) + colour * a
    if rng.random() < 0.55:  # a saw-cut joint: long, straight, dark, not a crack
        joint = Image.new("L", (w, h), 0)
        angle = rng.uniform(0, np.pi)
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        dx, dy = np.cos(angle) * 2 * max(h, w), np.sin(angle) * 2 * max(h, w)
        ImageDraw.Draw(joint).line(
            [(cx - dx, cy - dy), (cx + dx, cy + dy)], 255, int(rng.integers(3, 7))
        )
        paint(joint, rng.uniform(0.35, 0.6), soft=0.6)
    for _ in range(int(rng.integers(0, 4))):  # stains and oil spots
        blob = Image.new("L", (w, h), 0)
        ry, rx = rng.uniform(6, 40), rng.uniform(6, 40)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        ImageDraw.Draw(blob).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], 255)
        paint(blob, rng.uniform(0.55, 0.85), soft=rng.uniform(3, 9))
    mask = np.zeros((h, w), bool)
    if crack:
        for _ in range(int(rng.integers(1, 3))):
            line = Image.new("L", (w, h), 0)
            draw = ImageDraw.Draw(line)
            pts = _walk(rng, h, w)
            base = rng.uniform(1.0, 4.0)
            for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
                draw.line([(x0, y0), (x1, y1)], 255, max(1, int(round(base + rng.normal(0, 0.5)))))
            drawn = np.asarray(line) > 127
            if drawn.sum() < 30:
                continue
            mask |= drawn
            paint(line, rng.uniform(0.35, 0.65), soft=0.5)
        if not mask.any():  # a walk that left the image at once: draw a short one inside
            line = Image.new("L", (w, h), 0)
            ImageDraw.Draw(line).line([(w * 0.2, h * 0.3), (w * 0.7, h * 0.6)], 255, 2)
            mask |= np.asarray(line) > 127
            paint(line, 0.5, soft=0.5)
    rgb = ndimage.gaussian_filter(rgb, (0.6, 0.6, 0))
    rgb += rng.normal(0, 4.0, rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), mask


def make_roads(
    root: str | Path,
    *,
    height: int = 192,
    width: int = 256,
    counts: dict[str, int] | None = None,
    negative_fraction: float = 0.5,
    seed: int = 0,
) -> Path:
    """Write the road set under ``root`` (reused when a folder of the same parameters exists).

    Args:
        counts: images per split; default train 160, val 48, test 160.
        negative_fraction: share of crack-free images in each split.
    """
    root = Path(root)
    counts = counts or {"train": 160, "val": 48, "test": 160}
    spec = {
        "generator": "benchmarks/_roads.py",
        "height": height,
        "width": width,
        "counts": counts,
        "negative_fraction": negative_fraction,
        "seed": seed,
    }
    marker = root / _MARKER
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return root
    for split, n in counts.items():
        n_neg = int(round(n * negative_fraction))
        for i in range(n):
            rng = np.random.default_rng([seed, _SPLITS[split], i])
            image, mask = road_image(rng, height, width, crack=i >= n_neg)
            write_sample(root, split, f"{split}{i:04d}", image, mask, image_ext=".png")
    marker.write_text(json.dumps(spec))
    return root


if __name__ == "__main__":
    out = make_roads("/tmp/roads_preview", counts={"train": 8})
    tiles = [np.asarray(Image.open(p)) for p in sorted((out / "train" / "images").glob("*.png"))]
    Image.fromarray(
        np.concatenate([np.concatenate(tiles[:4], 1), np.concatenate(tiles[4:], 1)])
    ).save("/tmp/roads_preview.png")
    print("/tmp/roads_preview.png")
