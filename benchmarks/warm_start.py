"""What a warm start buys: CrackForest with ``--preset cfd`` from scratch against the same run
started from given weights (``init_weights``), the same budget for every row.

Each start is ``NAME=PATH`` (a crackkit run folder, whose chosen checkpoint is loaded, or a
checkpoint file); ``scratch`` is always run. Every run is ``crackkit run --preset cfd`` (the whole
notebook pipeline) with ``-p init_weights PATH`` for a start, once per seed of ``--seeds``; the
table gives the test 2-pixel F1 (validation threshold, 95% bootstrap interval), precision,
recall, calibration and minutes, then mean ± std per start.

    .venv/bin/python benchmarks/warm_start.py --start synthetic=runs/<make report's run> \\
        --start cfd-tiles=/tmp/crackkit-real-data/runs/<a CFD tiles run> --seeds 0 1 2

Run it alone: a row takes about 10 minutes of a 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_line, machine_line  # noqa: E402
from _grid import add_rows_from, logged_rows, print_tables, run_grid  # noqa: E402
from real_data import DEFAULT_SOURCE, _import_cfd  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--root", type=Path, default=Path("/tmp/crackkit-real-data"))
    parser.add_argument("--start", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--no-scratch", action="store_true", help="only the given starts")
    parser.add_argument(
        "-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    add_rows_from(parser)
    args = parser.parse_args(argv)
    print(cpu_line(), flush=True)
    print(machine_line())
    data = _import_cfd(args.source, args.root)
    recipes = [] if args.no_scratch else [("scratch", [])]
    for item in args.start:
        name, _, path = item.partition("=")
        if not name or not path or not Path(path).exists():
            raise SystemExit(f"--start {item!r}: expected NAME=PATH of an existing run or file")
        recipes.append((name, [("init_weights", str(Path(path).resolve()))]))
    if args.rows_from:
        rows = [row for log in args.rows_from for row in logged_rows(log, "warm_start")]
    else:
        rows = run_grid(
            data,
            recipes,
            seeds=args.seeds,
            runs_root=args.root / "runs",
            base=[tuple(p) for p in args.param],
            preset="cfd",
        )
    print_tables(
        f"CrackForest test split ({rows[0]['n_test']} images), --preset cfd (320x480, 9 epochs, "
        "segdecnet++); 2px F1 at the validation threshold",
        rows,
        benchmark="warm_start",
        dataset=data.name,
        started=time.strftime("%Y-%m-%d"),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
