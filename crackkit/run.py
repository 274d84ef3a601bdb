"""Run folders and the :class:`Run` that owns one: everything a run wrote, in one place.

Every entry point (the CLI, the notebooks, sweeps, compare, predict, the torchrun launcher)
resolves its run once, with :meth:`Run.create` or :meth:`Run.open`, and passes it down; the
engine below gets paths and objects from it and knows nothing of folders.

Layout of a run folder (:data:`RUN_FILES`)::

    config.json          resolved RunConfig, written when the run is created
    environment.json     versions, commit, device, command line (written when training starts)
    dataset.json         the data set's record (crackkit.data.dataset.dataset_record)
    segmented.csv        every training image and whether its mask is used (mixed supervision)
    init_weights.json    the starting weights of a warm start (init_weights): file, SHA-256, kind
    history.csv          one row per epoch
    metrics.json         final evaluation
    stopped.json         why a sweep's early stopping ended the run, when it did (no metrics)
    run.log              the run's log (the seed's "Output")
    checkpoints/         last.pt, best.pt (config inside)
    plots/               loss.png, loss_dec.png, loss_seg.png, loss_val.png, scores.png, ...
    notebooks/           executed notebooks (.ipynb) and their HTML rendering
    tensorboard/         TensorBoard event files (crackkit.tensorboard)
    REPORT.md            the rendered report

Every file is written atomically (:mod:`crackkit.files`), so a crash never leaves half a file;
:func:`create_run_dir` refuses a folder that already holds a finished run.

One run per folder: whatever writes a run (the batch driver, training, evaluation) holds its lock
(:func:`run_lock`, an exclusive ``flock`` on ``RUN/.crackkit.lock``), and a second process that
asks for the same folder is refused while the first lives. The lock goes with its process, so a
killed run leaves none; the processes a locked run starts (notebook kernels, torchrun) share it
through the environment variable ``CRACKKIT_RUN_LOCKS``. Temporary files a killed process left
(``.best.pt.*.tmp``...) are removed when the folder is next locked. A new default folder
(``runs/<time>-<label>``, ``-2``, ``-3``... on a clash) is made with an exclusive ``mkdir``, so two
runs started in the same second never share it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fcntl
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crackkit import paths
from crackkit.checkpoint import Checkpoints, load_checkpoint, validation_thresholds
from crackkit.config import (
    DEVICE_VALUES,
    PRESETS,
    ConfigError,
    RunConfig,
    config_diff,
    load_config,
    make_config,
    read_config_file,
    save_config,
)
from crackkit.deprecation import DeprecatedOption
from crackkit.files import atomic_write_json, read_csv, read_json
from crackkit.runtime import resolve_device

__all__ = [
    "RUN_FILES",
    "add_run_arguments",
    "config_from_arguments",
    "run_parameters",
    "Run",
    "RunDirError",
    "environment_info",
    "is_finished",
    "latest_run",
    "new_run_name",
    "run_label",
    "run_lock",
    "run_logger",
]

RUN_FILES = {
    "config": "config.json",
    "environment": "environment.json",
    "dataset": "dataset.json",
    "segmented": "segmented.csv",
    "init_weights": "init_weights.json",
    "history": "history.csv",
    "metrics": "metrics.json",
    "stopped": "stopped.json",
    "log": "run.log",
    "report": "REPORT.md",
    "checkpoints": "checkpoints",
    "plots": "plots",
    "gallery": "plots/gallery.png",
    "notebooks": "notebooks",
    "predictions": "predictions",
    "tensorboard": "tensorboard",
}


class RunDirError(RuntimeError):
    """A run folder cannot be used as asked (it holds a finished run, or is missing)."""


def new_run_name(label: str = "run") -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{label}"


LOCK_FILE = ".crackkit.lock"
#: The environment variable through which a locked run's child processes share its lock.
LOCK_ENV = "CRACKKIT_RUN_LOCKS"
#: Folders of a run whose stale temporary files (``.<name>.*.tmp``) are removed when it is locked.
_TEMP_FOLDERS = ("", "checkpoints", "plots", "notebooks")


@dataclass
class _Held:
    fd: int | None  # None: held by the parent process that started this one
    token: str
    count: int = 0
    lock_path: Path = field(default_factory=Path)


_HELD: dict[Path, _Held] = {}


def _shared_locks() -> dict[str, str]:
    try:
        shared = json.loads(os.environ.get(LOCK_ENV) or "{}")
    except ValueError:
        return {}
    return shared if isinstance(shared, dict) else {}


def _set_shared(path: Path, token: str | None) -> None:
    shared = _shared_locks()
    if token is None:
        shared.pop(str(path), None)
    else:
        shared[str(path)] = token
    if shared:
        os.environ[LOCK_ENV] = json.dumps(shared)
    else:
        os.environ.pop(LOCK_ENV, None)


def _read_holder(lock_path: Path) -> dict[str, Any]:
    try:
        holder = json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _acquire(path: Path) -> _Held:
    lock_path = path / LOCK_FILE
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_holder(lock_path)
            token = _shared_locks().get(str(path))
            if token and holder.get("token") == token:
                return _Held(None, token, lock_path=lock_path)
            raise RunDirError(
                f"{path} is in use by another crackkit process (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, since {holder.get('started', '?')}); wait for it to "
                "finish, or choose another --run DIR"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file as we opened it: lock the new one
    token = uuid.uuid4().hex
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "token": token,
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    return _Held(fd, token, lock_path=lock_path)


@contextmanager
def run_lock(run_dir: Path | str) -> Iterator[Path]:
    """Hold ``run_dir``'s lock for the block; the folder must exist.

    Re-entrant within a process; a process started under the lock (a notebook kernel, torchrun)
    shares it through :data:`LOCK_ENV`. On first locking, the temporary files a killed process
    left in the run's folders are removed.

    Raises:
        RunDirError: another process holds the folder; the message names it.
    """
    path = Path(run_dir).resolve()
    held = _HELD.get(path)
    if held is None:
        held = _acquire(path)
        _HELD[path] = held
        if held.fd is not None:
            _set_shared(path, held.token)
        _remove_stale_temporaries(path)
    held.count += 1
    try:
        yield path
    finally:
        held.count -= 1
        if held.count == 0:
            del _HELD[path]
            if held.fd is not None:
                _set_shared(path, None)
                held.lock_path.unlink(missing_ok=True)
                os.close(held.fd)


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the ``.<name>.*.tmp`` files of :mod:`crackkit.files` that a killed writer left."""
    for sub in _TEMP_FOLDERS:
        folder = path / sub
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                if tmp.is_file():
                    tmp.unlink(missing_ok=True)


