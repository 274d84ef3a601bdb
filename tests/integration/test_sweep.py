"""crackkit sweep end to end: 2 values x 2 seeds through the real notebook pipeline, restartable,
on the local engine and on a Ray cluster (the same runs and numbers); an ASHA search on Ray.

The four tiny runs (one epoch each) are made once for the module on each engine; the other
tests read them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import papermill
import pytest

from crackkit.cli import main
from crackkit.paths import NOTEBOOKS_DIR
from crackkit.search import parse_space
from crackkit.sweep import plan_sweep

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


# The Ray engine. Both Ray tests run `crackkit sweep --engine ray` as a child process: its own Ray
# driver, as on the command line. Ray's single-machine mode keeps every Ray service on 127.0.0.1.

RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
TABLES = ("Decision", "Dice and IoU", "2 pixel distance")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head on 127.0.0.1 with 2 CPUs and 2 declared (fake) GPUs, stopped after the module."""
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="ckray-", dir="/tmp"))  # short: Ray's socket paths
    log = tmp_path_factory.mktemp("ray") / "head.log"
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block"]
    cmd += [f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2", "--num-gpus=2"]
    cmd += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    with open(log, "w") as fh:
        head = subprocess.Popen(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=os.environ | RAY_ENV,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def _sweep_child(parent, *extra):
    argv = [sys.executable, "-m", "crackkit.cli", "sweep", "--preset", "tiny"]
    argv += ["--sweep-dir", str(parent), "-p", "epochs", "1", "-p", "lr", "0.001,0.0001"]
    argv += ["--seeds", "2", "--jobs", JOBS, *extra]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | RAY_ENV,
    )


def _statuses(parent):
    try:
        return [r["status"] for r in json.loads((parent / "sweep.json").read_text())["runs"]]
    except (OSError, ValueError, KeyError):
        return []


def _processes_naming(path):
    """Process ids whose command line names ``path`` (a run's `crackkit run`)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if proc.name.isdigit() and str(path) in cmdline and int(proc.name) != os.getpid():
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def ray_swept(swept, ray_head):
    """The local sweep's 2 x 2 grid on the Ray head, interrupted (SIGINT) once two runs are
    finished and a third has started, then started again: the folder and both outputs."""
    parent = swept[0].parent / "lr-sweep-ray"
    first = _sweep_child(parent, "--engine", "ray", "--address", ray_head)
    deadline = time.monotonic() + 600
    while True:
        status = _statuses(parent)
        if status.count("finished") >= 2 and "running" in status or first.poll() is not None:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)
    out1 = first.communicate(timeout=180)[0]
    left = _processes_naming(parent)
    second = _sweep_child(parent, "--engine", "ray", "--address", ray_head)
    out2 = second.communicate(timeout=600)[0]
    return parent, (first.returncode, out1, left), (second.returncode, out2)


def test_ray_sweep_interrupted_then_continued(ray_swept):
    """SIGINT stops the Ray sweep (exit 130, runs 'interrupted', no run process left); the same
    command continues it: finished runs are skipped, the others done, exit 0."""
    parent, (code1, out1, left), (code2, out2) = ray_swept
    assert code1 == 130, out1
    assert "interrupted; run the same command again to continue" in out1
    assert left == []
    record = json.loads((parent / "sweep.json").read_text())
    first, second = record["invocations"]
    assert first["finished"] >= 2 and first["interrupted"] >= 1, first
    assert code2 == 0, out2
    assert out2.count("[sweep] skipped (finished): ") == first["finished"]
    assert f"[sweep] done: {4 - first['finished']} finished, {first['finished']} skipped" in out2
    assert (second["engine"]["name"], second["engine"]["gpus_per_run"]) == ("ray", 1)
    assert {r["status"] for r in record["runs"]} <= {"finished", "skipped"}


def test_ray_grid_equals_the_local_engines(swept, ray_swept):
    """The same four run folders as the local engine, with identical metrics (timing aside), the
    same threads (recorded in each run) and identical COMPARE.md tables."""
    local, ray_parent = swept[0], ray_swept[0]
    runs = sorted(p.name for p in ray_parent.iterdir() if (p / "config.json").is_file())
    assert runs == sorted(NAMES)
    for name in NAMES:
        a, b = (json.loads((p / name / "metrics.json").read_text()) for p in (local, ray_parent))
        a.pop("timing"), b.pop("timing")
        assert a == b, name
        for p in (local, ray_parent):
            env = json.loads((p / name / "environment.json").read_text())
            assert (env["torch_threads"], env["omp_num_threads"]) == (1, "1")
    texts = [(p / "COMPARE.md").read_text() for p in (local, ray_parent)]
    for title in TABLES:
        a, b = (t.split(f"## {title}\n\n")[1].split("\n\n")[0] for t in texts)
        assert a == b, title


def test_ray_places_each_run_on_a_declared_gpu(ray_swept):
    """With 2 declared GPUs and 1 GPU per run (the default where there are GPUs), each run sees
    one of them as CUDA_VISIBLE_DEVICES, and the two runs that ran together saw different ones."""
    parent = ray_swept[0]
    runs = json.loads((parent / "sweep.json").read_text())["runs"]
    assert {r["cuda_visible_devices"] for r in runs} == {"0", "1"}
    for r in runs:
        env = json.loads((parent / r["name"] / "environment.json").read_text())
        assert env["cuda_visible_devices"] == r["cuda_visible_devices"]
        assert r["threads"] == 1
    together = [r["cuda_visible_devices"] for r in runs if r["status"] == "skipped"][:2]
    assert sorted(together) == ["0", "1"]
    log = (parent / "logs" / f"{NAMES[0]}.log").read_text()
    assert "1 thread(s), CUDA_VISIBLE_DEVICES='" in log


# loguniform:1e-6:3e-3 with --search-seed 124 draws lr 0.002192, then 8.06e-05: a learning rate
# near the tiny preset's best first, so that ASHA (reduction factor 2, one run at a time) has a
# run to compare the slower-learning one against. Two points keep the test's time down (each run
# is a full notebook pipeline); the rule is checked for any number.
SEARCH = ["--sample", "lr", "loguniform:1e-6:3e-3", "--num-samples", "2", "--search-seed", "124"]
ASHA = ["--engine", "ray", "--early-stop", "asha", "--grace-period", "1", "--reduction-factor", "2"]


def test_asha_search_stops_runs_early(module_kit_dirs):
    """A 2-point log-uniform search on a local Ray instance with ASHA: every run's stop follows
    ASHA's rule (reduction factor 2: stopped when its epoch-1 validation F1 is below the median
    of the earlier runs' epoch-1 scores), some runs are stopped, COMPARE.md lists them apart,
    and a restart keeps them."""
    parent = module_kit_dirs["runs"] / "asha"
    argv = [sys.executable, "-m", "crackkit.cli", "sweep", "--preset", "tiny", "-p", "epochs", "2"]
    argv += ["--sweep-dir", str(parent), "--seeds", "0,", "--jobs", "1", *SEARCH, *ASHA]
    done = subprocess.run(argv, capture_output=True, text=True, env=os.environ | RAY_ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((parent / "sweep.json").read_text())
    lrs = [p["lr"] for p in record["search"]["points"]]
    assert lrs == [0.002192, 8.06e-05]
    assert record["invocations"][0]["engine"]["address"] == "local instance"
    scores, stopped = [], []
    for run in record["runs"]:
        history = (parent / run["name"] / "history.csv").read_text().splitlines()
        columns = history[0].split(",")
        first = dict(zip(columns, history[1].split(","), strict=True))
        score = float(first["val_f1_2px"])
        stopped.append(bool(scores) and score < statistics.median(scores))
        scores.append(score)
        assert run["status"] == ("stopped" if stopped[-1] else "finished"), (run, scores)
    assert any(stopped) and not stopped[0]
    for run, was_stopped in zip(record["runs"], stopped, strict=True):
        folder = parent / run["name"]
        assert (folder / "stopped.json").is_file() == was_stopped
        assert (folder / "metrics.json").is_file() != was_stopped
        if was_stopped:
            assert f"[sweep] stopped early by ASHA: {run['name']} (epoch 1," in done.stdout
            assert json.loads((folder / "stopped.json").read_text())["epoch"] == 1
    text = (parent / "COMPARE.md").read_text()
    section = text.split("## Stopped early\n\n")[1]
    for run, was_stopped in zip(record["runs"], stopped, strict=True):
        assert (f"| `{run['name']}` |" in section) == was_stopped
        assert (f"[{run['name']}](" in text.split("## Per run")[1]) != was_stopped
    space = parse_space([SEARCH[1:3]])
    again = plan_sweep(
        parent,
        None,
        [0],
        preset="tiny",
        fixed={"epochs": 2},
        space=space,
        num_samples=2,
        search_seed=124,
        keep_stopped=True,
    )
    assert [r.action == "stopped" for r in again.runs] == stopped
