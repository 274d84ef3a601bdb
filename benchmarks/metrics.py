"""Time the tolerance precision / recall / F1 threshold sweep three ways on synthetic maps.

(a) ``original``: the SegDecNet way, a Python loop over thresholds and images with the counts taken
    by the builtin ``sum(sum(...))`` over the rows of boolean arrays. Slow, so it runs on the first
    ``--baseline-images`` maps and its time is extrapolated linearly to N.
(b) ``numpy loop``: a loop over thresholds with NumPy reductions (``np.count_nonzero``) over all
    images at once (optionally a subset, ``--numpy-images``, extrapolated).
(c) ``crackkit``: :func:`crackkit.metrics.tolerance_sweep` on all N maps (median of ``--repeats``).

The baselines dilate each mask once, outside the threshold loop (the original re-dilated inside it
with OpenCV), so their times, and the speedups, are conservative. All three use the same
definition; the mean curves of (a) and (b) are compared with crackkit's on the same images.

Usage: ``.venv/bin/python benchmarks/metrics.py [--n 348] [--height 360] [--width 640] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from crackkit.metrics import cross_footprint, default_thresholds, tolerance_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_line  # noqa: E402


def synthetic_maps(n: int, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Thin random-walk cracks and network-like probabilities.

    Returns:
        probs: (n, height, width) float32 in [0, 1]: mostly near 0, high on and near cracks with a
            strength that varies along them, plus a few false-positive blobs.
        masks: (n, height, width) bool, 1 to 3 px wide cracks; about 10% of images crack-free.
    """
    rng = np.random.default_rng(seed)
    probs = np.empty((n, height, width), dtype=np.float32)
    masks = np.zeros((n, height, width), dtype=bool)
    for i in range(n):
        n_cracks = 0 if rng.random() < 0.1 else int(rng.integers(1, 4))
        for _ in range(n_cracks):
            steps = int(rng.integers(height // 2, 2 * (height + width)))
            angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.15, steps))
            y = rng.uniform(0, height) + np.cumsum(np.sin(angle))
            x = rng.uniform(0, width) + np.cumsum(np.cos(angle))
            keep = (y >= 0) & (y < height) & (x >= 0) & (x < width)
            masks[i, y[keep].astype(int), x[keep].astype(int)] = True
        if rng.random() < 0.5:
            masks[i] = ndimage.binary_dilation(masks[i])
        signal = ndimage.gaussian_filter(masks[i].astype(np.float32), 2.0)
        blobs = (rng.random((height, width)) < 2e-4).astype(np.float32)
        signal += 20 * ndimage.gaussian_filter(blobs, 3.0)
        coarse = rng.uniform(0.0, 1.1, (height // 32 + 2, width // 32 + 2))
        zoom = (height / (coarse.shape[0] - 1), width / (coarse.shape[1] - 1))
        gain = ndimage.zoom(coarse, zoom, order=1)[:height, :width]
        background = 0.35 * rng.random((height, width), dtype=np.float32) ** 41
        probs[i] = np.clip(background + 3 * signal * gain, 0, 1)
    return probs, masks


def _mean_curves(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, gt_pos: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Mean per-image P/R/F1 over crack images, computed as the original did, image by image."""
    curves = []
    for t in range(tp.shape[0]):
        results = []
        for i in np.flatnonzero(gt_pos):
            tp_d, fp_d, fn_i = int(tp[t, i]), int(fp[t, i]), int(fn[t, i])
            pr = tp_d / (tp_d + fp_d) if tp_d else 0
            re = tp_d / (tp_d + fn_i) if tp_d else 0
            f1 = (2 * pr * re) / (pr + re) if pr and re else 0
            results.append((pr, re, f1))
        curves.append(np.mean(np.array(results), axis=0))
    return tuple(np.array(curves).T)


def original_way(
    probs: np.ndarray, masks: np.ndarray, tolerance: int, thresholds: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Loop thresholds, then images; counts by builtin ``sum(sum(...))`` over boolean rows."""
    footprint = cross_footprint(tolerance)
    dilated = [ndimage.binary_dilation(m, structure=footprint) for m in masks]
    gt_pos = np.array([sum(sum(m)) for m in masks])
    n, n_t = len(masks), len(thresholds)
    tp, fp, fn = (np.zeros((n_t, n), dtype=np.int64) for _ in range(3))
    for t, threshold in enumerate(thresholds):
        for i in range(n):
            y_true, y_true_d = masks[i], dilated[i]
            y_pred = probs[i] >= threshold
            tp[t, i] = sum(sum(y_true_d & y_pred))
            fp[t, i] = sum(sum(~y_true_d & y_pred))
            fn[t, i] = sum(sum(y_true & ~y_pred))
    return tp, fp, fn, gt_pos


def numpy_loop(
    probs: np.ndarray, masks: np.ndarray, tolerance: int, thresholds: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Loop thresholds; count over all images at once with ``np.count_nonzero``."""
    footprint = cross_footprint(tolerance)[None]
    dilated = ndimage.binary_dilation(masks, structure=footprint)
    outside = ~dilated
    gt_pos = np.count_nonzero(masks, axis=(1, 2))
    n_t = len(thresholds)
    tp, fp, fn = (np.zeros((n_t, len(masks)), dtype=np.int64) for _ in range(3))
    for t, threshold in enumerate(thresholds):
        pred = probs >= threshold
        tp[t] = np.count_nonzero(pred & dilated, axis=(1, 2))
        fp[t] = np.count_nonzero(pred & outside, axis=(1, 2))
        fn[t] = gt_pos - np.count_nonzero(pred & masks, axis=(1, 2))
    return tp, fp, fn, gt_pos


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def _max_diff(curves: tuple[np.ndarray, ...], sweep) -> float:
    return float(
        max(
            np.abs(curves[0] - sweep.precision).max(),
            np.abs(curves[1] - sweep.recall).max(),
            np.abs(curves[2] - sweep.f1).max(),
        )
    )


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print a table and a final JSON line; return that JSON as a dict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=348)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=int, default=2)
    parser.add_argument("--baseline-images", type=int, default=12)
    parser.add_argument("--numpy-images", type=int, default=None, help="default: all N")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(cpu_line(), flush=True)

    n = args.n
    k_orig = min(args.baseline_images, n)
    k_np = n if args.numpy_images is None else min(args.numpy_images, n)
    thresholds = default_thresholds()
    probs, masks = synthetic_maps(n, args.height, args.width, args.seed)
    above = float(np.mean(probs >= 0.1))
    print(
        f"{n} maps {args.height}x{args.width} float32, {len(thresholds)} thresholds, "
        f"tolerance {args.tolerance}; {above:.1%} of pixels >= 0.1, "
        f"{masks.mean():.2%} crack pixels, {int((masks.sum(axis=(1, 2)) > 0).sum())} crack images"
    )

    times = []
    for _ in range(max(1, args.repeats)):
        seconds, sweep = _timed(tolerance_sweep, probs, masks, args.tolerance, thresholds)
        times.append(seconds)
    t_ck = float(np.median(times))

    t_orig_sub, counts_orig = _timed(
        original_way, probs[:k_orig], masks[:k_orig], args.tolerance, thresholds
    )
    t_np_sub, counts_np = _timed(numpy_loop, probs[:k_np], masks[:k_np], args.tolerance, thresholds)
    t_orig, t_np = t_orig_sub * n / k_orig, t_np_sub * n / k_np

    sweep_orig = tolerance_sweep(probs[:k_orig], masks[:k_orig], args.tolerance, thresholds)
    sweep_np = sweep if k_np == n else tolerance_sweep(probs[:k_np], masks[:k_np], args.tolerance)
    diff_orig = _max_diff(_mean_curves(*counts_orig), sweep_orig)
    diff_np = _max_diff(_mean_curves(*counts_np), sweep_np)
    max_diff = max(diff_orig, diff_np)

    def row(name: str, seconds: float, images: int, note: str) -> str:
        return (
            f"{name:<12} {seconds:>10.2f} {images:>7d} {1000 * seconds / n:>14.2f} "
            f"{seconds / t_ck:>11.1f}x  {note}"
        )

    print(f"{'method':<12} {'seconds':>10} {'images':>7} {'ms per image':>14} {'vs crackkit':>12}")
    print(
        row(
            "original",
            t_orig,
            k_orig,
            f"timed {t_orig_sub:.2f} s on {k_orig} images, extrapolated to {n}",
        )
    )
    note_np = "" if k_np == n else f"timed {t_np_sub:.2f} s on {k_np} images, extrapolated to {n}"
    print(row("numpy loop", t_np, k_np, note_np))
    print(row("crackkit", t_ck, n, f"median of {len(times)} runs"))
    print(
        f"max |difference| of mean P/R/F1 curves: original vs crackkit {diff_orig:.3g} "
        f"({k_orig} images), numpy loop vs crackkit {diff_np:.3g} ({k_np} images)"
    )
    print(
        f"best: F1 {sweep.best_f1:.4f} (P {sweep.best_precision:.4f}, R {sweep.best_recall:.4f}) "
        f"at threshold {sweep.best_threshold}"
    )
    result = {
        "speedup_vs_original": round(t_orig / t_ck, 1),
        "speedup_vs_numpy_loop": round(t_np / t_ck, 1),
        "max_abs_diff": max_diff,
        "crackkit_seconds": round(t_ck, 4),
        "original_seconds_extrapolated": round(t_orig, 2),
        "original_images_timed": k_orig,
        "numpy_loop_seconds": round(t_np, 2),
        "numpy_loop_images_timed": k_np,
        "n": n,
        "height": args.height,
        "width": args.width,
        "thresholds": len(thresholds),
        "tolerance": args.tolerance,
        "seed": args.seed,
        "fraction_above_0.1": round(above, 4),
        "best_f1": sweep.best_f1,
        "best_threshold": sweep.best_threshold,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
