"""Time of a full evaluation pass (inference and every metric): crackkit against the original way.

A folder of generated 640x360 JPEG crops with PNG masks (``--n``, 348 by default, or the
``--infer-images`` ones) is read through a :class:`crackkit.data.dataset.CrackDataset`. The model
(:func:`crackkit.model.build_model`, ``--arch``) is randomly initialised (weights do not change
the time of inference), but the bias of its last segmentation layer is shifted so that about
``--above`` (5%) of the pixels of the first image get a probability of at least 0.1, as a trained
network's sparse maps would: the cost of crackkit's counting grows with the number of such pixels
(the original sweep's cost does not depend on the values). Both methods evaluate the same network.

(a) ``crackkit``: exactly what :func:`crackkit.pipeline.evaluate_run` runs, i.e.
    :func:`crackkit.evaluate.evaluate`, which is :func:`~crackkit.evaluate.predict` followed by
    :func:`~crackkit.evaluate.compute_metrics`, with evaluate_run's arguments: batches of
    ``eval_batch_size`` (4) decoded from disk, bf16 autocast when
    :func:`crackkit.runtime.resolve_amp` chooses it, channels-last as ``configure_speed(...,
    inference=True)`` and the 15x15 convolution by tiled FFT as
    :func:`crackkit.runtime.resolve_fft_conv` choose, ``inference_mode``, validation losses, each
    batch's maps counted at every threshold of ``count_grid`` at the masks' native size (360
    thresholds: the 180 of the sweep and each one's ``nextafter``) and dropped, the gallery's
    maps kept; then every metric from the counts (decision metrics, 2-pixel and plain sweeps,
    Dice/IoU, ODS/OIS, the original's all-image mean, headline values at validation thresholds,
    1,000-resample bootstrap intervals). The validation thresholds are fixed values of the sweep
    grid (decision 0.5, pixel metrics 0.5), as a validated checkpoint's pixel thresholds are
    grid values: the counted grid is the real one. The benchmark calls those two functions
    itself, with the arguments ``evaluate`` gives them: ``predict`` on a ``Subset`` of one batch
    at a time, so that its blocks alternate with the baseline's, and ``compute_metrics`` once on
    all the blocks' predictions, concatenated (median of ``--repeats``). ``--check`` also runs
    ``evaluate`` itself once on the same images (untimed) and compares its metrics with the
    block-wise ones.
(b) ``original``: batch 1, float32, direct convolutions, autograd recording (the original's
    ``eval_model`` has no ``torch.no_grad``), images preloaded as float32 tensors (loading not
    timed), a ``segdecnet`` output upsampled nearest x8
    (:func:`crackkit.inference.full_resolution`),
    each image's probability map and score moved to the host one by one; then the 2-pixel sweep
    the original way (per threshold, per image, counts by builtin ``sum(sum(...))`` over rows,
    then per-image P/R/F1 in Python: ``original_way`` and ``_mean_curves`` of
    ``benchmarks/metrics.py``) on the first ``--baseline-images`` maps, extrapolated linearly to
    N, and scikit-learn's decision metrics. It computes no validation loss and no
    plain/Dice/IoU/ODS/OIS sweeps or bootstrap, so its time is an underestimate.
    Its network is crackkit's modules with direct convolutions; by default they keep crackkit's
    kernels for FeatureNorm and the transposed convolutions' bias, which are faster than the
    original code's calls, so the speedup printed is the smaller one. ``--original-calls`` gives
    the original side the original's calls (``benchmarks/_common.original_side``).

How crackkit's time is split. ``predict`` now counts each batch's pixels itself, between
batches, so its time holds both inference and counting. The benchmark measures the counting
inside the timed ``predict`` calls: while they run, ``crackkit.metrics.count_stats`` (the function
``predict`` counts with, once per batch) is wrapped by a clock that sums the time of each of its
calls, on the very maps ``predict`` made (two ``perf_counter`` calls per batch; nothing is
counted twice, nothing more is kept). Then

- crackkit inference = time of ``predict`` minus its counting (decoding images and masks from
  disk, forward, sigmoid, resizing to the native size (none here: crops are made at the input
  size), losses, moving maps to the host);
- crackkit metrics = that counting + ``compute_metrics`` (the same split as before the counting
  moved into ``predict``: every metric, counting included, against the original's sweep);
- total = ``predict`` + ``compute_metrics``, exactly an ``evaluate`` call.

The table and the JSON also give ``predict`` (inference + counting) and ``compute_metrics`` on
their own.

Inference at 360x640 is slow on a CPU, so ``--infer-images K`` runs ``predict`` (and the baseline's
inference) on the first K images only and extrapolates their time, the in-predict counting
included, linearly to N; ``compute_metrics`` still runs on N images, the K images' counts,
scores and labels repeated cyclically. The table says when this happens.

Usage: ``.venv/bin/python benchmarks/evaluate.py [--n 348] [--infer-images K] [--height 360]
[--width 640] [--arch ARCH] [--dir DIR] [--check]``
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import (
    add_original_calls,
    cpu_line,
    load_average,
    machine_line,
    make_crack_folder,
    original_side,
    speed_switches,
)
from sklearn.metrics import auc, precision_recall_curve, roc_auc_score
from torch.utils.data import Subset

import crackkit.metrics as M
from crackkit.config import RunConfig
from crackkit.data.dataset import CrackDataset
from crackkit.data.folder import scan_split
from crackkit.evaluate import Predictions, compute_metrics, count_grid, count_split, evaluate
from crackkit.inference import full_resolution
from crackkit.metrics import Counts, default_thresholds
from crackkit.model import build_model, segmentation_bias
from crackkit.pipeline import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, _gallery_picks
from crackkit.runtime import model_for, resolve_device
from crackkit.specs import ARCHITECTURES

#: The validation thresholds handed to crackkit, as a validated checkpoint records them (the
#: pixel ones on the sweep grid, so the counted grid is the sweep's).
VAL_THRESHOLDS = {"decision": 0.5, "pixel_2px": 0.5, "dice": 0.5, "iou": 0.5}
N_GALLERY = 6  # evaluate_run's default


def _metrics_benchmark():
    """``benchmarks/metrics.py`` as a module (it holds the original sweep)."""
    path = Path(__file__).with_name("metrics.py")
    spec = importlib.util.spec_from_file_location("crackkit_benchmark_metrics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@torch.no_grad()
def calibrate_sparsity(model: torch.nn.Module, image: torch.Tensor, above: float) -> float:
    """Shift the last segmentation bias so that a fraction ``above`` of ``image``'s pixels have a
    probability >= 0.1 (float32); returns the shift."""
    model.eval()
    _, seg = model(image[None])
    seg = full_resolution(seg.float(), tuple(image.shape[-2:]))
    q = torch.quantile(seg.flatten(), 1.0 - above).item()
    shift = math.log(0.1 / 0.9) - q
    segmentation_bias(model).add_(shift)
    return shift


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class CountingClock:
    """Sums the time of the ``crackkit.metrics.count_stats`` calls made while :meth:`active`.

    :func:`crackkit.evaluate.predict` counts each batch with ``crackkit.metrics.count_stats``,
    looked up on the module at call time, so wrapping it there times exactly those calls.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    @contextlib.contextmanager
    def active(self) -> Iterator[CountingClock]:
        original = M.count_stats

        def timed_count_stats(*args: Any, **kwargs: Any) -> Counts:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        M.count_stats = timed_count_stats
        try:
            yield self
        finally:
            M.count_stats = original


