"""Device, precision and random-state handling for a run.

The speed switches of :class:`~crackkit.config.RunConfig` resolve here:

* ``device``: ``auto`` takes CUDA when present, else the CPU.
* ``amp``: ``auto`` uses bf16 autocast on CUDA GPUs that support it and on CPUs with native bf16
  instructions (AVX512-BF16 or AMX); ``off`` keeps float32; ``bf16`` forces it.
* ``channels_last``: ``auto`` turns it on for CUDA only (on the CPUs measured here it was slower).
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crackkit.config import RunConfig

__all__ = [
    "resolve_device",
    "resolve_amp",
    "resolve_channels_last",
    "configure_speed",
    "resolve_fft_conv",
    "autocast",
    "seed_everything",
    "rng_state",
    "set_rng_state",
    "cpu_has_bf16",
]


def resolve_device(cfg: RunConfig) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "parameter 'device' is 'cuda' but no CUDA device is available; use 'auto'"
        )
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_amp(cfg: RunConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for float32."""
    if cfg.amp == "off":
        return None
    if cfg.amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_bf16() else None


# On this project's 2-core CPU under bf16 autocast, channels-last made inference faster from about
# 192x320 inputs up (360x640: 0.45 -> 0.33 s per image; 192x320: 0.101 -> 0.082; 96x160: 0.021 ->
# 0.026) and training slower at 96x160 and 192x320 (0.42 -> 0.60 and 1.42 -> 1.84 s per batch of
# 4), so ``auto`` takes it on a CPU for inference on inputs of at least this many pixels only.
CPU_CHANNELS_LAST_MIN_PIXELS = 192 * 320


def resolve_channels_last(cfg: RunConfig, device: torch.device, *, inference: bool = False) -> bool:
    """Whether tensors and weights go channels-last. ``auto``: on CUDA; on a CPU for inference
    (``inference=True``: evaluation, prediction) under bf16 autocast with inputs of at least
    :data:`CPU_CHANNELS_LAST_MIN_PIXELS`. Training on a CPU stays contiguous."""
    if cfg.channels_last == "auto":
        if device.type == "cuda":
            return True
        return (
            inference
            and device.type == "cpu"
            and resolve_amp(cfg, device) == torch.bfloat16
            and cfg.input_height * cfg.input_width >= CPU_CHANNELS_LAST_MIN_PIXELS
        )
    return cfg.channels_last == "on"


def resolve_fft_conv(cfg: RunConfig, device: torch.device | str) -> bool:
    """Whether the 15x15 convolution runs by tiled FFT (:mod:`crackkit.fftconv`); ``auto``: on a
    CPU (on CUDA, cuDNN's direct kernels on tensor cores are the faster way)."""
    if cfg.fft_conv == "auto":
        return torch.device(device).type == "cpu"
    return cfg.fft_conv == "on"


def configure_speed(
    cfg: RunConfig, device: torch.device, *, inference: bool = False
) -> tuple[torch.dtype | None, bool]:
    """Resolve the speed switches for ``device``: ``(amp dtype or None, channels_last)``;
    ``inference`` for evaluation and prediction (see :func:`resolve_channels_last`).

    Also turns on ``cudnn.benchmark`` on CUDA, so training, evaluation and prediction run alike.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return resolve_amp(cfg, device), resolve_channels_last(cfg, device, inference=inference)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def seed_everything(seed: int, device: torch.device | None = None) -> None:
    """Seed Python, NumPy and torch; make CPU (and cuDNN where used) deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device is not None and device.type == "cuda":
        torch.cuda.manual_seed_all(seed)


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
