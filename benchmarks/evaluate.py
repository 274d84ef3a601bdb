"""Time of a full evaluation pass (inference and every metric): crackkit against the original way.

A folder of generated 640x360 JPEG crops with PNG masks (``--n``, 348 by default, or the
``--infer-images`` ones) is read through a :class:`crackkit.data.dataset.CrackDataset`. The model
is randomly initialised (weights do not change the time of inference), but the bias of its last
segmentation layer is shifted so that about ``--above`` (5%) of the pixels of the first image get
a probability of at least 0.1, as a trained network's sparse maps would: the cost of crackkit's
metrics grows with the number of such pixels (the original sweep's cost does not depend on the
values). Both methods evaluate the same network.

(a) ``crackkit``: :func:`crackkit.evaluate.evaluate` is :func:`~crackkit.evaluate.predict`
    (batches of ``eval_batch_size`` (4) decoded from disk, bf16 autocast when
    :func:`crackkit.runtime.resolve_amp` chooses it, the 15x15 convolution by tiled FFT when
    :func:`crackkit.runtime.resolve_fft_conv` does, ``inference_mode``, validation losses) followed
    by :func:`~crackkit.evaluate.compute_metrics` (decision metrics, 2-pixel and plain sweeps,
    Dice/IoU, ODS/OIS). The benchmark calls those two functions itself: ``predict`` on one
    ``Subset`` of one batch at a time, so that its blocks alternate with the baseline's, and
    ``compute_metrics`` once on all predictions (median of ``--repeats``).
(b) ``original``: batch 1, float32, direct convolutions, autograd recording (the original's
    ``eval_model`` has no ``torch.no_grad``), images preloaded as float32 tensors (loading not
    timed), each image's probability map and score moved to the host one by one;
    then the 2-pixel sweep the original way (per threshold, per image, counts by builtin
    ``sum(sum(...))`` over rows, then per-image P/R/F1 in Python: ``original_way`` and
    ``_mean_curves`` of ``benchmarks/metrics.py``) on the first ``--baseline-images`` maps,
    extrapolated linearly to N, and scikit-learn's decision metrics. It computes no validation
    loss and no plain/Dice/IoU/ODS/OIS sweeps, so its time is an underestimate.

Inference at 360x640 is slow on a CPU, so ``--infer-images K`` times the inference of the first
K images only (both methods alike) and extrapolates it linearly to N; the metrics still run on N
maps, the K predicted maps repeated cyclically. The table says when this happens.

Usage: ``.venv/bin/python benchmarks/evaluate.py [--n 348] [--infer-images K] [--height 360]
[--width 640] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import load_average, machine_line, make_crack_folder
from sklearn.metrics import auc, precision_recall_curve, roc_auc_score
from torch.utils.data import Subset

from crackkit.config import RunConfig
from crackkit.data.dataset import CrackDataset
from crackkit.data.folder import scan_split
from crackkit.evaluate import Predictions, compute_metrics, full_resolution, predict
from crackkit.fftconv import set_fft_conv
from crackkit.metrics import count_stats, default_thresholds
from crackkit.model import ARCHITECTURES, build_model
from crackkit.runtime import configure_speed, resolve_device, resolve_fft_conv


def _metrics_benchmark():
    """``benchmarks/metrics.py`` as a module (it holds the original sweep)."""
    path = Path(__file__).with_name("metrics.py")
    spec = importlib.util.spec_from_file_location("crackkit_benchmark_metrics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seg_bias(model: torch.nn.Module) -> torch.nn.Parameter:
    """The bias added last to the segmentation logits."""
    if hasattr(model, "seg_out"):
        return model.seg_out.bias
    return model.seg_head[-1].bias


@torch.no_grad()
def calibrate_sparsity(model: torch.nn.Module, image: torch.Tensor, above: float) -> float:
    """Shift the last segmentation bias so that a fraction ``above`` of ``image``'s pixels have a
    probability >= 0.1 (float32); returns the shift."""
    model.eval()
    _, seg = model(image[None])
    seg = full_resolution(seg.float(), tuple(image.shape[-2:]))
    q = torch.quantile(seg.flatten(), 1.0 - above).item()
    shift = math.log(0.1 / 0.9) - q
    _seg_bias(model).add_(shift)
    return shift


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _merge(parts: list[Predictions], n: int) -> Predictions:
    """Concatenate block predictions and repeat them cyclically up to ``n`` images."""
    k = sum(len(p.labels) for p in parts)
    take = np.arange(n) % k

    def cat(name: str) -> np.ndarray:
        return np.take(np.concatenate([getattr(p, name) for p in parts]), take, axis=0)

    losses = {key: sum(p.losses[key] * len(p.labels) for p in parts) / k for key in parts[0].losses}
    return Predictions(cat("probs"), cat("masks"), cat("scores"), cat("labels"), losses)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print a table and a final JSON line; return that JSON as a dict."""
    defaults = RunConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=348)
    parser.add_argument("--infer-images", type=int, default=None, help="default: all N")
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--arch", default=defaults.architecture, choices=ARCHITECTURES)
    parser.add_argument("--batch-size", type=int, default=defaults.eval_batch_size)
    parser.add_argument("--amp", default=defaults.amp, choices=("auto", "off", "bf16"))
    parser.add_argument("--fft-conv", default=defaults.fft_conv, choices=("auto", "on", "off"))
    parser.add_argument("--tolerance", type=int, default=defaults.tolerance)
    parser.add_argument("--above", type=float, default=0.05)
    parser.add_argument("--baseline-images", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3, help="runs of crackkit's metrics")
    parser.add_argument("--dir", type=Path, default=None, help="folder to generate into / reuse")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    load_start = load_average()
    n = args.n
    k_inf = n if args.infer_images is None else max(1, min(args.infer_images, n))
    temp = None
    folder = args.dir
    if folder is None:
        temp = tempfile.mkdtemp(prefix="crackkit-evaluate-")
        folder = Path(temp)
    try:
        make_crack_folder(folder, k_inf, args.height, args.width, split="test", seed=args.seed)
        cfg = RunConfig(
            dataset=str(folder),
            input_height=args.height,
            input_width=args.width,
            architecture=args.arch,
            amp=args.amp,
            fft_conv=args.fft_conv,
            eval_batch_size=args.batch_size,
            tolerance=args.tolerance,
        )
        device = resolve_device(cfg)
        amp_dtype, channels_last = configure_speed(cfg, device, inference=True)
        dataset = CrackDataset(scan_split(folder, "test"), cfg, train=False)
        reads = [dataset.read(i) for i in range(k_inf)]
        pre_images = torch.stack(
            [torch.from_numpy(img.transpose(2, 0, 1).copy()).float().div(255.0) for img, _ in reads]
        )
        gt_masks = np.stack([m for _, m in reads])

        torch.manual_seed(args.seed)
        net = build_model(cfg.architecture, cfg.input_channels, cfg.input_height, cfg.input_width)
        shift = calibrate_sparsity(net, pre_images[0], args.above)
        base_model = copy.deepcopy(net).to(device).eval()
        set_fft_conv(base_model, False)  # the original's direct convolution
        ck_model = net.to(device)
        fft = resolve_fft_conv(cfg, device)
        set_fft_conv(ck_model, fft)
        if channels_last:
            ck_model = ck_model.to(memory_format=torch.channels_last)

        def crackkit_block(idx: list[int]) -> Predictions:
            return predict(
                ck_model,
                Subset(dataset, idx),
                device,
                batch_size=cfg.eval_batch_size,
                amp_dtype=amp_dtype,
                channels_last=channels_last,
                num_workers=cfg.num_workers,
            )

        def original_block(idx: list[int]) -> tuple[list[np.ndarray], list[float]]:
            # Autograd records, as in the original's eval_model (no torch.no_grad there).
            probs, scores = [], []
            for i in idx:
                x = pre_images[i : i + 1].to(device)
                dec, seg = base_model(x)
                prob = torch.sigmoid(full_resolution(seg, (args.height, args.width)))
                probs.append(prob[0, 0].detach().cpu().numpy())
                scores.append(torch.sigmoid(dec).item())
            return probs, scores

        def timed(fn, *fn_args):
            _sync(device)
            t0 = time.perf_counter()
            out = fn(*fn_args)
            _sync(device)
            return time.perf_counter() - t0, out

        print(
            f"evaluation pass, {args.arch} at 3x{args.height}x{args.width}, N={n} on "
            f"{device.type}; " + machine_line()
        )
        print(
            f"crackkit: batch {cfg.eval_batch_size}, autocast {amp_dtype or 'off (float32)'}, "
            f"channels_last {channels_last}, 15x15 conv by FFT {fft}, images decoded from disk; "
            f"original: batch 1, float32, direct convolutions, autograd recording, preloaded "
            f"float32 images; "
            f"last seg bias shifted by {shift:+.2f} so "
            f"{args.above:.0%} of pixels of image 0 are >= 0.1"
        )
        timed(crackkit_block, [0])
        timed(original_block, [0])

        blocks = [
            list(range(s, min(k_inf, s + cfg.eval_batch_size)))
            for s in range(0, k_inf, cfg.eval_batch_size)
        ]
        ck_parts: list[Predictions] = []
        ck_inf = base_inf = 0.0
        base_probs: list[np.ndarray] = []
        base_scores: list[float] = []
        print(f"{'block':>5} {'images':>7} {'crackkit s':>11} {'original s':>11} {'load 1m':>8}")
        for b, idx in enumerate(blocks):
            order = ("crackkit", "original") if b % 2 == 0 else ("original", "crackkit")
            secs = {}
            for name in order:
                if name == "crackkit":
                    secs[name], part = timed(crackkit_block, idx)
                    ck_parts.append(part)
                else:
                    secs[name], (probs, scores) = timed(original_block, idx)
                    base_probs += probs
                    base_scores += scores
            ck_inf += secs["crackkit"]
            base_inf += secs["original"]
            print(
                f"{b + 1:>5} {len(idx):>7} {secs['crackkit']:>11.2f} {secs['original']:>11.2f} "
                f"{load_average()[0]:>8.2f}",
                flush=True,
            )
        scale_inf = n / k_inf
        ck_inf_n, base_inf_n = ck_inf * scale_inf, base_inf * scale_inf

        pred = _merge(ck_parts, n)
        metric_times = []
        for _ in range(max(1, args.repeats)):
            seconds, metrics = timed(lambda: compute_metrics(pred, tolerance=cfg.tolerance))
            metric_times.append(seconds)
        ck_metrics = statistics.median(metric_times)
        one_pass, _ = timed(lambda: count_stats(pred.probs, pred.masks, cfg.tolerance))

        bench = _metrics_benchmark()
        k_sweep = min(args.baseline_images, k_inf, n)
        probs_b = np.stack(base_probs[:k_sweep])
        masks_b = gt_masks[:k_sweep]
        thresholds = default_thresholds()

        def original_sweep():
            counts = bench.original_way(probs_b, masks_b, cfg.tolerance, thresholds)
            return bench._mean_curves(*counts)

        sweep_sub, _ = timed(original_sweep)
        sweep_n = sweep_sub * n / k_sweep
        labels_n = np.take(pred.labels, np.arange(n) % k_inf)
        scores_n = np.take(np.asarray(base_scores), np.arange(n) % k_inf)

        def original_decision():
            p, r, _ = precision_recall_curve(labels_n, scores_n)
            return auc(r, p), roc_auc_score(labels_n, scores_n)

        dec_s, _ = timed(original_decision)
        above_ck = float(np.mean(pred.probs[:k_inf] >= 0.1))
        above_base = float(np.mean(np.stack(base_probs) >= 0.1))

        ck_total = ck_inf_n + ck_metrics
        base_metrics = sweep_n + dec_s
        base_total = base_inf_n + base_metrics
        inf_note = "" if k_inf == n else f"timed on {k_inf} images, extrapolated to {n}"
        print()
        print(f"{'phase':<22} {'original s':>11} {'crackkit s':>11} {'speedup':>8}  note")
        print(
            f"{'inference':<22} {base_inf_n:>11.1f} {ck_inf_n:>11.1f} "
            f"{base_inf_n / ck_inf_n:>7.2f}x  {inf_note}"
        )
        print(
            f"{'metrics':<22} {base_metrics:>11.1f} {ck_metrics:>11.2f} "
            f"{base_metrics / ck_metrics:>7.1f}x  original: 2-px sweep timed {sweep_sub:.2f} s on "
            f"{k_sweep} maps, extrapolated to {n}, + decision {dec_s:.3f} s; crackkit: every "
            f"metric on {n} maps, median of {len(metric_times)}"
        )
        print(f"{'total':<22} {base_total:>11.1f} {ck_total:>11.1f} {base_total / ck_total:>7.2f}x")
        print(
            f"pixels >= 0.1: crackkit (bf16) {above_ck:.2%}, original (float32) {above_base:.2%}"
            f"; crackkit's metric time grows with this fraction, the original's does not. "
            f"one count_stats pass: {one_pass:.2f} s (compute_metrics makes 4)"
        )
        print(
            f"2-px F1 {metrics['pixel_2px']['f1']:.4f} at {metrics['pixel_2px']['threshold']}; "
            f"total run {time.perf_counter() - started:.0f} s"
        )
        result = {
            "speedup": round(base_total / ck_total, 3),
            "inference_speedup": round(base_inf_n / ck_inf_n, 3),
            "metrics_speedup": round(base_metrics / ck_metrics, 1),
            "crackkit_seconds": round(ck_total, 2),
            "original_seconds": round(base_total, 2),
            "crackkit_inference_seconds": round(ck_inf_n, 2),
            "original_inference_seconds": round(base_inf_n, 2),
            "crackkit_metrics_seconds": round(ck_metrics, 3),
            "crackkit_count_stats_seconds": round(one_pass, 3),
            "original_metrics_seconds_extrapolated": round(base_metrics, 2),
            "original_sweep_images_timed": k_sweep,
            "inference_images_timed": k_inf,
            "n": n,
            "height": args.height,
            "width": args.width,
            "arch": args.arch,
            "device": device.type,
            "eval_batch_size": cfg.eval_batch_size,
            "fft_conv": fft,
            "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
            "fraction_above_0.1": round(above_ck, 4),
            "original_fraction_above_0.1": round(above_base, 4),
            "torch_threads": torch.get_num_threads(),
            "total_seconds": round(time.perf_counter() - started, 1),
            "load_start": load_start,
            "load_end": load_average(),
        }
        print(json.dumps(result))
        return result
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
