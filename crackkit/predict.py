"""Apply a trained SegDecNet run to new images of any size: crack probabilities, masks, scores.

Usage from Python or a notebook, one image at a time, nothing written::

    from crackkit.predict import Predictor

    predictor = Predictor.from_run("runs/20250101-120000-crack500")  # or .from_checkpoint(path)
    prob, score = predictor.predict_image(image)  # image: (H, W, C) or (H, W) uint8
    mask = predictor.mask(prob)                   # (H, W) bool, prob >= predictor.threshold_seg
    has_crack = predictor.decide(score)           # score >= predictor.threshold_dec

A folder of photos and the files written for it (maps, masks, overlays, ``predictions.csv``,
geometry, ``predict.json``) are :mod:`crackkit.apply`'s: :func:`crackkit.apply.predict_folder`
and ``crackkit predict``; its docstring describes how files are read, what is written and the
errors.

ONNX. :meth:`Predictor.from_onnx` (``predict_folder(..., onnx=PATH)``, ``--onnx``) runs a graph
written by :func:`crackkit.export.export_onnx` with onnxruntime (``pip install 'crackkit[onnx]'``)
instead of PyTorch: its metadata carries the run's configuration and thresholds, and the padding,
batching, tiling and cropping below are the same, as are the reading and outputs of
:mod:`crackkit.apply` (``predict.json`` says ``"weights_kind": "onnx"``). The graph computes in
float32 with the direct convolution.

What is loaded. :meth:`Predictor.from_run` takes the run's chosen checkpoint (``best.pt`` when the
run uses the best model and has one, else ``last.pt``); :meth:`Predictor.from_checkpoint` takes any
checkpoint file. A checkpoint carries the configuration it was trained with (architecture, input
channels, mixed precision), so nothing else is needed.

Thresholds. The segmentation threshold is the best 2-pixel-tolerance F1 threshold and the decision
threshold the best-F1 decision threshold, both found on the validation split at the checkpoint's
epoch. A checkpoint without validation results falls back to 0.5 for the missing threshold and
emits a :class:`PredictWarning`. A pixel is crack when ``prob >= threshold_seg`` (compared in
float64, as :mod:`crackkit.metrics` does); an image is a crack image when
``score >= threshold_dec``.

How an image is processed, in this order.

* Channels. :meth:`Predictor.predict_image` takes the array it is given (reading files, with their
  EXIF orientation, is :func:`crackkit.apply.predict_folder`'s). Grayscale, RGB and RGBA images
  are accepted; alpha is dropped (not composited), grayscale is repeated to RGB for 3-channel
  models and RGB is converted to luminance (Pillow's ``L``) for 1-channel models.
* Scale (``scale=F``, ``--scale F``, default 1). The model learnt cracks at the scale of its
  training images; a photo whose pixels are ``F`` times too fine is resized by ``F`` (bilinear,
  Pillow) before prediction, and its probability map is resized back to the photo's size
  (bilinear), so the outputs keep the photo's own size. The image score is that of the resized
  photo. At 1 nothing is resized.
* Whole or tiled. An image no larger than the tile (both sides) runs whole, exactly as before tiling
  existed. So does, under the default ``tile="auto"``, an image of at most
  :data:`~crackkit.tiling.AUTO_WHOLE_TILES` (4) tiles' area (about twice the run's input size per
  side): near the training size the whole image needs no blending and little memory. Running whole,
  each side is padded to the smallest input the networks take (multiples of 8, see
  :func:`crackkit.specs.smallest_input`) by **reflection** (the padding split between both ends),
  because the network normalises every feature map over the whole input and a zero border would
  shift those statistics and add artificial edges; the map is cropped back. For ``segdecnet``, whose
  map has 1/8 resolution, it is first upsampled x8 by nearest neighbour (as the published
  ``SegDecNetOriginalJIM`` returns it). Images of equal padded size run together, ``batch_size`` at
  a time. A larger image is predicted **tile by tile** (:mod:`crackkit.tiling`), so memory is
  bounded by the tile and ``batch_size``, whatever the photo's size; an explicit ``tile=(H, W)``
  (``--tile H W``) tiles every image larger than it. ``tile=None`` (``--no-tile``, ``--tile 0 0``)
  runs every image whole: memory then grows with the image's area.
* Test-time augmentation (``tta=True``, ``--tta``): the image, its left-right mirror and its
  up-down mirror are each predicted (whole or tiled) and the maps, flipped back, are averaged;
  the score is the mean of the three scores.

Precision (``precision=``, ``--precision``). ``"auto"`` (the default) computes in float32 on the
CPU, as the ONNX graph does, so that ``--run`` and ``--onnx`` give the same maps (within one
8-bit level); on a GPU it follows the run's ``amp`` (bf16 autocast where the GPU has it).
``"float32"`` is float32 everywhere, ``"bf16"`` bf16 autocast everywhere (PyTorch only; faster
on CPUs with AVX512-BF16 or AMX, and up to a few 8-bit levels away from float32). Evaluation
(``crackkit evaluate``, the pipeline) keeps the run's ``amp``. ``predict.json`` records the
precision used.

All of it runs under ``torch.inference_mode``, with channels-last where the run's settings turn
it on. On the CPU, every new input size costs a one-off setup of the convolution kernels; tiles
all have one size.

Tiling, the tile modes and the blending window are :mod:`crackkit.tiling`'s (its docstring
describes them); :class:`Predictor` chooses per image, after ``scale``, whether it runs whole or
by the windows of :meth:`Predictor.plan`. :meth:`Predictor.options` gives the tile, overlap, mode
and margin (which ``predict.json`` of :mod:`crackkit.apply` records).
"""

