"""Apply a trained SegDecNet run to new images of any size: crack probabilities, masks, scores.

Usage from Python or a notebook::

    from crackkit.predict import Predictor, predict_folder

    # A whole folder: writes maps, masks, overlays and predictions.csv, returns a summary.
    report = predict_folder("photos", "runs/20250101-120000-crack500")
    print(report.out_dir)
    for r in report.results:
        print(r.image.name, r.score, r.decision, r.crack_pixels)

    # Road photos: tiles of the run's input size (the default), flips averaged, photos twice as
    # fine as the training images halved (scale 0.5), crack geometry in millimetres (0.4 mm per
    # pixel of the photo).
    report = predict_folder("photos", "runs/...", tta=True, scale=0.5, mm_per_px=0.4)

    # One image at a time, nothing written.
    predictor = Predictor.from_run("runs/20250101-120000-crack500")  # or .from_checkpoint(path)
    prob, score = predictor.predict_image(image)  # image: (H, W, C) or (H, W) uint8
    mask = predictor.mask(prob)                   # (H, W) bool, prob >= predictor.threshold_seg
    has_crack = predictor.decide(score)           # score >= predictor.threshold_dec

From the command line::

    crackkit predict IMAGES_DIR --run RUN_DIR [--out DIR] [--checkpoint PATH] [--device auto]
        [--tile H W | --no-tile] [--overlap PX] [--tile-mode global|plain|context] [--context PX]
        [--tta] [--scale F] [--geometry] [--mm-per-px X]
    crackkit predict IMAGES_DIR --onnx model.onnx [--out DIR]

ONNX. :meth:`Predictor.from_onnx` (``predict_folder(..., onnx=PATH)``, ``--onnx``) runs a graph
written by :func:`crackkit.export.export_onnx` with onnxruntime (``pip install 'crackkit[onnx]'``)
instead of PyTorch: its metadata carries the run's configuration and thresholds, and the reading,
padding, batching, tiling, cropping and outputs below are the same (``predict.json`` says
``"weights_kind": "onnx"``). The graph computes in float32 with the direct convolution.

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

* Reading (:func:`predict_folder`). The EXIF orientation of a photo is applied, so that every
  output has the orientation the photo is displayed in (the transposition of PIL's
  ``ImageOps.exif_transpose``; ``predict.json`` lists the images it turned). The training data
  reader (:func:`crackkit.data.folder.read_image`) keeps reading pixels as stored, because the
  masks are drawn on the stored pixels. :meth:`Predictor.predict_image` takes the array it is
  given. Grayscale, RGB and RGBA images are accepted in the formats of
  :data:`crackkit.data.folder.IMAGE_EXTENSIONS`; alpha is dropped (not composited), grayscale is
  repeated to RGB for 3-channel models and RGB is converted to luminance (Pillow's ``L``) for
  1-channel models.
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

All of it runs under ``torch.inference_mode`` with the run's mixed-precision and channels-last
settings. On the CPU, every new input size costs a one-off setup of the convolution kernels; tiles
all have one size.

Tiling, the tile modes and the blending window are :mod:`crackkit.tiling`'s (its docstring
describes them); :class:`Predictor` chooses per image, after ``scale``, whether it runs whole or
by the windows of :meth:`Predictor.plan`. ``predict.json`` records the tile, overlap, mode and
margin; ``ImageResult.tiles`` the windows per image.

Output of :func:`predict_folder`, per image ``<stem>`` of the folder:

* ``<stem>_prob.png``: 8-bit probability map, ``round(255 * prob)`` (divide by 255 to read it);
* ``<stem>_mask.png``: binary mask at ``threshold_seg``, 0 or 255;
* ``<stem>_overlay.png``: the image, dimmed, with predicted crack pixels in red;
* ``predictions.csv``: one row per image with columns image, width, height, score, decision (0/1),
  crack_pixels, threshold_seg, threshold_dec, n_cracks (8-connected cracks of the mask) and
  crack_length_px (their total length, :func:`crackkit.geometry.measure`); written last, once
  every image succeeded;
* with ``geometry=True`` or ``mm_per_px`` (``--geometry``, ``--mm-per-px X``): ``geometry.csv``,
  one row per crack of each image's mask, columns ``image`` and
  :data:`crackkit.geometry.GEOMETRY_COLUMNS` (:func:`crackkit.geometry.rows`; the millimetre
  columns empty without ``mm_per_px``), and ``<stem>_width.png``, the image dimmed with each
  crack's skeleton coloured by its local width (:func:`crackkit.geometry.skeleton_widths`, in mm
  when ``mm_per_px`` is given, else px) and a colour bar;
* ``predict.json``: the weights, thresholds and every option above.

The default output folder is ``RUN_DIR/predictions/<images folder name>-<timestamp>/``. An existing
output folder is used only when it is empty: predictions never overwrite files.

Errors fail fast, before any output is written where possible. The folder's image files are
checked from their headers first; an unreadable, corrupt or truncated image raises
:class:`~crackkit.data.folder.DatasetError` naming the file (a file whose pixels fail to decode
after its header passed stops the run there, and the folder keeps the images done before it but
no ``predictions.csv``). A folder without images, or two images sharing a stem (``a.png`` and
``a.jpg`` would write the same outputs), also raises ``DatasetError``. Hidden files and
``Thumbs.db``/``desktop.ini`` are ignored; other files and subfolders are skipped with a
:class:`PredictWarning` that lists them.
"""