def _new_run_folder(label: str) -> Path:
    """A new folder ``runs/<time>-<label>`` (``-2``, ``-3``... when taken), made exclusively."""
    base = paths.RUNS_DIR / new_run_name(label)
    base.parent.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        path = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            path.mkdir()
        except FileExistsError:
            k += 1
            continue
        return path.resolve()


def is_finished(run_dir: Path) -> bool:
    """A run is finished once its metrics or report exist."""
    run_dir = Path(run_dir)
    return (run_dir / RUN_FILES["metrics"]).exists() or (run_dir / RUN_FILES["report"]).exists()


def create_run_dir(
    run_dir: Path | str | None = None,
    *,
    label: str = "run",
    overwrite: bool = False,
    resume: bool = False,
) -> Path:
    """Create (or reuse, when resuming) a run folder and return its absolute path.

    Args:
        run_dir: the folder; ``None`` makes ``runs/<timestamp>-<label>``.
        overwrite: allow a folder that holds a finished run; the old run's files are moved to
            ``<run_dir>/superseded-<timestamp>/`` rather than deleted.
        resume: the folder must exist, hold a configuration and no report yet.

    Raises:
        RunDirError: the folder holds a finished run (and ``overwrite`` is False), holds training
            results but ``resume`` is False, or is missing or finished when resuming.
    """
    if run_dir is None or str(run_dir) == "":
        path = _new_run_folder(label)
    else:
        path = Path(run_dir).resolve()
    if resume:
        if not (path / RUN_FILES["config"]).is_file():
            raise RunDirError(f"cannot resume {path}: it holds no {RUN_FILES['config']}")
        with run_lock(path):
            if (path / RUN_FILES["report"]).exists():
                raise RunDirError(
                    f"cannot resume {path}: the run is finished ({RUN_FILES['report']} exists) "
                    "and nothing is left to do; start a new run, or rerun this folder with "
                    "overwrite=True (--overwrite; the old files are kept in a 'superseded-*' "
                    "subfolder)"
                )
        return path
    path.mkdir(parents=True, exist_ok=True)
    with run_lock(path):
        if is_finished(path):
            if not overwrite:
                raise RunDirError(
                    f"{path} already holds a finished run; choose another --run DIR, resume it, "
                    "or pass overwrite=True (the old files are kept in a 'superseded-*' "
                    "subfolder)"
                )
            _supersede(path)
        elif (path / RUN_FILES["checkpoints"] / "last.pt").exists() and not overwrite:
            raise RunDirError(
                f"{path} holds an unfinished run; resume it (resume=True / --resume) or pass "
                "overwrite=True"
            )
        elif overwrite:
            _supersede(path)
        for sub in ("checkpoints", "plots", "notebooks"):
            (path / RUN_FILES[sub]).mkdir(parents=True, exist_ok=True)
    return path


