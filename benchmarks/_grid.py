"""A grid of recipes x networks x seeds trained with ``crackkit run`` (the whole notebook pipeline,
as a user runs it), and its tables: one row per run, then mean ± sample standard deviation per
recipe and network where several seeds ran. Shared by ``real_data.py``, ``decision_defaults.py``
and ``mixed_supervision.py``.

A recipe is ``NAME:k=v,k=v``, a set of run parameters; later parameters override earlier ones
(base parameters, then the recipe's).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _common import machine_line, metrics_row

__all__ = [
    "COLUMNS",
    "SUMMARY_KEYS",
    "add_rows_from",
    "fmt",
    "logged_rows",
    "print_tables",
    "recipe",
    "run_grid",
    "summaries",
]

COLUMNS = [
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


def recipe(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``NAME:k=v,k=v`` -> ``(NAME, [(k, v), ...])``."""
    name, _, body = text.partition(":")
    pairs = [item.split("=", 1) for item in body.split(",") if item]
    if not name or any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--recipe {text!r}: expected NAME:k=v,k=v")
    return name, [(k, v) for k, v in pairs]


def _crackkit() -> str:
    return str(Path(sys.executable).with_name("crackkit"))


def run_grid(
    data: Path,
    recipes: Sequence[tuple[str, list[tuple[str, str]]]],
    *,
    seeds: Sequence[int],
    runs_root: Path,
    base: Sequence[tuple[str, str]] = (),
    architectures: Sequence[str] = ("segdecnet++",),
    seed_param: str = "seed",
    preset: str | None = None,
) -> list[dict]:
    """Train every recipe x network x seed with ``crackkit run``; returns one metrics row each.

    ``seed_param`` is the run parameter the seed goes into (``seed``, the initialisation; or
    ``segmented_seed``, the choice of segmented images). ``preset`` is applied before the
    parameters. Each run's folder is kept under ``runs_root``.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for (name, params), arch, seed in (
        (r, a, s) for r in recipes for a in architectures for s in seeds
    ):
        run_dir = runs_root / f"{stamp}-{name}-{arch}-seed{seed}"
        pairs = [("architecture", arch), (seed_param, str(seed)), *base, *params]
        cmd = [_crackkit(), "run", "--dataset", str(data), "--run", str(run_dir), "--quiet"]
        if preset:
            cmd += ["--preset", preset]
        for key, value in pairs:
            cmd += ["-p", key, value]
        print("$", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        minutes = round((time.perf_counter() - t0) / 60, 2)
        rows.append(
            metrics_row(run_dir, recipe=name, network=arch, seed=seed, minutes_wall=minutes)
        )
        print(machine_line(), flush=True)
    return rows


def summaries(rows: list[dict]) -> list[dict]:
    """Mean and sample standard deviation over the seeds of each (recipe, network)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["recipe"], r["network"]), []).append(r)
    out = []
    for (name, arch), group in groups.items():
        summary = {"recipe": name, "network": arch, "seeds": [r["seed"] for r in group]}
        for key in SUMMARY_KEYS:
            values = [r[key] for r in group if r.get(key) is not None]
            if values:
                summary[key] = statistics.fmean(values)
                summary[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out.append(summary)
    return out


def fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(f"{x:.3f}" for x in v) + "]"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def add_rows_from(parser) -> None:
    """``--rows-from LOG ...``: train nothing, merge the rows that earlier runs of the script
    printed (their output saved to files) into one table (:func:`logged_rows`)."""
    parser.add_argument(
        "--rows-from",
        nargs="+",
        type=Path,
        metavar="LOG",
        help="train nothing: merge the rows of earlier runs of this script (their printed "
        "output, saved to files) into one table",
    )


def logged_rows(log: Path, benchmark: str) -> list[dict]:
    """The rows of the JSON line that a run of ``benchmark`` printed last into ``log``."""
    for line in reversed(Path(log).read_text().splitlines()):
        if line.startswith("{") and f'"benchmark": "{benchmark}"' in line:
            return json.loads(line)["rows"]
    raise SystemExit(f"{log}: no output of benchmarks/{benchmark}.py in it")


def print_tables(
    title: str, rows: list[dict], *, benchmark: str, columns=COLUMNS, **json_fields
) -> list[dict]:
    """Print the per-run table, the per-recipe summary (several seeds) and the JSON line."""
    print()
    print(title)
    print("| " + " | ".join(c for c, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(fmt(r.get(k)) for _, k in columns) + " |")
    summary = summaries(rows)
    if any(len(s["seeds"]) > 1 for s in summary):
        print()
        print("Mean ± sample standard deviation over the seeds of each recipe:")
        keys = [c for c in columns if c[1] in SUMMARY_KEYS]
        print("| recipe | network | seeds | " + " | ".join(c for c, _ in keys) + " |")
        print("|" + "---|" * (len(keys) + 3))
        for s in summary:
            cells = [f"{s[k]:.3f} ± {s[k + '_std']:.3f}" if k in s else "n/a" for _, k in keys]
            seeds = " ".join(map(str, s["seeds"]))
            print(f"| {s['recipe']} | {s['network']} | {seeds} | " + " | ".join(cells) + " |")
    print(json.dumps({"benchmark": benchmark, **json_fields, "rows": rows, "summaries": summary}))
    return summary
