"""Helpers shared by the benchmark scripts: machine load, a quick synthetic crack folder and the
headline figures of a run's ``metrics.json``.

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

__all__ = [
    "CRACK500_TRAIN_CROPS",
    "cpu_line",
    "crack_crop",
    "load_average",
    "machine_line",
    "make_crack_folder",
    "metrics_row",
    "speed_switches",
]

CRACK500_TRAIN_CROPS = 3307
_MARKER = "benchmark_folder.json"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_line() -> str:
    """The line every benchmark prints first: which CPU its figures come from (model name and
    whether it has AVX512-BF16 / AMX-BF16, which decide how fast bf16 runs) and the GPU if any."""
    import torch

    from crackkit.autotune import cpu_flags, cpu_model

    flags = {name: "yes" if has else "no" for name, has in cpu_flags().items()}
    text = (
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; avx512_bf16 {flags['avx512_bf16']}, "
        f"amx_bf16 {flags['amx_bf16']}"
    )
    if torch.cuda.is_available():
        text += f"; GPU: {torch.cuda.get_device_name(0)}"
    return text


def speed_switches(kind: str) -> dict:
    """Print how this process settled its speed switches of ``kind`` (``training`` or
    ``inference``: each choice and its source, the time spent measuring); return them."""
    from crackkit import autotune

    resolution = autotune.resolutions().get(kind, {})
    switches = resolution.get("switches", {})
    print(
        "speed switches: "
        + ", ".join(f"{k} {v['choice']} ({v['source']})" for k, v in switches.items())
        + f"; {resolution.get('measure_seconds', 0):.1f} s measuring (not timed below)",
        flush=True,
    )
    return switches


def original_side(model, original_calls: bool = False):
    """The benchmarks' "original way" network: ``model`` with direct convolutions (no FFT) and,
    with ``original_calls``, the original code's calls where crackkit computes the same function
    another way: ``nn.ConvTranspose2d`` with its bias, FeatureNorm through autograd's chain
    (``fused_backward = False``). Without it the original side keeps crackkit's kernels, which
    are faster than the original's calls, so a speedup measured that way is the smaller one."""
    from crackkit.fftconv import set_fft_conv
    from crackkit.model import FeatureNorm, set_bias_apart

    set_fft_conv(model, False)
    if original_calls:
        set_bias_apart(model, False)
        for module in model.modules():
            if isinstance(module, FeatureNorm):
                module.fused_backward = False
    return model


def add_original_calls(parser) -> None:
    """``--original-calls``: see :func:`original_side`."""
    parser.add_argument(
        "--original-calls",
        action="store_true",
        help="the original side with the original code's calls (transposed convolutions with "
        "their bias, FeatureNorm through autograd's chain); default: crackkit's kernels, the "
        "faster baseline",
    )


def machine_line() -> str:
    """One line naming the CPU, its count, torch threads and the current load."""
    import torch

    return (
        f"{cpu_line()}; torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads, load average {' / '.join(f'{x:.2f}' for x in load_average())} (1/5/15 min)"
    )


def crack_crop(rng: np.random.Generator, height: int, width: int, crack: bool):
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
        image, mask = crack_crop(rng, height, width, crack=rng.random() >= negative_fraction)
        write_sample(root, split, f"crop_{i:05d}", image, mask, image_ext=".jpg")
    marker.write_text(json.dumps(spec))
    log(f"generated in {time.perf_counter() - start:.1f} s (not part of any measurement)")
    return root


def _get(d: dict, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def metrics_row(run_dir: str | Path, **fields) -> dict:
    """``fields`` followed by the headline figures of ``run_dir/metrics.json``.

    Test 2px F1 / Pr / Re at the validation threshold with the F1's bootstrap interval, Dice and
    IoU (each at its own validation threshold), ODS/OIS, the calibration figures, the step-wise
    decision AP, the image counts and the minutes of training and validation.
    """
    m = json.loads((Path(run_dir) / "metrics.json").read_text())
    px = m.get("pixel_2px", {})
    return {
        **fields,
        "minutes_train": round((_get(m, "timing", "train_and_validate") or 0) / 60, 2),
        "threshold_2px": _get(m, "val_thresholds", "pixel_2px"),
        "f1_2px": px.get("f1"),
        "f1_2px_ci95": px.get("f1_ci95"),
        "precision_2px": px.get("precision"),
        "recall_2px": px.get("recall"),
        "dice": _get(m, "dice", "value"),
        "iou": _get(m, "iou", "value"),
        "ods": _get(m, "ods", "f1") if isinstance(m.get("ods"), dict) else m.get("ods"),
        "ois": _get(m, "ois", "f1") if isinstance(m.get("ois"), dict) else m.get("ois"),
        "mean_background_prob": _get(m, "calibration", "mean_background_prob"),
        "ece": _get(m, "calibration", "ece"),
        "decision_ap": _get(m, "decision", "ap_step"),
        "n_test": m.get("n_images"),
        "n_test_positive": m.get("n_positive"),
        "run_dir": str(run_dir),
    }
