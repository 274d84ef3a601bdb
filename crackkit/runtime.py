"""Device, precision and random-state handling for a run.

The speed switches of :class:`~crackkit.config.RunConfig` resolve here (:func:`resolve_switches`):
``auto`` is settled by a short measurement on the machine at hand and cached per machine and
size (:mod:`crackkit.autotune`). The fixed rules below are what ``auto`` means where nothing is
measured (``CRACKKIT_AUTOTUNE=static``, a distributed run, the time budget spent):

* ``device``: ``auto`` takes CUDA when present, else the CPU.
* ``amp``: ``auto`` uses bf16 autocast on CUDA GPUs that support it and on CPUs with native bf16
  instructions (AVX512-BF16 or AMX); ``off`` keeps float32; ``bf16`` forces it.
* ``channels_last``: ``auto`` turns it on for CUDA, and on a CPU for bf16 inference of inputs of
  at least :data:`CPU_CHANNELS_LAST_MIN_PIXELS`.
* ``fft_conv``: ``auto`` is on for a CPU.
* ``eval_batch_size``: ``0`` (``auto``) is :data:`STATIC_EVAL_BATCH`.
"""

from __future__ import annotations

import contextlib
import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from crackkit import autotune, distributed
from crackkit.autotune import Choice, SwitchCache, cpu_has_bf16, pick_fastest
from crackkit.config import ConfigError, RunConfig, check_device
from crackkit.fftconv import FFTConv2d, set_fft_conv
from crackkit.model import build_model

