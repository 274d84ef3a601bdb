"""Mixed supervision on real cracks: how close do a few pixel masks come to all of them?

The paper's experiment (Božič, Tabernik, Skočaj 2021, Table 3 and Figures 5/7/9: the number of
segmented positives N varies, every other positive keeps its image-level label) on crack data:
the tiled CrackForest (``crackkit data cfd --tiles 160 240``: 160x240 tiles, crack-free tiles kept
as real negatives), the same recipe and budget for every row, ``num_segmented`` in
``--ns`` (default 0 5 15 45 all) of the crack tiles. Every run is ``crackkit run`` (the whole
notebook pipeline); its folder is kept under ``--root/runs``. The table: test decision AP and
2-pixel F1 (at the validation threshold, with its 95% bootstrap interval over crack tiles) per
run, then mean ± std per row where several seeds ran; ``--plot`` draws metric against N (the
paper's figure).

    .venv/bin/python benchmarks/mixed_supervision.py [--ns 0 5 15 45 all] [--seeds 0]
        [--epochs 8] [-p NAME VALUE] [--plot docs/mixed_supervision.png]

``--seeds`` vary the initialisation (``seed``) over one fixed choice of segmented tiles
(``segmented_seed`` 0), as the paper's fixed split files do. A row takes about 10 minutes of a
2-core CPU: run it alone, and spread the rows out (``--ns 0 --seeds 1 2`` adds seeds to a row).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_line, machine_line  # noqa: E402
from _grid import COLUMNS, add_rows_from, logged_rows, print_tables, run_grid, summaries  # noqa: E402
from real_data import DEFAULT_SOURCE, _import_cfd  # noqa: E402

COLS = [("N", "recipe")] + [c for c in COLUMNS if c[1] not in ("recipe", "network")]


def plot(summary: list[dict], n_available: int, path: Path) -> Path:
    """Decision AP and 2-pixel F1 against the number of segmented crack tiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def n_of(s: dict) -> int:
        name = s["recipe"].removeprefix("N=")
        return n_available if name == "all" else int(name)

    ordered = sorted(summary, key=n_of)
    xs = [n_of(s) for s in ordered]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for key, label, colour in (
        ("decision_ap", "decision AP", "tab:blue"),
        ("f1_2px", "2-pixel F1", "tab:orange"),
    ):
        ys = [s.get(key) for s in ordered]
        err = [s.get(key + "_std", 0.0) for s in ordered]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label, color=colour)
    ax.set_xscale("symlog", linthresh=5)
    ax.set_xticks(xs)
    ax.set_xticklabels([s["recipe"].removeprefix("N=") for s in ordered])
    ax.set_xlabel(f"segmented crack tiles N (of {n_available}); the rest image-level only")
    ax.set_ylabel("test score")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Mixed supervision on CrackForest tiles 160x240")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--root", type=Path, default=Path("/tmp/crackkit-real-data"))
    parser.add_argument("--ns", nargs="+", default=["0", "5", "15", "45", "all"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--tiles", nargs=2, type=int, default=[160, 240], metavar=("H", "W"))
    parser.add_argument(
        "-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    parser.add_argument("--plot", type=Path, help="draw metric against N into this PNG")
    add_rows_from(parser)
    args = parser.parse_args(argv)
    print(cpu_line(), flush=True)
    print(machine_line())
    tiles = tuple(args.tiles)
    data = _import_cfd(args.source, args.root, tiles)
    n_available = sum(1 for _ in (data / "train" / "masks").iterdir()) - _negatives(data)
    if args.rows_from:
        rows = [row for log in args.rows_from for row in logged_rows(log, "mixed_supervision")]
    else:
        base = [
            ("input_height", str(tiles[0])),
            ("input_width", str(tiles[1])),
            ("epochs", str(args.epochs)),
            *[tuple(p) for p in args.param],
        ]
        recipes = [(f"N={n}", [("num_segmented", n)]) for n in args.ns]
        rows = run_grid(data, recipes, seeds=args.seeds, runs_root=args.root / "runs", base=base)
    print_tables(
        f"CrackForest tiles {tiles[0]}x{tiles[1]} test split ({rows[0]['n_test']} tiles, "
        f"{rows[0]['n_test_positive']} with cracks); {n_available} crack tiles in train, N of "
        f"them segmented; {args.epochs} epochs, segdecnet++; 2px F1 at the validation threshold",
        rows,
        benchmark="mixed_supervision",
        columns=COLS,
        dataset=data.name,
        n_available=n_available,
        started=time.strftime("%Y-%m-%d"),
    )
    if args.plot:
        print(plot(summaries(rows), n_available, args.plot))
    return 0


def _negatives(data: Path) -> int:
    """Crack-free training tiles: their masks are all zero."""
    import numpy as np
    from PIL import Image

    return sum(
        1 for p in (data / "train" / "masks").iterdir() if not np.asarray(Image.open(p)).any()
    )


if __name__ == "__main__":
    raise SystemExit(main())