def _supersede(path: Path) -> None:
    keep = path / f"superseded-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    keep.mkdir()
    for child in list(path.iterdir()):
        if child.name.startswith("superseded-") or child == keep or child.name == LOCK_FILE:
            continue
        child.rename(keep / child.name)


def latest_run(runs_dir: Path | None = None) -> Path:
    """The most recently started run folder under ``runs_dir`` (default: the runs folder)."""
    runs_dir = paths.RUNS_DIR if runs_dir is None else runs_dir
    candidates = [p for p in Path(runs_dir).glob("*") if (p / RUN_FILES["config"]).is_file()]
    if not candidates:
        raise RunDirError(f"no runs under {runs_dir}")
    return max(candidates, key=lambda p: (p / RUN_FILES["config"]).stat().st_mtime)


def _git_commit() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=paths.ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def environment_info(device: str | None = None) -> dict[str, Any]:
    """Versions, commit, host and device of the current process."""
    import numpy
    import torch

    info: dict[str, Any] = {
        "time": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "host": platform.node(),
        "numpy": numpy.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device": device,
        "argv": sys.argv,
    }
    from importlib.metadata import PackageNotFoundError, version

    for key, dist in (
        ("crackkit", "crackkit"),
        ("skimage", "scikit-image"),
        ("sklearn", "scikit-learn"),
        ("matplotlib", "matplotlib"),
        ("papermill", "papermill"),
    ):
        try:
            info[key] = version(dist)
        except PackageNotFoundError:
            info[key] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    info.update(_git_commit())
    return info


