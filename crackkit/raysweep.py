"""The Ray engine of ``crackkit sweep``: each run a Ray Tune trial, placed by declared resources.

``crackkit sweep --engine ray [--address HOST:PORT]`` hands the planned runs of
:func:`crackkit.sweep.plan_sweep` to Ray Tune, one trial per run, each trial declaring
``--cpus-per-run`` CPUs and ``--gpus-per-run`` GPUs. Ray places the trials: one per GPU of a
multi-GPU machine, spread over the nodes of a cluster. Without ``--address`` a local Ray instance
is started for the sweep (and stopped after it); with one, the sweep joins that cluster.

A trial runs the same ``python -m crackkit.cli run`` child process as the local engine, with the
same environment (:func:`crackkit.sweep.run_environment`: its threads, the ``CRACKKIT_*``
folders) and ``CUDA_VISIBLE_DEVICES`` = the GPUs Ray assigned to it (none when it declares 0), so
a run folder made by either engine is the same, and so are its numbers for the same seed and
threads. On a cluster, the sweep's folder (and the data folder) must be on a file system every
node sees at the same path.

Early stopping (``--early-stop asha``) adds Ray Tune's ASHA scheduler over the validation
2-pixel F1 (``val_f1_2px``). The training loop knows nothing of Ray: each epoch it writes a row of
``history.csv`` (atomically), and the trial reads the new rows and reports every validation epoch
before the last one to Tune (the last one is never cut: only evaluation would be saved). A run
ASHA stops keeps its folder, ``stopped.json`` records the epoch and score it was stopped at, and
:mod:`crackkit.compare` lists it apart from the finished runs.

Ctrl-C (or SIGTERM) stops the trials: each trial's child gets SIGINT (``crackkit run`` then
shuts its notebook kernel down); the runs are recorded ``interrupted`` and the same command
continues them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crackkit.config import ConfigError
from crackkit.files import read_csv
from crackkit.run import RUN_FILES
from crackkit.sweep import (
    LOG_DIR,
    PlannedRun,
    SweepBook,
    log_header,
    run_command,
    run_environment,
    start_child,
    stop_children,
    threads_per_run,
)

__all__ = ["RAY_MISSING", "EARLY_STOPPING", "Asha", "RayEngine", "import_ray"]

RAY_MISSING = (
    "--engine ray needs Ray Tune, which is not installed: pip install 'crackkit[ray]' "
    "(or pip install 'ray[tune]')"
)
EARLY_STOPPING = ("asha",)
#: Ray's switch for its single-machine mode ("0": every service on 127.0.0.1).
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: The score early stopping compares: a history.csv column, higher is better.
METRIC = "val_f1_2px"


def import_ray() -> Any:
    """``ray`` with ``ray.tune``; a missing install is a :class:`ConfigError` saying what to do."""
    try:
        import ray
        import ray.tune  # noqa: F401 - Tune's own dependencies (pandas, pyarrow...) are checked
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


@dataclass(frozen=True)
class Asha:
    """ASHA's settings, in epochs: a run is compared at epochs ``grace_period``,
    ``grace_period * reduction_factor``, ... and goes on only when its validation F1 is in the
    best ``1 / reduction_factor`` of the runs that reached that epoch before it."""

    grace_period: int = 1
    reduction_factor: int = 4

    def __post_init__(self) -> None:
        if self.reduction_factor < 2:
            raise ConfigError(f"--reduction-factor must be at least 2, got {self.reduction_factor}")
        if self.grace_period < 1:
            raise ConfigError(f"--grace-period must be at least 1, got {self.grace_period}")

    def check(self, epochs: int) -> None:
        """Raises ConfigError unless a run of ``epochs`` epochs can be stopped before its end."""
        if not self.grace_period < epochs:
            raise ConfigError(
                f"--grace-period {self.grace_period}: give an epoch from 1 to {epochs - 1} (the "
                f"runs train {epochs} epochs; a run is never stopped after its last)"
            )


def _history_scores(run_dir: Path, epochs: int) -> list[tuple[int, float]]:
    """``(epoch, val_f1_2px)`` of each validation epoch before the last in ``history.csv``."""
    path = run_dir / RUN_FILES["history"]
    try:
        rows = read_csv(path) if path.is_file() else []
    except (OSError, ValueError):
        return []
    return [
        (int(r["epoch"]), float(r[METRIC]))
        for r in rows
        if isinstance(r.get(METRIC), int | float) and isinstance(r.get("epoch"), int)
        if r["epoch"] < epochs
    ]


def _trial(config: dict[str, Any], specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One Ray Tune trial: run ``crackkit run`` for the run named ``config["run"]``.

    Reports once the child started (``child_pid``, ``child_node``, ``cuda_visible_devices``,
    ``threads``; Tune fills ``pid`` and ``node_ip`` with the trial's own) and then each new
    validation epoch of its ``history.csv`` (``epoch``, ``val_f1_2px``); returns its exit status.
    A trial Tune stops (early stopping, or the sweep interrupted) stops its child.
    """
    from ray import tune

    spec = specs[config["run"]]
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "") if spec["gpus_per_run"] else ""
    env = dict(os.environ) | spec["env"] | {"CUDA_VISIBLE_DEVICES": gpus}
    cmd = [sys.executable, *spec["args"]]
    node = platform.node()
    seen: set[int] = set()
    with open(spec["log"], "a") as log:
        log.write(log_header(spec["action"], node, cmd, env))
        log.flush()
        proc = start_child(cmd, log, env)
        try:
            tune.report(
                {
                    "child_pid": proc.pid,
                    "child_node": node,
                    "cuda_visible_devices": gpus,
                    "threads": spec["threads"],
                }
            )
            while True:
                code = proc.poll()
                for epoch, score in _history_scores(Path(spec["run_dir"]), spec["epochs"]):
                    if epoch not in seen:
                        seen.add(epoch)
                        tune.report({"epoch": epoch, METRIC: score})
                if code is not None:
                    return {"returncode": code}
                time.sleep(spec["poll_s"])
        finally:
            if proc.poll() is None:
                stop_children([proc])