def _take_counts(counts: Counts, rows: np.ndarray) -> Counts:
    """The counts of the images ``rows`` (indices, repeats allowed)."""
    return Counts(
        thresholds=counts.thresholds,
        tolerance=counts.tolerance,
        tp=counts.tp[rows],
        fp=counts.fp[rows],
        fn=counts.fn[rows],
        tp_plain=counts.tp_plain[rows],
        pred_pos=counts.pred_pos[rows],
        gt_pos=counts.gt_pos[rows],
    )


def _merge(parts: list[Predictions], starts: list[int], n: int) -> Predictions:
    """Concatenate block predictions (block ``b`` starting at image ``starts[b]``) and repeat
    them cyclically up to ``n`` images."""
    k = sum(len(p.labels) for p in parts)
    take = np.arange(n) % k

    def cat(name: str) -> np.ndarray:
        return np.take(np.concatenate([getattr(p, name) for p in parts]), take, axis=0)

    losses = {key: sum(p.losses[key] * len(p.labels) for p in parts) / k for key in parts[0].losses}
    sizes = [s for p in parts for s in p.sizes]
    kept = {start + j: v for p, start in zip(parts, starts, strict=True) for j, v in p.kept.items()}
    return Predictions(
        scores=cat("scores"),
        labels=cat("labels"),
        losses=losses,
        counts=_take_counts(Counts.concatenate([p.counts for p in parts]), take),
        sweep=parts[0].sweep,
        sizes=[sizes[i] for i in take],
        input_size=parts[0].input_size,
        output_stride=parts[0].output_stride,
        kept=kept,
    )


