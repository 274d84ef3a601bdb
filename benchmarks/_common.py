"""Helpers shared by the benchmark scripts: machine load and a quick synthetic crack folder.

The folder generator favours speed over realism (its time is never measured): a shaded grey
background with sensor-like noise and, on positive crops, one to three dark random-walk cracks
drawn with Pillow. Files follow crackkit's layout (``<split>/images/*.jpg``,
``<split>/masks/*.png``) through :func:`crackkit.data.folder.write_sample`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from crackkit.data.folder import write_sample

__all__ = ["CRACK500_TRAIN_CROPS", "load_average", "machine_line", "make_crack_folder"]

CRACK500_TRAIN_CROPS = 3307
_MARKER = "benchmark_folder.json"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_line() -> str:
    """One line naming the CPU count, torch threads and the current load."""
    import torch

    return (
        f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads, load average {' / '.join(f'{x:.2f}' for x in load_average())} (1/5/15 min)"
    )


def _crop(rng: np.random.Generator, height: int, width: int, crack: bool):
    """(height, width, 3) uint8 image and (height, width) bool mask."""
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    gx, gy, level = rng.uniform(-30, 30), rng.uniform(-30, 30), rng.uniform(90, 170)
    shade = level + gx * xx + gy * yy
    noise = rng.normal(0.0, 12.0, (height, width)).astype(np.float32)
    grey = shade + noise
    mask_img = Image.new("L", (width, height), 0)
    if crack:
        draw = ImageDraw.Draw(mask_img)
        for _ in range(int(rng.integers(1, 4))):
            steps = int(rng.integers(20, 60))
            angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.3, steps))
            length = rng.uniform(5, 20)
            x = rng.uniform(0, width) + np.cumsum(length * np.cos(angle))
            y = rng.uniform(0, height) + np.cumsum(length * np.sin(angle))
            draw.line(
                list(zip(x.tolist(), y.tolist(), strict=True)),
                fill=255,
                width=int(rng.integers(1, 5)),
            )
    mask = np.asarray(mask_img) > 127
    grey = np.where(mask, grey * rng.uniform(0.3, 0.7), grey)
    tint = rng.uniform(0.95, 1.05, 3).astype(np.float32)
    image = np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8)
    return image, mask


def make_crack_folder(
    root: str | Path,
    n: int,
    height: int,
    width: int,
    *,
    split: str = "train",
    negative_fraction: float = 0.1,
    seed: int = 0,
    log=print,
) -> Path:
    """Write ``n`` JPEG crops with PNG masks into ``root/split``; reuse a matching folder.

    Returns:
        ``root``. A marker file in ``root`` records what was generated, so a second call with the
        same arguments returns at once.
    """
    root = Path(root)
    spec = {
        "n": n,
        "height": height,
        "width": width,
        "split": split,
        "negative_fraction": negative_fraction,
        "seed": seed,
        "version": 1,
    }
    marker = root / _MARKER
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return root
    if (root / split).exists() and any((root / split).rglob("*")):
        raise SystemExit(
            f"{root / split} exists but was not generated with these settings ({spec}); "
            "give an empty or new --dir"
        )
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    log(f"generating {n} {height}x{width} JPEG crops with PNG masks in {root / split} ...")
    for i in range(n):
        image, mask = _crop(rng, height, width, crack=rng.random() >= negative_fraction)
        write_sample(root, split, f"crop_{i:05d}", image, mask, image_ext=".jpg")
    marker.write_text(json.dumps(spec))
    log(f"generated in {time.perf_counter() - start:.1f} s (not part of any measurement)")
    return root
