"""The batch driver: executes the pipeline's notebooks with papermill into one run folder.

Each notebook runs in its own kernel, in the order of :data:`NOTEBOOKS`; the executed notebook and
its HTML rendering stay in ``RUN/notebooks/``. While a notebook runs, the lines its kernel appends
to the run's log are echoed to the console.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import sys
import threading
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from crackkit.config import DATA_FIELDS, RunConfig, field_names
from crackkit.files import atomic_write_text
from crackkit.paths import NOTEBOOKS_DIR, ROOT
from crackkit.run import RUN_FILES, Run, RunDirError

_log = logging.getLogger(__name__)

__all__ = ["NOTEBOOKS", "PipelineError", "render_html", "run_pipeline"]

# (step, notebook file, the RunConfig fields it takes besides run_dir)
NOTEBOOKS: list[tuple[str, str, tuple[str, ...]]] = [
    ("prepare", "01_prepare.ipynb", DATA_FIELDS),
    ("train", "02_train.ipynb", tuple(field_names())),
    ("evaluate", "03_evaluate.ipynb", ()),
    ("report", "04_report.ipynb", ()),
]


#: Errors a notebook raises when it refuses its input: the run exits 2 (bad input), not 1.
INPUT_ERRORS = frozenset(
    {"ConfigError", "RunDirError", "DatasetError", "CheckpointError", "FileNotFoundError"}
)


class PipelineError(RuntimeError):
    """A notebook of the pipeline failed; the executed notebook is kept in the run folder.

    Attributes:
        exit_status: 2 when the notebook refused its input (:data:`INPUT_ERRORS`), else 1.
    """

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.exit_status = 2 if error in INPUT_ERRORS else 1


def render_html(notebook: Path) -> Path:
    """Render an executed notebook to HTML beside it."""
    import nbconvert
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    return atomic_write_text(notebook.with_suffix(".html"), body)


@contextmanager
def _follow_log(path: Path, interval: float = 0.5):
    """Echo the lines a notebook's kernel appends to the run log while the block runs."""
    offset = path.stat().st_size if path.exists() else 0
    stop = threading.Event()

    def pump() -> None:
        nonlocal offset
        while True:
            finished = stop.wait(interval)
            if path.exists():
                with path.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                # print whole lines only; a partial last line waits for the next round
                cut = chunk.rfind(b"\n") + 1
                if cut:
                    sys.stdout.write(chunk[:cut].decode("utf-8", "replace"))
                    sys.stdout.flush()
                    offset += cut
            if finished:
                return

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _kernel_config(kernel_name: str) -> Any:
    """Settings for the kernel manager papermill starts ``kernel_name`` with, for every notebook.

    ipykernel (7.4) warns "Kernel is running over TCP without encryption" whenever it starts on
    TCP sockets without CurveZMQ keys. jupyter_client's ``KernelManager.transport_encryption``
    (8.10) has the manager provision those keys for a kernel whose kernelspec declares
    ``supported_encryption: curve``, as ipykernel's own does. Where that is not on offer (an
    older jupyter_client, libzmq without CurveZMQ, a kernelspec without the declaration), the
    kernel talks over local IPC sockets instead, where the platform has them.
    """
    import zmq
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    try:
        metadata = KernelSpecManager().get_kernel_spec(kernel_name).metadata or {}
    except NoSuchKernel:
        return Config()  # papermill reports the missing kernel
    declared = metadata.get("supported_encryption") or ()
    declared = [declared] if isinstance(declared, str) else declared
    if (
        "transport_encryption" in KernelManager.class_trait_names()
        and zmq.has("curve")
        and "curve" in {str(d).strip().lower() for d in declared}
    ):
        return Config({"KernelManager": {"transport_encryption": "auto"}})
    if zmq.has("ipc"):
        return Config({"KernelManager": {"transport": "ipc"}})
    return Config()


def _execute(src: Path, dst: Path, parameters: dict[str, Any], *, log_output: bool) -> None:
    import papermill
    from nbclient.exceptions import DeadKernelError

    kernel_name = "python3"
    env_bin = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(env_bin):
        os.environ["PATH"] = env_bin + os.pathsep + os.environ.get("PATH", "")
    follow = _follow_log(dst.parent.parent / RUN_FILES["log"]) if log_output else nullcontext()
    try:
        with follow:
            papermill.execute_notebook(
                str(src),
                str(dst),
                parameters=parameters,
                kernel_name=kernel_name,
                progress_bar=False,
                cwd=str(ROOT),
                config=_kernel_config(kernel_name),  # passed on to nbclient's KernelManager
            )
    except papermill.PapermillExecutionError as exc:
        raise PipelineError(
            f"notebook {src.name} failed: {exc.ename}: {exc.evalue} (the executed notebook with "
            f"the traceback is {dst})",
            error=exc.ename,
        ) from None
    except DeadKernelError:
        run_dir = dst.parent.parent
        hint = (
            f"every completed epoch is kept; continue with: crackkit run --resume --run {run_dir}"
            if (run_dir / RUN_FILES["environment"]).is_file()
            else "nothing was trained yet; start the run again"
        )
        raise PipelineError(
            f"notebook {src.name} stopped: its kernel died (killed, or out of memory); {hint}"
        ) from None
    finally:
        if dst.exists():
            try:
                render_html(dst)
            except Exception as exc:  # noqa: BLE001 - rendering must not hide the run's own error
                _log.warning(f"could not render {dst.name} to HTML: {exc}")


def run_pipeline(
    cfg: RunConfig,
    run_dir: Path | str | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    steps: Sequence[str] | None = None,
    log_output: bool = True,
) -> Path:
    """Execute the pipeline's notebooks into one run folder; returns the path of REPORT.md.

    The folder's lock (:func:`crackkit.run.run_lock`) is held throughout; the notebooks' kernels
    share it.
    """
    with Run.start(cfg, run_dir, resume=resume, overwrite=overwrite) as run:
        return _run_notebooks(cfg, run.path, resume=resume, steps=steps, log_output=log_output)


def _run_notebooks(
    cfg: RunConfig,
    path: Path,
    *,
    resume: bool,
    steps: Sequence[str] | None,
    log_output: bool,
) -> Path:
    nb_dir = path / RUN_FILES["notebooks"]
    nb_dir.mkdir(parents=True, exist_ok=True)
    suffix = f".resume-{_dt.datetime.now():%Y%m%d-%H%M%S}" if resume else ""
    for step, name, fields in NOTEBOOKS:
        if steps and step not in steps:
            continue
        params: dict[str, Any] = {"run_dir": str(path)}
        params.update({k: v for k, v in cfg.to_dict().items() if k in fields})
        if step == "train":
            params["resume"] = resume
        dst = nb_dir / f"{Path(name).stem}{suffix}.ipynb"
        if dst.exists():
            resumable = (path / RUN_FILES["environment"]).is_file() and not resume
            raise RunDirError(
                f"{dst} exists from an earlier attempt and is not overwritten; "
                + (f"continue it with --resume --run {path}, " if resumable else "")
                + "choose another --run DIR, or pass --overwrite (the old files are kept in a "
                "'superseded-*' subfolder)"
            )
        _log.info(f"[crackkit] {step}: executing {name} -> {dst}")
        _execute(NOTEBOOKS_DIR / name, dst, params, log_output=log_output)
    return path / RUN_FILES["report"]
