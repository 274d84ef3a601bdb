"""Distributed training: two gloo processes on 127.0.0.1 train one complete run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

from crackkit.paths import ROOT


def test_two_gloo_processes_complete_a_run(tmp_path):
    """torchrun with 2 CPU processes trains, validates, evaluates and writes a complete run."""
    run = tmp_path / "run"
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        CRACKKIT_DATA_DIR=str(tmp_path / "data"),
        CRACKKIT_RUNS_DIR=str(tmp_path / "runs"),
        MASTER_ADDR="127.0.0.1",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "crackkit.launch",
        "--preset",
        "tiny",
        "--run-dir",
        str(run),
        "-p",
        "epochs",
        "2",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"decision", "pixel_2px", "dice", "iou"} <= set(metrics)
    d = metrics["decision"]
    assert d["tp"] + d["fp"] + d["fn"] + d["tn"] == 6
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(int(r["n_train"]) == 8 for r in rows), "each epoch covers the split across ranks"
    assert "Distributed training on 2 process(es)" in (run / "run.log").read_text()
    assert (run / "REPORT.md").is_file()