class RayEngine:
    """Runs a sweep's runs as Ray Tune trials on a local Ray instance or a cluster.

    Args:
        address: a Ray cluster to join (``HOST:PORT`` of its head, or ``auto``); None starts a
            local instance for the sweep.
        jobs: at most this many runs at a time (default: as many as the resources allow).
        cpus_per_run: CPUs each trial declares, and its threads (:func:`threads_per_run`).
        gpus_per_run: GPUs each trial declares (default 1 when the cluster has GPUs, else 0).
        early_stop: ASHA's settings, or None to run every run to its end.
        poll_s: how often a trial reads its run's history.

    Raises:
        ConfigError: Ray is not installed, or a count is out of range.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        jobs: int | None = None,
        cpus_per_run: int | None = None,
        gpus_per_run: int | None = None,
        early_stop: Asha | None = None,
        poll_s: float = 1.0,
    ) -> None:
        if address is None:
            # The sweep's own Ray instance serves this machine only: Ray's single-machine mode
            # (read when Ray is first imported) keeps all its services on 127.0.0.1, and it
            # sends no usage statistics (set RAY_USAGE_STATS_ENABLED=1 to send them).
            if "ray" not in sys.modules:
                os.environ.setdefault(LOOPBACK_ONLY, "0")
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import_ray()
        if jobs is not None and jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {jobs}")
        if gpus_per_run is not None and gpus_per_run < 0:
            raise ConfigError(f"--gpus-per-run must be 0 or more, got {gpus_per_run}")
        self.address, self.jobs, self.early_stop = address, jobs, early_stop
        self.threads = threads_per_run(cpus_per_run, jobs)
        self.gpus_per_run = gpus_per_run
        self.poll_s = poll_s

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address or "local instance",
            "jobs": self.jobs,
            "cpus_per_run": self.threads,
            "gpus_per_run": self.gpus_per_run,
            "early_stop": None
            if self.early_stop is None
            else {
                "scheduler": "ASHA",
                "metric": METRIC,
                "grace_period": self.early_stop.grace_period,
                "reduction_factor": self.early_stop.reduction_factor,
            },
        }

    def check(self, runs: list[PlannedRun]) -> None:
        if self.early_stop is None or not runs:
            return
        self.early_stop.check(max(r.config.epochs for r in runs))
        no_validation = [r.name for r in runs if not r.config.validate]
        if no_validation:
            raise ConfigError(
                "--early-stop compares validation scores; these runs have validate=False: "
                + ", ".join(no_validation)
            )

    def execute(self, runs: list[PlannedRun], book: SweepBook) -> None:
        self.check(runs)
        epochs = max(r.config.epochs for r in runs)
        with self._connected() as ray:
            gpus = self._gpus_per_run(ray)
            book.invocation["engine"]["gpus_per_run"] = gpus
            book.invocation["engine"]["cluster"] = {
                k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")
            }
            book.echo(
                f"[sweep] Ray {ray.__version__} ({self.address or 'local instance'}): "
                f"{self.threads} CPU(s) and {gpus} GPU(s) per run"
                + ("" if self.jobs is None else f", at most {self.jobs} at a time")
                + (
                    ""
                    if self.early_stop is None
                    else f"; ASHA early stopping over {METRIC} (grace period "
                    f"{self.early_stop.grace_period}, reduction factor "
                    f"{self.early_stop.reduction_factor})"
                )
            )
            self._tune(runs, book, gpus, epochs)

    @contextlib.contextmanager
    def _connected(self) -> Iterator[Any]:
        ray = import_ray()
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if self.address:
            ray.init(address=self.address, **options)
        else:
            ray.init(include_dashboard=False, **options)
        try:
            yield ray
        finally:
            ray.shutdown()

    def _gpus_per_run(self, ray: Any) -> int:
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
        most_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
        gpus = self.gpus_per_run
        if gpus is None:
            gpus = 1 if most_gpus >= 1 else 0
        if self.threads > most_cpus:
            raise ConfigError(
                f"--cpus-per-run {self.threads}: no node of the Ray cluster has that many CPUs "
                f"(the largest has {most_cpus:g})"
            )
        if gpus > most_gpus:
            raise ConfigError(
                f"--gpus-per-run {gpus}: no node of the Ray cluster has that many GPUs (the "
                f"largest has {most_gpus:g})"
            )
        return gpus

    def _tune(self, runs: list[PlannedRun], book: SweepBook, gpus: int, epochs: int) -> None:
        from ray import tune

        parent = book.sweep.parent
        env = run_environment(self.threads)
        specs = {
            run.name: {
                "args": run_command(run)[1:],
                "log": str(parent / LOG_DIR / f"{run.name}.log"),
                "env": env,
                "threads": self.threads,
                "gpus_per_run": gpus,
                "epochs": run.config.epochs,
                "poll_s": self.poll_s,
                "action": run.action,
                "run_dir": str(run.run_dir),
            }
            for run in runs
        }
        trainable = tune.with_resources(
            tune.with_parameters(_trial, specs=specs), {"cpu": self.threads, "gpu": gpus}
        )
        scheduler = None
        if self.early_stop is not None:
            from ray.tune.schedulers import ASHAScheduler

            scheduler = ASHAScheduler(
                time_attr="epoch",
                metric=METRIC,
                mode="max",
                max_t=epochs,
                grace_period=self.early_stop.grace_period,
                reduction_factor=self.early_stop.reduction_factor,
                stop_last_trials=False,
            )
        callback = _book_callback({r.name: r for r in runs}, book, self.early_stop)
        tuner = tune.Tuner(
            trainable,
            param_space={"run": tune.grid_search([r.name for r in runs])},
            tune_config=tune.TuneConfig(
                scheduler=scheduler,
                max_concurrent_trials=self.jobs,
                reuse_actors=False,
                trial_dirname_creator=_trial_dirname,
                trial_name_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=_dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f"),
                storage_path=str(parent / LOG_DIR / "tune"),
                callbacks=[callback],
                verbose=0,
                log_to_file=False,
            ),
        )
        with _tune_environment(), _sigterm_as_tune_interrupt():
            try:
                tuner.fit()
            except KeyboardInterrupt:
                book.interrupted()
                callback.wait_for_children()
                raise
        unended = [r for r in runs if r.status in ("pending", "running")]
        if unended:
            book.interrupted()
            callback.wait_for_children()
            raise KeyboardInterrupt("the Ray Tune run was interrupted")


def _trial_dirname(trial: Any) -> str:
    return str(trial.config["run"])


@contextlib.contextmanager
def _tune_environment() -> Iterator[None]:
    """Tune settings for the sweep's driver: results without the scheduler's metric are fine
    (a trial's first report, its exit status), and Tune prints nothing (the sweep's own lines
    say what happens)."""
    settings = {"TUNE_DISABLE_STRICT_METRIC_CHECKING": "1", "RAY_AIR_NEW_OUTPUT": "0"}
    before = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _sigterm_as_tune_interrupt() -> Iterator[None]:
    """SIGTERM ends the Tune run the way Ctrl-C does: Tune stops every trial, then returns."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(
        signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT)
    )
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _book_callback(runs: dict[str, PlannedRun], book: SweepBook, asha: Asha | None) -> Any:
    """A Tune callback in the sweep's driver, reporting trial events to the sweep's book.

    Defined here, once Ray is imported: this module imports Ray only when a sweep uses it.
    """
    from ray import tune

    class BookCallback(tune.Callback):
        """A Tune callback in the sweep's driver: trial events to the sweep's book.

        Tune pickles its callbacks with the experiment's state (for ``Tuner.restore``, which the
        sweep does not use: it continues from its run folders), so the pickled copy is left empty.
        """

        def __init__(self, runs: dict[str, PlannedRun], book: SweepBook, asha: Asha | None) -> None:
            self.runs, self.book, self.asha = runs, book, asha
            self.children: dict[str, tuple[str, int]] = {}
            self.returncodes: dict[str, int] = {}

        def __getstate__(self) -> dict[str, Any]:
            return {}

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            run = self.runs[trial.config["run"]]
            if "child_pid" in result:
                run.node, run.gpus = result["child_node"], result["cuda_visible_devices"]
                run.threads = result["threads"]
                self.children[run.name] = (run.node, int(result["child_pid"]))
                self.book.started(run)
            if "returncode" in result:
                self.returncodes[run.name] = int(result["returncode"])
            if METRIC in result and result.get("done") and self.asha is not None:
                self.book.stopped_early(
                    run,
                    {
                        "by": "ASHA",
                        "epoch": int(result["epoch"]),
                        "metric": METRIC,
                        "value": float(result[METRIC]),
                        "grace_period": self.asha.grace_period,
                        "reduction_factor": self.asha.reduction_factor,
                    },
                )

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._ended(trial)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._ended(trial, default=-1)

        def _ended(self, trial: Any, default: int | None = None) -> None:
            run = self.runs[trial.config["run"]]
            self.children.pop(run.name, None)
            self.book.ended(run, self.returncodes.get(run.name, default))

        def wait_for_children(self, grace_s: float = 20.0) -> None:
            """Wait until the stopped trials' children on this machine have ended (SIGTERM, then
            SIGKILL, to those still running ``grace_s`` after their SIGINT), so that the same
            sweep started again finds their folders at rest."""
            here = platform.node()
            left = {
                pid: str(self.runs[name].run_dir)
                for name, (node, pid) in self.children.items()
                if node == here
            }
            for sig, wait_s in ((None, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                left = {pid: mark for pid, mark in left.items() if _running(pid, mark)}
                if sig is not None:
                    for pid in left:
                        with contextlib.suppress(OSError):
                            os.kill(pid, sig)
                deadline = time.monotonic() + wait_s
                while left and time.monotonic() < deadline:
                    left = {pid: mark for pid, mark in left.items() if _running(pid, mark)}
                    time.sleep(0.2)

    return BookCallback(runs, book, asha)


def _running(pid: int, marker: str) -> bool:
    """Process ``pid`` is alive (no zombie) and its command line holds ``marker`` (its run
    folder): a process id taken since by another process is never signalled."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return marker.encode() in fh.read()
    except OSError:
        return False
