"""The decision head within a short budget: decision AP and 2-pixel F1 of training recipes on
roads the kit was never tuned on.

Data: ``benchmarks/_roads.py``, a generator apart from the kit's own (asphalt with saw-cut joints,
lane paint and stains; cracks on half the images), 192x256: 160 training images, 48 validation,
160 test. Every recipe trains with ``crackkit run`` (the whole notebook pipeline) on the same
budget, 6 epochs at the default batch size unless the recipe says otherwise, and the table gives
test decision AP (step-wise), 2-pixel F1 with its bootstrap interval, and the wall minutes.

    .venv/bin/python benchmarks/decision_defaults.py [--recipe NAME:k=v,...] [--seeds 0]
        [--epochs 6] [-p NAME VALUE]

Without ``--recipe`` it runs the kit's defaults. Run it alone: a recipe takes 6-9 minutes of a
2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_line, machine_line  # noqa: E402
from _grid import print_tables, recipe, run_grid  # noqa: E402
from _roads import make_roads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/crackkit-roads"))
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME:k=v,...")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", nargs=2, type=int, default=[192, 256], metavar=("H", "W"))
    parser.add_argument(
        "-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    args = parser.parse_args(argv)
    print(cpu_line(), flush=True)
    print(machine_line())
    height, width = args.size
    data = make_roads(args.root / f"roads-{height}x{width}", height=height, width=width)
    base = [
        ("input_height", str(height)),
        ("input_width", str(width)),
        ("epochs", str(args.epochs)),
        *[tuple(p) for p in args.param],
    ]
    recipes = [recipe(r) for r in args.recipe] or [("defaults", [])]
    rows = run_grid(data, recipes, seeds=args.seeds, runs_root=args.root / "runs", base=base)
    print_tables(
        f"Roads (benchmarks/_roads.py) test split ({rows[0]['n_test']} images, "
        f"{rows[0]['n_test_positive']} with cracks), {height}x{width}, {args.epochs} epochs "
        "unless the recipe says otherwise; 2px F1 at the validation threshold",
        rows,
        benchmark="decision_defaults",
        started=time.strftime("%Y-%m-%d"),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