from __future__ import annotations

import importlib
import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from crackkit.checkpoint import CheckpointError, load_model, validation_thresholds
from crackkit.config import ConfigError, RunConfig, make_config
from crackkit.inference import forward
from crackkit.model import OriginalWeightsError, load_original
from crackkit.run import Run
from crackkit.runtime import Placement, model_for, resolve_device
from crackkit.specs import smallest_input
from crackkit.tiling import (
    AUTO_WHOLE_TILES,
    DEFAULT_TILE_MODE,
    TTA_VIEWS,
    WINDOW_FLOOR,
    TilePlan,
    final_norm,
    flip_view,
    predict_tiled,
    resize_image,
    resize_prob,
    resolve_options,
    scaled_size,
    tile_plan,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "ONNX_EXTRA",
    "ONNX_INPUT",
    "ONNX_METADATA_KEYS",
    "ONNX_OUTPUTS",
    "OnnxDependencyError",
    "PRECISIONS",
    "PredictWarning",
    "Predictor",
    "import_onnx",
    "padded_shape",
]

DEFAULT_THRESHOLD = 0.5


class PredictWarning(UserWarning):
    """Prediction goes on, but something deserves a look (a default threshold, skipped files)."""


#: Precisions of prediction: ``auto`` (float32 on the CPU, the run's ``amp`` on a GPU),
#: ``float32``, ``bf16`` (autocast).
PRECISIONS = ("auto", "float32", "bf16")

#: How to install what ONNX export and prediction need (the ``onnx`` extra).
ONNX_EXTRA = "pip install 'crackkit[onnx]'"
#: The names of the exported graph's input and outputs (:mod:`crackkit.export`).
ONNX_INPUT = "image"
ONNX_OUTPUTS = ("score", "prob")
#: The metadata every graph of :func:`crackkit.export.export_onnx` carries.
ONNX_METADATA_KEYS = (
    "crackkit_export_format",
    "crackkit_version",
    "crackkit_config",
    "architecture",
    "checkpoint_epoch",
    "threshold_seg",
    "threshold_dec",
    "thresholds_validated",
    "input",
)