def _max_difference(a: Any, b: Any, path: str = "") -> tuple[float, str]:
    """Largest absolute difference between the numbers of two JSON-like trees (inf where their
    structure or non-numeric values differ), with where it is."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf, f"{path} (keys)"
        found = [_max_difference(a[key], b[key], f"{path}.{key}") for key in a]
        return max(found, default=(0.0, path))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return math.inf, f"{path} (length)"
        found = [
            _max_difference(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True))
        ]
        return max(found, default=(0.0, path))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        if math.isnan(a) and math.isnan(b):
            return 0.0, path
        return abs(float(a) - float(b)), path
    return (0.0, path) if a == b else (math.inf, path)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print a table and a final JSON line; return that JSON as a dict."""
    defaults = RunConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=348)
    parser.add_argument("--infer-images", type=int, default=None, help="default: all N")
    parser.add_argument("--height", type=int, default=360, help="multiple of 8, >= 64")
    parser.add_argument("--width", type=int, default=640, help="multiple of 8, >= 128")
    parser.add_argument("--arch", default=defaults.architecture, choices=ARCHITECTURES)
    parser.add_argument("--batch-size", type=int, default=defaults.eval_batch_size)
    parser.add_argument("--amp", default=defaults.amp, choices=("auto", "off", "bf16"))
    parser.add_argument("--fft-conv", default=defaults.fft_conv, choices=("auto", "on", "off"))
    parser.add_argument("--tolerance", type=int, default=defaults.tolerance)
    parser.add_argument("--above", type=float, default=0.05)
    parser.add_argument("--baseline-images", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3, help="runs of compute_metrics")
    parser.add_argument("--dir", type=Path, default=None, help="folder to generate into / reuse")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--check",
        action="store_true",
        help="also run crackkit.evaluate.evaluate once (untimed) and compare its metrics",
    )
    add_original_calls(parser)
    args = parser.parse_args(argv)
    print(cpu_line(), flush=True)

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
        original_side(base_model, args.original_calls)  # direct convolutions
        # crackkit's model exactly as evaluation builds it (crackkit.runtime.model_for)
        ck_model, placement = model_for(cfg, device, inference=True, model=net)
        amp_dtype, channels_last = placement.amp_dtype, placement.channels_last
        batch = placement.eval_batch_size
        switches = speed_switches("inference")
        fft = any(getattr(m, "fft", False) for m in ck_model.modules())

        # What crackkit.evaluate.evaluate passes to predict and compute_metrics, with
        # evaluate_run's arguments (crackkit.pipeline._evaluate_split).
        sweep = default_thresholds()
        extra = [v for key, v in VAL_THRESHOLDS.items() if key != "decision"]
        grid = count_grid(extra, sweep=sweep)
        gallery = set(_gallery_picks(dataset.labels[:k_inf], N_GALLERY))
        predict_kwargs = {
            "batch_size": batch,
            "amp_dtype": amp_dtype,
            "channels_last": channels_last,
            "num_workers": cfg.num_workers,
        }
        metric_kwargs = {
            "val_thresholds": VAL_THRESHOLDS,
            "seg_black": cfg.seg_black,
            "bootstrap": BOOTSTRAP_RESAMPLES,
            "bootstrap_seed": BOOTSTRAP_SEED,
        }
        clock = CountingClock()

        def crackkit_block(idx: list[int]) -> Predictions:
            return count_split(
                ck_model,
                Subset(dataset, idx),
                device,
                tolerance=cfg.tolerance,
                thresholds=grid,
                sweep=sweep,
                keep=[j for j, i in enumerate(idx) if i in gallery],
                **predict_kwargs,
            )

        def crackkit_metrics(pred: Predictions) -> dict[str, Any]:
            metrics = compute_metrics(pred, **metric_kwargs)  # as evaluate() does after predict
            metrics["loss_seg"] = pred.losses["loss_seg"]
            metrics["loss_dec"] = pred.losses["loss_dec"]
            return metrics

        def original_block(idx: list[int]) -> tuple[list[np.ndarray], list[float]]:
            # Autograd records, as in the original's eval_model (no torch.no_grad there).
            probs, scores = [], []
            for i in idx:
                x = pre_images[i : i + 1].to(device)
                dec, seg = base_model(x)
                prob = torch.sigmoid(full_resolution(seg, (cfg.input_height, cfg.input_width)))
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
            f"crackkit (predict + compute_metrics, as evaluate_run): batch {batch}, "
            f"autocast {amp_dtype or 'off (float32)'}, channels_last {channels_last}, 15x15 conv "
            f"by FFT {fft}, images decoded from disk, {grid.size} thresholds counted per batch, "
            f"bootstrap {BOOTSTRAP_RESAMPLES}; original: batch 1, float32, direct convolutions, "
            f"autograd recording, preloaded float32 images, "
            f"{'the original calls' if args.original_calls else 'crackkit kernels'}; "
            f"last seg bias shifted by "
            f"{shift:+.2f} so {args.above:.0%} of pixels of image 0 are >= 0.1"
        )
        timed(crackkit_block, [0])
        timed(original_block, [0])

        blocks = [list(range(s, min(k_inf, s + batch))) for s in range(0, k_inf, batch)]
        ck_parts: list[Predictions] = []
        ck_predict = base_inf = 0.0
        base_probs: list[np.ndarray] = []
        base_scores: list[float] = []
        print(
            f"{'block':>5} {'images':>7} {'crackkit s':>11} {'of it count':>12} "
            f"{'original s':>11} {'load 1m':>8}"
        )
        for b, idx in enumerate(blocks):
            order = ("crackkit", "original") if b % 2 == 0 else ("original", "crackkit")
            secs = {}
            counting_before = clock.seconds
            for name in order:
                if name == "crackkit":
                    with clock.active():
                        secs[name], part = timed(crackkit_block, idx)
                    ck_parts.append(part)
                else:
                    secs[name], (probs, scores) = timed(original_block, idx)
                    base_probs += probs
                    base_scores += scores
            ck_predict += secs["crackkit"]
            base_inf += secs["original"]
            print(
                f"{b + 1:>5} {len(idx):>7} {secs['crackkit']:>11.2f} "
                f"{clock.seconds - counting_before:>12.3f} {secs['original']:>11.2f} "
                f"{load_average()[0]:>8.2f}",
                flush=True,
            )
        if clock.calls != len(blocks):
            raise RuntimeError(
                f"predict made {clock.calls} count_stats calls for {len(blocks)} batches: it no "
                "longer counts through crackkit.metrics.count_stats, so the split between "
                "inference and counting is wrong; update this benchmark"
            )
        scale_inf = n / k_inf
        ck_predict_n = ck_predict * scale_inf
        ck_count_n = clock.seconds * scale_inf
        ck_inf_n = ck_predict_n - ck_count_n
        base_inf_n = base_inf * scale_inf

        pred = _merge(ck_parts, [idx[0] for idx in blocks], n)
        metric_times = []
        for _ in range(max(1, args.repeats)):
            seconds, metrics = timed(crackkit_metrics, pred)
            metric_times.append(seconds)
        ck_compute = statistics.median(metric_times)

        check = None
        if args.check:  # evaluate() itself on the K images against the block-wise path
            reference, _ = evaluate(
                ck_model,
                dataset,
                device,
                tolerance=cfg.tolerance,
                keep=sorted(gallery),
                sweep=sweep,
                **metric_kwargs,
                **predict_kwargs,
            )
            blockwise = crackkit_metrics(_merge(ck_parts, [idx[0] for idx in blocks], k_inf))
            check = _max_difference(reference, blockwise)

        bench = _metrics_benchmark()
        k_sweep = min(args.baseline_images, k_inf, n)
        probs_b = np.stack(base_probs[:k_sweep])
        masks_b = gt_masks[:k_sweep]

        def original_sweep():
            counts = bench.original_way(probs_b, masks_b, cfg.tolerance, sweep)
            return bench._mean_curves(*counts)

        sweep_sub, _ = timed(original_sweep)
        sweep_n = sweep_sub * n / k_sweep
        labels_n = np.take(pred.labels, np.arange(n) % k_inf)
        scores_n = np.take(np.asarray(base_scores), np.arange(n) % k_inf)

        def original_decision():
            p, r, _ = precision_recall_curve(labels_n, scores_n)
            return auc(r, p), roc_auc_score(labels_n, scores_n)

        dec_s, _ = timed(original_decision)
        counts_k = pred.counts
        pixels_k = sum(h * w for h, w in pred.sizes[:k_inf])
        above_ck = float(counts_k.pred_pos[:k_inf, counts_k.column(0.1)].sum() / pixels_k)
        above_base = float(np.mean(np.stack(base_probs) >= 0.1))

        ck_metrics = ck_count_n + ck_compute
        ck_total = ck_predict_n + ck_compute
        base_metrics = sweep_n + dec_s
        base_total = base_inf_n + base_metrics
        inf_note = "" if k_inf == n else f"timed on {k_inf} images, extrapolated to {n}"
        print()
        print(f"{'phase':<26} {'original s':>11} {'crackkit s':>11} {'speedup':>8}  note")
        print(
            f"{'inference':<26} {base_inf_n:>11.1f} {ck_inf_n:>11.1f} "
            f"{base_inf_n / ck_inf_n:>7.2f}x  crackkit: predict minus its counting; {inf_note}"
        )
        print(
            f"{'metrics':<26} {base_metrics:>11.1f} {ck_metrics:>11.2f} "
            f"{base_metrics / ck_metrics:>7.1f}x  original: 2-px sweep timed {sweep_sub:.2f} s on "
            f"{k_sweep} maps, extrapolated to {n}, + decision {dec_s:.3f} s; crackkit: counting "
            f"in predict {ck_count_n:.2f} s + compute_metrics {ck_compute:.3f} s (every metric on "
            f"{n} images, median of {len(metric_times)})"
        )
        print(f"{'total':<26} {base_total:>11.1f} {ck_total:>11.1f} {base_total / ck_total:>7.2f}x")
        print(
            f"{'  crackkit predict':<26} {'':>11} {ck_predict_n:>11.1f} {'':>8}  inference + "
            f"counting, as timed{'' if k_inf == n else ' (extrapolated)'}"
        )
        print(f"{'  crackkit compute_metrics':<26} {'':>11} {ck_compute:>11.3f}")
        print(
            f"pixels >= 0.1: crackkit ({amp_dtype or 'float32'}) {above_ck:.2%}, original "
            f"(float32) {above_base:.2%}; crackkit's counting time grows with this fraction, the "
            "original's sweep time does not"
        )
        if check is not None:
            found = (
                "identical metrics"
                if check[0] == 0
                else f"largest difference {check[0]:.3g} at {check[1] or 'root'}"
            )
            print(
                f"check: evaluate() on the {k_inf} images against the block-wise predict + "
                f"compute_metrics: {found}"
            )
        print(
            f"2-px F1 {metrics['pixel_2px']['f1']:.4f} at {metrics['pixel_2px']['threshold']} "
            f"({metrics['pixel_2px']['threshold_source']}); "
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
            "crackkit_predict_seconds": round(ck_predict_n, 2),
            "crackkit_counting_seconds": round(ck_count_n, 3),
            "crackkit_compute_metrics_seconds": round(ck_compute, 3),
            "original_metrics_seconds_extrapolated": round(base_metrics, 2),
            "original_sweep_images_timed": k_sweep,
            "inference_images_timed": k_inf,
            "n": n,
            "height": args.height,
            "width": args.width,
            "arch": args.arch,
            "device": device.type,
            "eval_batch_size": batch,
            "speed_switches": switches,
            "original_calls": args.original_calls,
            "thresholds_counted": int(grid.size),
            "bootstrap": BOOTSTRAP_RESAMPLES,
            "fft_conv": fft,
            "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
            "fraction_above_0.1": round(above_ck, 4),
            "original_fraction_above_0.1": round(above_base, 4),
            "check_max_difference": None if check is None else check[0],
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
