"""Two runs into one folder: the second is refused while the first lives (and not after it dies);
default folder names never collide; what a killed writer left behind is cleaned at the next
start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from crackkit import run as run_module
from crackkit.cli import main
from crackkit.config import load_config, make_config
from crackkit.run import LOCK_ENV, LOCK_FILE, Run, RunDirError, run_lock

HOLDER = textwrap.dedent(
    """
    import sys
    from crackkit.config import make_config
    from crackkit.run import Run
    cfg = make_config({"lr": 0.001}, preset="tiny")
    with Run.start(cfg, sys.argv[1]):
        print("holding", flush=True)
        sys.stdin.readline()
    """
)


@pytest.fixture
def holder(tmp_path):
    """A process that starts a run in tmp_path/run (lr 0.001) and holds it until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "run")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "holding"
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def test_second_run_into_a_live_folder_is_refused(tmp_path, holder, capsys):
    """While the first lives: the library and `crackkit run` refuse (exit 2, one line naming
    the holder's pid); config.json keeps the first run's lr."""
    run_dir = tmp_path / "run"
    with pytest.raises(
        RunDirError, match=f"in use by another crackkit process \\(pid {holder.pid}"
    ):
        Run.create(make_config({"lr": 0.002}, preset="tiny"), run_dir)
    argv = ["run", "--preset", "tiny", "-p", "lr", "0.002", "--run", str(run_dir), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is in use by another crackkit process" in err[0], err
    assert load_config(run_dir / "config.json").lr == 0.001


def test_a_killed_holder_leaves_no_lock(tmp_path, holder):
    """SIGKILL releases the lock with the process: the folder can be resumed at once."""
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    cfg = make_config({"lr": 0.001}, preset="tiny")
    run = Run.create(cfg, tmp_path / "run", resume=True)
    assert run.cfg.lr == 0.001
    assert not (run.path / LOCK_FILE).exists()


def test_child_processes_share_the_lock_others_do_not(tmp_path):
    """A process started under the lock (a notebook kernel, torchrun) may enter; one started
    without the lock's token may not."""
    path = tmp_path / "run"
    path.mkdir()
    probe = "import sys; from crackkit.run import run_lock\nwith run_lock(sys.argv[1]): pass"
    with run_lock(path):
        assert LOCK_ENV in os.environ
        child = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True)
        assert child.returncode == 0, child.stderr
        env = {k: v for k, v in os.environ.items() if k != LOCK_ENV}
        stranger = subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, env=env
        )
        assert stranger.returncode != 0 and "in use by another crackkit" in stranger.stderr
        holder = json.loads((path / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid()
    assert LOCK_ENV not in os.environ and not (path / LOCK_FILE).exists()


def test_default_folder_names_cannot_collide(tmp_path, monkeypatch):
    """Runs started in the same second each get their own folder (exclusive mkdir)."""
    monkeypatch.setattr(run_module.paths, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(run_module, "new_run_name", lambda label="run": f"20250101-120000-{label}")
    made: list[Path] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        made.append(run_module._new_run_folder("synthetic"))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8
    names = sorted(p.name for p in made)
    assert names[0] == "20250101-120000-synthetic" and "20250101-120000-synthetic-8" in names


def test_stale_temporaries_are_removed_at_the_next_start(tmp_path):
    """A `.best.pt.*.tmp` a killed process left is removed when the run is next locked; finished
    files stay."""
    cfg = make_config(preset="tiny")
    run = Run.create(cfg, tmp_path / "run")
    stale = [
        run.path / "checkpoints" / ".best.pt.k2j3h4g5.tmp",
        run.path / ".history.csv.a1b2c3d4.tmp",
    ]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    kept = run.path / "checkpoints" / "notes.txt"
    kept.write_text("mine")
    Run.create(cfg, run.path, resume=True)
    assert not any(p.exists() for p in stale)
    assert kept.read_text() == "mine" and (run.path / "config.json").is_file()