from __future__ import annotations

import csv
import datetime as _dt
import importlib
import io
import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from scipy import ndimage as ndi
from torch import nn
from tqdm.auto import tqdm

from crackkit.checkpoint import CheckpointError, load_model, validation_thresholds
from crackkit.config import ConfigError, RunConfig, make_config
from crackkit.data.folder import (
    IMAGE_EXTENSIONS,
    DatasetError,
    image_size,
    read_image,
    visible_entries,
)
from crackkit.files import atomic_write_json, atomic_write_text, write_csv
from crackkit.geometry import GEOMETRY_COLUMNS, measure, skeleton_widths
from crackkit.geometry import rows as geometry_rows
from crackkit.inference import forward
from crackkit.model import OriginalWeightsError, load_original
from crackkit.report import error_overlay
from crackkit.run import RUN_FILES, Run, RunDirError
from crackkit.runtime import Placement, model_for
from crackkit.specs import smallest_input
from crackkit.tiling import (
    AUTO_WHOLE_TILES,
    DEFAULT_TILE_MODE,
    TTA_VIEWS,
    WINDOW_FLOOR,
    TilePlan,
    _final_norm,
    _flip,
    _resize_image,
    _resize_prob,
    _resolve_options,
    _scaled_size,
    predict_tiled,
    tile_plan,
)

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_THRESHOLD",
    "GEOMETRY_CSV_COLUMNS",
    "ONNX_EXTRA",
    "ONNX_INPUT",
    "ONNX_METADATA_KEYS",
    "ONNX_OUTPUTS",
    "ImageResult",
    "OnnxDependencyError",
    "PredictReport",
    "PredictWarning",
    "Predictor",
    "import_onnx",
    "list_images",
    "plot_width_histogram",
    "predict_folder",
]

DEFAULT_THRESHOLD = 0.5
CSV_COLUMNS = (
    "image",
    "width",
    "height",
    "score",
    "decision",
    "crack_pixels",
    "threshold_seg",
    "threshold_dec",
    "n_cracks",
    "crack_length_px",
)
#: Columns of ``geometry.csv``: the image, then :data:`crackkit.geometry.GEOMETRY_COLUMNS`.
GEOMETRY_CSV_COLUMNS = ("image", *GEOMETRY_COLUMNS)

#: EXIF orientation -> the transposition that shows the stored pixels as displayed (PIL's
#: ``ImageOps.exif_transpose`` table).
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112