def run_logger(run_dir: Path, name: str = "crackkit") -> logging.Logger:
    """A logger that appends to ``run_dir/run.log`` and prints to stdout.

    Each run folder gets its own logger, so that two folders of the same name never share a log.
    """
    resolved = Path(run_dir).resolve()
    logger = logging.getLogger(f"{name}.{resolved.name}.{abs(hash(str(resolved))):x}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    log_path = str(resolved / RUN_FILES["log"])
    if not any(getattr(h, "baseFilename", None) == log_path for h in logger.handlers):
        fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
        fh = logging.FileHandler(log_path)
        fh.setFormatter(fmt)
        sh = logging.StreamHandler(sys.stdout)
        sh.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(fh)
        logger.addHandler(sh)
    return logger


def run_label(cfg: RunConfig) -> str:
    """The label of a new run folder's name: the data set's name (a folder's last part)."""
    return cfg.dataset if cfg.dataset in ("synthetic", "crack500") else Path(cfg.dataset).name


@dataclass(frozen=True)
class Run:
    """A run folder and the configuration it was started with.

    Every entry point resolves its run once, with :meth:`create` (a new run, or one to resume)
    or :meth:`open` (a run that exists), and passes it down; the folder's files are reached
    through it (:meth:`file`, :attr:`checkpoints`, :meth:`history`, :attr:`log`).
    """

    path: Path
    cfg: RunConfig

    @classmethod
    def create(
        cls,
        cfg: RunConfig,
        run_dir: Path | str | None = None,
        *,
        resume: bool = False,
        overwrite: bool = False,
    ) -> Run:
        """Create the run folder (``runs/<time>-<label>`` by default) and record ``cfg``.

        A folder that already records a configuration must record ``cfg`` itself; so the batch
        driver and the notebooks it runs may each resolve the same run.

        Raises:
            RunDirError: see :func:`create_run_dir`; or the folder was started with other run
                parameters (the message names them).
        """
        path = create_run_dir(run_dir, label=run_label(cfg), overwrite=overwrite, resume=resume)
        config_path = path / RUN_FILES["config"]
        with run_lock(path):
            if config_path.exists():
                changed = config_diff(load_config(config_path), cfg)
                if changed:
                    raise RunDirError(
                        f"{path} was started with other run parameters ({', '.join(changed)}); "
                        "use a new run folder"
                    )
            else:
                save_config(cfg, config_path)
        return cls(path, cfg)

    @classmethod
    @contextmanager
    def start(
        cls,
        cfg: RunConfig,
        run_dir: Path | str | None = None,
        *,
        resume: bool = False,
        overwrite: bool = False,
    ) -> Iterator[Run]:
        """:meth:`create`, with the folder's lock (:func:`run_lock`) held for the block: what
        trains or drives a run holds it, so that a second run into the folder is refused.

        Raises:
            RunDirError: as :meth:`create`, or the folder is in use by another process.
        """
        if run_dir is None or str(run_dir) == "":
            path = _new_run_folder(run_label(cfg))
        else:
            path = Path(run_dir).resolve()
        if resume and not (path / RUN_FILES["config"]).is_file():
            raise RunDirError(f"cannot resume {path}: it holds no {RUN_FILES['config']}")
        path.mkdir(parents=True, exist_ok=True)
        with run_lock(path):
            yield cls.create(cfg, path, resume=resume, overwrite=overwrite)

    @classmethod
    def open(cls, run_dir: Path | str | None = None) -> Run:
        """An existing run folder; ``None`` or ``""``: the latest run under the runs folder.

        Raises:
            RunDirError: no such folder, or it holds no ``config.json``.
        """
        path = latest_run() if run_dir is None or str(run_dir) == "" else Path(run_dir)
        if not path.is_dir():
            raise RunDirError(f"no run folder at {path}")
        config_path = path / RUN_FILES["config"]
        if not config_path.is_file():
            raise RunDirError(f"{path} is not a run folder (no {RUN_FILES['config']})")
        return cls(path.resolve(), load_config(config_path))

    def matching(self, cfg: RunConfig, fields: Sequence[str]) -> Run:
        """This run, once checked to record the same ``fields`` as ``cfg``.

        Raises:
            ConfigError: the run records other values of some of them (the message names them).
        """
        changed = [k for k in config_diff(self.cfg, cfg) if k in fields]
        if changed:
            raise ConfigError(
                f"{self.path} records other values of {', '.join(changed)} than the parameters "
                "given; leave them out to use the run's, or use a new run folder"
            )
        return self

    def file(self, key: str) -> Path:
        """The path of one of :data:`RUN_FILES` (``"metrics"``, ``"plots"``...)."""
        return self.path / RUN_FILES[key]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Checkpoints:
        return Checkpoints(self.file("checkpoints"))

    def checkpoint(self, path: Path | str | None = None) -> Path:
        """``path`` when given, else the run's chosen checkpoint (best or last, as configured).

        Raises:
            CheckpointError: the run holds no checkpoint.
        """
        return Path(path) if path else self.checkpoints.chosen(self.cfg.use_best_model)

    def thresholds(self, checkpoint: Path | str | None = None) -> dict[str, float | None]:
        """The validated thresholds of a checkpoint's epoch (default: the chosen one)."""
        return validation_thresholds(load_checkpoint(self.checkpoint(checkpoint)))

    def relative(self, path: Path) -> str:
        """``path`` relative to the run folder when it lies inside it."""
        path = Path(path)
        return str(path.relative_to(self.path) if path.is_relative_to(self.path) else path)

    def history(self) -> list[dict[str, Any]]:
        """The rows of ``history.csv`` (none before the first epoch ends)."""
        path = self.file("history")
        return read_csv(path) if path.exists() else []

    def train_seconds(self) -> float:
        """Seconds spent training and validating, summed over the history."""
        return float(
            sum((r.get("time_s") or 0) + (r.get("val_time_s") or 0) for r in self.history())
        )

    def read(self, key: str) -> dict[str, Any]:
        """A JSON file of the run (``"metrics"``, ``"dataset"``...); ``{}`` when absent."""
        path = self.file(key)
        return read_json(path) if path.is_file() else {}

    def write(self, key: str, data: Any) -> Path:
        """Write a JSON file of the run atomically."""
        return atomic_write_json(self.file(key), data)

    def record_environment(self, *, resumed: bool = False) -> Path:
        """Write ``environment.json`` for the process that trains (once; again on resume)."""
        path = self.file("environment")
        if path.exists() and not resumed:
            return path
        env = environment_info(str(resolve_device(self.cfg)))
        if resumed and path.exists():
            env["resumed_from"] = read_json(path)
        return atomic_write_json(path, env)

    def record_speed_switches(self, resolutions: dict[str, Any]) -> Path | None:
        """Add the speed switches settled in this process (:func:`crackkit.autotune.resolutions`:
        ``training``, ``inference``) to ``environment.json`` under ``speed_switches``."""
        path = self.file("environment")
        if not resolutions or not path.is_file():
            return None
        env = read_json(path)
        env.setdefault("speed_switches", {}).update(resolutions)
        return atomic_write_json(path, env)

    @property
    def log(self) -> logging.Logger:
        """The run's logger: appends to ``run.log`` and prints to stdout."""
        return run_logger(self.path)


def add_run_arguments(
    parser: argparse.ArgumentParser, *, run_dir_required: bool = False, torchrun: bool = False
) -> argparse.ArgumentParser:
    """The run options ``crackkit run`` and the torchrun launcher share: ``--preset``,
    ``--dataset``, ``--config``, ``--run``, ``--device`` and ``-p NAME VALUE`` (``--run-dir``
    is the deprecated spelling of ``--run``).

    ``torchrun=True`` (``python -m crackkit.launch``) names the run folder ``--run-dir`` only:
    torchrun's own parser reads every option of its command line, the script's included, and
    takes ``--run`` for an abbreviation of its ``--run-path``.
    """
    parser.add_argument("--preset", help=f"named parameter set: {', '.join(PRESETS)}")
    parser.add_argument("--dataset", help="'synthetic', a prepared data set name, or a folder path")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="run parameters from a YAML, TOML or JSON file (a run's config.json reruns it); "
        "-p and --dataset override it, it overrides --preset",
    )
    parser.add_argument(
        "--run-dir" if torchrun else "--run",
        dest="run_dir",
        metavar="DIR",
        required=run_dir_required,
        help="run folder" + ("" if run_dir_required else " (default: runs/<time>-<dataset>)"),
    )
    if not torchrun:
        parser.add_argument(
            "--run-dir", dest="run_dir", action=DeprecatedOption, new="--run DIR", metavar="DIR"
        )
    parser.add_argument(
        "--device", help=f"where the model runs: {DEVICE_VALUES} (the run parameter 'device')"
    )
    parser.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="set a run parameter (repeatable), e.g. -p lr 0.001; 'crackkit params' lists them",
    )
    return parser


