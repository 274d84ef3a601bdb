"""The ``crackkit`` command line: one parser, one handler per command.

``crackkit run``   executes the notebooks (prepare, train, evaluate, report) with papermill into one
                   run folder and prints the report's path as its last line.
``crackkit data``  downloads and imports a real data set (CRACK500, CrackForest).
``crackkit predict`` applies a trained run to a folder of images.
``crackkit export`` writes a trained run as one ONNX file (``pip install 'crackkit[onnx]'``).
``crackkit sweep``  runs every combination of parameter values and seeds, one run folder each,
                   here or on a Ray cluster (``--engine ray``).
``crackkit compare`` writes COMPARE.md: finished runs side by side, mean ± std over seeds.
``crackkit checkpoint convert --trust FILE`` rewrites a checkpoint you trust that needs more than
                   tensors to load (an earlier crackkit's last.pt).

The top-level help (:data:`DESCRIPTION`) lists every command. One vocabulary runs through them:
``--run DIR`` names a run folder, ``--quiet`` silences progress and echoed output, ``--overwrite``
replaces an output that exists, ``--device`` says where a model runs. Old spellings are accepted
with a deprecation warning naming the new form (:class:`crackkit.deprecation.DeprecatedOption`).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from crackkit import __version__, console
from crackkit.batch import PipelineError, run_pipeline
from crackkit.config import DEVICE_VALUES, PRESETS, ConfigError, check_device
from crackkit.deprecation import DeprecatedOption, warn_deprecated
from crackkit.run import (
    RUN_FILES,
    Run,
    RunDirError,
    add_run_arguments,
    config_from_arguments,
    run_parameters,
)
from crackkit.specs import ARCHITECTURES, MAX_IMAGE_PIXELS

__all__ = ["DESCRIPTION", "EXIT_STATUS", "build_parser", "exit_status", "main"]

DESCRIPTION = """\
crackkit trains, scores and applies the published SegDecNet crack detectors.

