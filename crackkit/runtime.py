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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crackkit.config import ConfigError, RunConfig, check_device
from crackkit.fftconv import set_fft_conv
from crackkit.model import build_model

__all__ = [
    "Placement",
    "model_for",
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


def resolve_device(device: RunConfig | str | torch.device | None = "auto") -> torch.device:
    """The one device resolver: a run's ``device`` parameter, a name or a ``torch.device``.

    ``auto`` (or None) takes CUDA when present, else the CPU; ``cuda:N`` the N-th GPU; ``mps``
    Apple's GPUs (only when asked).

    Raises:
        ConfigError: the device asked for is not available (the message says what is).
    """
    if isinstance(device, RunConfig):
        device = device.device
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, str):
        check_device(device)
    device = torch.device(device)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"device {str(device)!r} was asked for but no CUDA device is available; use "
                "'auto' or 'cpu'"
            )
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device {str(device)!r} was asked for but there are {count} CUDA device(s): "
                f"cuda:0 to cuda:{count - 1}"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was asked for but MPS is not available; use 'auto'")
    return device


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
    """The random states of Python, NumPy and torch (and CUDA), in types a checkpoint loaded with
    ``torch.load(weights_only=True)`` accepts: NumPy's key array is kept as an int64 tensor."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states of :func:`rng_state`."""
    random.setstate(_python_state(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((kind, keys.astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state(state: Any) -> tuple:
    """Python's random state as ``random.setstate`` takes it (lists read back as tuples)."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


@dataclass(frozen=True)
class Placement:
    """Where and how a model runs: its device, autocast dtype (None: float32), channels-last."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool


def model_for(
    cfg: RunConfig,
    device: torch.device | str | None = None,
    *,
    inference: bool = False,
    state_dict: dict[str, Any] | None = None,
    model: nn.Module | None = None,
) -> tuple[nn.Module, Placement]:
    """The device-ready model of a run, with every construction-time switch applied.

    In this order: :func:`crackkit.model.build_model` from the config (or the ``model`` given,
    e.g. the authors' network), the gradient-flow adjustment (``gradient_adjustment``), the
    weights of ``state_dict``, the FFT convolution switch (``fft_conv``), the device, and
    channels-last weights where :func:`configure_speed` turns it on (``inference`` for
    evaluation and prediction, which also puts the model in eval mode).

    Returns:
        ``(model, placement)``: the placement says how to feed it (:class:`Placement`).

    Raises:
        ConfigError: ``cuda`` asked without a CUDA device.
        RuntimeError: ``state_dict`` does not fit the network (``load_state_dict``'s message).
    """
    device = resolve_device(cfg if device is None else device)
    amp_dtype, channels_last = configure_speed(cfg, device, inference=inference)
    if model is None:
        model = build_model(cfg.architecture, cfg.input_channels, cfg.input_height, cfg.input_width)
    model.gradient_multiplier = 0.0 if cfg.gradient_adjustment else 1.0
    if state_dict is not None:
        model.load_state_dict(state_dict)
    set_fft_conv(model, resolve_fft_conv(cfg, device))
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if inference:
        model.eval()
    return model, Placement(device, amp_dtype, channels_last)
