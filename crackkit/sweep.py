"""Parameter sweeps: every combination of parameter values and every seed becomes one run folder.

A sweep is planned completely before anything runs:

1. :func:`parse_grid` reads ``-p NAME V1,V2,...`` pairs; every value is coerced to its RunConfig
   field's type by :func:`crackkit.config.coerce_value`. A name with one value is a fixed
   parameter; a name with several is *varied*. :func:`crackkit.search.parse_space` reads
   ``--sample NAME KIND:LOW:HIGH``: points drawn at random (seeded), each combined with every
   grid combination.
2. :func:`parse_seeds` reads ``--seeds``: ``3`` means seeds 0, 1, 2; ``0,5,7`` lists them
   (``7,`` is the single seed 7).
3. :func:`plan_sweep` builds and validates the :class:`~crackkit.config.RunConfig` of every
   combination and seed, names its folder ``PARENT/<name=value>-...-seed<N>`` and decides what to
   do with it: ``skip`` a finished run, ``resume`` one with ``checkpoints/last.pt``, ``restart``
   a started folder without a checkpoint (its old files are kept in ``superseded-*``), ``start``
   a new one, and keep (``stopped``) a run that early stopping ended when the sweep stops early
   again. A folder that holds a run with other parameters stops the sweep before it starts.

:func:`run_sweep` then hands the planned runs to an engine. Every engine runs each run as its own
``python -m crackkit.cli run`` process (the papermill pipeline), so a crash of one run cannot
take the others down, and gives it ``OMP_NUM_THREADS`` = its CPU threads and
``CUDA_VISIBLE_DEVICES`` = its GPUs. :class:`LocalEngine` (the default) runs ``jobs`` at a time
on this machine, handing out the visible GPUs round-robin; the Ray engine
(:mod:`crackkit.raysweep`) runs them as Ray tasks or Ray Tune trials on a Ray cluster. Each run's
console output goes to ``PARENT/logs/<name>.log``. ``PARENT/sweep.json`` records the grid, the
seeds, each run's status and placement as the sweep goes; ``PARENT/COMPARE.md`` is written at the
end by :func:`crackkit.compare.compare_runs`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import itertools
import json
import os
import platform
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
from typing import IO, Any, Protocol

from crackkit.config import ConfigError, RunConfig, coerce_value, config_diff, make_config
from crackkit.files import atomic_write_json, read_json
from crackkit.run import RUN_FILES, Run, RunDirError, is_finished
from crackkit.search import Distribution, draw_points

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
    "value_text",
    "Engine",
    "SweepBook",
    "LocalEngine",
    "visible_gpus",
    "threads_per_run",
    "run_environment",
    "log_header",
    "start_child",
    "stop_children",
    "run_sweep",
]

SWEEP_FILE = "sweep.json"
COMPARE_FILE = "COMPARE.md"
LOG_DIR = "logs"
ACTIONS = ("start", "resume", "restart", "skip", "stopped")
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
    threads: int | None = None
    gpus: str | None = None
    node: str | None = None
    stopped: dict[str, Any] | None = None

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
            "threads": self.threads,
            "cuda_visible_devices": self.gpus,
            "node": self.node,
            "stopped": self.stopped,
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
    space: dict[str, Distribution] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)
    search_seed: int = 0

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
    def stopped(self) -> list[PlannedRun]:
        """Runs early stopping ended (in this invocation or an earlier one)."""
        return [r for r in self.sweep.runs if r.status == "stopped"]

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


def value_text(v: Any) -> str:
    """A parameter value as it is written on the command line and in folder names.

    Floats keep every digit (``repr``); ``None`` is the word ``all`` (a count field's "no
    limit", which :func:`crackkit.config.coerce_value` reads back as ``None``).
    """
    if v is None:
        return "all"
    if isinstance(v, float):
        return repr(v)
    return "all" if v is None else str(v)


def _sanitise(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_")


def run_name(values: Mapping[str, Any], seed: int) -> str:
    """Folder name of one run: ``lr=0.001-augmentation=True-seed0`` (safe characters only).

    Names longer than 150 characters are cut and end in a short hash of the full name.
    """
    parts = [_sanitise(f"{k}={value_text(v)}") for k, v in values.items()] + [f"seed{seed}"]
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
    space: Mapping[str, Distribution] | None = None,
    num_samples: int = 1,
    search_seed: int = 0,
    keep_stopped: bool = False,
) -> Sweep:
    """Validate every run of the sweep and decide what to do with its folder; runs nothing.

    Args:
        parent: the sweep's folder; each run gets a subfolder.
        grid: parameter name to its values; names with one value count as fixed.
        seeds: the seeds (default: the configuration's seed).
        preset: a named parameter set applied before ``fixed`` and the grid.
        fixed: parameters shared by all runs.
        space: parameters drawn at random (:mod:`crackkit.search`); ``num_samples`` points,
            drawn with ``search_seed``, each combined with every grid combination and seed.
        keep_stopped: a run that early stopping ended is kept as it is (``stopped``) rather
            than resumed; set for a sweep that stops early itself.

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
    space = dict(space or {})
    both = sorted((set(grid) & set(fixed)) | (set(space) & (set(grid) | set(fixed))))
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
    points = draw_points(space, num_samples, search_seed)
    for point in points:
        try:
            base.replace(**point)
        except ConfigError as exc:
            raise ConfigError(f"drawn point {point}: {exc}") from None
    seeds = [base.seed] if seeds is None else _unique("seed", [int(s) for s in seeds])
    if not seeds:
        raise ConfigError("a sweep needs at least one seed")
    sweep = Sweep(
        parent=parent,
        preset=preset,
        fixed=fixed,
        grid=grid,
        seeds=list(seeds),
        space=space,
        points=points if space else [],
        search_seed=search_seed,
    )
    names: dict[str, dict[str, Any]] = {}
    conflicts = []
    combos = [combo | point for combo in expand_grid(grid) for point in points]
    for values in combos:
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
                action = _action(run_dir, cfg, keep_stopped=keep_stopped)
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


def _action(run_dir: Path, cfg: RunConfig, *, keep_stopped: bool = False) -> str:
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
    if keep_stopped and (run_dir / RUN_FILES["stopped"]).is_file():
        return "stopped"
    if has_config and (run_dir / RUN_FILES["checkpoints"] / "last.pt").is_file():
        return "resume"
    return "restart"


# Execution: what every engine shares


def run_command(run: PlannedRun) -> list[str]:
    """The ``crackkit run`` command line of one planned run (every RunConfig field explicit)."""
    cmd = [sys.executable, "-m", "crackkit.cli", "run", "--quiet"]
    if run.action == "resume":
        return cmd + ["--resume", "--run", str(run.run_dir)]
    cmd += ["--run", str(run.run_dir)]
    if run.action == "restart":
        cmd.append("--overwrite")
    for name, value in run.config.to_dict().items():
        cmd += ["-p", name, value_text(value)]
    return cmd


def visible_gpus() -> list[str]:
    """The GPUs this process may use: the ids ``CUDA_VISIBLE_DEVICES`` lists when it is set
    (an empty value: none), else ``0 .. torch.cuda.device_count() - 1``."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def threads_per_run(cpus_per_run: int | None, jobs: int | None) -> int:
    """The CPU threads of each run; one rule for every engine.

    ``cpus_per_run`` when given; else this machine's cores divided by ``jobs`` (the runs at a
    time); else (no limit on the runs at a time, the Ray engine's default) 1.

    Raises:
        ConfigError: ``cpus_per_run`` or ``jobs`` below 1.
    """
    if cpus_per_run is not None:
        if cpus_per_run < 1:
            raise ConfigError(f"--cpus-per-run must be at least 1, got {cpus_per_run}")
        return cpus_per_run
    if jobs is None:
        return 1
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    return max(1, (os.cpu_count() or 1) // jobs)


def run_environment(threads: int) -> dict[str, str]:
    """Variables every engine sets for a run: its threads, unbuffered output, and the
    ``CRACKKIT_*`` folders of the process that plans the sweep (so a run on another node of a
    cluster reads and writes the same data and runs folders)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("CRACKKIT_")}
    env.update(
        {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    )
    return env


_PR_SET_PDEATHSIG = 1
_prctl: Any = None


def _child_setup() -> None:
    """In the child, before exec: Ctrl-C works (a parent may ignore SIGINT), and the child gets
    SIGINT when the thread that started it dies (a killed sweep or Ray worker); SIGINT lets
    ``crackkit run`` shut its notebook kernel down."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if _prctl:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)


def start_child(cmd: Sequence[str], log: IO[str], env: Mapping[str, str]) -> subprocess.Popen:
    """Start one run's process, its output appended to ``log``."""
    global _prctl
    if _prctl is None and sys.platform.startswith("linux"):
        import ctypes

        try:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            _prctl = False
    return subprocess.Popen(
        list(cmd), stdout=log, stderr=subprocess.STDOUT, env=dict(env), preexec_fn=_child_setup
    )


def stop_children(procs: Sequence[subprocess.Popen], grace_s: float = 10.0) -> None:
    """SIGINT to every process still running, then SIGTERM, then SIGKILL for those still alive."""
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


def log_header(action: str, node: str | None, cmd: Sequence[str], env: Mapping[str, str]) -> str:
    """The line a run's log gets before each attempt: when, where, with what, and the command."""
    where = (
        f"node {node}, {env.get('OMP_NUM_THREADS')} thread(s), "
        f"CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', '')!r}"
    )
    return f"=== {_now()} {action} on {where}: {' '.join(cmd)}\n"


class SweepBook:
    """The record of one invocation of a sweep: each run's status in ``sweep.json``, the
    progress lines, and what the invocation did. Engines call :meth:`started`, :meth:`ended`
    and :meth:`stopped_early`; they may do so from several threads."""

    def __init__(
        self, sweep: Sweep, engine: dict[str, Any], echo: Callable[[str], None] = print
    ) -> None:
        self.sweep, self.echo = sweep, echo
        self.lock = threading.Lock()
        self.invocation: dict[str, Any] = {
            "started": _now(),
            "ended": None,
            "argv": sys.argv[1:],
            "engine": engine,
        }
        record = _previous_record(sweep.parent)
        self.previous = list(record.get("invocations") or [])
        self.earlier = {r.get("name"): r for r in record.get("runs") or [] if isinstance(r, dict)}
        self.todo: list[PlannedRun] = []
        self.n_started = 0
        self.t0: dict[str, float] = {}

    def save(self) -> None:
        with self.lock:
            _write_record(self.sweep, self.previous + [self.invocation])

    def begin(self) -> list[PlannedRun]:
        """Mark skipped and kept runs; returns the runs to do."""
        for run in self.sweep.runs:
            run.status = {"skip": "skipped", "stopped": "stopped"}.get(run.action, "pending")
            if run.action in ("skip", "stopped"):
                before = self.earlier.get(run.name, {})
                run.started, run.ended = before.get("started"), before.get("ended")
                run.duration_s, run.returncode = before.get("duration_s"), before.get("returncode")
                run.threads, run.gpus = before.get("threads"), before.get("cuda_visible_devices")
                run.node = before.get("node")
                run.stopped = _read_stopped(run.run_dir) if run.action == "stopped" else None
                kind = "finished" if run.action == "skip" else "stopped early before"
                self.echo(f"[sweep] skipped ({kind}): {run.name}")
        self.todo = [r for r in self.sweep.runs if r.action not in ("skip", "stopped")]
        self.save()
        return self.todo

    def started(self, run: PlannedRun) -> None:
        with self.lock:
            self.n_started += 1
            index = self.n_started
        run.status, run.started = "running", _now()
        self.t0[run.name] = time.perf_counter()
        self.save()
        where = f" on GPU {run.gpus}" if run.gpus else ""
        self.echo(f"[sweep] {run.action} {run.name} ({index}/{len(self.todo)}){where}")

    def ended(self, run: PlannedRun, returncode: int | None) -> None:
        run.returncode = returncode
        if run.name in self.t0:
            run.duration_s = round(time.perf_counter() - self.t0[run.name], 1)
        run.ended = _now()
        if run.status in ("pending", "running"):
            ok = returncode == 0 and is_finished(run.run_dir)
            run.status = "finished" if ok else "failed"
        self.save()
        if run.status == "finished":
            self.echo(f"[sweep] finished {run.name} in {run.duration_s:.1f} s")
        elif run.status == "failed":
            self.echo(
                f"[sweep] FAILED {run.name} (exit status {run.returncode}); see "
                f"{self.sweep.parent / LOG_DIR / (run.name + '.log')}"
            )

    def stopped_early(self, run: PlannedRun, info: dict[str, Any]) -> None:
        """Early stopping ended ``run``: ``RUN/stopped.json`` records why, and it is kept."""
        run.stopped = {"time": _now(), **info}
        atomic_write_json(run.run_dir / RUN_FILES["stopped"], run.stopped)
        run.status = "stopped"
        self.save()
        detail = ", ".join(f"{k} {v}" for k, v in info.items() if k != "by")
        self.echo(f"[sweep] stopped early by {info.get('by', '?')}: {run.name} ({detail})")

    def interrupted(self) -> None:
        for run in self.todo:
            if run.status in ("pending", "running"):
                run.status = "interrupted"

    def close(self) -> dict[str, Any]:
        self.invocation["ended"] = _now()
        self.invocation.update(
            {
                s: sum(r.status == s for r in self.sweep.runs)
                for s in ("finished", "skipped", "stopped", "failed", "interrupted")
            }
        )
        self.save()
        return self.invocation


def _read_stopped(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RUN_FILES["stopped"]
    try:
        return read_json(path) if path.is_file() else None
    except (OSError, ValueError):
        return None


class Engine(Protocol):
    """Runs a sweep's runs; the local engine and the Ray engine (:mod:`crackkit.raysweep`)."""

    def describe(self) -> dict[str, Any]:
        """What ``sweep.json`` records of the engine (its name and settings)."""
        ...

    def check(self, runs: list[PlannedRun]) -> None:
        """Raises ConfigError when the engine cannot run ``runs`` as asked (nothing written)."""
        ...

    def execute(self, runs: list[PlannedRun], book: SweepBook) -> None:
        """Run ``runs``, reporting each to ``book``; on Ctrl-C stop them and re-raise."""
        ...


Runner = Callable[[PlannedRun, Path], int]


class _GpuPool:
    """Hands out GPU ids: each run gets the least busy ones, ties taken round-robin."""

    def __init__(self, devices: Sequence[str], per_run: int) -> None:
        self.devices, self.per_run = list(devices), per_run
        self.busy = dict.fromkeys(self.devices, 0)
        self.next = 0
        self.lock = threading.Lock()

    def acquire(self) -> list[str]:
        if not self.per_run:
            return []
        with self.lock:
            n = len(self.devices)
            order = [self.devices[(self.next + i) % n] for i in range(n)]
            chosen = sorted(order, key=lambda d: self.busy[d])[: self.per_run]
            for d in chosen:
                self.busy[d] += 1
            self.next = (self.devices.index(chosen[-1]) + 1) % n
            return chosen

    def release(self, devices: Sequence[str]) -> None:
        with self.lock:
            for d in devices:
                self.busy[d] -= 1


class _SubprocessRunner:
    """Runs one planned run as a child process on this machine, with its threads and GPUs;
    remembers the children to stop them on Ctrl-C."""

    def __init__(self, threads: int, gpus: _GpuPool) -> None:
        self.threads, self.gpus = threads, gpus
        self.procs: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.stopping = False

    def __call__(self, run: PlannedRun, log_path: Path) -> int:
        devices = self.gpus.acquire()
        try:
            run.threads, run.gpus, run.node = self.threads, ",".join(devices), platform.node()
            env = dict(os.environ) | run_environment(self.threads)
            env["CUDA_VISIBLE_DEVICES"] = run.gpus
            cmd = run_command(run)
            with open(log_path, "a") as log:
                log.write(log_header(run.action, run.node, cmd, env))
                log.flush()
                with self.lock:
                    if self.stopping:
                        return -2
                    proc = start_child(cmd, log, env)
                    self.procs[proc.pid] = proc
                try:
                    return proc.wait()
                finally:
                    with self.lock:
                        self.procs.pop(proc.pid, None)
        finally:
            self.gpus.release(devices)

    def stop_all(self, grace_s: float = 10.0) -> None:
        with self.lock:
            self.stopping = True
            procs = list(self.procs.values())
        stop_children(procs, grace_s)


class LocalEngine:
    """Runs ``jobs`` runs at a time on this machine, each a ``crackkit run`` child process.

    Each run gets ``cpus_per_run`` threads (:func:`threads_per_run`) and ``gpus_per_run`` of the
    visible GPUs (:func:`visible_gpus`; default 1 when there is one, else 0), the least busy
    ones, round-robin; ``runner`` replaces the child process (tests).

    Raises:
        ConfigError: a count below its minimum, or more GPUs per run than are visible.
    """

    name = "local"

    def __init__(
        self,
        jobs: int | None = None,
        *,
        cpus_per_run: int | None = None,
        gpus_per_run: int | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.jobs = 1 if jobs is None else jobs
        if self.jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {self.jobs}")
        self.threads = threads_per_run(cpus_per_run, self.jobs)
        devices = visible_gpus()
        if gpus_per_run is None:
            gpus_per_run = 1 if devices else 0
        if gpus_per_run < 0:
            raise ConfigError(f"--gpus-per-run must be 0 or more, got {gpus_per_run}")
        if gpus_per_run > len(devices):
            raise ConfigError(
                f"--gpus-per-run {gpus_per_run}: this machine shows {len(devices)} GPU(s) "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
            )
        self.gpus_per_run, self.devices = gpus_per_run, devices
        self.default_runner = None
        if runner is None:
            runner = self.default_runner = _SubprocessRunner(
                self.threads, _GpuPool(devices, gpus_per_run)
            )
        self.runner = runner

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "jobs": self.jobs,
            "cpus_per_run": self.threads,
            "gpus_per_run": self.gpus_per_run,
            "gpus": self.devices,
        }

    def check(self, runs: list[PlannedRun]) -> None:
        """Every run fits the local engine."""

    def execute(self, runs: list[PlannedRun], book: SweepBook) -> None:
        def one(run: PlannedRun) -> None:
            if run.status == "interrupted":
                return
            book.started(run)
            try:
                code = self.runner(run, book.sweep.parent / LOG_DIR / f"{run.name}.log")
            except Exception as exc:  # noqa: BLE001 - one broken run must not stop the sweep
                book.echo(f"[sweep] {run.name}: could not start: {type(exc).__name__}: {exc}")
                code = -1
            book.ended(run, code)

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(one, run) for run in runs]
            try:
                for fut in as_completed(futures):
                    fut.result()
            except KeyboardInterrupt:
                for fut in futures:
                    fut.cancel()
                book.interrupted()
                if self.default_runner is not None:
                    self.default_runner.stop_all()
                raise


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


def _write_record(sweep: Sweep, invocations: list[dict[str, Any]]) -> None:
    search = None
    if sweep.space:
        search = {
            "space": {k: str(d) for k, d in sweep.space.items()},
            "num_samples": len(sweep.points),
            "search_seed": sweep.search_seed,
            "points": sweep.points,
        }
    atomic_write_json(
        sweep.parent / SWEEP_FILE,
        {
            "preset": sweep.preset,
            "fixed": sweep.fixed,
            "grid": sweep.grid,
            "search": search,
            "seeds": sweep.seeds,
            "updated": _now(),
            "runs": [r.record() for r in sweep.runs],
            "invocations": invocations,
        },
    )


def describe_plan(sweep: Sweep) -> str:
    c = sweep.counts()
    grid = "; ".join(f"{k} = {', '.join(map(value_text, v))}" for k, v in sweep.grid.items())
    lines = [
        f"[sweep] {len(sweep.runs)} runs in {sweep.parent}: {c['start']} to start, "
        f"{c['resume']} to resume, {c['restart']} to restart, {c['skip']} finished (skipped)"
        + (f", {c['stopped']} stopped early (kept)" if c["stopped"] else ""),
        f"[sweep] varied: {grid or 'nothing'}; seeds: {', '.join(map(str, sweep.seeds))}",
    ]
    if sweep.space:
        space = "; ".join(f"{k} ~ {d}" for k, d in sweep.space.items())
        lines.append(
            f"[sweep] drawn: {space}; {len(sweep.points)} point(s), --search-seed "
            f"{sweep.search_seed}"
        )
    lines += [f"[sweep]   {r.action:8s} {r.name}" for r in sweep.runs]
    return "\n".join(lines)


def run_sweep(
    sweep: Sweep,
    *,
    engine: Engine | None = None,
    jobs: int | None = None,
    runner: Runner | None = None,
    compare: bool = True,
    echo: Callable[[str], None] = print,
) -> SweepResult:
    """Run the planned runs on ``engine`` and write ``sweep.json`` and ``COMPARE.md``.

    A failing run is reported and the others go on. Finished runs are skipped, and so are runs
    early stopping ended (``stopped``). On Ctrl-C (or SIGTERM) the engine stops the runs, they
    are recorded ``interrupted``, and ``KeyboardInterrupt`` is raised again; the same sweep
    started again continues them.

    Args:
        sweep: from :func:`plan_sweep`.
        engine: default ``LocalEngine(jobs, runner=runner)``.
        jobs: how many runs at a time (for the default engine).
        runner: ``runner(run, log_path) -> exit status`` instead of a ``crackkit run`` child
            process (for the default engine).
        compare: write ``COMPARE.md`` at the end.
        echo: where progress lines go.
    """
    if engine is None:
        engine = LocalEngine(jobs, runner=runner)
    engine.check([r for r in sweep.runs if r.action not in ("skip", "stopped")])
    sweep.parent.mkdir(parents=True, exist_ok=True)
    (sweep.parent / LOG_DIR).mkdir(exist_ok=True)
    book = SweepBook(sweep, engine.describe(), echo)
    todo = book.begin()
    try:
        with _sigterm_as_interrupt():
            if todo:
                engine.execute(todo, book)
    except KeyboardInterrupt:
        book.interrupted()
        raise
    finally:
        counts = book.close()
    compare_path = None
    if compare:
        from crackkit.compare import compare_runs

        runs = [r.run_dir for r in sweep.runs]
        compare_path = compare_runs(runs, sweep.parent / COMPARE_FILE).path
    result = SweepResult(sweep, compare_path)
    c = counts
    echo(
        f"[sweep] done: {c['finished']} finished, {c['skipped']} skipped, {c['failed']} failed"
        + (f", {c['stopped']} stopped early" if c["stopped"] else "")
        + (f"; failed: {', '.join(r.name for r in result.failed)}" if result.failed else "")
    )
    return result
