"""Run folders: one per run, holding everything the run wrote.

Layout of a run folder::

    config.json          resolved RunConfig
    environment.json     versions, commit, device, command line
    dataset.json         data-set summary (positives/negatives per split)
    history.csv          one row per epoch
    metrics.json         final evaluation
    run.log              the run's log (the seed's "Output")
    checkpoints/         last.pt, best.pt (config inside)
    plots/               loss.png, loss_dec.png, loss_seg.png, loss_val.png, scores.png, ...
    notebooks/           executed notebooks (.ipynb) and their HTML rendering
    REPORT.md            the rendered report

Every file is written atomically (temporary file in the same folder, then rename), so a crash
never leaves half a file; :func:`create_run_dir` refuses a folder that already holds a finished run.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from crackkit import paths

__all__ = [
    "RunDirError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "write_csv",
    "read_json",
    "create_run_dir",
    "new_run_name",
    "is_finished",
    "latest_run",
    "environment_info",
    "run_logger",
    "RUN_FILES",
]

RUN_FILES = {
    "config": "config.json",
    "environment": "environment.json",
    "dataset": "dataset.json",
    "history": "history.csv",
    "metrics": "metrics.json",
    "log": "run.log",
    "report": "REPORT.md",
    "checkpoints": "checkpoints",
    "plots": "plots",
    "notebooks": "notebooks",
    "predictions": "predictions",
}


class RunDirError(RuntimeError):
    """A run folder cannot be used as asked (it holds a finished run, or is missing)."""


def _default_file_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()
"""Mode of the files written here: what ``open()`` gives (``mkstemp`` alone gives 0600)."""


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing file: {path}")
    return json.loads(path.read_text())


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    rows = list(rows)
    buf = io.StringIO()
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


def new_run_name(label: str = "run") -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{label}"


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
        base = paths.RUNS_DIR / new_run_name(label)
        path, k = base, 1
        while path.exists():
            k += 1
            path = base.with_name(f"{base.name}-{k}")
    else:
        path = Path(run_dir)
    path = path.resolve()
    if resume:
        if not (path / RUN_FILES["config"]).is_file():
            raise RunDirError(f"cannot resume {path}: it holds no {RUN_FILES['config']}")
        if (path / RUN_FILES["report"]).exists():
            raise RunDirError(
                f"cannot resume {path}: the run is finished ({RUN_FILES['report']} exists) and "
                "nothing is left to do; start a new run, or rerun this folder with overwrite=True "
                "(--overwrite; the old files are kept in a 'superseded-*' subfolder)"
            )
        return path
    if path.exists() and is_finished(path):
        if not overwrite:
            raise RunDirError(
                f"{path} already holds a finished run; choose another --run-dir, resume it, or "
                "pass overwrite=True (the old files are kept in a 'superseded-*' subfolder)"
            )
        _supersede(path)
    elif (path / RUN_FILES["checkpoints"] / "last.pt").exists() and not overwrite:
        raise RunDirError(
            f"{path} holds an unfinished run; resume it (resume=True / --resume) or pass "
            "overwrite=True"
        )
    elif overwrite and path.exists():
        _supersede(path)
    for sub in ("checkpoints", "plots", "notebooks"):
        (path / RUN_FILES[sub]).mkdir(parents=True, exist_ok=True)
    return path


def _supersede(path: Path) -> None:
    keep = path / f"superseded-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    keep.mkdir()
    for child in list(path.iterdir()):
        if child.name.startswith("superseded-") or child == keep:
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
        "numpy": numpy.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device": device,
        "argv": sys.argv,
    }
    from importlib.metadata import PackageNotFoundError, version

    for key, dist in (
        ("torchvision", "torchvision"),
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
