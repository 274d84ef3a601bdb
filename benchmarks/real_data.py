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

A ``--recipe NAME:k=v,k=v`` is a set of run parameters; every recipe is trained with every
network (``-p`` applies to all). Calibration columns: mean crack probability of the background
pixels and the 10-bin expected calibration error, over every test pixel.

Run it alone: it trains for about 8 minutes per network on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line  # noqa: E402

from crackkit.paths import ROOT  # noqa: E402
from crackkit.specs import ARCHITECTURES  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "datasets" / "CrackForest-dataset"


def _crackkit() -> str:
    return str(Path(sys.executable).with_name("crackkit"))


def _import_cfd(source: Path, root: Path) -> Path:
    processed = root / "processed" / "cfd"
    if not processed.is_dir():
        subprocess.run(
            [_crackkit(), "data", "cfd", "--source", str(source), "--root", str(root)], check=True
        )
    return processed


def _get(d: dict, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _recipe(text: str) -> tuple[str, list[tuple[str, str]]]:
    name, _, body = text.partition(":")
    pairs = [item.split("=", 1) for item in body.split(",") if item]
    if not name or any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--recipe {text!r}: expected NAME:k=v,k=v")
    return name, [(k, v) for k, v in pairs]


def _row(recipe: str, arch: str, run_dir: Path, wall_s: float) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    px = m.get("pixel_2px", {})
    return {
        "recipe": recipe,
        "network": arch,
        "minutes_wall": round(wall_s / 60, 2),
        "minutes_train": round((_get(m, "timing", "train_and_validate") or 0) / 60, 2),
        "threshold_2px": _get(m, "val_thresholds", "pixel_2px"),
        "f1_2px": px.get("f1"),
        "f1_2px_ci95": px.get("f1_ci95"),
        "precision_2px": px.get("precision"),
        "recall_2px": px.get("recall"),
        "dice": _get(m, "dice", "value"),
        "iou": _get(m, "iou", "value"),
        "ods": _get(m, "ods", "f1") if isinstance(m.get("ods"), dict) else m.get("ods"),
        "ois": _get(m, "ois", "f1") if isinstance(m.get("ois"), dict) else m.get("ois"),
        "mean_background_prob": _get(m, "calibration", "mean_background_prob"),
        "ece": _get(m, "calibration", "ece"),
        "run_dir": str(run_dir),
    }


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
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument(
        "-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME:k=v,...")
    args = parser.parse_args(argv)
    recipes = [_recipe(r) for r in args.recipe] or [("default", [])]
    print(machine_line())
    data = _import_cfd(args.source, args.root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for (recipe, recipe_params), arch in (
        (r, a) for r in recipes for a in args.architectures
    ):
        run_dir = args.root / "runs" / f"{stamp}-{recipe}-{arch}"
        params = [
            ("architecture", arch),
            ("input_height", str(args.height)),
            ("input_width", str(args.width)),
            ("epochs", str(args.epochs)),
            *[tuple(p) for p in args.param],
            *recipe_params,
        ]
        cmd = [_crackkit(), "run", "--dataset", str(data), "--run-dir", str(run_dir), "--quiet"]
        for name, value in params:
            cmd += ["-p", name, value]
        print("$", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        rows.append(_row(recipe, arch, run_dir, time.perf_counter() - t0))
        print(machine_line(), flush=True)
    cols = [
        ("recipe", "recipe"),
        ("network", "network"),
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
    ]
    print()
    print(
        f"CrackForest test split (46 images), {args.height}x{args.width}, {args.epochs} epochs "
        "each; 2px/Dice/IoU at validation thresholds, ODS/OIS oracle (tuned on test)"
    )
    print("| " + " | ".join(c for c, _ in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(_fmt(r[k]) for _, k in cols) + " |")
    print(json.dumps({"benchmark": "real_data", "dataset": "cfd", "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
