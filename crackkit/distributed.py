"""Multi-process training with torchrun: the process group, ranks and who writes.

``torchrun --nproc_per_node N -m crackkit.launch ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment. :func:`init` joins them into one process
group (NCCL on GPUs, gloo on CPUs); only rank 0 writes files. Outside torchrun everything here is
a no-op for a single process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "info", "init", "barrier", "cleanup", "launch"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def info() -> DistInfo:
    """Rank and world size of this process (from an initialised group, else torchrun's env)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
        )
    return DistInfo(
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def init(device_type: str) -> DistInfo:
    """Join the process group torchrun set up; NCCL for CUDA, gloo otherwise."""
    current = info()
    if not current.enabled or dist.is_initialized():
        return current
    backend = "nccl" if device_type == "cuda" and dist.is_nccl_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(current.local_rank)
    dist.init_process_group(backend=backend)
    return info()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, run_dir: Path, *, resume: bool = False) -> None:
    """Run ``crackkit.launch`` on ``run_dir`` in ``nproc`` processes with torchrun; wait for it.

    Raises:
        RuntimeError: the distributed training failed (its output names the cause).
    """
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "crackkit.launch",
        "--run-dir",  # not --run: torchrun would take it for its own --run-path
        str(run_dir),
        "--train-only",
    ]
    if resume:
        cmd.append("--resume")
    env = dict(os.environ)
    if torch.cuda.is_available() is False:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    done = subprocess.run(cmd, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"distributed training ({nproc} processes) failed with exit code {done.returncode}; "
            f"see {Path(run_dir) / 'run.log'} and the output above"
        )