__all__ = [
    "Placement",
    "model_for",
    "resolve_device",
    "resolve_amp",
    "resolve_channels_last",
    "configure_speed",
    "resolve_fft_conv",
    "resolve_switches",
    "Switches",
    "STATIC_EVAL_BATCH",
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
# 0.026). Training, once FeatureNorm's fused training kernels kept the layout (2026-12-03, s per
# batch of 4, three steps each, two A/B runs): 192x320 1.09-1.20 -> 0.90-1.01, 360x640 2.9-3.9 ->
# 2.2-3.0, 96x160 0.32-0.36 -> 0.34-0.42. So the fixed rule takes it on a CPU under bf16 for
# inputs of at least this many pixels, training and inference alike (``auto`` measures).
CPU_CHANNELS_LAST_MIN_PIXELS = 192 * 320


def resolve_channels_last(cfg: RunConfig, device: torch.device, *, inference: bool = False) -> bool:
    """Whether tensors and weights go channels-last, by the fixed rule. ``auto``: on CUDA; on a
    CPU under bf16 autocast with inputs of at least :data:`CPU_CHANNELS_LAST_MIN_PIXELS`, for
    training and inference alike (``inference`` is kept for callers; the rule no longer depends
    on it)."""
    if cfg.channels_last == "auto":
        if device.type == "cuda":
            return True
        return (
            device.type == "cpu"
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
    """Where and how a model runs: its device, autocast dtype (None: float32), channels-last,
    and the evaluation batch size its switches were settled for."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    eval_batch_size: int = 4


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
    switches = resolve_switches(cfg, device, inference=inference)
    amp_dtype, channels_last = switches.amp_dtype, switches.channels_last
    if model is None:
        model = build_model(cfg.architecture, cfg.input_channels, cfg.input_height, cfg.input_width)
    model.gradient_multiplier = 0.0 if cfg.gradient_adjustment else 1.0
    if state_dict is not None:
        model.load_state_dict(state_dict)
    set_fft_conv(model, switches.fft_conv)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if inference:
        model.eval()
    return model, Placement(device, amp_dtype, channels_last, switches.eval_batch_size)


#: The evaluation batch size ``eval_batch_size 0`` (``auto``) means where nothing is measured: on
#: this project's 2-core CPU a 360x640 evaluation ran 1.3x faster in batches of 4 than of 16.
STATIC_EVAL_BATCH = 4


@dataclass(frozen=True)
class Switches:
    """The settled speed switches of one model and size, and how each was settled."""

    amp_dtype: torch.dtype | None
    channels_last: bool
    fft_conv: bool
    eval_batch_size: int
    record: dict[str, Any]


def _dtype_name(dtype: torch.dtype | None) -> str:
    return "bf16" if dtype == torch.bfloat16 else "float32"


def resolve_switches(
    cfg: RunConfig,
    device: torch.device,
    *,
    inference: bool = False,
    cache: SwitchCache | None = None,
) -> Switches:
    """Settle the speed switches of ``cfg`` for ``device``: each ``auto`` by measurement
    (:mod:`crackkit.autotune`, cached per machine and size), each other value as given.

    In the order precision, channels-last, evaluation batch (``inference`` only), FFT
    convolution, each measured under the choices before it. The record (also kept for the run's
    ``environment.json``, :func:`crackkit.autotune.resolutions`) names each choice, its source
    (``measured``, ``cached``, ``static``, ``fixed``) and the seconds measured: per image for
    the whole network, per call for the 15x15 layer alone (``fft_conv``).
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    static_amp = resolve_amp(cfg, device)
    values: dict[str, Any] = {
        "amp": static_amp,
        "channels_last": resolve_channels_last(cfg, device, inference=inference),
        "fft_conv": resolve_fft_conv(cfg, device),
        "eval_batch_size": cfg.eval_batch_size or STATIC_EVAL_BATCH,
    }
    bf16_native = (
        torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
    ) and device.type in ("cuda", "cpu")
    auto = {
        "amp": cfg.amp == "auto" and bf16_native,
        "channels_last": cfg.channels_last == "auto",
        "eval_batch_size": inference and cfg.eval_batch_size == 0,
        "fft_conv": cfg.fft_conv == "auto",
    }
    kind = "inference" if inference else "training"
    size = f"{cfg.input_channels}x{cfg.input_height}x{cfg.input_width}"
    choices: dict[str, Choice] = {}
    measure = any(auto.values()) and autotune.measuring() and not distributed.info().enabled
    spent = 0.0
    if measure:
        t0 = time.perf_counter()
        cache = cache or SwitchCache()
        with cache.lock():
            choices = _measure(cfg, device, inference, auto, values, cache)
        spent = time.perf_counter() - t0
    for name in values:
        if name in choices:
            values[name] = _value(name, choices[name].name)
    record: dict[str, Any] = {
        "kind": kind,
        "architecture": cfg.architecture,
        "size": size,
        "machine": autotune.machine_fingerprint(device),
        "measure_seconds": round(spent, 2),
        "switches": {},
    }
    for name, value in values.items():
        if name == "eval_batch_size" and not inference:
            continue
        shown = _dtype_name(value) if name == "amp" else value
        if name in choices:
            entry = choices[name].to_dict()
            entry["choice"] = shown
        else:
            source = "static" if auto[name] or _is_auto(cfg, name) else "fixed"
            entry = {"choice": shown, "source": source}
        record["switches"][name] = entry
    autotune.record_resolution(kind, record)
    return Switches(
        values["amp"],
        values["channels_last"],
        values["fft_conv"],
        values["eval_batch_size"],
        record,
    )


def _is_auto(cfg: RunConfig, name: str) -> bool:
    value = getattr(cfg, name)
    return value == 0 if name == "eval_batch_size" else value == "auto"


def _value(name: str, choice: str) -> Any:
    if name == "amp":
        return torch.bfloat16 if choice == "bf16" else None
    if name == "eval_batch_size":
        return int(choice)
    return choice == "on"


class _Bench:
    """A randomly initialised copy of the run's network and random inputs, built on first use."""

    def __init__(self, cfg: RunConfig, device: torch.device, inference: bool) -> None:
        self.cfg, self.device, self.inference = cfg, device, inference
        self._models: dict[tuple, nn.Module] = {}
        self._inputs: dict[tuple, torch.Tensor] = {}

    def model(self, channels_last: bool = False, tag: Any = None) -> nn.Module:
        """The network, one copy per memory format and ``tag`` (converted once, not inside a
        timing; each copy keeps its own cached FFT weight spectrum)."""
        key = (channels_last, tag)
        if key not in self._models:
            if self._models:
                model = copy.deepcopy(next(iter(self._models.values())))
            else:
                cfg = self.cfg
                model = build_model(
                    cfg.architecture, cfg.input_channels, cfg.input_height, cfg.input_width
                )
                model = model.to(self.device).train(not self.inference)
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            self._models[key] = model.to(memory_format=fmt)
        return self._models[key]

    @staticmethod
    def _set_fft(model: nn.Module, fft: bool) -> None:
        for module in model.modules():  # only on a change: the cached spectrum stays otherwise
            if isinstance(module, FFTConv2d) and module.fft != fft:
                set_fft_conv(model, fft)
                return

    def _input(self, shape: tuple[int, ...], channels_last: bool, grad: bool) -> torch.Tensor:
        key = (shape, channels_last, grad)
        if key not in self._inputs:
            x = torch.rand(shape, device=self.device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self._inputs[key] = x.requires_grad_(grad)
        return self._inputs[key]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def network(self, amp: torch.dtype | None, cl: bool, fft: bool, batch: int = 1) -> Callable:
        """One forward (inference) or forward + backward (training) of the whole network."""
        cfg = self.cfg

        def call() -> None:
            model = self.model(cl, (amp, fft))
            self._set_fft(model, fft)
            x = self._input(
                (batch, cfg.input_channels, cfg.input_height, cfg.input_width), cl, False
            )
            if self.inference:
                with torch.inference_mode(), autocast(self.device, amp):
                    model(x)
            else:
                with torch.enable_grad(), autocast(self.device, amp):
                    dec, seg = model(x)
                    loss = dec.float().mean() + seg.float().mean()
                loss.backward()
                model.zero_grad(set_to_none=True)
            self._sync()

        return call

    def large_conv(self, amp: torch.dtype | None, cl: bool, fft: bool, batch: int) -> Callable:
        """The 15x15 convolution alone at the run's batch and map size (the only layer that
        ``fft_conv`` changes); forward, and backward when training."""
        held: list[nn.Module] = []

        def prepared() -> nn.Module | None:
            """Built on the first call (a cached choice builds nothing): a copy per candidate,
            since switching one layer back and forth would drop its cached weight spectrum at
            every call and time the FFT path with a transform it does not pay in use."""
            if not held:
                layers = [m for m in self.model().modules() if isinstance(m, FFTConv2d)]
                if not layers:
                    held.append(None)
                    return None
                layer = copy.deepcopy(layers[0])
                layer.fft, layer._cache = fft, None
                if cl:
                    layer = layer.to(memory_format=torch.channels_last)
                held.append(layer)
            return held[0]

        cfg = self.cfg

        def call() -> None:
            layer = prepared()
            if layer is None:
                return
            shape = (batch, layer.in_channels, cfg.input_height // 8, cfg.input_width // 8)
            x = self._input(shape, cl, not self.inference)
            if self.inference:
                with torch.inference_mode(), autocast(self.device, amp):
                    layer(x)
            else:
                with torch.enable_grad(), autocast(self.device, amp):
                    out = layer(x)
                out.float().mean().backward()
                layer.zero_grad(set_to_none=True)
                x.grad = None
            self._sync()

        return call


def _measure(
    cfg: RunConfig,
    device: torch.device,
    inference: bool,
    auto: dict[str, bool],
    values: dict[str, Any],
    cache: SwitchCache,
) -> dict[str, Choice]:
    """Measure the ``auto`` switches in turn; ``values`` holds the fixed rules to start from."""
    # Inference: precision and layout timed at the evaluation batch (the given one, else the
    # static 4), as bf16 can lose at batch 1 and win at 4; training: at batch 1 (time bound).
    probe = (cfg.eval_batch_size or STATIC_EVAL_BATCH) if inference else 1
    base = "|".join(
        (
            autotune.machine_key(device),
            f"inference-b{probe}" if inference else "training",
            cfg.architecture,
            f"{cfg.input_channels}x{cfg.input_height}x{cfg.input_width}",
        )
    )
    deadline = time.monotonic() + autotune.BUDGET_SECONDS
    choices: dict[str, Choice] = {}
    bench = _Bench(cfg, device, inference)

    def decide(name: str, key: str, candidates: dict[str, Callable], per_call=None) -> None:
        key = f"{base}|{key}"
        hit = cache.get(key)
        if hit is None and time.monotonic() > deadline:
            return  # the budget is spent: the fixed rule stays
        try:
            choices[name] = pick_fastest(key, candidates, cache=cache, per_call=per_call)
        except autotune.MeasurementError as exc:
            autotune._log.warning(f"speed switch {name}: {exc}; the fixed rule stays")
            return
        values[name] = _value(name, choices[name].name)

    def amp_name() -> str:
        return _dtype_name(values["amp"])

    # The random weights and inputs draw from the global generators, put back afterwards.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        amp, cl, fft = values["amp"], values["channels_last"], values["fft_conv"]
        if auto["amp"]:
            decide(
                "amp",
                f"fft={fft}|amp",
                {
                    "bf16": bench.network(torch.bfloat16, False, fft, probe),
                    "float32": bench.network(None, False, fft, probe),
                },
                per_call={"bf16": float(probe), "float32": float(probe)},
            )
        amp = values["amp"]
        if auto["channels_last"]:
            decide(
                "channels_last",
                f"{amp_name()}|fft={fft}|channels_last",
                {
                    "on": bench.network(amp, True, fft, probe),
                    "off": bench.network(amp, False, fft, probe),
                },
                per_call={"on": float(probe), "off": float(probe)},
            )
        cl = values["channels_last"]
        if auto["eval_batch_size"]:
            _decide_batch(
                decide, bench, amp, cl, fft, f"{amp_name()}|cl={cl}|fft={fft}|eval_batch_size"
            )
        batch = values["eval_batch_size"] if inference else cfg.batch_size
        if auto["fft_conv"]:
            decide(
                "fft_conv",
                f"{amp_name()}|cl={cl}|b={batch}|fft_conv",
                {
                    "on": bench.large_conv(amp, cl, True, batch),
                    "off": bench.large_conv(amp, cl, False, batch),
                },
            )
    return choices


def _decide_batch(decide: Callable, bench: _Bench, amp, cl, fft, key: str) -> None:
    """Batches of :data:`crackkit.autotune.BATCH_CANDIDATES` images, seconds per image."""
    tried: dict[str, Callable] = {}
    for size in autotune.BATCH_CANDIDATES:
        tried[str(size)] = bench.network(amp, cl, fft, size)
    decide("eval_batch_size", key, tried, per_call={name: float(name) for name in tried})
