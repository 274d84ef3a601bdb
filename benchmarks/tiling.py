"""Tiled prediction against whole images: 2-pixel F1 on a test split, memory and time on a photo.

(a) Accuracy, ``--run RUN_DIR`` (a trained CrackForest run): every image of the test split
    (``--data``, default the run's own data set; ``--split``) is predicted whole, as the run was
    evaluated (CrackForest images are 320x480, the run's input size), and tiled at ``--tile``
    (160 240 by default: each image takes several tiles) with ``--overlap`` (default a quarter
    of each tile side), once per tile mode of :mod:`crackkit.predict` (``plain``, ``context``,
    ``global``; ``--modes``).
    For each it prints the 2-pixel F1 / precision / recall, the per-image mean over the crack
    images at the run's validated 2-pixel threshold (``prob >= threshold``, tolerance 2, through
    :func:`crackkit.metrics.count_stats` and :func:`crackkit.metrics.tolerance_sweep_counts` as
    :mod:`crackkit.evaluate` computes it), the F1 difference from whole images and whether it is
    within 0.02, the mean absolute difference of the probability maps from the whole-image ones,
    and the seconds.
(b) Memory and time, ``--photo``: a synthetic road photo of ``--size`` (3000 4000 by default;
    generation not timed) predicted whole and tiled (each mode), each in a fresh subprocess, which
    reports its peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which
    includes ``import torch``; the peak before predicting is printed beside it) and the seconds
    per megapixel of one ``Predictor.predict_image``. The network is the run's (``--run``) or, with
    none, a randomly initialised ``--arch`` (weights change neither memory nor time) whose tile is
    ``--photo-tile`` (default: the run's input size, or 320 480). Each child's address space is
    capped at ``--memory-limit-gb`` (default 80% of the machine's memory), so that a whole photo
    too large for the machine fails as "out of memory" instead of pushing the machine into swap.

    .venv/bin/python benchmarks/tiling.py --run /tmp/crackkit-real-data/runs/<run>   # (a)
    .venv/bin/python benchmarks/tiling.py --photo --size 480 640   # (b), a quick check
    .venv/bin/python benchmarks/tiling.py --photo                  # (b), 3000x4000

Both parts can run in one call. The last line is the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from _common import cpu_line, crack_crop, machine_line  # noqa: E402

MODES = ("plain", "context", "global")
WITHIN = 0.02


# --- (a) accuracy ----------------------------------------------------------------------------


def _split_samples(run, data: Path | None, split: str):
    from crackkit.data.dataset import resolve_dataset
    from crackkit.data.folder import scan_split

    root = Path(data) if data is not None else resolve_dataset(run.cfg, progress=False)
    return root, scan_split(root, split, negatives_without_mask=True, check=False)


def _predict_split(predictor, samples) -> tuple[list[np.ndarray], float]:
    from crackkit.data.folder import read_image

    t0 = time.perf_counter()
    probs = [predictor.predict_image(read_image(s.image, 3))[0] for s in samples]
    return probs, time.perf_counter() - t0


def accuracy(args: argparse.Namespace) -> list[dict]:
    """(a): whole and tiled 2-pixel figures on the split; prints the table, returns its rows."""
    from crackkit import metrics as M
    from crackkit.evaluate import native_mask
    from crackkit.predict import Predictor
    from crackkit.run import Run

    run = Run.open(args.run)
    root, samples = _split_samples(run, args.data, args.split)
    if args.limit:
        samples = samples[: args.limit]
    masks = [native_mask(s) for s in samples]
    predictor = Predictor.from_run(run.path, device=args.device, progress=False, tile=None)
    threshold = predictor.threshold_seg
    if not predictor.validated:
        print(f"warning: {run.path} has no validated threshold; using {threshold}")
    sizes = sorted({m.shape for m in masks})
    print(
        f"{len(samples)} images of {root / args.split} ({sum(m.any() for m in masks)} with "
        f"cracks, sizes {', '.join(f'{h}x{w}' for h, w in sizes)}), run {run.path.name} "
        f"({run.cfg.architecture}, input {run.cfg.input_height}x{run.cfg.input_width}), "
        f"2-px threshold {threshold:.4f} (validated: {predictor.validated}), tile "
        f"{args.tile[0]}x{args.tile[1]}"
    )
    settings = [("whole", {"tile": None})] + [
        (mode, {"tile": tuple(args.tile), "overlap": args.overlap, "tile_mode": mode})
        for mode in args.modes
    ]
    rows, whole = [], None
    for name, options in settings:
        predictor.configure(**options, progress=False)
        probs, seconds = _predict_split(predictor, samples)
        counts = M.count_stats(probs, masks, tolerance=2, thresholds=[threshold])
        sweep = M.tolerance_sweep_counts(counts)
        whole = probs if whole is None else whole
        diff = [float(np.abs(p - q).mean()) for p, q in zip(probs, whole, strict=True)]
        windows = [predictor.windows(*m.shape) for m in masks]
        rows.append(
            {
                "mode": name,
                "tile": None if options["tile"] is None else list(options["tile"]),
                "overlap": None if predictor.overlap is None else list(predictor.overlap),
                "context": None if predictor.context is None else list(predictor.context),
                "windows_per_image": float(np.mean(windows)),
                "f1_2px": sweep.best_f1,
                "precision_2px": sweep.best_precision,
                "recall_2px": sweep.best_recall,
                "n_crack_images": sweep.n_images,
                "mean_abs_prob_diff": float(np.mean(diff)),
                "seconds": seconds,
            }
        )
    base = rows[0]["f1_2px"]
    header = "| mode | tile | overlap | context | windows/img | 2-px F1 | Pr | Re | ΔF1 | "
    header += f"within {WITHIN} | mean abs Δprob | s |"
    print()
    print(header)
    print("|" + "---|" * (header.count(" | ") + 1))
    for r in rows:
        delta = r["f1_2px"] - base
        r["delta_f1"] = delta
        r["within"] = abs(delta) <= WITHIN
        print(
            f"| {r['mode']} | {_pair(r['tile'])} | {_pair(r['overlap'])} | "
            f"{_pair(r['context'])} | {r['windows_per_image']:.1f} | {r['f1_2px']:.4f} | "
            f"{r['precision_2px']:.4f} | {r['recall_2px']:.4f} | {delta:+.4f} | "
            f"{'yes' if r['within'] else 'no'} | {r['mean_abs_prob_diff']:.4f} | "
            f"{r['seconds']:.1f} |"
        )
    recorded = _recorded_f1(run.path)
    if recorded is not None:
        print(f"\nthe run's own evaluation (metrics.json, pixel_2px f1): {recorded:.4f}")
    return rows


def _pair(value) -> str:
    return "-" if value is None else f"{value[0]}x{value[1]}"


def _recorded_f1(run_dir: Path) -> float | None:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    f1 = json.loads(path.read_text()).get("pixel_2px", {}).get("f1")
    return float(f1) if f1 is not None else None


# --- (b) memory and time ---------------------------------------------------------------------


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A synthetic road photo with a few dark cracks (benchmarks/_common.py's generator)."""
    image, _ = crack_crop(np.random.default_rng(seed), height, width, crack=True)
    return image