class OnnxDependencyError(ImportError):
    """onnx, onnxscript or onnxruntime is not installed; the message says how to install them."""


def import_onnx(name: str) -> Any:
    """Import ``name`` (``onnx``, ``onnxscript``, ``onnxruntime``) or say how to install it.

    Raises:
        OnnxDependencyError: the module is missing (the message names :data:`ONNX_EXTRA`).
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise OnnxDependencyError(
            f"ONNX export and prediction need {name}, which cannot be imported ({exc}); "
            f"install the onnx extra: {ONNX_EXTRA}",
            name=name,
        ) from None


def _onnx_providers(ort: Any, device: str | torch.device | None) -> list[str]:
    """onnxruntime's execution providers for ``device`` (auto: CUDA when onnxruntime has it)."""
    kind = "auto" if device is None else str(device).split(":")[0]
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if kind == "cuda" and not has_cuda:
        raise ConfigError(
            "parameter 'device' is 'cuda' but this onnxruntime has no CUDA provider "
            "(install onnxruntime-gpu, or use 'auto' or 'cpu')"
        )
    if kind in ("auto", "cuda") and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _onnx_outputs(session: Any, batch: torch.Tensor) -> tuple[list[float], np.ndarray]:
    """An exported graph on uint8 (N, C, H, W): (scores, (N, H, W) float32 probabilities).

    The input is scaled in float32 as :func:`crackkit.inference.to_input` scales it."""
    x = batch.numpy().astype(np.float32) / np.float32(255.0)
    scores, probs = session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: x})
    return [float(s) for s in scores], np.asarray(probs[:, 0], dtype=np.float32)


def _amp_for(precision: str, device: str | torch.device | None) -> str | None:
    """The ``amp`` a model predicts with at ``precision`` (:data:`PRECISIONS`); None keeps the
    run's own."""
    if precision not in PRECISIONS:
        allowed = ", ".join(repr(p) for p in PRECISIONS)
        raise ConfigError(f"precision {precision!r} is unknown; allowed values: {allowed}")
    if precision == "float32":
        return "off"
    if precision == "bf16":
        return "bf16"
    return None if resolve_device(device).type == "cuda" else "off"


def _metadata_threshold(meta: dict[str, str], key: str) -> float:
    """A threshold of an ONNX model's metadata: a finite number in [0, 1]."""
    value = float(meta[key])
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{key} is {meta[key]!r}; expected a finite number in [0, 1]")
    return value


def _check_onnx_graph(session: Any, channels: int) -> None:
    """The graph takes one (N, ``channels``, H, W) input named :data:`ONNX_INPUT` and gives
    :data:`ONNX_OUTPUTS`, as :func:`crackkit.export.export_onnx` writes it."""
    inputs = session.get_inputs()
    if [i.name for i in inputs] != [ONNX_INPUT]:
        raise ValueError(f"graph inputs {[i.name for i in inputs]}; expected [{ONNX_INPUT!r}]")
    shape = list(inputs[0].shape)
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != channels):
        raise ValueError(
            f"graph input {ONNX_INPUT!r} has shape {shape}, but its configuration says "
            f"input_channels={channels}; expected (N, {channels}, H, W)"
        )
    outputs = {o.name for o in session.get_outputs()}
    if not set(ONNX_OUTPUTS) <= outputs:
        raise ValueError(f"graph outputs {sorted(outputs)}; expected {list(ONNX_OUTPUTS)}")


def padded_shape(height: int, width: int) -> tuple[int, int]:
    """The smallest input the networks take that holds a ``height x width`` image."""
    return smallest_input(height, width)


