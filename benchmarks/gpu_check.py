"""The one prepared GPU check of issue 15: a CRACK500-sized epoch, then the CFD recipe.

Runs on a lent GPU machine (never assumed; see ``benchmarks/README.md``), in priority order:

1. **Epoch time.** A synthetic folder in CRACK500's layout (``--crops`` 3,307 JPEG crops of
   360x640 with PNG masks, 10% crack-free, generated in parallel and not timed) is trained for
   one epoch per setting through :func:`crackkit.pipeline.train_run` (the library path that
   ``crackkit run`` takes, without the notebooks, so that the machine needs no papermill):

   - ``seed``: the ``crack500`` preset exactly (batch 1, Adam 0.001, ``segdecnet-up``) with
     crackkit's default switches (bf16 autocast and cuDNN autotuning on CUDA), 0 loader workers;
   - ``fast``: the same with ``--fast-batch`` (16) images per step and ``--workers`` (8) loader
     workers, for ``--fast-epochs`` (2) epochs so that the second shows the steady state.

   Validation is off for these rows; the figure is ``time_s`` of the run's ``history.csv`` (the
   training loop alone). The seed's log took 837 s per epoch; the issue's goal is 30 s.
2. **The CFD recipe.** ``--cfd`` (the published CrackForest folder, carried with the tree) is
   imported with :func:`crackkit.data.cfd.import_cfd`, then the ``cfd`` preset is trained and
   evaluated for every seed of ``--cfd-seeds`` and every epoch count of ``--cfd-epochs``
   (9 = the preset), with test 2px F1 / Pr / Re at the validation threshold, ODS/OIS and the
   calibration figures, as ``benchmarks/real_data.py`` prints them on the CPU.

Every row is printed as it finishes, and the whole result is written as JSON to ``--out``
(``$OUT`` on the device machine) after each row, so a run stopped at its time limit keeps what
it measured. Run it on the device machine from the repository root, with the CFD folder copied
into an ignored folder of the tree and carried (it is 7 MB)::

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py \\
        --cfd data/raw/CrackForest-dataset --work /tmp/gpu --out "$OUT/gpu_check.json"

Test it here at tiny sizes first (minutes on 2 CPU cores)::

    .venv/bin/python benchmarks/gpu_check.py --device cpu --crops 24 --height 64 --width 96 \\
        --fast-batch 4 --workers 0 --cfd ../shared/datasets/CrackForest-dataset \\
        --cfd-size 64 96 --cfd-epochs 1 --cfd-seeds 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CRACK500_TRAIN_CROPS, cpu_line, crack_crop, machine_line, metrics_row  # noqa: E402

from crackkit.config import make_config  # noqa: E402
from crackkit.data.cfd import import_cfd  # noqa: E402
from crackkit.data.folder import write_sample  # noqa: E402
from crackkit.paths import ROOT  # noqa: E402
from crackkit.pipeline import evaluate_run, train_run  # noqa: E402

SEED_EPOCH_SECONDS = 837.0  # the seed's log, one CRACK500 epoch on the authors' GPU
GOAL_EPOCH_SECONDS = 30.0


def _write_chunk(args: tuple[str, str, int, int, int, int, float, int]) -> int:
    root, split, start, stop, height, width, negative_fraction, seed = args
    for i in range(start, stop):
        rng = np.random.default_rng([seed, i])
        image, mask = crack_crop(rng, height, width, crack=rng.random() >= negative_fraction)
        write_sample(root, split, f"crop_{i:05d}", image, mask, image_ext=".jpg")
    return stop - start


def make_folder(
    root: Path, counts: dict[str, int], height: int, width: int, *, jobs: int, seed: int = 0
) -> Path:
    """Write ``counts[split]`` crops per split into ``root`` with ``jobs`` processes."""
    marker = root / "gpu_check_folder.json"
    spec = {"counts": counts, "height": height, "width": width, "seed": seed, "version": 1}
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return root
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} exists but was not generated with {spec}; give an empty --work")
    t0 = time.perf_counter()
    tasks = []
    for s, (split, n) in enumerate(counts.items()):
        step = max(1, -(-n // (4 * jobs)))
        tasks += [
            (str(root), split, a, min(n, a + step), height, width, 0.1, seed * 100 + s)
            for a in range(0, n, step)
        ]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        written = sum(pool.map(_write_chunk, tasks))
    marker.write_text(json.dumps(spec))
    print(f"generated {written} crops of {height}x{width} in {time.perf_counter() - t0:.1f} s")
    return root


def _epoch_row(name: str, params: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    cfg = make_config(params, preset="crack500")
    t0 = time.perf_counter()
    result = train_run(cfg, run_dir, progress=False)
    wall = time.perf_counter() - t0
    times = [float(r["time_s"]) for r in result.history]
    row = {
        "row": name,
        "batch_size": cfg.batch_size,
        "num_workers": cfg.num_workers,
        "crops": [int(r["n_train"]) for r in result.history],
        "epoch_seconds": [round(t, 2) for t in times],
        "wall_seconds": round(wall, 1),
        "seed_epoch_seconds": SEED_EPOCH_SECONDS,
        "goal_epoch_seconds": GOAL_EPOCH_SECONDS,
    }
    print(
        f"| {name} | batch {cfg.batch_size}, {cfg.num_workers} workers | "
        + ", ".join(f"{t:.1f}" for t in times)
        + f" s per epoch | {wall:.0f} s wall |"
    )
    return row


def _cfd_row(processed: Path, seed: int, epochs: int, params: dict[str, Any], run_dir: Path):
    cfg = make_config(
        {**params, "dataset": str(processed), "seed": seed, "epochs": epochs}, preset="cfd"
    )
    t0 = time.perf_counter()
    train_run(cfg, run_dir, progress=False)
    evaluate_run(run_dir, progress=False)  # writes the metrics.json that metrics_row reads
    wall = time.perf_counter() - t0
    row = metrics_row(run_dir, row="cfd", seed=seed, epochs=epochs, minutes_wall=wall / 60)
    print(
        f"| cfd | seed {seed} | {epochs} epochs | {wall / 60:.2f} min | 2px F1 "
        f"{row['f1_2px']:.3f} (Pr {row['precision_2px']:.3f} / Re {row['recall_2px']:.3f} @ "
        f"{row['threshold_2px']}) | "
        f"ODS {row['ods']:.3f} OIS {row['ois']:.3f} | background p "
        f"{row['mean_background_prob']:.3f} ECE {row['ece']:.3f} |"
    )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="crackkit's device parameter")
    ap.add_argument("--work", type=Path, default=Path("/tmp/crackkit-gpu-check"))
    ap.add_argument("--out", type=Path, default=None, help="JSON of every row, rewritten per row")
    ap.add_argument("--crops", type=int, default=CRACK500_TRAIN_CROPS)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--jobs", type=int, default=16, help="processes that write the folder")
    ap.add_argument("--fast-batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=8, help="loader workers of the fast row")
    ap.add_argument("--fast-epochs", type=int, default=2)
    ap.add_argument("--skip-epoch", action="store_true", help="only the CFD rows")
    ap.add_argument("--cfd", type=Path, default=None, help="CrackForest folder; none: no CFD rows")
    ap.add_argument("--cfd-size", type=int, nargs=2, default=(320, 480), metavar=("H", "W"))
    ap.add_argument("--cfd-epochs", type=int, nargs="+", default=[9])
    ap.add_argument("--cfd-seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args(argv)
    print(cpu_line(), flush=True)

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    result: dict[str, Any] = {"benchmark": "gpu_check", "machine": machine_line(), "gpu": gpu}
    result["rows"] = rows = []
    print(result["machine"], "|", gpu, "| crackkit at", ROOT)

    def save() -> None:
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1, default=str))

    work = args.work
    runs = work / "runs" / time.strftime("%Y%m%d-%H%M%S")  # a rerun never meets old runs
    common = {"device": args.device, "input_height": args.height, "input_width": args.width}
    if not args.skip_epoch:
        folder = make_folder(
            work / "crack500-like",
            {"train": args.crops, "val": 8, "test": 8},
            args.height,
            args.width,
            jobs=args.jobs,
        )
        base = {**common, "dataset": str(folder), "validate": False, "use_best_model": False}
        print("| row | settings | training time per epoch | wall |")
        for name, params in (
            ("seed", {**base, "epochs": 1}),
            (
                "fast",
                {
                    **base,
                    "epochs": args.fast_epochs,
                    "batch_size": args.fast_batch,
                    "num_workers": args.workers,
                },
            ),
        ):
            rows.append(_epoch_row(name, params, runs / f"epoch-{name}"))
            save()
    if args.cfd is not None:
        processed = work / "processed"
        if not (processed / "cfd").is_dir():
            import_cfd(args.cfd, processed, progress=False, verbose=False)
        h, w = args.cfd_size
        params = {"device": args.device, "input_height": h, "input_width": w}
        for epochs in args.cfd_epochs:
            for seed in args.cfd_seeds:
                run_dir = runs / f"cfd-{epochs}ep-seed{seed}"
                rows.append(_cfd_row(processed / "cfd", seed, epochs, params, run_dir))
                save()
    save()
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
