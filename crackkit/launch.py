"""The torchrun entry: ``torchrun --nproc_per_node N -m crackkit.launch --run-dir DIR ...``.

Takes the run options of ``crackkit run`` (``--preset``, ``--dataset``, ``-p NAME VALUE``,
``--resume``; :func:`crackkit.run.add_run_arguments`) or, with none of them, the configuration
recorded in ``DIR``. Every rank trains its share of each epoch; rank 0 resolves the run, validates,
writes the run folder and, unless ``--train-only``, evaluates the test split and renders the
report. ``crackkit run`` with ``-p nproc_per_node N`` starts this itself (``--train-only``: its
notebooks evaluate and report).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from crackkit import distributed
from crackkit.pipeline import evaluate_run, prepare, report_run, supervise, warm_start
from crackkit.run import Run, add_run_arguments, config_from_arguments
from crackkit.runtime import resolve_device
from crackkit.tensorboard import RunBoard
from crackkit.train import train

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crackkit.launch", description=__doc__)
    add_run_arguments(parser, run_dir_required=True, torchrun=True)
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument(
        "--train-only", action="store_true", help="stop after training (no evaluation, report)"
    )
    args = parser.parse_args(argv)
    cfg = config_from_arguments(args, recorded=args.run_dir)
    dist_info = distributed.init(resolve_device(cfg).type)
    try:
        if dist_info.is_main:
            run = Run.create(cfg, args.run_dir, resume=args.resume)
            run.record_environment(resumed=args.resume)
            prepared = prepare(cfg, run, progress=False)
            run.log.info(f"Supervision: {supervise(cfg, run, prepared).summary()}")
            run.log.info(f"Distributed training on {dist_info.world_size} process(es)")
            init = warm_start(cfg, run)
            log = run.log.info
        distributed.barrier()
        if not dist_info.is_main:
            run = Run.open(args.run_dir)
            prepared = prepare(cfg, None, progress=False)
            supervise(cfg, run, prepared, record=False)
            init = warm_start(cfg, run, record=False)
            log = _quiet
        board = RunBoard(run) if dist_info.is_main else None
        try:
            train(
                cfg,
                prepared.splits,
                run.checkpoints,
                history_path=run.file("history"),
                resume=args.resume,
                progress=False,
                log=log,
                on_epoch=board.epoch if board is not None else None,
                init=init,
            )
        finally:
            if board is not None:
                board.close()
        distributed.barrier()
        if dist_info.is_main and not args.train_only:
            evaluate_run(run, progress=False)
            print(report_run(run))
    finally:
        distributed.cleanup()
    return 0


def _quiet(_: str) -> None:
    return None


if __name__ == "__main__":
    raise SystemExit(main())
