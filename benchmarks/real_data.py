"""The published networks on real cracks: CrackForest, the same training budget for each.

Imports CFD from its published layout (``../shared/datasets/CrackForest-dataset`` by default, never
copied into the repository) with ``crackkit data cfd``, then trains every published network with
``crackkit run`` (the whole notebook pipeline, as a user runs it) on the same number of optimizer
steps, and prints one table: network, minutes, test 2-pixel F1 / Pr / Re at the threshold chosen
on the validation split (with its 95% bootstrap interval over test images), Dice, IoU (each at its
own validation threshold), ODS and OIS (tuned on the test split by definition). The last line is
the table as JSON.

    .venv/bin/python benchmarks/real_data.py [--epochs 8] [--architectures segdecnet segdecnet++]
        [--recipe published:] [--recipe prior:seg_prior_init=true,lr=0.001] [-p NAME VALUE]
        [--seeds 0 1 2] [--tiles 160 240]

A ``--recipe NAME:k=v,k=v`` is a set of run parameters; every recipe is trained with every
network and every seed of ``--seeds`` (``-p`` applies to all; a recipe's values override
``--epochs`` and ``-p``). With several seeds a second table gives mean ± sample standard deviation
per recipe and network. Calibration columns: mean crack probability of the background pixels and
the 10-bin expected calibration error, over every test pixel. ``dec AP`` is the step-wise decision
average precision: 1.0 by construction on CFD, whose images all hold cracks; ``--tiles H W``
trains and tests on the tiled variant ``crackkit data cfd --tiled-copy H W`` writes (the same
split cut into HxW tiles, crack-free tiles kept as real negatives; input size the tile unless
``--height``/``--width`` say otherwise), where it measures the decision head.

Run it alone: it trains for about 8 minutes per network on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, metrics_row  # noqa: E402

from crackkit.paths import ROOT  # noqa: E402
from crackkit.specs import ARCHITECTURES  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "datasets" / "CrackForest-dataset"


def _crackkit() -> str:
    return str(Path(sys.executable).with_name("crackkit"))


def _import_cfd(source: Path, root: Path, tiles: tuple[int, int] | None = None) -> Path:
    name = "cfd" if tiles is None else f"cfd-tiles-{tiles[0]}x{tiles[1]}"
    processed = root / "processed" / name
    if not processed.is_dir():
        cmd = [_crackkit(), "data", "cfd", "--source", str(source), "--root", str(root)]
        if tiles is not None:
            cmd += ["--tiled-copy", str(tiles[0]), str(tiles[1])]
        subprocess.run(cmd, check=True)
    return processed


def _recipe(text: str) -> tuple[str, list[tuple[str, str]]]:
    name, _, body = text.partition(":")
    pairs = [item.split("=", 1) for item in body.split(",") if item]
    if not name or any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--recipe {text!r}: expected NAME:k=v,k=v")
    return name, [(k, v) for k, v in pairs]


def _row(recipe: str, arch: str, seed: int, run_dir: Path, wall_s: float) -> dict:
    minutes = round(wall_s / 60, 2)
    return metrics_row(run_dir, recipe=recipe, network=arch, seed=seed, minutes_wall=minutes)


SUMMARY_KEYS = (
    "minutes_wall",
    "f1_2px",
    "precision_2px",
    "recall_2px",
    "dice",
    "iou",
    "ods",
    "ois",
    "mean_background_prob",
    "ece",
    "decision_ap",
)


def _summaries(rows: list[dict]) -> list[dict]:
    """Mean and sample standard deviation over the seeds of each (recipe, network)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["recipe"], r["network"]), []).append(r)
    out = []
    for (recipe, arch), group in groups.items():
        summary = {"recipe": recipe, "network": arch, "seeds": [r["seed"] for r in group]}
        for key in SUMMARY_KEYS:
            values = [r[key] for r in group if r.get(key) is not None]
            if values:
                summary[key] = statistics.fmean(values)
                summary[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out.append(summary)
    return out


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(f"{x:.3f}" for x in v) + "]"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--root", type=Path, default=Path("/tmp/crackkit-real-data"))
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--height", type=int, default=None, help="default 320, or the tile")
    parser.add_argument("--width", type=int, default=None, help="default 480, or the tile")
    parser.add_argument(
        "--tiles",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="train and test on the tiled variant processed/cfd-tiles-HxW (real negatives)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME:k=v,...")
    args = parser.parse_args(argv)
    recipes = [_recipe(r) for r in args.recipe] or [("default", [])]
    tiles = tuple(args.tiles) if args.tiles else None
    height = args.height or (tiles[0] if tiles else 320)
    width = args.width or (tiles[1] if tiles else 480)
    print(machine_line())
    data = _import_cfd(args.source, args.root, tiles)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for (recipe, recipe_params), arch, seed in (
        (r, a, s) for r in recipes for a in args.architectures for s in args.seeds
    ):
        run_dir = args.root / "runs" / f"{stamp}-{recipe}-{arch}-seed{seed}"
        params = [
            ("architecture", arch),
            ("input_height", str(height)),
            ("input_width", str(width)),
            ("epochs", str(args.epochs)),
            ("seed", str(seed)),
            *[tuple(p) for p in args.param],
            *recipe_params,
        ]
        cmd = [_crackkit(), "run", "--dataset", str(data), "--run", str(run_dir), "--quiet"]
        for name, value in params:
            cmd += ["-p", name, value]
        print("$", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        rows.append(_row(recipe, arch, seed, run_dir, time.perf_counter() - t0))
        print(machine_line(), flush=True)
    cols = [
        ("recipe", "recipe"),
        ("network", "network"),
        ("seed", "seed"),
        ("min (wall)", "minutes_wall"),
        ("min (train)", "minutes_train"),
        ("2px F1", "f1_2px"),
        ("95% CI", "f1_2px_ci95"),
        ("2px Pr", "precision_2px"),
        ("2px Re", "recall_2px"),
        ("thr", "threshold_2px"),
        ("Dice", "dice"),
        ("IoU", "iou"),
        ("ODS", "ods"),
        ("OIS", "ois"),
        ("bg p", "mean_background_prob"),
        ("ECE", "ece"),
        ("dec AP", "decision_ap"),
    ]
    name = "CrackForest" if tiles is None else f"CrackForest tiled {tiles[0]}x{tiles[1]}"
    print()
    print(
        f"{name} test split ({rows[0]['n_test']} images, {rows[0]['n_test_positive']} with "
        f"cracks), {height}x{width}, {args.epochs} epochs unless the recipe says otherwise; "
        "2px/Dice/IoU at validation thresholds, ODS/OIS oracle (tuned on test)"
    )
    print("| " + " | ".join(c for c, _ in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(_fmt(r.get(k)) for _, k in cols) + " |")
    summaries = _summaries(rows)
    if len(args.seeds) > 1:
        print()
        print(f"Mean ± standard deviation over seeds {' '.join(map(str, args.seeds))}:")
        keys = [c for c in cols if c[1] in SUMMARY_KEYS]
        print("| recipe | network | " + " | ".join(c for c, _ in keys) + " |")
        print("|" + "---|" * (len(keys) + 2))
        for s in summaries:
            cells = [f"{s[k]:.3f} ± {s[k + '_std']:.3f}" if k in s else "n/a" for _, k in keys]
            print(f"| {s['recipe']} | {s['network']} | " + " | ".join(cells) + " |")
    print(
        json.dumps(
            {"benchmark": "real_data", "dataset": data.name, "rows": rows, "summaries": summaries}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