def run_parameters(args: argparse.Namespace) -> dict[str, str]:
    """The ``-p NAME VALUE`` pairs, ``--dataset`` and ``--device`` of parsed run options.

    A ``--dataset`` that names an existing folder relative to the working directory is made
    absolute: the notebooks run in the project's folder, not in the caller's.
    """
    params = {name: value for name, value in args.param or []}
    if args.dataset:
        folder = Path(args.dataset).expanduser()
        params["dataset"] = str(folder.resolve()) if folder.is_dir() else args.dataset
    if getattr(args, "device", None):
        params["device"] = args.device
    return params


def config_from_arguments(
    args: argparse.Namespace, *, recorded: Path | str | None = None
) -> RunConfig:
    """The validated configuration of parsed run options (:func:`add_run_arguments`).

    The preset first, then the ``--config`` file, then ``--dataset``, ``--device`` and ``-p``.
    With none of them, the configuration ``recorded`` in that run folder when it has one;
    :meth:`Run.create` then refuses parameters that differ from a recorded run's.

    Raises:
        ConfigError: an unknown preset or parameter, a bad value or a bad configuration file
            (the message names it).
    """
    params = run_parameters(args)
    from_file = read_config_file(args.config) if getattr(args, "config", None) else {}
    config_path = Path(recorded) / RUN_FILES["config"] if recorded else None
    if (
        config_path is not None
        and config_path.is_file()
        and not (params or args.preset or from_file)
    ):
        return load_config(config_path)
    return make_config(from_file | params, preset=args.preset)
