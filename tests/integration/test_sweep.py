"""crackkit sweep end to end: 2 values x 2 seeds through the real notebook pipeline, restartable.

The four tiny runs (one epoch each) are made once for the module; the other tests read them.
"""

from __future__ import annotations

import contextlib
import io
import json

import papermill
import pytest

from crackkit.cli import main
from crackkit.paths import NOTEBOOKS_DIR

NAMES = ["lr=0.001-seed0", "lr=0.001-seed1", "lr=0.0001-seed0", "lr=0.0001-seed1"]
JOBS = "2"


def _sweep(parent, *extra):
    out = io.StringIO()
    argv = ["sweep", "--preset", "tiny", "--sweep-dir", str(parent), "-p", "epochs", "1"]
    argv += ["-p", "lr", "0.001,0.0001", "--seeds", "2", "--jobs", JOBS, *extra]
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def swept(module_kit_dirs):
    """The sweep's folder, its exit code and its printed output."""
    base = module_kit_dirs["base"]
    parent = base / "runs" / "lr-sweep"
    code, out = _sweep(parent)
    return parent, code, out


def test_sweep_succeeds(swept):
    """Exit 0; the last printed line is COMPARE.md's path."""
    parent, code, out = swept
    assert code == 0, out
    assert out.strip().splitlines()[-1] == str(parent / "COMPARE.md")
    assert "[sweep] done: 4 finished, 0 skipped, 0 failed" in out


def test_one_finished_run_folder_per_combination_and_seed(swept):
    """lr=...-seed<N> folders, each a complete run with its own lr and seed."""
    parent, _, _ = swept
    assert sorted(p.name for p in parent.iterdir() if p.is_dir()) == sorted(NAMES + ["logs"])
    for name in NAMES:
        cfg = json.loads((parent / name / "config.json").read_text())
        lr, seed = name.split("-seed")
        assert (f"lr={cfg['lr']}", cfg["seed"], cfg["epochs"]) == (lr, int(seed), 1)
        assert (parent / name / "REPORT.md").is_file()
        assert (parent / name / "metrics.json").is_file()
        assert (parent / "logs" / f"{name}.log").is_file()


def test_sweep_json_records_grid_and_status(swept):
    """sweep.json: the varied grid, the fixed parameters, the seeds and every run finished."""
    parent, _, _ = swept
    record = json.loads((parent / "sweep.json").read_text())
    assert record["grid"] == {"lr": [0.001, 0.0001]}
    assert record["fixed"] == {"epochs": 1} and record["preset"] == "tiny"
    assert record["seeds"] == [0, 1]
    assert {r["name"]: r["status"] for r in record["runs"]} == dict.fromkeys(NAMES, "finished")


def test_compare_md_groups_seeds(swept):
    """COMPARE.md: an lr column, one mean ± std row per lr over 2 seeds, bold best, per-run rows."""
    parent, _, _ = swept
    text = (parent / "COMPARE.md").read_text()
    assert "# Comparison of 4 runs" in text
    for title in ("## Decision", "## Dice and IoU", "## 2 pixel distance"):
        table = text.split(title + "\n\n")[1].split("\n\n")[0]
        rows = table.splitlines()
        assert rows[0].startswith("| lr | Seeds | n |")
        assert [r.split(" | ")[:3] for r in rows[2:]] == [["| 0.001", "0, 1", "2"]] + [
            ["| 0.0001", "0, 1", "2"]
        ]
        assert all(" ± " in r for r in rows[2:]) and "**" in table
    assert "| epochs | 1 |" in text
    per_run = text.split("## Per run\n\n")[1].split("\n\n")[0]
    for name in NAMES:
        assert f"| [{name}]({name}/REPORT.md) |" in per_run
    assert (parent / "compare_loss.png").is_file()
    assert (parent / "compare_val_f1_2px.png").is_file()


def test_restart_skips_finished_runs(swept):
    """A second invocation runs nothing: each run is reported skipped, no report is rewritten."""
    parent, _, _ = swept
    before = {n: (parent / n / "REPORT.md").stat().st_mtime_ns for n in NAMES}
    logs = {n: (parent / "logs" / f"{n}.log").read_text() for n in NAMES}
    code, out = _sweep(parent)
    assert code == 0, out
    assert out.count("[sweep] skipped (finished): ") == 4
    assert "[sweep] done: 0 finished, 4 skipped, 0 failed" in out
    assert {n: (parent / n / "REPORT.md").stat().st_mtime_ns for n in NAMES} == before
    assert {n: (parent / "logs" / f"{n}.log").read_text() for n in NAMES} == logs
    record = json.loads((parent / "sweep.json").read_text())
    assert len(record["invocations"]) == 2
    assert {r["status"] for r in record["runs"]} == {"skipped"}
    assert all(r["duration_s"] > 0 for r in record["runs"]), "the first run's record is kept"


def test_unfinished_run_is_planned_for_resume(swept):
    """A run with a checkpoint but no metrics is resumed, not restarted (dry run)."""
    parent, _, _ = swept
    run = parent / NAMES[0]
    moved = [(run / f, run / f"{f}.aside") for f in ("metrics.json", "REPORT.md")]
    for a, b in moved:
        a.rename(b)
    try:
        code, out = _sweep(parent, "--dry-run")
    finally:
        for a, b in moved:
            b.rename(a)
    assert code == 0
    assert f"resume   {NAMES[0]}" in out and "3 finished (skipped)" in out


def test_compare_notebook_on_the_sweep(swept, tmp_path):
    """05_compare.ipynb compares the sweep's folder into the given file."""
    parent, _, _ = swept
    out = tmp_path / "cmp" / "COMPARE.md"
    papermill.execute_notebook(
        str(NOTEBOOKS_DIR / "05_compare.ipynb"),
        str(tmp_path / "05.ipynb"),
        parameters={"run_dirs": str(parent), "out": str(out)},
        kernel_name="python3",
        progress_bar=False,
    )
    text = out.read_text()
    assert "| lr | Seeds | n |" in text
    assert f"[{NAMES[0]}](" in text and "/REPORT.md) |" in text
    assert (out.parent / "compare_val_f1_2px.png").is_file()
