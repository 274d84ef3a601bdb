"""SegDecNet's 15x15 convolution (64 -> 1024 channels): direct against tiled FFT, per map size.

For each batch of maps (N x 64 x h x w; 45x80 is what a 360x640 crop gives at 1/8) it times, under
the autocast dtype :func:`crackkit.runtime.resolve_amp` picks (bf16 on a CPU with AVX512-BF16/AMX)
and in float32:

* ``train``: forward and backward (input and weight gradients), as in a training step; the FFT
  computes the weight spectrum and its gradient at every call;
* ``infer``: forward under ``inference_mode`` through :class:`crackkit.fftconv.FFTConv2d`, whose
  weight spectrum is then cached (the first call, which fills the cache, is not timed).

and the error of each against the direct convolution in float64. Each time is the best of
``--repeats``; methods alternate within a repeat. The table shows where the FFT pays off, which is
where :data:`crackkit.fftconv.MIN_TRAIN_PIXELS` comes from.

Usage: ``.venv/bin/python benchmarks/fft_conv.py [--repeats 3] [--device cpu]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch
import torch.nn.functional as F
from _common import cpu_line, load_average, machine_line

from crackkit.config import RunConfig
from crackkit.fftconv import MIN_TRAIN_PIXELS, FFTConv2d, fft_conv2d
from crackkit.runtime import resolve_amp

SHAPES = [(1, 12, 20), (4, 12, 20), (8, 12, 20), (1, 45, 80), (2, 45, 80), (4, 45, 80)]
INFER_SHAPES = [(4, 12, 20), (16, 12, 20), (1, 45, 80), (16, 45, 80)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print a table and a final JSON line; return that JSON as a dict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(cpu_line(), flush=True)
    device = torch.device(args.device)
    amp = resolve_amp(RunConfig(), device)
    started = time.perf_counter()
    load_start = load_average()
    gen = torch.Generator().manual_seed(0)
    conv = FFTConv2d(64, 1024, 15, padding=7, bias=False).to(device)
    with torch.no_grad():
        conv.weight.normal_(0.0, 0.01, generator=None)

    def cast():
        if amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=amp)

    def time_train(x: torch.Tensor, fn, precision: str) -> float:
        x = x.detach().requires_grad_()
        with cast() if precision == "amp" else contextlib.nullcontext():
            out = fn(x)
        _sync(device)
        t0 = time.perf_counter()
        with cast() if precision == "amp" else contextlib.nullcontext():
            out = fn(x)
        out.float().sum().backward()
        _sync(device)
        return time.perf_counter() - t0

    def direct(x):
        return F.conv2d(x, conv.weight, padding=7)

    def fft(x):
        return fft_conv2d(x, conv.weight)

    print(
        f"15x15 convolution 64 -> 1024 on {device.type}; autocast {amp}; "
        f"MIN_TRAIN_PIXELS {MIN_TRAIN_PIXELS}; " + machine_line()
    )
    rows = []
    print(
        f"{'mode':<6} {'N x h x w':<11} {'pixels':>7} {'prec':<5} {'direct s':>9} {'fft s':>8} "
        f"{'speedup':>8} {'err direct':>11} {'err fft':>9}"
    )
    for precision in ("amp", "fp32") if amp is not None else ("fp32",):
        for mode, shapes in (("train", SHAPES), ("infer", INFER_SHAPES)):
            for n, h, w in shapes:
                x = torch.randn(n, 64, h, w, generator=gen).relu_().to(device)
                ref = F.conv2d(x.double(), conv.weight.double(), padding=7)
                best = {"direct": float("inf"), "fft": float("inf")}
                outs = {}
                for r in range(max(1, args.repeats)):
                    order = ("direct", "fft") if r % 2 == 0 else ("fft", "direct")
                    for name in order:
                        if mode == "train":
                            seconds = time_train(x, direct if name == "direct" else fft, precision)
                        else:
                            conv.fft = name == "fft"
                            with (
                                torch.inference_mode(),
                                cast() if precision == "amp" else contextlib.nullcontext(),
                            ):
                                outs[name] = conv(x)  # fills the cache
                                _sync(device)
                                t0 = time.perf_counter()
                                outs[name] = conv(x)
                                _sync(device)
                                seconds = time.perf_counter() - t0
                        best[name] = min(best[name], seconds)
                if mode == "train":
                    with (
                        torch.no_grad(),
                        cast() if precision == "amp" else contextlib.nullcontext(),
                    ):
                        outs = {"direct": direct(x), "fft": fft(x)}
                err = {k: ((v.double() - ref).norm() / ref.norm()).item() for k, v in outs.items()}
                row = {
                    "mode": mode,
                    "shape": [n, 64, h, w],
                    "pixels": n * h * w,
                    "precision": str(amp).replace("torch.", "") if precision == "amp" else "fp32",
                    "direct_s": round(best["direct"], 4),
                    "fft_s": round(best["fft"], 4),
                    "speedup": round(best["direct"] / best["fft"], 3),
                    "rel_err_direct": float(f"{err['direct']:.3g}"),
                    "rel_err_fft": float(f"{err['fft']:.3g}"),
                }
                rows.append(row)
                print(
                    f"{mode:<6} {f'{n}x{h}x{w}':<11} {n * h * w:>7} {row['precision']:<5} "
                    f"{best['direct']:>9.3f} {best['fft']:>8.3f} {row['speedup']:>7.2f}x "
                    f"{err['direct']:>11.2e} {err['fft']:>9.2e}",
                    flush=True,
                )
    print(
        "errors: relative L2 against the direct convolution in float64; train times are forward "
        f"+ backward; total run {time.perf_counter() - started:.0f} s"
    )
    result = {
        "rows": rows,
        "device": device.type,
        "min_train_pixels": MIN_TRAIN_PIXELS,
        "torch_threads": torch.get_num_threads(),
        "load_start": load_start,
        "load_end": load_average(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
