"""Does a run without a single pixel mask learn the decision? num_segmented = 0 on small crack
crops, against full supervision, and the switches that decide it.

Data: ``_common.crack_crop`` random-walk cracks on shaded grey, 64x128: 64 training images (half
crack-free), 32 validation, 64 test. Every variant trains 6 epochs with otherwise default
parameters through the library (``train_run`` + ``evaluate_run``; no notebooks) and the table
gives the test decision AP (step-wise; the positive fraction is 0.5) and 2-pixel F1.

    .venv/bin/python benchmarks/weak_decision.py [--variants full n0 ...] [--seeds 0]

Variants: ``full`` (every mask), ``n0`` (num_segmented 0, defaults: no_mask_switches on),
``n0-published`` (no_mask_switches off: dynamic balancing and gradient adjustment as set),
``n0-dyn-off`` (the published N_0 runs: dynamic balancing off only), ``n0-adj-off``. A variant
takes 1-2 minutes of a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_line, crack_crop, machine_line  # noqa: E402

from crackkit.config import make_config  # noqa: E402
from crackkit.data.folder import write_sample  # noqa: E402
from crackkit.pipeline import evaluate_run, train_run  # noqa: E402

OFF = {"no_mask_switches": False}
VARIANTS = {
    "full": {},
    "n0": {"num_segmented": 0},
    "n0-published": {"num_segmented": 0, **OFF},
    "n0-dyn-off": {"num_segmented": 0, "dyn_balanced_loss": False, **OFF},
    "n0-adj-off": {"num_segmented": 0, "gradient_adjustment": False, **OFF},
}


def make_data(root: Path) -> Path:
    if not (root / "test").is_dir():
        for split, n, seed in (("train", 64, 1), ("val", 32, 2), ("test", 64, 3)):
            rng = np.random.default_rng(seed)
            for i in range(n):
                image, mask = crack_crop(rng, 64, 128, crack=i % 2 == 0)
                write_sample(root, split, f"{split}{i:03d}", image, mask, image_ext=".png")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/crackkit-weak-decision"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args(argv)
    print(cpu_line(), flush=True)
    print(machine_line())
    data = make_data(args.root / "data")
    base = {"dataset": str(data), "input_height": 64, "input_width": 128, "epochs": 6}
    rows = []
    for name in args.variants:
        for seed in args.seeds:
            run_dir = args.root / "runs" / f"{name}-seed{seed}"
            t0 = time.perf_counter()
            train_run(
                make_config(base | VARIANTS[name] | {"seed": seed}),
                run_dir,
                overwrite=True,
                progress=False,
            )
            m = evaluate_run(run_dir, progress=False, n_gallery=0, bootstrap=0)
            rows.append(
                {
                    "variant": name,
                    "seed": seed,
                    "decision_ap": m["decision"]["ap_step"],
                    "f1_2px": m.get("pixel_2px", {}).get("f1"),
                    "minutes": round((time.perf_counter() - t0) / 60, 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print()
    print("| variant | seeds | decision AP | 2px F1 | minutes |")
    print("|---|---|---|---|---|")
    for name in args.variants:
        group = [r for r in rows if r["variant"] == name]

        def cell(key: str, group: list[dict] = group) -> str:
            values = [r[key] for r in group if r[key] is not None]
            if len(values) > 1:
                return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"
            return f"{values[0]:.3f}" if values else "n/a"

        seeds = " ".join(str(r["seed"]) for r in group)
        print(
            f"| {name} | {seeds} | {cell('decision_ap')} | {cell('f1_2px')} | {cell('minutes')} |"
        )
    print(json.dumps({"benchmark": "weak_decision", "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
