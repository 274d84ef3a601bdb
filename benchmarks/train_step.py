"""Training throughput (images/s): crackkit's default training step against the original way.

(a) ``crackkit``: :func:`crackkit.train.train_one_epoch` itself, over a ``DataLoader`` of an
    in-memory dataset that serves ``uint8`` images (converted to float on the device), batch
    ``--batch-size`` (``RunConfig``'s default 4), bf16 autocast when
    :func:`crackkit.runtime.resolve_amp` chooses it for the default config, channels-last when
    :func:`crackkit.runtime.resolve_channels_last` does, losses kept on the device and read once
    per call, and the 15x15 convolution by tiled FFT when :func:`crackkit.runtime.resolve_fft_conv`
    chooses it (``--fft-conv``; see :mod:`crackkit.fftconv`).
(b) ``original``: the SegDecNet way: batch 1, float32, direct convolutions, images preloaded as
    float32 tensors and a host sync (``loss.item()``) after every step.
    Its network is crackkit's modules with direct convolutions; by default they keep crackkit's
    kernels for FeatureNorm and the transposed convolutions' bias, which are faster than the
    original code's calls, so the speedup printed is the smaller one. ``--original-calls`` gives
    the original side the original's calls (``benchmarks/_common.original_side``).

Both train the same architecture from the same initial weights (two copies, each with its own
optimizer built by :func:`crackkit.train.build_optimizer`) with the same losses
(:mod:`crackkit.losses`, mid-training loss weights) in the same process. After a warm-up step each,
timed blocks of ``--block-images`` images alternate, A B B A A B ..., so drift in machine load hits
both alike; each method's figure is the median over its blocks. On CUDA the device is synchronised
at block ends and the time of one CRACK500 training epoch (3,307 crops) is projected.

Usage: ``.venv/bin/python benchmarks/train_step.py [--height 360] [--width 640] [--rounds 3]
[--seconds 300] [--batch-size 4] [--arch segdecnet++] [--compile]``; ``--height 96 --width 160``
is a quick check. ``--compile`` runs crackkit's model through ``torch.compile`` (not what
training does): the warm-up then holds the compilation, printed on its own.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from _common import (
    CRACK500_TRAIN_CROPS,
    add_original_calls,
    cpu_line,
    load_average,
    machine_line,
    original_side,
    speed_switches,
)
from torch.utils.data import DataLoader, Dataset

from crackkit.config import RunConfig
from crackkit.losses import SegDecLoss, decision_loss, segmentation_loss
from crackkit.model import build_model
from crackkit.runtime import model_for, resolve_device
from crackkit.specs import ARCHITECTURES
from crackkit.train import build_optimizer, train_one_epoch


class InMemoryCrops(Dataset):
    """Items shaped like :class:`crackkit.data.dataset.CrackDataset`'s, served from memory.

    images: (N, C, H, W) uint8; masks: (N, 1, H, W) float in {0, 1}; labels: (N,) float.
    """

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.masks, self.labels = images, masks, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "image": self.images[index],
            "mask": self.masks[index],
            "label": self.labels[index],
            "index": torch.tensor(index),
        }


def synthetic_batch(n: int, channels: int, height: int, width: int, seed: int):
    """uint8 images (n, C, H, W), sparse masks (n, 1, H, W) float and labels (n,) float."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, height, width), dtype=torch.uint8, generator=gen)
    masks = torch.zeros(n, 1, height, width)
    for i in range(n):
        rows = torch.randint(0, height, (3,), generator=gen)
        masks[i, 0, rows, :] = 1.0
    masks[n // 2 :: 4] = 0.0
    labels = (masks.flatten(1).amax(dim=1) > 0).float()
    return images, masks, labels


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print a table and a final JSON line; return that JSON as a dict."""
    defaults = RunConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--arch", default=defaults.architecture, choices=ARCHITECTURES)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument(
        "--block-images",
        type=int,
        default=None,
        help="images per timed block (default: one batch on the CPU, eight batches on CUDA)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="most rounds of one block each")
    parser.add_argument(
        "--seconds",
        type=float,
        default=300.0,
        help="time budget: no new round starts once it would end past this (2 rounds at least)",
    )
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--amp", default=defaults.amp, choices=("auto", "off", "bf16"))
    parser.add_argument("--fft-conv", default=defaults.fft_conv, choices=("auto", "on", "off"))
    parser.add_argument(
        "--channels-last", default=defaults.channels_last, choices=("auto", "on", "off")
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile crackkit's model (its warm-up compiles)",
    )
    add_original_calls(parser)
    args = parser.parse_args(argv)
    print(cpu_line(), flush=True)

    started = time.perf_counter()
    load_start = load_average()
    cfg = RunConfig(
        input_height=args.height,
        input_width=args.width,
        architecture=args.arch,
        batch_size=args.batch_size,
        amp=args.amp,
        fft_conv=args.fft_conv,
        channels_last=args.channels_last,
    )
    device = resolve_device(cfg)
    bs = cfg.batch_size
    block = args.block_images or (bs if device.type == "cpu" else 8 * bs)
    loss_fn = SegDecLoss.from_config(cfg)
    epoch = cfg.epochs // 2
    seg_w, dec_w = loss_fn.weights(epoch)

    torch.manual_seed(args.seed)
    net = build_model(cfg.architecture, cfg.input_channels, cfg.input_height, cfg.input_width)
    net.gradient_multiplier = 0.0 if cfg.gradient_adjustment else 1.0
    # crackkit's model exactly as training builds it (crackkit.runtime.model_for)
    ck_model, placement = model_for(cfg, device, model=copy.deepcopy(net))
    amp_dtype, channels_last = placement.amp_dtype, placement.channels_last
    fft = any(getattr(m, "fft", False) for m in ck_model.modules())
    switches = speed_switches("training")
    base_model = copy.deepcopy(net).to(device)
    original_side(base_model, args.original_calls)  # direct convolutions
    ck_opt = build_optimizer(cfg, ck_model)
    step_model = torch.compile(ck_model) if args.compile else ck_model
    base_opt = build_optimizer(cfg, base_model)
    ck_model.train()
    base_model.train()

    images, masks, labels = synthetic_batch(
        block, cfg.input_channels, args.height, args.width, args.seed
    )
    loader = DataLoader(
        InMemoryCrops(images, masks, labels),
        batch_size=bs,
        shuffle=False,
        num_workers=0,
        pin_memory=device.type == "cuda",
    )
    warm_loader = DataLoader(
        InMemoryCrops(images[:bs], masks[:bs], labels[:bs]), batch_size=bs, shuffle=False
    )
    pre_images = images.float().div(255.0)  # the original's preloaded float32 images

    def crackkit_block(data: DataLoader) -> int:
        stats = train_one_epoch(
            step_model, loss_fn, data, ck_opt, epoch=epoch, placement=placement, progress=False
        )
        return stats["n_train"]

    def original_block(n_images: int) -> int:
        total = 0.0
        for i in range(n_images):
            j = i % len(pre_images)
            x = pre_images[j : j + 1].to(device)
            y = masks[j : j + 1].to(device)
            lab = labels[j : j + 1].to(device)
            dec, seg = base_model(x)
            loss = seg_w * segmentation_loss(seg, y) + dec_w * decision_loss(dec, lab)
            base_opt.zero_grad(set_to_none=True)
            loss.backward()
            base_opt.step()
            total += loss.item()
        return n_images

    def timed(fn, *fn_args) -> tuple[float, int]:
        _sync(device)
        t0 = time.perf_counter()
        n_done = fn(*fn_args)
        _sync(device)
        return time.perf_counter() - t0, n_done

    print(
        f"training step, {args.arch} at 3x{args.height}x{args.width} on {device.type}; "
        + machine_line()
    )
    print(
        f"crackkit: batch {bs}, autocast {amp_dtype or 'off (float32)'}, channels_last "
        f"{channels_last}, 15x15 conv by FFT {fft}, uint8 inputs; original: direct "
        f"convolutions, batch 1, float32, loss.item() every step, "
        f"{'the original calls' if args.original_calls else 'crackkit kernels'}; "
        f"blocks of {block} images, warm-up {args.warmup_steps} step(s) each"
    )
    t_warm = time.perf_counter()
    warm_steps = []
    for _ in range(args.warmup_steps):
        warm_steps.append(timed(crackkit_block, warm_loader)[0])
        timed(original_block, 1)
    warmup_s = time.perf_counter() - t_warm
    first_s = warm_steps[0] if warm_steps else None
    print(
        f"warm-up took {warmup_s:.1f} s"
        + (f"; crackkit's first step {first_s:.1f} s" if first_s is not None else "")
        + (" (torch.compile included)" if args.compile else "")
    )

    rates: dict[str, list[float]] = {"crackkit": [], "original": []}
    print(f"{'round':>5} {'method':<9} {'seconds':>9} {'images':>7} {'img/s':>9} {'load 1m':>8}")
    round_s = 0.0
    for r in range(args.rounds):
        elapsed = time.perf_counter() - started
        if r >= 2 and elapsed + round_s > args.seconds:
            print(f"stopping after {r} rounds: the time budget of {args.seconds:.0f} s is reached")
            break
        t_round = time.perf_counter()
        order = ("crackkit", "original") if r % 2 == 0 else ("original", "crackkit")
        for name in order:
            if name == "crackkit":
                seconds, n_done = timed(crackkit_block, loader)
            else:
                seconds, n_done = timed(original_block, block)
            rates[name].append(n_done / seconds)
            print(
                f"{r + 1:>5} {name:<9} {seconds:>9.2f} {n_done:>7d} {n_done / seconds:>9.3f} "
                f"{load_average()[0]:>8.2f}",
                flush=True,
            )
        round_s = time.perf_counter() - t_round

    ck, orig = statistics.median(rates["crackkit"]), statistics.median(rates["original"])
    paired = statistics.median(
        c / o for c, o in zip(rates["crackkit"], rates["original"], strict=True)
    )
    speedup = ck / orig
    print()
    print(f"{'method':<9} {'img/s (median)':>15} {'blocks':>7} {'CRACK500 epoch':>15}")
    for name, rate in (("original", orig), ("crackkit", ck)):
        print(
            f"{name:<9} {rate:>15.3f} {len(rates[name]):>7d} "
            f"{_duration(CRACK500_TRAIN_CROPS / rate):>15}"
        )
    print(
        f"speedup {speedup:.2f}x (ratio of medians; median of per-round ratios {paired:.2f}x); "
        f"CRACK500 epoch = {CRACK500_TRAIN_CROPS} crops projected from the median rate; "
        f"total run {time.perf_counter() - started:.0f} s"
    )
    result = {
        "speedup": round(speedup, 3),
        "speedup_paired_median": round(paired, 3),
        "crackkit_img_s": round(ck, 4),
        "original_img_s": round(orig, 4),
        "crackkit_blocks_img_s": [round(x, 4) for x in rates["crackkit"]],
        "original_blocks_img_s": [round(x, 4) for x in rates["original"]],
        "epoch_seconds_projected": round(CRACK500_TRAIN_CROPS / ck, 1),
        "original_epoch_seconds_projected": round(CRACK500_TRAIN_CROPS / orig, 1),
        "device": device.type,
        "arch": args.arch,
        "height": args.height,
        "width": args.width,
        "batch_size": bs,
        "block_images": block,
        "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
        "channels_last": channels_last,
        "fft_conv": fft,
        "speed_switches": switches,
        "original_calls": args.original_calls,
        "torch_threads": torch.get_num_threads(),
        "warmup_seconds": round(warmup_s, 1),
        "crackkit_first_step_seconds": None if first_s is None else round(first_s, 1),
        "compile": args.compile,
        "total_seconds": round(time.perf_counter() - started, 1),
        "load_start": load_start,
        "load_end": load_average(),
    }
    print(json.dumps(result))
    return result


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


if __name__ == "__main__":
    main()
