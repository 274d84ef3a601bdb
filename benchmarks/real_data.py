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
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_line, machine_line  # noqa: E402
from _grid import print_tables, recipe, run_grid  # noqa: E402

from crackkit.paths import ROOT  # noqa: E402
from crackkit.specs import ARCHITECTURES  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "datasets" / "CrackForest-dataset"


def _import_cfd(source: Path, root: Path, tiles: tuple[int, int] | None = None) -> Path:
    name = "cfd" if tiles is None else f"cfd-tiles-{tiles[0]}x{tiles[1]}"
    processed = root / "processed" / name
    if not processed.is_dir():
        crackkit = str(Path(sys.executable).with_name("crackkit"))
        cmd = [crackkit, "data", "cfd", "--source", str(source), "--root", str(root)]
        if tiles is not None:
            cmd += ["--tiled-copy", str(tiles[0]), str(tiles[1])]
        subprocess.run(cmd, check=True)
    return processed


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
    print(cpu_line(), flush=True)
    recipes = [recipe(r) for r in args.recipe] or [("default", [])]
    tiles = tuple(args.tiles) if args.tiles else None
    height = args.height or (tiles[0] if tiles else 320)
    width = args.width or (tiles[1] if tiles else 480)
    print(machine_line())
    data = _import_cfd(args.source, args.root, tiles)
    base = [
        ("input_height", str(height)),
        ("input_width", str(width)),
        ("epochs", str(args.epochs)),
        *[tuple(p) for p in args.param],
    ]
    rows = run_grid(
        data,
        recipes,
        seeds=args.seeds,
        runs_root=args.root / "runs",
        base=base,
        architectures=args.architectures,
    )
    name = "CrackForest" if tiles is None else f"CrackForest tiled {tiles[0]}x{tiles[1]}"
    print_tables(
        f"{name} test split ({rows[0]['n_test']} images, {rows[0]['n_test_positive']} with "
        f"cracks), {height}x{width}, {args.epochs} epochs unless the recipe says otherwise; "
        "2px/Dice/IoU at validation thresholds, ODS/OIS oracle (tuned on test)",
        rows,
        benchmark="real_data",
        dataset=data.name,
        started=time.strftime("%Y-%m-%d"),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
