"""Parameter sweeps: every combination of parameter values and every seed becomes one run folder.

A sweep is planned completely before anything runs:

1. :func:`parse_grid` reads ``-p NAME V1,V2,...`` pairs; every value is coerced to its RunConfig
   field's type. A name with one value is a fixed parameter; a name with several is *varied*.
2. :func:`parse_seeds` reads ``--seeds``: ``3`` means seeds 0, 1, 2; ``0,5,7`` lists them
   (``7,`` is the single seed 7).
3. :func:`plan_sweep` builds and validates the :class:`~crackkit.config.RunConfig` of every
   combination and seed, names its folder ``PARENT/<name=value>-...-seed<N>`` and decides what to
   do with it: ``skip`` a finished run, ``resume`` one with ``checkpoints/last.pt``, ``restart``
   a started folder without a checkpoint (its old files are kept in ``superseded-*``), ``start``
   a new one. A folder that holds a run with other parameters stops the sweep before it starts.

:func:`run_sweep` then runs the planned runs, ``jobs`` at a time, each as its own
``python -m crackkit.cli run`` process (the papermill pipeline), so a crash of one run cannot take
the others down. Each run's console output goes to ``PARENT/logs/<name>.log``. ``PARENT/sweep.json``
records the grid, the seeds and each run's status as the sweep goes; ``PARENT/COMPARE.md`` is
written at the end by :func:`crackkit.compare.compare_runs`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crackkit.config import ConfigError, RunConfig, coerce_value, config_diff, make_config
from crackkit.files import atomic_write_json
from crackkit.run import RUN_FILES, Run, RunDirError, is_finished

__all__ = [
    "SWEEP_FILE",
    "COMPARE_FILE",
    "PlannedRun",
    "Sweep",
    "SweepResult",
    "parse_grid",
    "parse_seeds",
    "expand_grid",
    "run_name",
    "plan_sweep",
    "describe_plan",
    "run_command",
    "run_sweep",
]

SWEEP_FILE = "sweep.json"
COMPARE_FILE = "COMPARE.md"
LOG_DIR = "logs"
ACTIONS = ("start", "resume", "restart", "skip")
_MAX_NAME = 150


@dataclass
class PlannedRun:
    """One run of a sweep: its folder, its varied values, its seed and what to do with it."""

    name: str
    run_dir: Path
    values: dict[str, Any]
    seed: int
    config: RunConfig
    action: str
    status: str = "pending"
    returncode: int | None = None
    started: str | None = None
    ended: str | None = None
    duration_s: float | None = None

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run_dir": self.run_dir.name,
            "values": self.values,
            "seed": self.seed,
            "action": self.action,
            "status": self.status,
            "returncode": self.returncode,
            "started": self.started,
            "ended": self.ended,
            "duration_s": self.duration_s,
            "log": f"{LOG_DIR}/{self.name}.log",
        }


@dataclass
class Sweep:
    """A planned sweep: the parent folder, the fixed and varied parameters, seeds and runs."""

    parent: Path
    preset: str | None
    fixed: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: list[int]
    runs: list[PlannedRun] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {a: sum(r.action == a for r in self.runs) for a in ACTIONS}


@dataclass
class SweepResult:
    sweep: Sweep
    compare: Path | None

    @property
    def failed(self) -> list[PlannedRun]:
        return [r for r in self.sweep.runs if r.status in ("failed", "interrupted")]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


# Grid and seeds


def parse_grid(pairs: Sequence[Sequence[str]] | None) -> dict[str, list[Any]]:
    """``[("lr", "0.001,0.0001"), ...]`` to ``{"lr": [0.001, 0.0001], ...}``, values coerced.

    Raises:
        ConfigError: an unknown name, a value of the wrong type, an empty or repeated value, a
            name given twice, or ``seed`` (seeds are given with ``--seeds``).
    """
    grid: dict[str, list[Any]] = {}
    for name, text in pairs or []:
        if name == "seed":
            raise ConfigError(
                "give seeds with --seeds N (seeds 0..N-1) or --seeds 0,5,7, not with -p seed"
            )
        if name in grid:
            raise ConfigError(
                f"parameter {name!r} is given twice; list its values once, comma-separated"
            )
        items = [t.strip() for t in str(text).split(",")]
        if any(not t for t in items):
            raise ConfigError(f"parameter {name!r} has an empty value in {text!r}")
        grid[name] = _unique(name, [coerce_value(name, t) for t in items])
    return grid


def _unique(name: str, values: Sequence[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if any(v == s and type(v) is type(s) for s in seen):
            raise ConfigError(f"parameter {name!r} lists the value {v!r} twice")
        seen.append(v)
    return seen


def parse_seeds(text: str | int | Sequence[int] | None, default: int = 0) -> list[int]:
    """Seeds from ``--seeds``: ``"3"`` is 0, 1, 2; ``"0,5,7"`` (or ``"7,"``) lists them.

    ``None`` gives ``[default]`` (the configuration's own seed).

    Raises:
        ConfigError: not an integer, a count below 1, a negative or repeated seed.
    """
    if text is None:
        return [default]
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        seeds = [coerce_value("seed", s) for s in text]
    elif "," in text:
        items = [t.strip() for t in text.split(",")]
        if not items[-1]:
            items = items[:-1]
        if not items or any(not t for t in items):
            raise ConfigError(f"--seeds {text!r}: give a count (3) or a comma-separated list")
        seeds = [coerce_value("seed", t) for t in items]
    else:
        try:
            count = int(text.strip())
        except ValueError:
            raise ConfigError(
                f"--seeds {text!r}: give a count (3 runs seeds 0, 1, 2) or a list (0,5,7)"
            ) from None
        if count < 1:
            raise ConfigError(
                f"--seeds {text!r}: the count must be at least 1 (the single seed 0 is --seeds 0,)"
            )
        seeds = list(range(count))
    for s in seeds:
        if s < 0:
            raise ConfigError(f"--seeds: seed {s} is negative")
    return _unique("seed", seeds)


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid, in the grid's order (the last name varies fastest)."""
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _value_text(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _sanitise(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_")


def run_name(values: Mapping[str, Any], seed: int) -> str:
    """Folder name of one run: ``lr=0.001-augmentation=True-seed0`` (safe characters only).

    Names longer than 150 characters are cut and end in a short hash of the full name.
    """
    parts = [_sanitise(f"{k}={_value_text(v)}") for k, v in values.items()] + [f"seed{seed}"]
    name = "-".join(parts)
    if len(name) > _MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[: _MAX_NAME - 11].rstrip('-_.')}-{digest}"
    return name


# Planning


def plan_sweep(
    parent: Path | str,
    grid: Mapping[str, Sequence[Any]] | None = None,
    seeds: Sequence[int] | None = None,
    *,
    preset: str | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> Sweep:
    """Validate every run of the sweep and decide what to do with its folder; runs nothing.

    Args:
        parent: the sweep's folder; each run gets a subfolder.
        grid: parameter name to its values; names with one value count as fixed.
        seeds: the seeds (default: the configuration's seed).
        preset: a named parameter set applied before ``fixed`` and the grid.
        fixed: parameters shared by all runs.

    Raises:
        ConfigError: a bad parameter name or value, or a combination RunConfig refuses; the
            message names the parameter (and the combination).
        RunDirError: a run folder holds a run made with other parameters.
    """
    parent = Path(parent).resolve()
    grid = {k: list(v) for k, v in (grid or {}).items()}
    if "seed" in grid or "seed" in (fixed or {}):
        raise ConfigError("give seeds with --seeds, not as a parameter")
    fixed = dict(fixed or {})
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ConfigError(f"parameter(s) {', '.join(map(repr, both))} given twice")
    for name, values in list(grid.items()):
        if not values:
            raise ConfigError(f"parameter {name!r} has no values")
        if len(values) == 1:
            fixed[name] = values[0]
            del grid[name]
    base = make_config(fixed, preset=preset)
    fixed = {k: getattr(base, k) for k in fixed}
    for name, values in grid.items():
        grid[name] = _unique(name, [coerce_value(name, v) for v in values])
        for v in grid[name]:
            try:
                base.replace(**{name: v})
            except ConfigError as exc:
                named = f"'{name}'" in str(exc)
                raise ConfigError(str(exc) if named else f"{name}={v!r}: {exc}") from None
    seeds = [base.seed] if seeds is None else _unique("seed", [int(s) for s in seeds])
    if not seeds:
        raise ConfigError("a sweep needs at least one seed")
    sweep = Sweep(parent=parent, preset=preset, fixed=fixed, grid=grid, seeds=list(seeds))
    names: dict[str, dict[str, Any]] = {}
    conflicts = []
    for values in expand_grid(grid):
        for seed in seeds:
            name = run_name(values, seed)
            try:
                cfg = base.replace(**values, seed=seed)
            except ConfigError as exc:
                raise ConfigError(f"sweep run {name}: {exc}") from None
            if name in names:
                raise ConfigError(
                    f"runs {names[name]} and {values | {'seed': seed}} get the same folder name "
                    f"{name!r}; use values that differ in letters, digits or '.=+-'"
                )
            names[name] = values | {"seed": seed}
            run_dir = parent / name
            try:
                action = _action(run_dir, cfg)
            except RunDirError as exc:
                conflicts.append(str(exc))
                continue
            sweep.runs.append(PlannedRun(name, run_dir, dict(values), seed, cfg, action))
    if conflicts:
        raise RunDirError(
            "the sweep's folder holds runs made with other parameters; choose another --sweep-dir "
            "or move them away:\n  " + "\n  ".join(conflicts)
        )
    return sweep


def _action(run_dir: Path, cfg: RunConfig) -> str:
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return "start"
    config_path = run_dir / RUN_FILES["config"]
    has_config = config_path.is_file()
    if has_config:
        try:
            recorded = Run.open(run_dir).cfg
        except (ConfigError, OSError) as exc:
            raise RunDirError(f"{run_dir.name}: unreadable {RUN_FILES['config']}: {exc}") from None
        changed = config_diff(recorded, cfg)
        if changed:
            raise RunDirError(f"{run_dir.name}: recorded parameters differ in {', '.join(changed)}")
    if is_finished(run_dir):
        return "skip"
    if has_config and (run_dir / RUN_FILES["checkpoints"] / "last.pt").is_file():
        return "resume"
    return "restart"


# Execution


def _cli_value(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def run_command(run: PlannedRun) -> list[str]:
    """The ``crackkit run`` command line of one planned run (every RunConfig field explicit)."""
    cmd = [sys.executable, "-m", "crackkit.cli", "run", "--quiet"]
    if run.action == "resume":
        return cmd + ["--resume", "--run", str(run.run_dir)]
    cmd += ["--run", str(run.run_dir)]
    if run.action == "restart":
        cmd.append("--overwrite")
    for name, value in run.config.to_dict().items():
        cmd += ["-p", name, _cli_value(value)]
    return cmd


Runner = Callable[[PlannedRun, Path], int]


class _SubprocessRunner:
    """Runs one planned run as a child process; remembers the children to stop them on Ctrl-C."""

    def __init__(self, threads_per_run: int | None) -> None:
        self.threads = threads_per_run
        self.procs: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.stopping = False

    def __call__(self, run: PlannedRun, log_path: Path) -> int:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.threads and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(self.threads)
        cmd = run_command(run)
        with open(log_path, "a") as log:
            log.write(f"=== {_now()} {run.action}: {' '.join(cmd)}\n")
            log.flush()
            with self.lock:
                if self.stopping:
                    return -2
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                self.procs[proc.pid] = proc
            try:
                return proc.wait()
            finally:
                with self.lock:
                    self.procs.pop(proc.pid, None)

    def stop_all(self, grace_s: float = 10.0) -> None:
        """SIGINT to every running child, then SIGTERM, then SIGKILL for those still alive."""
        with self.lock:
            self.stopping = True
            procs = [p for p in self.procs.values() if p.poll() is None]
        for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            procs = [p for p in procs if p.poll() is None]
            for proc in procs:
                proc.send_signal(sig)
            deadline = time.monotonic() + wait_s
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While running, SIGTERM (a scheduler stopping the sweep) ends it like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _previous_record(parent: Path) -> dict[str, Any]:
    try:
        record = json.loads((parent / SWEEP_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(sweep: Sweep, jobs: int, invocations: list[dict[str, Any]]) -> None:
    atomic_write_json(
        sweep.parent / SWEEP_FILE,
        {
            "preset": sweep.preset,
            "fixed": sweep.fixed,
            "grid": sweep.grid,
            "seeds": sweep.seeds,
            "jobs": jobs,
            "updated": _now(),
            "runs": [r.record() for r in sweep.runs],
            "invocations": invocations,
        },
    )


def describe_plan(sweep: Sweep) -> str:
    c = sweep.counts()
    grid = "; ".join(f"{k} = {', '.join(map(_value_text, v))}" for k, v in sweep.grid.items())
    lines = [
        f"[sweep] {len(sweep.runs)} runs in {sweep.parent}: {c['start']} to start, "
        f"{c['resume']} to resume, {c['restart']} to restart, {c['skip']} finished (skipped)",
        f"[sweep] varied: {grid or 'nothing'}; seeds: {', '.join(map(str, sweep.seeds))}",
    ]
    lines += [f"[sweep]   {r.action:8s} {r.name}" for r in sweep.runs]
    return "\n".join(lines)


def run_sweep(
    sweep: Sweep,
    *,
    jobs: int = 1,
    runner: Runner | None = None,
    compare: bool = True,
    echo: Callable[[str], None] = print,
) -> SweepResult:
    """Run the planned runs ``jobs`` at a time and write ``sweep.json`` and ``COMPARE.md``.

    A failing run is reported and the others go on. Finished runs are skipped.

    Args:
        sweep: from :func:`plan_sweep`.
        jobs: how many runs at a time.
        runner: ``runner(run, log_path) -> exit status``; default: a ``crackkit run`` child
            process per run (with ``OMP_NUM_THREADS`` = cores / jobs unless it is set).
        compare: write ``COMPARE.md`` at the end.
        echo: where progress lines go.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    sweep.parent.mkdir(parents=True, exist_ok=True)
    (sweep.parent / LOG_DIR).mkdir(exist_ok=True)
    default_runner = None
    if runner is None:
        threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
        runner = default_runner = _SubprocessRunner(threads)
    invocation: dict[str, Any] = {"started": _now(), "ended": None, "argv": sys.argv[1:]}
    record = _previous_record(sweep.parent)
    previous = list(record.get("invocations") or [])
    earlier = {r.get("name"): r for r in record.get("runs") or [] if isinstance(r, dict)}
    lock = threading.Lock()

    def save() -> None:
        with lock:
            _write_record(sweep, jobs, previous + [invocation])

    for run in sweep.runs:
        run.status = "skipped" if run.action == "skip" else "pending"
        if run.action == "skip":
            before = earlier.get(run.name, {})
            run.started, run.ended = before.get("started"), before.get("ended")
            run.duration_s, run.returncode = before.get("duration_s"), before.get("returncode")
            echo(f"[sweep] skipped (finished): {run.name}")
    todo = [r for r in sweep.runs if r.action != "skip"]
    save()

    def one(run: PlannedRun, index: int) -> PlannedRun:
        if run.status == "interrupted":
            return run
        run.status, run.started = "running", _now()
        save()
        echo(f"[sweep] {run.action} {run.name} ({index}/{len(todo)})")
        t0 = time.perf_counter()
        try:
            run.returncode = runner(run, sweep.parent / LOG_DIR / f"{run.name}.log")
        except Exception as exc:  # noqa: BLE001 - one broken run must not stop the sweep
            echo(f"[sweep] {run.name}: could not start: {type(exc).__name__}: {exc}")
            run.returncode = -1
        run.duration_s = round(time.perf_counter() - t0, 1)
        run.ended = _now()
        if run.status == "running":
            ok = run.returncode == 0 and is_finished(run.run_dir)
            run.status = "finished" if ok else "failed"
        save()
        return run

    try:
        with _sigterm_as_interrupt(), ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(one, run, i) for i, run in enumerate(todo, 1)]
            try:
                for fut in as_completed(futures):
                    run = fut.result()
                    if run.status == "finished":
                        echo(f"[sweep] finished {run.name} in {run.duration_s:.1f} s")
                    else:
                        echo(
                            f"[sweep] FAILED {run.name} (exit status {run.returncode}); see "
                            f"{sweep.parent / LOG_DIR / (run.name + '.log')}"
                        )
            except KeyboardInterrupt:
                for fut in futures:
                    fut.cancel()
                for run in todo:
                    if run.status in ("pending", "running"):
                        run.status = "interrupted"
                if default_runner is not None:
                    default_runner.stop_all()
                raise
    finally:
        invocation["ended"] = _now()
        invocation.update(
            {
                s: sum(r.status == s for r in sweep.runs)
                for s in ("finished", "skipped", "failed", "interrupted")
            }
        )
        save()
    compare_path = None
    if compare:
        from crackkit.compare import compare_runs

        runs = [r.run_dir for r in sweep.runs]
        compare_path = compare_runs(runs, sweep.parent / COMPARE_FILE).path
    result = SweepResult(sweep, compare_path)
    c = invocation
    echo(
        f"[sweep] done: {c['finished']} finished, {c['skipped']} skipped, {c['failed']} failed"
        + (f"; failed: {', '.join(r.name for r in result.failed)}" if result.failed else "")
    )
    return result