def _pads(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) padding to :func:`padded_shape`, split between both ends."""
    ph, pw = padded_shape(height, width)
    dh, dw = ph - height, pw - width
    return (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H, W), (H, W, 1|2|3|4) -> uint8 (H, W, channels); alpha is dropped."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4) or 0 in arr.shape:
        raise ValueError(
            f"image must have shape (H, W) or (H, W, C) with C in 1..4, got {arr.shape}"
        )
    if arr.shape[-1] == 2:  # grayscale + alpha
        arr = arr[..., :1]
    elif arr.shape[-1] == 4:
        arr = arr[..., :3]
    if channels == 3 and arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    if channels == 1 and arr.shape[-1] == 3:
        return np.asarray(Image.fromarray(np.ascontiguousarray(arr)).convert("L"))[..., None]
    return arr


class Predictor:
    """A trained model with its validated thresholds, applied to images of any size.

    Build it with :meth:`from_run` or :meth:`from_checkpoint`. Attributes: ``model``, ``cfg``
    (the checkpoint's :class:`~crackkit.config.RunConfig`), ``device``, ``threshold_seg``,
    ``threshold_dec``, ``validated`` (whether both thresholds come from validation),
    ``checkpoint`` (its path, when loaded from a file) and ``epoch``. :meth:`from_onnx` runs an
    exported graph instead: ``session`` (onnxruntime's) is then set and ``model`` is None.

    Prediction options (keywords of the constructor and of every ``from_*``; :meth:`configure`
    sets them again), described in the module docstring:

    * ``tile``: ``"auto"`` (default: the run's input size, for images of more than
      :data:`~crackkit.tiling.AUTO_WHOLE_TILES` tiles' area), ``(height, width)`` (for every image
      larger than it), or None to run every image whole; ``overlap``: pixels shared by consecutive
      windows, an int or a (rows, cols) pair (default a quarter of each tile side); ``tile_mode``:
      ``"global"`` (default), ``"plain"`` or ``"context"``; ``context``: the margin a ``"context"``
      window drops at each side (default a quarter of the overlap).
    * ``tta``: average the image and its two mirrors. ``scale``: resize images by this factor
      before prediction (maps come back at the image's size).
    * ``progress``: a progress bar over the windows of large tiled images.

    After :meth:`configure`, ``tile``, ``overlap`` and ``context`` hold the resolved pairs
    (``tile`` None when tiling is off; ``context`` (0, 0) for plain tiles) and ``tile_auto``
    whether the tile came from ``"auto"``.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: RunConfig,
        placement: Placement,
        *,
        threshold_seg: float = DEFAULT_THRESHOLD,
        threshold_dec: float = DEFAULT_THRESHOLD,
        validated: bool = False,
        batch_size: int = 8,
        checkpoint: Path | None = None,
        epoch: int | None = None,
        channel_order: str = "rgb",
        **options: Any,
    ) -> None:
        """``model`` is device-ready as :func:`crackkit.runtime.model_for` returns it."""
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.channel_order = channel_order
        self.cfg = cfg
        self.placement = placement
        self.model = model
        self.threshold_seg = float(threshold_seg)
        self.threshold_dec = float(threshold_dec)
        self.validated = validated
        self.batch_size = batch_size
        self.checkpoint = checkpoint
        self.epoch = epoch
        self.session: Any = None  # an onnxruntime session, set by from_onnx
        self.weights_kind = "crackkit"  # "original" (from_original), "onnx" (from_onnx)
        self.configure(**options)

    def configure(
        self,
        *,
        tile: tuple[int, int] | str | None = "auto",
        overlap: int | tuple[int, int] | None = None,
        tile_mode: str | None = None,
        context: int | tuple[int, int] | None = None,
        tta: bool = False,
        scale: float = 1.0,
        progress: bool = True,
    ) -> Predictor:
        """Set every prediction option (those not given take their defaults); returns self.

        ``tile_mode`` None is :data:`~crackkit.tiling.DEFAULT_TILE_MODE`; where that is
        ``"global"`` and the network has no final FeatureNorm to reach (an ONNX graph),
        ``"plain"``.

        Raises:
            ConfigError: a bad tile, overlap, mode, context or scale; the message names it;
                ``"global"`` asked of a network without a final FeatureNorm.
        """
        if tile_mode is None:
            tile_mode = DEFAULT_TILE_MODE
            if tile_mode == "global" and final_norm(self.model) is None:
                tile_mode = "plain"
        elif tile_mode == "global" and final_norm(self.model) is None:
            raise ConfigError(
                "tile_mode 'global' needs a SegDecNet whose segmentation map ends in FeatureNorm "
                "(a PyTorch model, not an ONNX graph); use 'plain' or 'context'"
            )
        auto = isinstance(tile, str)
        tile, overlap, context, scale = resolve_options(
            tile, overlap, tile_mode, context, scale, (self.cfg.input_height, self.cfg.input_width)
        )
        self.tile: tuple[int, int] | None = tile
        self.tile_auto = auto and tile is not None
        self.overlap: tuple[int, int] | None = overlap
        self.context: tuple[int, int] | None = context
        self.tile_mode = tile_mode
        self.tta = bool(tta)
        self.scale = scale
        self.progress = bool(progress)
        return self

    def options(self) -> dict[str, Any]:
        """The prediction options, JSON-ready (what ``predict.json`` records)."""
        tiled = self.tile is not None
        return {
            "tile": list(self.tile) if tiled else None,
            "tile_auto": self.tile_auto,
            "tiled_above_area": (
                f"{AUTO_WHOLE_TILES} tiles" if self.tile_auto else "1 tile" if tiled else None
            ),
            "tile_mode": self.tile_mode if tiled else None,
            "overlap": list(self.overlap) if tiled else None,
            "context": list(self.context) if tiled else None,
            "blend_window": f"Hann over each window's kept part, floored at {WINDOW_FLOOR}"
            if tiled
            else None,
            "blended": (
                "segmentation logits before the final FeatureNorm, normalised over the image"
                if self.tile_mode == "global"
                else "probabilities"
            )
            if tiled
            else None,
            "tiled_decision": "max over the windows' scores" if tiled else None,
            "tta": self.tta,
            "tta_views": list(TTA_VIEWS) if self.tta else ["identity"],
            "scale": self.scale,
            "precision": "float32"
            if self.placement.amp_dtype is None
            else f"{str(self.placement.amp_dtype).removeprefix('torch.')} autocast",
        }

    def plan(self, height: int, width: int) -> TilePlan | None:
        """The windows of an image of this size as it reaches the network (after ``scale``);
        None when it runs whole (tiling off, the image no larger than the tile or, under
        ``tile="auto"``, of at most :data:`~crackkit.tiling.AUTO_WHOLE_TILES` tiles'
        area)."""
        if self.tile is None or (height <= self.tile[0] and width <= self.tile[1]):
            return None
        if self.tile_auto and height * width <= AUTO_WHOLE_TILES * self.tile[0] * self.tile[1]:
            return None
        return tile_plan(height, width, self.tile, self.overlap, self.context)

    def windows(self, height: int, width: int) -> int:
        """Network inputs one view of a ``height x width`` image takes (1 when it runs whole)."""
        plan = self.plan(*scaled_size(height, width, self.scale))
        return 1 if plan is None else len(plan)

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        device: str | torch.device | None = "auto",
        batch_size: int = 8,
        precision: str = "auto",
        **options: Any,
    ) -> Predictor:
        """Load a checkpoint file; its configuration and validation results come with it.

        ``precision``: one of :data:`PRECISIONS` (module docstring). ``options``: the
        prediction options of :meth:`configure` (tile, TTA, scale...).

        Raises:
            CheckpointError: missing or damaged file, or parameters this version cannot read.
            ConfigError: ``device`` is ``cuda`` and no CUDA device is available.
        """
        path = Path(path)
        amp = _amp_for(precision, device)
        try:
            model, cfg, state, placement = load_model(path, device, inference=True, amp=amp)
        except ConfigError as exc:
            if "no CUDA device" in str(exc):
                raise
            raise CheckpointError(
                f"checkpoint {path} records run parameters this crackkit cannot use: {exc}"
            ) from None
        thresholds = validation_thresholds(state)
        dec, seg = thresholds["decision"], thresholds["pixel_2px"]
        missing = [n for n, v in (("segmentation", seg), ("decision", dec)) if v is None]
        if missing:
            warnings.warn(
                f"checkpoint {path} (epoch {state.get('epoch')}) has no validated "
                f"{' and '.join(missing)} threshold; using {DEFAULT_THRESHOLD}",
                PredictWarning,
                stacklevel=2,
            )
        return cls(
            model,
            cfg,
            placement,
            threshold_seg=DEFAULT_THRESHOLD if seg is None else seg,
            threshold_dec=DEFAULT_THRESHOLD if dec is None else dec,
            validated=not missing,
            batch_size=batch_size,
            checkpoint=path,
            epoch=state.get("epoch"),
            channel_order=cfg.channel_order,
            **options,
        )

    @classmethod
    def from_original(
        cls,
        path: str | Path,
        architecture: str,
        *,
        in_channels: int = 3,
        height: int = 360,
        width: int = 640,
        device: str | torch.device | None = "auto",
        batch_size: int = 8,
        threshold_seg: float = DEFAULT_THRESHOLD,
        threshold_dec: float = DEFAULT_THRESHOLD,
        precision: str = "auto",
        **options: Any,
    ) -> Predictor:
        """Weights saved by the authors' code (``model.state_dict()``), fed as the original fed.

        The original read images with OpenCV, so its networks expect BGR channel order, scaled
        by 1/255; the predictor flips RGB to BGR. ``height x width`` is the input size the
        weights were trained at (recorded, and the default tile: larger images are tiled, others
        run at their own size). Without validation results the thresholds are the given ones
        (0.5 by default).

        Raises:
            CheckpointError: the file is missing or its weights do not fit ``architecture``.
        """
        path = Path(path)
        amp = _amp_for(precision, device)
        try:
            model = load_original(
                path, architecture, in_channels=in_channels, height=height, width=width
            )
        except (OriginalWeightsError, FileNotFoundError) as exc:
            raise CheckpointError(f"original weights {path}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - unpickling failures mean a damaged file
            raise CheckpointError(f"original weights {path} cannot be read: {exc}") from None
        cfg = make_config(
            {
                "architecture": architecture,
                "input_channels": in_channels,
                "input_height": height,
                "input_width": width,
            }
        )
        model, placement = model_for(
            cfg if amp is None else cfg.replace(amp=amp), device, inference=True, model=model
        )
        predictor = cls(
            model,
            cfg,
            placement,
            threshold_seg=threshold_seg,
            threshold_dec=threshold_dec,
            validated=False,
            batch_size=batch_size,
            checkpoint=path,
            channel_order="bgr" if in_channels == 3 else "rgb",
            **options,
        )
        predictor.weights_kind = "original"
        return predictor

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        *,
        checkpoint: str | Path | None = None,
        device: str | torch.device | None = "auto",
        batch_size: int = 8,
        precision: str = "auto",
        **options: Any,
    ) -> Predictor:
        """Load a run's chosen checkpoint (or ``checkpoint``, when given).

        ``precision`` and ``options`` as for :meth:`from_checkpoint`.

        Raises:
            RunDirError: ``run_dir`` is no run folder.
            CheckpointError: the run holds no checkpoint, or it is damaged.
        """
        path = Path(checkpoint) if checkpoint is not None else Run.open(run_dir).checkpoint()
        return cls.from_checkpoint(
            path, device=device, batch_size=batch_size, precision=precision, **options
        )

    @classmethod
    def from_onnx(
        cls,
        path: str | Path,
        *,
        device: str | torch.device | None = "auto",
        batch_size: int = 8,
        precision: str = "auto",
        **options: Any,
    ) -> Predictor:
        """A graph written by :func:`crackkit.export.export_onnx`, run by onnxruntime.

        The graph computes in float32: ``precision`` may be ``"auto"`` or ``"float32"``.

        Its metadata gives the configuration (architecture, input channels), the thresholds and
        the channel order; images are read, padded, batched and cropped as for any predictor.
        ``device``: ``auto`` takes onnxruntime's CUDA provider when it has one, else the CPU.

        Raises:
            OnnxDependencyError: onnxruntime is not installed.
            CheckpointError: no such file, not an ONNX graph, or one without crackkit's metadata.
            ConfigError: ``device`` is ``cuda`` and onnxruntime has no CUDA provider.
        """
        if _amp_for(precision, "cpu") != "off":
            raise ConfigError(
                f"precision {precision!r}: an ONNX graph computes in float32; use 'auto' or "
                "'float32'"
            )
        ort = import_onnx("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"no ONNX model at {path}")
        providers = _onnx_providers(ort, device)
        try:
            session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise CheckpointError(f"{path} is not a readable ONNX model: {exc}") from None
        meta = session.get_modelmeta().custom_metadata_map
        missing = [k for k in ONNX_METADATA_KEYS if k not in meta]
        if missing:
            raise CheckpointError(
                f"{path} was not written by crackkit export: its metadata lacks "
                f"{', '.join(missing)}"
            )
        try:
            cfg = make_config(json.loads(meta["crackkit_config"]))
            layout = json.loads(meta["input"])
            if not isinstance(layout, dict):
                raise ValueError(f"'input' is a JSON {type(layout).__name__}, not an object")
            channel_order = layout.get("channel_order")
            if channel_order not in ("rgb", "bgr"):
                raise ValueError(f"channel_order {channel_order!r}; expected 'rgb' or 'bgr'")
            threshold_seg = _metadata_threshold(meta, "threshold_seg")
            threshold_dec = _metadata_threshold(meta, "threshold_dec")
            epoch = int(meta["checkpoint_epoch"]) if meta["checkpoint_epoch"] else None
            _check_onnx_graph(session, cfg.input_channels)
        except (ValueError, KeyError, TypeError, ConfigError) as exc:
            raise CheckpointError(
                f"{path} holds metadata this crackkit cannot use: {exc}"
            ) from None
        validated = meta["thresholds_validated"] == "true"
        if not validated:
            warnings.warn(
                f"ONNX model {path} (epoch {epoch}) has no validated "
                f"{meta.get('thresholds_missing') or 'segmentation and decision'} threshold; "
                f"using {threshold_seg} (segmentation) and {threshold_dec} (decision)",
                PredictWarning,
                stacklevel=2,
            )
        on_cuda = session.get_providers()[0] == "CUDAExecutionProvider"
        predictor = cls(
            None,  # type: ignore[arg-type]
            cfg,
            Placement(torch.device("cuda" if on_cuda else "cpu"), None, False),
            threshold_seg=threshold_seg,
            threshold_dec=threshold_dec,
            validated=validated,
            batch_size=batch_size,
            checkpoint=path,
            epoch=epoch,
            channel_order=channel_order,
            **options,
        )
        predictor.session = session
        predictor.weights_kind = "onnx"
        return predictor

    @property
    def input_channels(self) -> int:
        return self.cfg.input_channels

    def mask(self, prob: np.ndarray) -> np.ndarray:
        """(H, W) float probabilities -> (H, W) bool, True where ``prob >= threshold_seg``."""
        return np.asarray(prob) >= np.float64(self.threshold_seg)

    def decide(self, score: float) -> bool:
        """Whether an image score means "crack": ``score >= threshold_dec``."""
        return bool(score >= self.threshold_dec)

    def predict_image(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Crack probabilities and image score of one image.

        Args:
            image: (H, W) or (H, W, C) uint8, C in 1..4 (grayscale, RGB, RGBA), any size.

        Returns:
            ``(prob, score)``: prob (H, W) float32 in [0, 1]; score a float in [0, 1] (for a
            tiled image the maximum of its windows' scores).
        """
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, float]]:
        """:meth:`predict_image` for several images; those run whole and of equal padded size
        run together, a tiled image runs alone, its windows ``batch_size`` at a time.

        Returns:
            ``(prob (H, W) float32, score)`` per image, in the order given.
        """
        arrays = [_to_channels(im, self.input_channels) for im in images]
        sizes = [a.shape[:2] for a in arrays]
        if self.scale != 1.0:
            arrays = [resize_image(a, scaled_size(*a.shape[:2], self.scale)) for a in arrays]
        views = TTA_VIEWS if self.tta else TTA_VIEWS[:1]
        results: dict[tuple[int, str], tuple[np.ndarray, float]] = {}
        groups: dict[tuple[int, int], list[tuple[tuple[int, str], np.ndarray]]] = {}
        for i, arr in enumerate(arrays):
            plan = self.plan(*arr.shape[:2])
            for view in views:
                seen = flip_view(arr, view)
                if plan is None:
                    groups.setdefault(padded_shape(*seen.shape[:2]), []).append(((i, view), seen))
                else:
                    results[(i, view)] = self._predict_tiled(seen, plan)
        for items in groups.values():
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                outputs = self._forward([a for _, a in chunk])
                for (key, _), result in zip(chunk, outputs, strict=True):
                    results[key] = result
        out: list[tuple[np.ndarray, float]] = []
        for i, size in enumerate(sizes):
            if len(views) == 1:
                prob, score = results[(i, views[0])]
            else:
                prob = np.zeros(arrays[i].shape[:2], np.float32)
                for view in views:
                    prob += flip_view(results[(i, view)][0], view)
                prob = np.clip(prob / np.float32(len(views)), 0.0, 1.0)
                score = float(np.mean([results[(i, view)][1] for view in views]))
            out.append((resize_prob(prob, size), score))
        return out

    def _predict_tiled(self, array: np.ndarray, plan: TilePlan) -> tuple[np.ndarray, float]:
        """One image (H, W, C) uint8 by the windows of ``plan``: blended map, max score
        (:func:`crackkit.tiling.predict_tiled` in this predictor's tile mode)."""
        norm = final_norm(self.model) if self.tile_mode == "global" else None
        return predict_tiled(
            array,
            plan,
            self._forward,
            norm=norm,
            batch_size=self.batch_size,
            progress=self.progress,
        )

    @torch.inference_mode()
    def _forward(self, arrays: list[np.ndarray]) -> list[tuple[np.ndarray, float]]:
        """Images (H, W, C) uint8 of one padded size -> their cropped maps and scores."""
        sizes = [a.shape[:2] for a in arrays]
        padded = np.stack(
            [np.pad(a, (*_pads(*a.shape[:2]), (0, 0)), mode="reflect") for a in arrays]
        )
        if self.channel_order == "bgr":
            padded = padded[..., ::-1]
        batch = torch.from_numpy(np.ascontiguousarray(padded.transpose(0, 3, 1, 2)))
        if self.session is not None:  # from_onnx: the exported graph, same input and outputs
            scores, probs = _onnx_outputs(self.session, batch)
        else:
            out = forward(self.model, batch, self.placement)
            scores = out.scores.cpu().tolist()
            probs = out.probs[:, 0].cpu().numpy().astype(np.float32, copy=False)
        results = []
        for prob, score, (h, w) in zip(probs, scores, sizes, strict=True):
            (top, _), (left, _) = _pads(h, w)
            results.append((np.ascontiguousarray(prob[top : top + h, left : left + w]), score))
        return results
