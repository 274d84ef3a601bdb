"""onnxruntime against PyTorch as an inference backend: seconds per image of the published
network's forward pass at one input size, the same random weights on both sides.

* ``onnxruntime``: the graph ``crackkit export`` writes (float32, direct convolutions, FeatureNorm
  as element-wise operations), CPU execution provider, all graph optimisations, the torch thread
  count as its intra-op threads, batch ``--batch-size``;
* ``torch``: the model as evaluation builds it (:func:`crackkit.runtime.model_for` with
  ``inference=True``: every speed switch at ``auto``, settled by measurement on this machine;
  the measurement is not timed), at the batch size it settled on.

    .venv/bin/python benchmarks/onnx_inference.py            # about 2 minutes on 2 cores

Needs the ``onnx`` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from crackkit import autotune
from crackkit.config import RunConfig
from crackkit.export import _Graph, _traceable
from crackkit.fftconv import set_fft_conv
from crackkit.inference import to_input
from crackkit.model import build_model
from crackkit.runtime import autocast, model_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_line, machine_line  # noqa: E402


def _best(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--arch", default="segdecnet++")
    parser.add_argument("--batch-size", type=int, default=4, help="onnxruntime's batch")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(cpu_line(), flush=True)
    print(machine_line())
    import onnxruntime as ort

    torch.manual_seed(0)
    net = build_model(args.arch, 3, args.height, args.width).eval()
    cfg = RunConfig(input_height=args.height, input_width=args.width, architecture=args.arch)
    model, placement = model_for(cfg, torch.device("cpu"), inference=True, model=copy.deepcopy(net))
    switches = autotune.resolutions()["inference"]["switches"]
    batch = placement.eval_batch_size
    images = (torch.rand(batch, 3, args.height, args.width) * 255).to(torch.uint8)

    def torch_forward() -> None:
        with torch.inference_mode(), autocast(placement.device, placement.amp_dtype):
            model(to_input(images, placement.device, placement.channels_last))

    torch_s = _best(torch_forward, args.repeats) / batch
    # torch first: onnxruntime's worker threads keep spinning after a run
    direct = copy.deepcopy(net)
    set_fft_conv(direct, False)
    graph = _Graph(_traceable(direct)).eval()
    x = torch.rand(args.batch_size, 3, args.height, args.width)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            graph, (x,), input_names=["image"], output_names=["score", "prob"], dynamo=True
        ).save(str(path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"image": x.numpy()}
        ort_s = _best(lambda: session.run(None, feed), args.repeats) / args.batch_size

    chosen = ", ".join(f"{k} {v['choice']} ({v['source']})" for k, v in switches.items())
    print(f"\n{args.arch} forward at 3x{args.height}x{args.width}, best of {args.repeats}")
    print("| backend | settings | s per image |")
    print("|---|---|---|")
    print(f"| onnxruntime {ort.__version__} | float32, batch {args.batch_size} | {ort_s:.3f} |")
    print(f"| torch {torch.__version__} | {chosen} | {torch_s:.3f} |")
    print(f"torch is {ort_s / torch_s:.2f}x as fast as onnxruntime here")
    print(
        json.dumps(
            {
                "benchmark": "onnx_inference",
                "ort_s_per_image": round(ort_s, 4),
                "torch_s_per_image": round(torch_s, 4),
                "torch_switches": switches,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