class PredictWarning(UserWarning):
    """Prediction goes on, but something deserves a look (a default threshold, skipped files)."""


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


def _padded_shape(height: int, width: int) -> tuple[int, int]:
    """The smallest input the networks take that holds a ``height x width`` image."""
    return smallest_input(height, width)


def _pads(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) padding to :func:`_padded_shape`, split between both ends."""
    ph, pw = _padded_shape(height, width)
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


def _check_mm_per_px(mm_per_px: Any) -> float | None:
    if mm_per_px is None:
        return None
    if isinstance(mm_per_px, bool) or not isinstance(
        mm_per_px, int | float | np.integer | np.floating
    ):
        raise ConfigError(f"mm_per_px must be a number > 0 or None, got {mm_per_px!r}")
    value = float(mm_per_px)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"mm_per_px must be a finite number > 0, got {mm_per_px!r}")
    return value


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
            if tile_mode == "global" and _final_norm(self.model) is None:
                tile_mode = "plain"
        elif tile_mode == "global" and _final_norm(self.model) is None:
            raise ConfigError(
                "tile_mode 'global' needs a SegDecNet whose segmentation map ends in FeatureNorm "
                "(a PyTorch model, not an ONNX graph); use 'plain' or 'context'"
            )
        auto = isinstance(tile, str)
        tile, overlap, context, scale = _resolve_options(
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
        plan = self.plan(*_scaled_size(height, width, self.scale))
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
        **options: Any,
    ) -> Predictor:
        """Load a checkpoint file; its configuration and validation results come with it.

        ``options``: the prediction options of :meth:`configure` (tile, TTA, scale...).

        Raises:
            CheckpointError: missing or damaged file, or parameters this version cannot read.
            ConfigError: ``device`` is ``cuda`` and no CUDA device is available.
        """
        path = Path(path)
        try:
            model, cfg, state, placement = load_model(path, device, inference=True)
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
        model, placement = model_for(cfg, device, inference=True, model=model)
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
        **options: Any,
    ) -> Predictor:
        """Load a run's chosen checkpoint (or ``checkpoint``, when given).

        ``options``: the prediction options of :meth:`configure` (tile, TTA, scale...).

        Raises:
            RunDirError: ``run_dir`` is no run folder.
            CheckpointError: the run holds no checkpoint, or it is damaged.
        """
        path = Path(checkpoint) if checkpoint is not None else Run.open(run_dir).checkpoint()
        return cls.from_checkpoint(path, device=device, batch_size=batch_size, **options)

    @classmethod
    def from_onnx(
        cls,
        path: str | Path,
        *,
        device: str | torch.device | None = "auto",
        batch_size: int = 8,
        **options: Any,
    ) -> Predictor:
        """A graph written by :func:`crackkit.export.export_onnx`, run by onnxruntime.

        Its metadata gives the configuration (architecture, input channels), the thresholds and
        the channel order; images are read, padded, batched and cropped as for any predictor.
        ``device``: ``auto`` takes onnxruntime's CUDA provider when it has one, else the CPU.

        Raises:
            OnnxDependencyError: onnxruntime is not installed.
            CheckpointError: no such file, not an ONNX graph, or one without crackkit's metadata.
            ConfigError: ``device`` is ``cuda`` and onnxruntime has no CUDA provider.
        """
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
            channel_order = json.loads(meta["input"])["channel_order"]
            threshold_seg = float(meta["threshold_seg"])
            threshold_dec = float(meta["threshold_dec"])
            epoch = int(meta["checkpoint_epoch"]) if meta["checkpoint_epoch"] else None
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
            arrays = [_resize_image(a, _scaled_size(*a.shape[:2], self.scale)) for a in arrays]
        views = TTA_VIEWS if self.tta else TTA_VIEWS[:1]
        results: dict[tuple[int, str], tuple[np.ndarray, float]] = {}
        groups: dict[tuple[int, int], list[tuple[tuple[int, str], np.ndarray]]] = {}
        for i, arr in enumerate(arrays):
            plan = self.plan(*arr.shape[:2])
            for view in views:
                seen = _flip(arr, view)
                if plan is None:
                    groups.setdefault(_padded_shape(*seen.shape[:2]), []).append(((i, view), seen))
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
                    prob += _flip(results[(i, view)][0], view)
                prob = np.clip(prob / np.float32(len(views)), 0.0, 1.0)
                score = float(np.mean([results[(i, view)][1] for view in views]))
            out.append((_resize_prob(prob, size), score))
        return out

    def _predict_tiled(self, array: np.ndarray, plan: TilePlan) -> tuple[np.ndarray, float]:
        """One image (H, W, C) uint8 by the windows of ``plan``: blended map, max score
        (:func:`crackkit.tiling.predict_tiled` in this predictor's tile mode)."""
        norm = _final_norm(self.model) if self.tile_mode == "global" else None
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


@dataclass
class ImageResult:
    """What :func:`predict_folder` found in one image and where it wrote the outputs.

    ``width`` and ``height`` are those of the image as displayed (EXIF orientation applied);
    ``orientation`` is its EXIF orientation tag (1: none); ``tiles`` the network inputs of one
    view (1: the image ran whole). ``n_cracks`` and ``crack_length_px`` sum up the mask's
    cracks; with geometry, ``cracks`` holds :func:`crackkit.geometry.measure`'s dicts,
    ``widths_px`` the local widths of every skeleton pixel and ``width_path`` the width overlay.
    """

    image: Path
    width: int
    height: int
    score: float
    decision: bool
    crack_pixels: int
    prob_path: Path
    mask_path: Path
    overlay_path: Path
    n_cracks: int = 0
    crack_length_px: float = 0.0
    orientation: int = 1
    tiles: int = 1
    cracks: list[dict[str, Any]] | None = None
    widths_px: np.ndarray | None = None
    width_path: Path | None = None


@dataclass
class PredictReport:
    """Summary of :func:`predict_folder`: output folder, thresholds used, one result per image.

    ``geometry_path`` is ``geometry.csv`` (None without geometry); ``mm_per_px`` the pixel size
    the geometry used; ``options`` the prediction options (:meth:`Predictor.options`).
    """

    out_dir: Path
    csv_path: Path
    checkpoint: Path | None
    architecture: str
    device: str
    threshold_seg: float
    threshold_dec: float
    validated: bool
    results: list[ImageResult] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    geometry_path: Path | None = None
    mm_per_px: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def n_cracked(self) -> int:
        """Images whose score reaches the decision threshold."""
        return sum(r.decision for r in self.results)

    def rows(self) -> list[dict[str, Any]]:
        """The rows of ``predictions.csv`` (e.g. for ``pandas.DataFrame(report.rows())``)."""
        return [
            {
                "image": r.image.name,
                "width": r.width,
                "height": r.height,
                "score": r.score,
                "decision": int(r.decision),
                "crack_pixels": r.crack_pixels,
                "threshold_seg": self.threshold_seg,
                "threshold_dec": self.threshold_dec,
                "n_cracks": r.n_cracks,
                "crack_length_px": r.crack_length_px,
            }
            for r in self.results
        ]

    def geometry_rows(self) -> list[dict[str, Any]]:
        """The rows of ``geometry.csv``: one per crack, columns :data:`GEOMETRY_CSV_COLUMNS`
        (empty without geometry)."""
        out: list[dict[str, Any]] = []
        for r in self.results:
            if r.cracks is not None:
                out += geometry_rows(r.cracks, r.image.name)
        return out


def list_images(images_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """The image files of a folder (not recursive), sorted, and the other entries it skips.

    A single image file is accepted too. See the module docstring for the rules.

    Raises:
        DatasetError: missing folder, no image in it, or two images sharing a stem.
    """
    images_dir = Path(images_dir)
    accepted = ", ".join(IMAGE_EXTENSIONS)
    if images_dir.is_file():
        if images_dir.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DatasetError(
                f"{images_dir}: unsupported file extension {images_dir.suffix!r}; "
                f"accepted: {accepted}"
            )
        return [images_dir], []
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: image folder does not exist")
    images: list[Path] = []
    skipped: list[Path] = []
    by_stem: dict[str, Path] = {}
    for path in visible_entries(images_dir):
        if path.is_dir() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(path)
            continue
        if path.stem in by_stem:
            raise DatasetError(
                f"{path} and {by_stem[path.stem]} share the stem {path.stem!r}; their outputs "
                "would have the same names. Rename one of them"
            )
        by_stem[path.stem] = path
        images.append(path)
    if not images:
        raise DatasetError(f"{images_dir}: no images to predict (accepted: {accepted})")
    return images, skipped


def _output_dir(out_dir: str | Path | None, base: Path, name: str) -> Path:
    if out_dir is not None:
        out = Path(out_dir)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise RunDirError(
                f"{out} exists and is not empty; predictions never overwrite files, "
                "choose another output folder"
            )
        out.mkdir(parents=True, exist_ok=True)
        return out.resolve()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    first = base / f"{name}-{stamp}"
    for k in range(1, 1000):
        candidate = first if k == 1 else first.with_name(f"{first.name}-{k}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        return candidate.resolve()
    raise RunDirError(f"cannot find a free output folder name next to {first}")


def _default_base(run_dir: Path | None, checkpoint: Path) -> Path:
    """``RUN_DIR/predictions``; for a bare checkpoint, its run folder's or its own folder's."""
    if run_dir is not None:
        return run_dir / RUN_FILES["predictions"]
    ckpt_dir = checkpoint.resolve().parent
    if ckpt_dir.name == RUN_FILES["checkpoints"]:
        return ckpt_dir.parent / RUN_FILES["predictions"]
    return ckpt_dir / RUN_FILES["predictions"]


def _overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): the image dimmed, predicted crack pixels red."""
    out = error_overlay(rgb, np.zeros_like(mask), mask)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _save_png(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array).save(path, format="PNG")
    return path


def _orientation(path: Path) -> int:
    """The EXIF orientation tag of an image file (1 when it has none or an unusable one)."""
    try:
        with Image.open(path) as img:
            value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block means no orientation to honour
        return 1
    return int(value) if isinstance(value, int) and value in _EXIF_TRANSPOSE else 1


def _displayed(array: np.ndarray, orientation: int) -> np.ndarray:
    """uint8 (H, W, 3) stored pixels shown as the EXIF ``orientation`` says they are displayed."""
    method = _EXIF_TRANSPOSE.get(orientation)
    if method is None:
        return array
    return np.asarray(Image.fromarray(array).transpose(method))


def _displayed_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _write_table(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    """A CSV with this header even without rows (floats as repr, None as an empty cell)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def _csv_cell(value: Any) -> Any:
    return "" if value is None else repr(value) if isinstance(value, float) else value


def predict_folder(
    images_dir: str | Path,
    run_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = "auto",
    batch_size: int = 8,
    progress: bool = True,
    original_weights: str | Path | None = None,
    architecture: str | None = None,
    input_size: tuple[int, int] = (360, 640),
    onnx: str | Path | None = None,
    tile: tuple[int, int] | str | None = "auto",
    overlap: int | tuple[int, int] | None = None,
    tile_mode: str | None = None,
    context: int | tuple[int, int] | None = None,
    tta: bool = False,
    scale: float = 1.0,
    mm_per_px: float | None = None,
    geometry: bool = False,
    predictor: Predictor | None = None,
) -> PredictReport:
    """Predict every image of ``images_dir`` with a trained run and write the results.

    Args:
        images_dir: folder of images (any size, png/jpg/bmp/tif, grayscale/RGB/RGBA), or one image.
        run_dir: run folder; its chosen checkpoint is used unless ``checkpoint`` is given.
        out_dir: output folder, new or empty; default ``RUN_DIR/predictions/<name>-<timestamp>``
            (for a bare checkpoint, the ``predictions`` folder beside its run or itself).
        checkpoint: checkpoint file; enough on its own (``run_dir`` may then be None).
        device: ``auto`` or None (CUDA when present), ``cpu``, ``cuda`` or a ``torch.device``.
        batch_size: images of one padded size (or windows of a tiled image) run together this
            many at a time.
        progress: show tqdm progress bars (images, and the windows of large tiled images).
        original_weights: a state dict saved by the authors' code instead of a crackkit run
            (with ``architecture`` and the ``input_size`` it was trained at); see
            :meth:`Predictor.from_original`.
        onnx: a graph written by :func:`crackkit.export.export_onnx`, run by onnxruntime
            (:meth:`Predictor.from_onnx`); with ``run_dir`` the results go under that run.
        tile, overlap, tile_mode, context, tta, scale: the prediction options of
            :class:`Predictor` (module docstring): ``tile`` ``"auto"`` (the run's input size),
            ``(H, W)`` or None (every image whole).
        mm_per_px: the photos' pixel size in millimetres; implies ``geometry`` and adds the
            millimetre columns.
        geometry: write ``geometry.csv`` and ``<stem>_width.png`` (pixel units).
        predictor: a ready :class:`Predictor` instead of ``run_dir``/``checkpoint``/... (its own
            options are used; leave the options above at their defaults). Without ``run_dir``
            and a checkpoint path of its own, ``out_dir`` is needed.

    Returns:
        A :class:`PredictReport`; the files are described in the module docstring.

    Raises:
        DatasetError: missing or empty folder, an unreadable image (named), duplicate stems.
        RunDirError: ``run_dir`` is no run folder, or ``out_dir`` exists and is not empty.
        CheckpointError: no checkpoint in the run, or a damaged one (or ONNX model).
        ConfigError: a bad tile, overlap, tile mode, context, scale or ``mm_per_px`` (named).
        OnnxDependencyError: ``onnx`` is given and onnxruntime is not installed.
    """
    t0 = time.perf_counter()
    sources = (run_dir, checkpoint, original_weights, onnx)
    if predictor is not None:
        if any(s is not None for s in sources[1:]):
            raise ValueError("a ready predictor holds its weights: give no checkpoint or model")
        defaults = ("auto", None, None, None, False, 1.0)
        given = (tile, overlap, tile_mode, context, tta, scale)
        if any(a is not b and a != b for a, b in zip(given, defaults, strict=True)):
            raise ValueError(
                "a ready predictor uses its own options: set them with predictor.configure(...)"
            )
        if run_dir is None and predictor.checkpoint is None and out_dir is None:
            raise ValueError("a predictor without a checkpoint file needs an out_dir")
    elif all(s is None for s in sources):
        raise ValueError("give a run folder, a checkpoint file, original weights or an ONNX model")
    if onnx is not None and (checkpoint is not None or original_weights is not None):
        raise ValueError("an ONNX model holds its weights: give it without checkpoint or weights")
    if original_weights is not None and architecture is None:
        raise ValueError("original weights need their architecture (segdecnet, ...)")
    mm_per_px = _check_mm_per_px(mm_per_px)
    geometry = bool(geometry) or mm_per_px is not None
    options = {
        "tile": tile,
        "overlap": overlap,
        "tile_mode": tile_mode,
        "context": context,
        "tta": tta,
        "scale": scale,
        "progress": progress,
    }
    if predictor is None:  # checked before any file is read (an "auto" tile after loading)
        mode = DEFAULT_TILE_MODE if tile_mode is None else tile_mode
        _resolve_options(tile, overlap, mode, context, scale, None)
    run_path = Path(run_dir) if run_dir is not None else None
    if run_path is not None and not run_path.is_dir():
        raise RunDirError(f"no run folder at {run_path}")
    paths, skipped = list_images(images_dir)
    if skipped:
        shown = ", ".join(p.name for p in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(
            f"skipped {len(skipped)} entries of {images_dir} that are not images "
            f"({', '.join(IMAGE_EXTENSIONS)}): {shown}{more}",
            PredictWarning,
            stacklevel=2,
        )
    orientations = {p: _orientation(p) for p in paths}
    sizes = {p: _displayed_size(image_size(p), orientations[p]) for p in paths}
    kw = {"device": device, "batch_size": batch_size, **options}
    if predictor is not None:
        pass
    elif onnx is not None:
        predictor = Predictor.from_onnx(onnx, **kw)
    elif original_weights is not None:
        predictor = Predictor.from_original(
            original_weights, architecture, height=input_size[0], width=input_size[1], **kw
        )
    elif checkpoint is not None:
        predictor = Predictor.from_checkpoint(checkpoint, **kw)
    else:
        predictor = Predictor.from_run(run_path, **kw)
    name = Path(images_dir).resolve().stem if Path(images_dir).is_file() else None
    name = name or Path(images_dir).resolve().name or "images"
    base = _default_base(run_path, predictor.checkpoint) if out_dir is None else Path(out_dir)
    out = _output_dir(out_dir, base, name)

    # Images that run whole are batched by padded size; a tiled image runs alone.
    groups: dict[Any, list[Path]] = {}
    for p in paths:
        scaled = _scaled_size(*sizes[p], predictor.scale)
        key = ("tiled", p) if predictor.plan(*scaled) is not None else _padded_shape(*scaled)
        groups.setdefault(key, []).append(p)
    by_path: dict[Path, ImageResult] = {}
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not progress) as bar:
        for group in groups.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                rgbs = [_displayed(read_image(p, 3), orientations[p]) for p in chunk]
                for p, rgb, (prob, score) in zip(
                    chunk, rgbs, predictor.predict_batch(rgbs), strict=True
                ):
                    by_path[p] = _write_outputs(
                        predictor,
                        out,
                        p,
                        rgb,
                        prob,
                        score,
                        geometry=geometry,
                        mm_per_px=mm_per_px,
                        orientation=orientations[p],
                    )
                bar.update(len(chunk))
    report = PredictReport(
        out_dir=out,
        csv_path=out / "predictions.csv",
        checkpoint=predictor.checkpoint,
        architecture=predictor.cfg.architecture,
        device=str(predictor.device),
        threshold_seg=predictor.threshold_seg,
        threshold_dec=predictor.threshold_dec,
        validated=predictor.validated,
        results=[by_path[p] for p in paths],
        skipped=skipped,
        mm_per_px=mm_per_px,
        options=predictor.options(),
    )
    if geometry:
        report.geometry_path = _write_table(
            out / "geometry.csv", GEOMETRY_CSV_COLUMNS, report.geometry_rows()
        )
    write_csv(report.csv_path, report.rows())
    report.seconds = time.perf_counter() - t0
    atomic_write_json(
        out / "predict.json",
        {
            "weights": str(predictor.checkpoint) if predictor.checkpoint else None,
            "weights_kind": predictor.weights_kind,
            "architecture": predictor.cfg.architecture,
            "channel_order": predictor.channel_order,
            "input_scale": "1/255",
            "threshold_seg": predictor.threshold_seg,
            "threshold_dec": predictor.threshold_dec,
            "thresholds_validated": predictor.validated,
            **report.options,
            "tiled_images": sum(r.tiles > 1 for r in report.results),
            "exif_orientation": "applied (the transposition of PIL's ImageOps.exif_transpose)",
            "exif_transposed": {
                r.image.name: r.orientation for r in report.results if r.orientation != 1
            },
            "geometry": geometry,
            "mm_per_px": mm_per_px,
            "images": len(report.results),
            "seconds": report.seconds,
        },
    )
    return report


def _write_outputs(
    predictor: Predictor,
    out: Path,
    path: Path,
    rgb: np.ndarray,
    prob: np.ndarray,
    score: float,
    *,
    geometry: bool = False,
    mm_per_px: float | None = None,
    orientation: int = 1,
) -> ImageResult:
    mask = predictor.mask(prob)
    stem = path.stem
    prob_u8 = np.clip(np.rint(prob * 255.0), 0, 255).astype(np.uint8)
    cracks = measure(mask, mm_per_px)
    result = ImageResult(
        image=path,
        width=int(prob.shape[1]),
        height=int(prob.shape[0]),
        score=float(score),
        decision=predictor.decide(score),
        crack_pixels=int(mask.sum()),
        prob_path=_save_png(prob_u8, out / f"{stem}_prob.png"),
        mask_path=_save_png(mask.astype(np.uint8) * 255, out / f"{stem}_mask.png"),
        overlay_path=_save_png(_overlay(rgb, mask), out / f"{stem}_overlay.png"),
        n_cracks=len(cracks),
        crack_length_px=float(sum(c["length_px"] for c in cracks)),
        orientation=orientation,
        tiles=predictor.windows(*prob.shape),
    )
    if geometry:
        skeleton, width = skeleton_widths(mask)
        result.cracks = cracks
        result.widths_px = width[skeleton]
        result.width_path = _plot_widths(
            rgb, skeleton, width, mm_per_px, out / f"{stem}_width.png", title=path.name
        )
    return result


#: Longest side, in pixels, of the width overlay's image.
_WIDTH_PLOT_SIDE = 1600


def _plot_widths(
    rgb: np.ndarray,
    skeleton: np.ndarray,
    width_px: np.ndarray,
    mm_per_px: float | None,
    path: Path,
    *,
    title: str = "",
) -> Path:
    """``<stem>_width.png``: the image dimmed, skeleton pixels coloured by local width."""
    h, w = skeleton.shape
    unit = "mm" if mm_per_px else "px"
    values = width_px * np.float32(mm_per_px) if mm_per_px else width_px
    shrink = max(h, w) / _WIDTH_PLOT_SIDE
    if shrink > 1:  # thicken the 1-px skeleton so that it survives the downsampled figure
        size = 2 * math.ceil(shrink / 2) + 1
        values = ndi.grey_dilation(np.where(skeleton, values, 0), size=(size, size))
        skeleton = ndi.binary_dilation(skeleton, np.ones((size, size), bool))
    scale = max(shrink, 1.0)
    fig = Figure(figsize=(w / scale / 100 + 1.5, h / scale / 100 + 0.5), dpi=100)
    ax = fig.subplots()
    ax.imshow(rgb.mean(axis=-1), cmap="gray", vmin=0, vmax=2 * 255, interpolation="antialiased")
    top = float(values[skeleton].max()) if skeleton.any() else 1.0
    shown = ax.imshow(
        np.ma.masked_where(~skeleton, values),
        cmap="plasma",
        vmin=0.0,
        vmax=max(top, 1e-6),
        interpolation="nearest",
    )
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label=f"local crack width ({unit})")
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    return path


def plot_width_histogram(report: PredictReport, path: str | Path, bins: int = 30) -> Path:
    """A PNG histogram of the local crack width along every skeleton pixel of the report's
    images (in mm when the report has ``mm_per_px``, else px), for a report with geometry.

    Raises:
        ValueError: the report was made without geometry.
    """
    if report.geometry_path is None:
        raise ValueError("the report has no geometry: predict with geometry=True or mm_per_px")
    parts = [r.widths_px for r in report.results if r.widths_px is not None]
    widths = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    unit = "mm" if report.mm_per_px else "px"
    if report.mm_per_px:
        widths = widths * report.mm_per_px
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    if widths.size:
        ax.hist(widths, bins=bins, color="tab:purple")
    ax.set_xlabel(f"local crack width ({unit})")
    ax.set_ylabel("skeleton pixels")
    ax.set_title(
        f"Crack width along the skeletons of {len(report)} images ({widths.size} px)", fontsize=9
    )
    ax.grid(alpha=0.3)
    path = Path(path)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    return path
