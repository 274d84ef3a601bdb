"""The ``crackkit`` command line.

``crackkit run``   executes the notebooks (prepare, train, evaluate, report) with papermill into one
                   run folder and prints the report's path as its last line.
``crackkit data``  downloads and imports a real data set (CRACK500).
``crackkit predict`` applies a trained run to a folder of images.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crackkit.config import ConfigError, RunConfig, load_config, make_config
from crackkit.paths import NOTEBOOKS_DIR, ROOT
from crackkit.runs import RUN_FILES, RunDirError, atomic_write_text, create_run_dir

__all__ = ["main", "run_pipeline", "NOTEBOOKS"]

# (step, notebook file, takes the RunConfig fields)
NOTEBOOKS: list[tuple[str, str, bool]] = [
    ("prepare", "01_prepare.ipynb", True),
    ("train", "02_train.ipynb", True),
    ("evaluate", "03_evaluate.ipynb", False),
    ("report", "04_report.ipynb", False),
]


class PipelineError(RuntimeError):
    """A notebook of the pipeline failed; the executed notebook is kept in the run folder."""


def _params(pairs: Sequence[Sequence[str]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs or []:
        out[name] = value
    return out


def render_html(notebook: Path) -> Path:
    """Render an executed notebook to HTML beside it."""
    import nbconvert
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    return atomic_write_text(notebook.with_suffix(".html"), body)


def _execute(src: Path, dst: Path, parameters: dict[str, Any], *, log_output: bool) -> None:
    import papermill

    env_bin = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(env_bin):
        os.environ["PATH"] = env_bin + os.pathsep + os.environ.get("PATH", "")
    try:
        papermill.execute_notebook(
            str(src),
            str(dst),
            parameters=parameters,
            kernel_name="python3",
            progress_bar=False,
            log_output=log_output,
            cwd=str(ROOT),
        )
    except papermill.PapermillExecutionError as exc:
        raise PipelineError(
            f"notebook {src.name} failed: {exc.ename}: {exc.evalue}\n"
            f"The executed notebook with the traceback is {dst}"
        ) from None
    finally:
        if dst.exists():
            try:
                render_html(dst)
            except Exception as exc:  # noqa: BLE001 - rendering must not hide the run's own error
                print(f"warning: could not render {dst.name} to HTML: {exc}", file=sys.stderr)


def run_pipeline(
    cfg: RunConfig,
    run_dir: Path | str | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    steps: Sequence[str] | None = None,
    log_output: bool = True,
) -> Path:
    """Execute the pipeline's notebooks into one run folder; returns the path of REPORT.md."""
    path = create_run_dir(run_dir, label=_label(cfg), overwrite=overwrite, resume=resume)
    nb_dir = path / RUN_FILES["notebooks"]
    nb_dir.mkdir(parents=True, exist_ok=True)
    suffix = f".resume-{_dt.datetime.now():%Y%m%d-%H%M%S}" if resume else ""
    for step, name, takes_config in NOTEBOOKS:
        if steps and step not in steps:
            continue
        params: dict[str, Any] = {"run_dir": str(path)}
        if takes_config:
            params.update(cfg.to_dict())
        if step == "train":
            params["resume"] = resume
        dst = nb_dir / f"{Path(name).stem}{suffix}.ipynb"
        if dst.exists():
            raise RunDirError(f"{dst} exists; it is not overwritten")
        print(f"[crackkit] {step}: executing {name} -> {dst}", flush=True)
        _execute(NOTEBOOKS_DIR / name, dst, params, log_output=log_output)
    return path / RUN_FILES["report"]


def _label(cfg: RunConfig) -> str:
    return cfg.dataset if cfg.dataset in ("synthetic", "crack500") else Path(cfg.dataset).name


def _cmd_run(args: argparse.Namespace) -> int:
    params = _params(args.param)
    if args.resume:
        run_dir = Path(args.resume)
        cfg_path = run_dir / RUN_FILES["config"]
        if not cfg_path.is_file():
            raise RunDirError(f"cannot resume {run_dir}: it holds no {RUN_FILES['config']}")
        cfg = load_config(cfg_path)
        if params or args.preset or args.dataset:
            raise ConfigError(
                "--resume continues a run with its recorded parameters; drop -p/--preset/--dataset"
            )
    else:
        if args.dataset:
            params["dataset"] = args.dataset
        cfg = make_config(params, preset=args.preset)
        run_dir = args.run_dir
    report = run_pipeline(
        cfg, run_dir, resume=bool(args.resume), overwrite=args.overwrite, log_output=not args.quiet
    )
    print(report)
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from crackkit.data.crack500 import main_from_args

    return main_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crackkit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole pipeline (prepare, train, evaluate, report)")
    run.add_argument("--preset", help="named parameter set: synthetic, tiny, crack500")
    run.add_argument("--dataset", help="'synthetic', a prepared data set name, or a folder path")
    run.add_argument("--run-dir", help="run folder (default: runs/<time>-<dataset>)")
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="set a run parameter (repeatable), e.g. -p lr 0.001",
    )
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse a run folder that holds a finished run (old files are kept aside)",
    )
    run.add_argument("--quiet", action="store_true", help="do not echo the notebooks' output")
    run.set_defaults(func=_cmd_run)

    data = sub.add_parser("data", help="download and import a data set")
    data.add_argument("name", choices=["crack500"])
    from crackkit.data.crack500 import add_cli_arguments

    add_cli_arguments(data)
    data.set_defaults(func=_cmd_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, RunDirError, PipelineError, FileNotFoundError) as exc:
        print(f"crackkit: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except Exception as exc:  # noqa: BLE001 - known input errors get one line, not a traceback
        from crackkit.data.folder import DatasetError

        if isinstance(exc, DatasetError):
            print(f"crackkit: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