def _child(spec: dict) -> dict:
    """One measurement in this (fresh) process: build the predictor, predict the photo once."""
    if spec.get("limit_bytes"):
        resource.setrlimit(resource.RLIMIT_AS, (spec["limit_bytes"], spec["limit_bytes"]))
    import torch

    from crackkit.config import make_config
    from crackkit.model import build_model
    from crackkit.predict import Predictor
    from crackkit.runtime import model_for

    options = {"tile": None if spec["tile"] is None else tuple(spec["tile"]), "progress": False}
    if spec["mode"] != "whole":
        options["tile_mode"] = spec["mode"]
    if spec["run"]:
        predictor = Predictor.from_run(spec["run"], device=spec["device"], **options)
    else:
        th, tw = spec["net_size"]
        cfg = make_config({"architecture": spec["arch"], "input_height": th, "input_width": tw})
        torch.manual_seed(0)
        model, placement = model_for(
            cfg, spec["device"], inference=True, model=build_model(spec["arch"], 3, th, tw)
        )
        predictor = Predictor(model, cfg, placement, **options)
    photo = _photo(*spec["size"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    try:
        prob, score = predictor.predict_image(photo)
    except (RuntimeError, MemoryError) as exc:  # the allocator refused: over the cap
        return {"error": f"out of memory ({str(exc).splitlines()[0][:120]})"}
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mp = spec["size"][0] * spec["size"][1] / 1e6
    return {
        "seconds": seconds,
        "s_per_mp": seconds / mp,
        "peak_rss_mb": peak,
        "rss_before_mb": before,
        "windows": predictor.windows(*spec["size"]),
        "score": float(score),
        "prob_shape": list(prob.shape),
        "torch_threads": torch.get_num_threads(),
    }


def _memory_bytes() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def photo(args: argparse.Namespace) -> list[dict]:
    """(b): whole and tiled prediction of a synthetic photo, each in a fresh subprocess."""
    if args.run:
        from crackkit.run import Run

        cfg = Run.open(args.run).cfg
        net_size = [cfg.input_height, cfg.input_width]
        arch = cfg.architecture
    else:
        net_size = list(args.photo_tile or (320, 480))
        arch = args.arch
    tile = list(args.photo_tile) if args.photo_tile else net_size
    gib = args.memory_limit_gb
    limit = int(gib * 2**30) if gib else int(0.8 * _memory_bytes())
    h, w = args.size
    print(
        f"\nsynthetic photo {h}x{w} ({h * w / 1e6:.1f} MP), {arch} "
        f"({'run ' + Path(args.run).name if args.run else 'random weights'}), tile "
        f"{tile[0]}x{tile[1]}, address space per child capped at {limit / 2**30:.1f} GiB"
    )
    settings = ([] if args.skip_whole else [("whole", None)]) + [(m, tile) for m in args.modes]
    rows = []
    for mode, mode_tile in settings:
        spec = {
            "run": args.run,
            "arch": arch,
            "net_size": net_size,
            "size": [h, w],
            "tile": mode_tile,
            "mode": mode,
            "device": args.device,
            "limit_bytes": limit,
        }
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode == 0 and lines:
            result = json.loads(lines[-1])
        else:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            result = {"error": f"exit {proc.returncode}: {tail[:160]}"}
        rows.append({"mode": mode, "tile": mode_tile, **result})
    print()
    print("| mode | tile | windows | s | s/MP | peak RSS MB | RSS before predicting MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['mode']} | {_pair(r['tile'])} | - | - | - | {r['error']} | - |")
            continue
        print(
            f"| {r['mode']} | {_pair(r['tile'])} | {r['windows']} | {r['seconds']:.1f} | "
            f"{r['s_per_mp']:.2f} | {r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} |"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained run folder (for (a) a CrackForest run)")
    parser.add_argument("--data", type=Path, help="data set folder (default: the run's)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    parser.add_argument("--tile", nargs=2, type=int, default=(160, 240), metavar=("H", "W"))
    parser.add_argument("--overlap", type=int, default=None, help="default: a quarter side")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--photo", action="store_true", help="run (b), the synthetic photo")
    parser.add_argument("--size", nargs=2, type=int, default=(3000, 4000), metavar=("H", "W"))
    parser.add_argument("--photo-tile", nargs=2, type=int, metavar=("H", "W"))
    parser.add_argument("--arch", default="segdecnet++", help="network of (b) without --run")
    parser.add_argument("--skip-whole", action="store_true", help="(b): tiled modes only")
    parser.add_argument("--memory-limit-gb", type=float, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    print(cpu_line(), flush=True)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0
    if not args.run and not args.photo:
        parser.error("give --run RUN_DIR for (a) and/or --photo for (b)")
    print(machine_line())
    out: dict = {"load_average": list(os.getloadavg())}
    if args.run:
        out["accuracy"] = accuracy(args)
    if args.photo:
        out["photo"] = photo(args)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