In every command --run DIR names a run folder, -q/--quiet hides progress bars and echoed
output, --overwrite replaces an output that exists, and --device (auto, cpu, cuda, cuda:N,
mps) says where a model runs. 'crackkit COMMAND --help' shows a command's options;
'crackkit params' lists the run parameters.
"""

#: The exit statuses of every command (also in ``crackkit --help`` and the README).
EXIT_STATUS = {
    0: "success",
    1: "the command ran and found problems or failed: a check that found problems, a sweep "
    "with failed runs, a notebook that failed, a full disk, an error inside crackkit",
    2: "bad input or usage: an option, parameter, file, archive, checkpoint, model or run "
    "folder was refused (the message names it)",
    130: "interrupted (Ctrl-C)",
}
_EPILOG = (
    "exit status:\n"
    + "".join(f"  {code:<4} {text}\n" for code, text in EXIT_STATUS.items())
    + "Errors are one line, 'crackkit: error: ...'; --debug adds the traceback."
)


def _cmd_run(args: argparse.Namespace) -> int:
    legacy = args.legacy_resume_dir
    if legacy is not None:  # the 0.1 spelling: --resume RUN_DIR
        if not args.resume:
            raise ConfigError(f"unexpected argument {legacy!r}; name the run folder with --run")
        warn_deprecated("--resume RUN_DIR", "--resume --run RUN_DIR")
        if args.run_dir and args.run_dir != legacy:
            raise ConfigError(f"--resume {legacy} and --run {args.run_dir} name two folders")
        args.run_dir = legacy
    if args.resume:
        if run_parameters(args) or args.preset or args.config:
            raise ConfigError(
                "--resume continues a run with its recorded parameters; drop "
                "-p/--preset/--dataset/--config/--device"
            )
        if not args.run_dir:
            raise ConfigError("--resume needs the run folder: --resume --run DIR")
        try:
            run = Run.open(args.run_dir)
        except RunDirError:
            raise RunDirError(
                f"cannot resume {args.run_dir}: it holds no {RUN_FILES['config']}"
            ) from None
        cfg, run_dir = run.cfg, run.path
    else:
        cfg, run_dir = config_from_arguments(args), args.run_dir
    from crackkit.runtime import resolve_device

    resolve_device(cfg)  # a device that is not there stops the run before any folder is made
    report = run_pipeline(
        cfg, run_dir, resume=bool(args.resume), overwrite=args.overwrite, log_output=not args.quiet
    )
    print(report)
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    from crackkit.parameters import parameters_markdown, parameters_text

    render = parameters_markdown if args.markdown else parameters_text
    print(render(args.preset))
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from crackkit.data.check import check_folder

    if not Path(args.path).expanduser().is_dir():  # bad input (2), not a finding (1)
        raise ConfigError(f"{args.path}: no such folder")
    report = check_folder(
        args.path, negatives_without_mask=args.negatives_without_mask, progress=not args.quiet
    )
    lines = report.lines()
    if args.quiet:
        lines = [line for line in lines if not line.startswith("  ")]
    print("\n".join(lines))
    return 0 if report.ok else 1


def _cmd_data(args: argparse.Namespace) -> int:
    if args.name == "cfd":
        from crackkit.data.cfd import main_from_args
    else:
        from crackkit.data.crack500 import main_from_args

    return main_from_args(args)


def _cmd_predict(args: argparse.Namespace) -> int:
    import warnings

    from crackkit.apply import predict_folder

    if (
        args.run is None
        and args.checkpoint is None
        and args.original_weights is None
        and args.onnx is None
    ):
        print(
            "crackkit: error: give --run DIR, --checkpoint PATH, --original-weights FILE "
            "or --onnx MODEL",
            file=sys.stderr,
        )
        return 2
    if args.onnx is not None and (args.checkpoint is not None or args.original_weights):
        print(
            "crackkit: error: --onnx holds its own weights; drop --checkpoint/--original-weights",
            file=sys.stderr,
        )
        return 2
    if args.original_weights is not None and args.architecture is None:
        print("crackkit: error: --original-weights needs --architecture", file=sys.stderr)
        return 2
    if args.batch_size < 1:
        print(f"crackkit: error: --batch-size must be >= 1, got {args.batch_size}", file=sys.stderr)
        return 2
    if args.max_pixels < 0:
        print(
            f"crackkit: error: --max-pixels must be >= 0 (0: no limit), got {args.max_pixels}",
            file=sys.stderr,
        )
        return 2
    if args.device is not None:
        check_device(args.device)
    if args.no_tile or args.tile == [0, 0]:
        tile = None
    elif args.tile is not None:
        tile = tuple(args.tile)
    else:
        tile = "auto"
    if tile is None and (args.overlap is not None or args.context is not None):
        print(
            "crackkit: error: --overlap and --context apply to tiles; drop --no-tile",
            file=sys.stderr,
        )
        return 2
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = predict_folder(
                args.images_dir,
                args.run,
                args.out,
                checkpoint=args.checkpoint,
                device=args.device,
                batch_size=args.batch_size,
                progress=not args.quiet,
                overwrite=args.overwrite,
                original_weights=args.original_weights,
                architecture=args.architecture,
                input_size=tuple(args.input_size),
                onnx=args.onnx,
                tile=tile,
                overlap=args.overlap,
                tile_mode=args.tile_mode,
                context=args.context,
                tta=args.tta,
                scale=args.scale,
                mm_per_px=args.mm_per_px,
                geometry=args.geometry,
                precision=args.precision,
                max_pixels=args.max_pixels or None,
            )
    finally:
        for w in caught:
            print(f"crackkit: warning: {w.message}", file=sys.stderr)
    tiled = sum(r.tiles > 1 for r in report.results)
    print(
        f"{len(report)} images, {report.n_cracked} with cracks (decision threshold "
        f"{report.threshold_dec:.4f}, segmentation threshold {report.threshold_seg:.4f}, "
        f"{report.checkpoint}) in {report.seconds:.1f}s" + (f"; {tiled} tiled" if tiled else "")
    )
    print(report.out_dir)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from crackkit.export import export_onnx

    path = export_onnx(
        _run_folder(args),
        args.out,
        checkpoint=args.checkpoint,
        opset=args.opset,
        overwrite=args.overwrite,
    )
    print(path)
    return 0


def _cmd_checkpoint(args: argparse.Namespace) -> int:
    from crackkit.checkpoint import convert_checkpoint

    print(convert_checkpoint(args.file, args.out, trust=args.trust))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from crackkit.search import parse_space
    from crackkit.sweep import (
        LocalEngine,
        describe_plan,
        parse_grid,
        parse_seeds,
        plan_sweep,
        run_sweep,
    )

    if args.engine == "local":
        for option, value in (("--address", args.address), ("--early-stop", args.early_stop)):
            if value is not None:
                raise ConfigError(f"{option} needs --engine ray")
        engine = LocalEngine(
            args.jobs, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run
        )
    else:
        from crackkit.raysweep import Asha, RayEngine

        asha = None
        if args.early_stop is not None:
            asha = Asha(args.grace_period or 1, args.reduction_factor or 4)
        engine = RayEngine(
            args.address,
            jobs=args.jobs,
            cpus_per_run=args.cpus_per_run,
            gpus_per_run=args.gpus_per_run,
            early_stop=asha,
        )
    if args.early_stop is None and (args.grace_period or args.reduction_factor):
        raise ConfigError("--grace-period and --reduction-factor set --early-stop asha")
    grid = parse_grid(args.param)
    space = parse_space(args.sample)
    fixed = {"dataset": args.dataset} if args.dataset else {}
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    if not args.sweep_dir:
        raise ConfigError("crackkit sweep needs its folder: --sweep-dir DIR")
    sweep = plan_sweep(
        args.sweep_dir,
        grid,
        seeds,
        preset=args.preset,
        fixed=fixed,
        space=space,
        num_samples=args.num_samples,
        search_seed=args.search_seed,
        keep_stopped=args.early_stop is not None,
    )
    print(describe_plan(sweep), flush=True)
    if args.dry_run:
        return 0

    def echo(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    try:
        result = run_sweep(sweep, engine=engine, echo=echo)
    except KeyboardInterrupt:
        print("[sweep] interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    print(result.compare)
    return result.exit_code


def _cmd_compare(args: argparse.Namespace) -> int:
    from crackkit.compare import compare_runs

    run_dirs = list(args.run or [])
    if args.legacy_run_dirs:
        warn_deprecated("compare RUN_DIR ...", "compare --run DIR [--run DIR ...]")
        run_dirs += args.legacy_run_dirs
    if not run_dirs:
        raise ConfigError("compare needs run folders: --run DIR [--run DIR ...]")
    print(compare_runs(run_dirs, args.out, overwrite=args.overwrite))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from crackkit.pipeline import evaluate_dataset

    if args.n_gallery < 0:
        print(f"crackkit: error: --n-gallery must be >= 0, got {args.n_gallery}", file=sys.stderr)
        return 2
    if args.device is not None:
        check_device(args.device)
    report = evaluate_dataset(
        _run_folder(args),
        args.dataset,
        split=args.split,
        checkpoint=args.checkpoint,
        n_gallery=args.n_gallery,
        progress=not args.quiet,
        overwrite=args.overwrite,
        device=args.device,
    )
    print(report)
    return 0


def _run_folder(args: argparse.Namespace) -> str:
    """The run folder of a command that takes ``--run DIR`` (or the 0.1 positional one)."""
    legacy = getattr(args, "legacy_run_dir", None)
    if legacy is not None:
        warn_deprecated(f"the positional RUN_DIR of '{args.command}'", "--run DIR")
        if args.run_dir and args.run_dir != legacy:
            raise ConfigError(f"{legacy} and --run {args.run_dir} name two run folders")
        return legacy
    if not args.run_dir:
        raise ConfigError(f"'crackkit {args.command}' needs a run folder: --run DIR")
    return args.run_dir


def _add_quiet(parser: argparse.ArgumentParser, what: str = "progress bars") -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help=f"no {what}")


def _add_run(parser: argparse.ArgumentParser, help: str = "a trained run folder") -> None:
    parser.add_argument("--run", dest="run_dir", metavar="DIR", help=help)
    parser.add_argument(
        "legacy_run_dir", nargs="?", metavar="RUN_DIR", help=argparse.SUPPRESS, default=None
    )


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        metavar="DEVICE",
        help=f"where the model runs: {DEVICE_VALUES} (default: the run's, auto)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crackkit",
        description=DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", help="on an error, show its traceback too (any command)"
    )
    parser.add_argument("--version", action="version", version=f"crackkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="train, evaluate and report one run (the notebooks, with papermill); the last "
        "line printed is the report's path",
    )
    add_run_arguments(run)
    run.add_argument(
        "--resume", action="store_true", help="continue the interrupted run of --run DIR"
    )
    run.add_argument("legacy_resume_dir", nargs="?", help=argparse.SUPPRESS, default=None)
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse a run folder that holds a finished run (old files are kept aside)",
    )
    _add_quiet(run, "echo of the notebooks' output")
    run.set_defaults(func=_cmd_run)

    params = sub.add_parser(
        "params", help="list the run parameters: type, default, allowed values, presets"
    )
    params.add_argument("--preset", choices=list(PRESETS), help="also show what this preset sets")
    params.add_argument("--markdown", action="store_true", help="a Markdown table")
    params.set_defaults(func=_cmd_params)

    data = sub.add_parser(
        "data", help="import a data set (crack500, cfd) or check a folder data set (check)"
    )
    data_sets = data.add_subparsers(dest="name", required=True, metavar="{crack500,cfd,check}")
    from crackkit.data import cfd, crack500

    crack500.add_cli_arguments(
        data_sets.add_parser("crack500", help="CRACK500 (Yang et al. 2019): archive or download")
    ).set_defaults(func=_cmd_data)
    cfd.add_cli_arguments(
        data_sets.add_parser("cfd", help="CrackForest (Shi et al. 2016): folder, archive or URL")
    ).set_defaults(func=_cmd_data)
    check = data_sets.add_parser(
        "check",
        help="check a folder data set before a run: counts, masks, sizes, unreadable files "
        "(exit 1 when a run would stop on it)",
    )
    check.add_argument("path", metavar="PATH", help="a folder with train/, val/, test/")
    check.add_argument(
        "--negatives-without-mask",
        action="store_true",
        help="images without a mask file count as crack-free (the run parameter)",
    )
    _add_quiet(check, "progress bars and per-split counts")
    check.set_defaults(func=_cmd_data_check)

    pred = sub.add_parser("predict", help="apply a trained run to a folder of images")
    pred.add_argument("images_dir", help="folder of images (any size; png, jpg, bmp, tif)")
    pred.add_argument(
        "--run", dest="run", metavar="DIR", help="run folder; its chosen checkpoint is used"
    )
    pred.add_argument(
        "--out", help="output folder, new or empty (default: RUN/predictions/<folder>-<time>)"
    )
    pred.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an --out that holds files (they are moved into superseded-<time>/)",
    )
    pred.add_argument("--checkpoint", help="checkpoint file to use (enough without --run)")
    _add_device(pred)
    pred.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    pred.add_argument(
        "--original-weights",
        metavar="FILE",
        help="a state dict saved by the authors' code (fed BGR/255 as the original fed)",
    )
    pred.add_argument(
        "--architecture",
        choices=list(ARCHITECTURES),
        help="network of --original-weights: segdecnet (2021), segdecnet-up (seed fork), "
        "segdecnet++ (2023)",
    )
    pred.add_argument(
        "--input-size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        default=(360, 640),
        help="input size --original-weights were trained at (default 360 640)",
    )
    pred.add_argument(
        "--onnx",
        metavar="MODEL",
        help="an ONNX file of 'crackkit export', run by onnxruntime instead of PyTorch",
    )
    tiling = pred.add_mutually_exclusive_group()
    tiling.add_argument(
        "--tile",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="images larger than this run tile by tile (multiples of 8, a valid network input; "
        "default: tiles of the run's input size for images of more than 4 tiles' area; "
        "0 0: no tiling)",
    )
    tiling.add_argument(
        "--no-tile", action="store_true", help="run every image whole (memory grows with its area)"
    )
    pred.add_argument(
        "--overlap",
        type=int,
        metavar="PX",
        help="pixels shared by consecutive tiles (default: a quarter of each tile side)",
    )
    pred.add_argument(
        "--tile-mode",
        choices=["global", "plain", "context"],
        help="global (the default): tiles blended before the network's last normalisation, "
        "which then runs over the whole image; plain: tiles' probabilities blended; context: "
        "as plain, each tile dropping --context px at each side",
    )
    pred.add_argument(
        "--context",
        type=int,
        metavar="PX",
        help="margin a context tile drops at each side (default: a quarter of the overlap)",
    )
    pred.add_argument(
        "--tta",
        action="store_true",
        help="average the image and its left-right and up-down mirrors (3x the time)",
    )
    pred.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="F",
        help="resize photos by F before prediction (bilinear; maps come back at the photo's "
        "size), for photos whose pixel scale differs from the training data's",
    )
    pred.add_argument(
        "--geometry",
        action="store_true",
        help="write geometry.csv (length and width of every crack) and <stem>_width.png",
    )
    _add_quiet(pred)
    pred.add_argument(
        "--mm-per-px",
        type=float,
        metavar="X",
        help="the photos' pixel size in millimetres: geometry in mm as well (implies --geometry)",
    )
    pred.add_argument(
        "--precision",
        choices=["auto", "float32", "bf16"],
        default="auto",
        help="auto (default): float32 on the CPU, as --onnx computes, so --run and --onnx agree "
        "within one 8-bit level; on a GPU the run's amp (bf16 autocast where supported). "
        "float32: everywhere; bf16: autocast everywhere (PyTorch only)",
    )
    pred.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_IMAGE_PIXELS,
        metavar="N",
        help="refuse an image of more than N pixels, from its header (default: %(default)s, "
        "a 61-megapixel photo fits; 0: Pillow's own ceiling only)",
    )
    pred.set_defaults(func=_cmd_predict)

    export = sub.add_parser("export", help="export a trained run to one ONNX file")
    _add_run(export)
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.add_argument("--checkpoint", help="checkpoint file (default: the run's chosen one)")
    export.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's, 20)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing file")
    _add_quiet(export, "messages (export prints only the file's path)")
    export.set_defaults(func=_cmd_export)

    sweep = sub.add_parser(
        "sweep", help="run every combination of parameter values and seeds, then compare them"
    )
    sweep.add_argument("--preset", help=f"named parameter set: {', '.join(PRESETS)}")
    sweep.add_argument("--dataset", help="'synthetic', a prepared data set name, or a folder path")
    sweep.add_argument(
        "--sweep-dir",
        dest="sweep_dir",
        metavar="DIR",
        help="the sweep's folder; each run gets a subfolder",
    )
    sweep.add_argument(
        "--run-dir", dest="sweep_dir", action=DeprecatedOption, new="--sweep-dir DIR"
    )
    sweep.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUES"),
        help="comma-separated values of a run parameter (repeatable), e.g. -p lr 0.001,0.0001; "
        "one value fixes it for all runs",
    )
    sweep.add_argument(
        "--seeds",
        help="N: seeds 0..N-1; or a comma-separated list: 0,5,7 (7, is the single seed 7); "
        "default: the configuration's seed",
    )
    sweep.add_argument(
        "--sample",
        nargs=2,
        action="append",
        metavar=("NAME", "DIST"),
        help="draw a run parameter at random (repeatable): uniform:LOW:HIGH, "
        "loguniform:LOW:HIGH or randint:LOW:HIGH, e.g. --sample lr loguniform:1e-5:1e-2",
    )
    sweep.add_argument(
        "--num-samples", type=int, default=1, help="points drawn from --sample (default 1)"
    )
    sweep.add_argument(
        "--search-seed", type=int, default=0, help="seed of the --sample draws (default 0)"
    )
    sweep.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: child processes on this machine (default); ray: Ray Tune trials on a Ray "
        "cluster (pip install 'crackkit[ray]')",
    )
    sweep.add_argument(
        "--address",
        help="with --engine ray: the Ray cluster to join (HOST:PORT of its head, or auto); "
        "default: a local Ray instance for this sweep",
    )
    sweep.add_argument(
        "--jobs",
        type=int,
        help="runs at a time (local default 1; ray default: as many as the resources allow)",
    )
    sweep.add_argument(
        "--cpus-per-run",
        type=int,
        help="CPU threads of each run (and the CPUs Ray reserves for it); default: this "
        "machine's cores / --jobs, or 1 on Ray without --jobs",
    )
    sweep.add_argument(
        "--gpus-per-run",
        type=int,
        help="GPUs of each run, given round-robin (local) or by Ray; default 1 where there are "
        "GPUs, else 0",
    )
    sweep.add_argument(
        "--early-stop",
        choices=["asha"],
        help="with --engine ray: stop runs whose validation 2px F1 falls behind (Ray Tune's ASHA)",
    )
    sweep.add_argument(
        "--grace-period", type=int, help="ASHA: epochs before a run may be stopped (default 1)"
    )
    sweep.add_argument(
        "--reduction-factor",
        type=int,
        help="ASHA: 1 in this many runs goes on at each comparison (default 4)",
    )
    sweep.add_argument("--dry-run", action="store_true", help="print the plan and run nothing")
    _add_quiet(sweep, "per-run progress lines (the plan and the result are printed)")
    sweep.set_defaults(func=_cmd_sweep)

    compare = sub.add_parser("compare", help="compare finished runs side by side (COMPARE.md)")
    compare.add_argument(
        "--run",
        action="append",
        metavar="DIR",
        help="a run folder, or a folder holding runs (a sweep's); repeatable",
    )
    compare.add_argument(
        "legacy_run_dirs", nargs="*", metavar="RUN_DIR", help=argparse.SUPPRESS, default=[]
    )
    compare.add_argument(
        "--out", help="Markdown file to write (default: COMPARE.md beside the runs)"
    )
    compare.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    _add_quiet(compare, "messages (compare prints only the file's path)")
    compare.set_defaults(func=_cmd_compare)

    ev = sub.add_parser(
        "evaluate",
        help="evaluate a trained run on another data set (RUN/cross/<dataset>-<split>/EVAL.md)",
    )
    _add_run(ev)
    ev.add_argument(
        "--dataset", required=True, help="a prepared data set name (cfd, crack500) or a folder"
    )
    ev.add_argument("--split", default="test", help="split to evaluate (default: test)")
    ev.add_argument("--checkpoint", help="checkpoint file (default: the run's chosen one)")
    ev.add_argument("--n-gallery", type=int, default=6, help="gallery images (0: none)")
    ev.add_argument(
        "--overwrite", action="store_true", help="redo an evaluation already in the folder"
    )
    _add_device(ev)
    _add_quiet(ev)
    ev.set_defaults(func=_cmd_evaluate)

    ckpt = sub.add_parser("checkpoint", help="convert a checkpoint you trust")
    ckpt_cmds = ckpt.add_subparsers(dest="action", required=True, metavar="{convert}")
    convert = ckpt_cmds.add_parser(
        "convert",
        help="rewrite a trusted checkpoint that needs more than tensors to load (e.g. a last.pt "
        "of an earlier crackkit) so that crackkit loads it",
        description="crackkit loads checkpoints with torch.load(weights_only=True): tensors and "
        "plain values only, never code. A file that needs more is refused. If you trust where "
        "it came from, this unpickles it in full (which runs any code it holds), turns NumPy "
        "values into tensors and numbers, and writes it back; the original is kept as "
        "FILE.orig.",
    )
    convert.add_argument("file", metavar="FILE", help="the checkpoint (.pt)")
    convert.add_argument(
        "--trust",
        action="store_true",
        help="required: you trust the file, which is unpickled in full",
    )
    convert.add_argument("--out", help="write the converted checkpoint here (default: FILE)")
    convert.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors (the path is printed)"
    )
    convert.set_defaults(func=_cmd_checkpoint)
    _debug_everywhere(parser)
    return parser


def _debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept ``--debug`` after any (sub)command too, as well as before it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if "--debug" not in child._option_string_actions:
                    child.add_argument(
                        "--debug",
                        action="store_true",
                        default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS,
                    )
                _debug_everywhere(child)


def exit_status(exc: BaseException) -> int:
    """The exit status of a command that raised ``exc`` (:data:`EXIT_STATUS`)."""
    from crackkit.checkpoint import CheckpointError
    from crackkit.data.download import DownloadError
    from crackkit.data.folder import DatasetError
    from crackkit.export import ExportError
    from crackkit.predict import OnnxDependencyError

    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, PipelineError):
        return exc.exit_status
    refused = (
        ConfigError,
        RunDirError,
        DatasetError,
        CheckpointError,
        DownloadError,
        ExportError,
        OnnxDependencyError,
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        ValueError,
    )
    return 2 if isinstance(exc, refused) else 1


def _one_line(exc: BaseException) -> str:
    from crackkit.checkpoint import CheckpointError
    from crackkit.data.download import DownloadError
    from crackkit.data.folder import DatasetError

    known = (ConfigError, RunDirError, PipelineError, DatasetError, CheckpointError, DownloadError)
    if isinstance(exc, OSError) and not isinstance(exc, known) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        text = str(exc) or type(exc).__name__
    text = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    if exit_status(exc) == 1 and not isinstance(exc, OSError | PipelineError):
        text = f"internal error, {type(exc).__name__}: {text} (--debug shows the traceback)"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crackkit ARGV``; returns the exit status (:data:`EXIT_STATUS`).

    Every error ends in one line on stderr, ``crackkit: error: ...`` naming the file or value;
    ``--debug`` prints the traceback before it.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    console.configure()
    try:
        return args.func(args)
    except (Exception, KeyboardInterrupt) as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        if isinstance(exc, KeyboardInterrupt):
            print("crackkit: interrupted", file=sys.stderr)
        else:
            print(f"crackkit: error: {_one_line(exc)}", file=sys.stderr)
        return exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
