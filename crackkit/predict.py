"""Apply a trained SegDecNet run to new images of any size: crack probabilities, masks, scores.

Usage from Python or a notebook::

    from crackkit.predict import Predictor, predict_folder

    # A whole folder: writes maps, masks, overlays and predictions.csv, returns a summary.
    report = predict_folder("photos", "runs/20250101-120000-crack500")
    print(report.out_dir)
    for r in report.results:
        print(r.image.name, r.score, r.decision, r.crack_pixels)

    # One image at a time, nothing written.
    predictor = Predictor.from_run("runs/20250101-120000-crack500")  # or .from_checkpoint(path)
    prob, score = predictor.predict_image(image)  # image: (H, W, C) or (H, W) uint8
    mask = predictor.mask(prob)                   # (H, W) bool, prob >= predictor.threshold_seg
    has_crack = predictor.decide(score)           # score >= predictor.threshold_dec

From the command line::

    crackkit predict IMAGES_DIR --run RUN_DIR [--out DIR] [--checkpoint PATH] [--device auto]
    crackkit predict IMAGES_DIR --onnx model.onnx [--out DIR]

ONNX. :meth:`Predictor.from_onnx` (``predict_folder(..., onnx=PATH)``, ``--onnx``) runs a graph
written by :func:`crackkit.export.export_onnx` with onnxruntime (``pip install 'crackkit[onnx]'``)
instead of PyTorch: its metadata carries the run's configuration and thresholds, and the reading,
padding, batching, cropping and outputs below are the same (``predict.json`` says
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

How an image is processed.

* Files are read as stored (EXIF orientation ignored, as in training). Grayscale, RGB and RGBA
  images are accepted in the formats of :data:`crackkit.data.folder.IMAGE_EXTENSIONS`; alpha is
  dropped (not composited), grayscale is repeated to RGB for 3-channel models and RGB is converted
  to luminance (Pillow's ``L``) for 1-channel models.
* No resizing: the model runs at the image's own resolution. Each side is padded to the next
  multiple of 8 by **reflection** (the padding split between both ends), because the network
  normalises every feature map over the whole image and a zero border would shift those statistics
  and add artificial edges. The probability map is cropped back to the image's size; for
  ``segdecnet``, whose map has 1/8 resolution, it is first upsampled x8 by nearest neighbour (as
  the published ``SegDecNetOriginalJIM`` returns it). Images smaller than the smallest input the
  networks take (64x128 or 128x64) are padded up to it the same way.
  The model learnt cracks at the scale of its training images (``input_height`` x
  ``input_width``); resize images of a very different scale yourself before predicting.
* Images whose padded sizes agree are run together, ``batch_size`` at a time, under
  ``torch.inference_mode`` with the run's mixed-precision and channels-last settings. Images are
  not tiled: memory grows with image area times ``batch_size``, so lower ``batch_size`` (down to
  1) for very large images. On the CPU, every new image size costs a one-off setup of the
  convolution kernels; folders of equally sized images run fastest.

Output of :func:`predict_folder`, per image ``<stem>`` of the folder:

* ``<stem>_prob.png``: 8-bit probability map, ``round(255 * prob)`` (divide by 255 to read it);
* ``<stem>_mask.png``: binary mask at ``threshold_seg``, 0 or 255;
* ``<stem>_overlay.png``: the image, dimmed, with predicted crack pixels in red;
* ``predictions.csv``: one row per image with columns image, width, height, score, decision (0/1),
  crack_pixels, threshold_seg, threshold_dec; written last, once every image succeeded.

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

import datetime as _dt
import importlib
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
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
from crackkit.files import atomic_write_json, write_csv
from crackkit.inference import forward
from crackkit.model import OriginalWeightsError, load_original
from crackkit.report import error_overlay
from crackkit.run import RUN_FILES, Run, RunDirError
from crackkit.runtime import Placement, model_for
from crackkit.specs import smallest_input

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_THRESHOLD",
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
)


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


class Predictor:
    """A trained model with its validated thresholds, applied to images of any size.

    Build it with :meth:`from_run` or :meth:`from_checkpoint`. Attributes: ``model``, ``cfg``
    (the checkpoint's :class:`~crackkit.config.RunConfig`), ``device``, ``threshold_seg``,
    ``threshold_dec``, ``validated`` (whether both thresholds come from validation),
    ``checkpoint`` (its path, when loaded from a file) and ``epoch``. :meth:`from_onnx` runs an
    exported graph instead: ``session`` (onnxruntime's) is then set and ``model`` is None.
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

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, device: str | torch.device | None = "auto", batch_size: int = 8
    ) -> Predictor:
        """Load a checkpoint file; its configuration and validation results come with it.

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
    ) -> Predictor:
        """Weights saved by the authors' code (``model.state_dict()``), fed as the original fed.

        The original read images with OpenCV, so its networks expect BGR channel order, scaled
        by 1/255; the predictor flips RGB to BGR. ``height x width`` is the input size the
        weights were trained at (recorded; prediction runs at each image's own size). Without
        validation results the thresholds are the given ones (0.5 by default).

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
        return cls(
            model,
            cfg,
            placement,
            threshold_seg=threshold_seg,
            threshold_dec=threshold_dec,
            validated=False,
            batch_size=batch_size,
            checkpoint=path,
            channel_order="bgr" if in_channels == 3 else "rgb",
        )

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        *,
        checkpoint: str | Path | None = None,
        device: str | torch.device | None = "auto",
        batch_size: int = 8,
    ) -> Predictor:
        """Load a run's chosen checkpoint (or ``checkpoint``, when given).

        Raises:
            RunDirError: ``run_dir`` is no run folder.
            CheckpointError: the run holds no checkpoint, or it is damaged.
        """
        path = Path(checkpoint) if checkpoint is not None else Run.open(run_dir).checkpoint()
        return cls.from_checkpoint(path, device=device, batch_size=batch_size)

    @classmethod
    def from_onnx(
        cls, path: str | Path, *, device: str | torch.device | None = "auto", batch_size: int = 8
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
        )
        predictor.session = session
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
            ``(prob, score)``: prob (H, W) float32 in [0, 1]; score a float in [0, 1].
        """
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, float]]:
        """:meth:`predict_image` for several images; those of equal padded size run together.

        Returns:
            ``(prob (H, W) float32, score)`` per image, in the order given.
        """
        arrays = [_to_channels(im, self.input_channels) for im in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, arr in enumerate(arrays):
            groups.setdefault(_padded_shape(*arr.shape[:2]), []).append(i)
        out: list[tuple[np.ndarray, float] | None] = [None] * len(arrays)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                results = self._forward([arrays[i] for i in chunk])
                for i, result in zip(chunk, results, strict=True):
                    out[i] = result
        return out  # type: ignore[return-value]

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
    """What :func:`predict_folder` found in one image and where it wrote the outputs."""

    image: Path
    width: int
    height: int
    score: float
    decision: bool
    crack_pixels: int
    prob_path: Path
    mask_path: Path
    overlay_path: Path


@dataclass
class PredictReport:
    """Summary of :func:`predict_folder`: output folder, thresholds used, one result per image."""

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
            }
            for r in self.results
        ]


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
) -> PredictReport:
    """Predict every image of ``images_dir`` with a trained run and write the results.

    Args:
        images_dir: folder of images (any size, png/jpg/bmp/tif, grayscale/RGB/RGBA), or one image.
        run_dir: run folder; its chosen checkpoint is used unless ``checkpoint`` is given.
        out_dir: output folder, new or empty; default ``RUN_DIR/predictions/<name>-<timestamp>``
            (for a bare checkpoint, the ``predictions`` folder beside its run or itself).
        checkpoint: checkpoint file; enough on its own (``run_dir`` may then be None).
        device: ``auto`` or None (CUDA when present), ``cpu``, ``cuda`` or a ``torch.device``.
        batch_size: images of one padded size run together this many at a time.
        progress: show a tqdm progress bar.
        original_weights: a state dict saved by the authors' code instead of a crackkit run
            (with ``architecture`` and the ``input_size`` it was trained at); see
            :meth:`Predictor.from_original`.
        onnx: a graph written by :func:`crackkit.export.export_onnx`, run by onnxruntime
            (:meth:`Predictor.from_onnx`); with ``run_dir`` the results go under that run.

    Returns:
        A :class:`PredictReport`; the files are described in the module docstring.

    Raises:
        DatasetError: missing or empty folder, an unreadable image (named), duplicate stems.
        RunDirError: ``run_dir`` is no run folder, or ``out_dir`` exists and is not empty.
        CheckpointError: no checkpoint in the run, or a damaged one (or ONNX model).
        OnnxDependencyError: ``onnx`` is given and onnxruntime is not installed.
    """
    t0 = time.perf_counter()
    if run_dir is None and checkpoint is None and original_weights is None and onnx is None:
        raise ValueError("give a run folder, a checkpoint file, original weights or an ONNX model")
    if onnx is not None and (checkpoint is not None or original_weights is not None):
        raise ValueError("an ONNX model holds its weights: give it without checkpoint or weights")
    if original_weights is not None and architecture is None:
        raise ValueError("original weights need their architecture (segdecnet, ...)")
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
    sizes = {p: image_size(p) for p in paths}
    if onnx is not None:
        predictor = Predictor.from_onnx(onnx, device=device, batch_size=batch_size)
    elif original_weights is not None:
        predictor = Predictor.from_original(
            original_weights,
            architecture,
            height=input_size[0],
            width=input_size[1],
            device=device,
            batch_size=batch_size,
        )
    elif checkpoint is not None:
        predictor = Predictor.from_checkpoint(checkpoint, device=device, batch_size=batch_size)
    else:
        predictor = Predictor.from_run(run_path, device=device, batch_size=batch_size)
    name = Path(images_dir).resolve().stem if Path(images_dir).is_file() else None
    name = name or Path(images_dir).resolve().name or "images"
    out = _output_dir(out_dir, _default_base(run_path, predictor.checkpoint), name)

    groups: dict[tuple[int, int], list[Path]] = {}
    for p in paths:
        groups.setdefault(_padded_shape(*sizes[p]), []).append(p)
    by_path: dict[Path, ImageResult] = {}
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not progress) as bar:
        for group in groups.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                rgbs = [read_image(p, 3) for p in chunk]
                for p, rgb, (prob, score) in zip(
                    chunk, rgbs, predictor.predict_batch(rgbs), strict=True
                ):
                    by_path[p] = _write_outputs(predictor, out, p, rgb, prob, score)
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
    )
    write_csv(report.csv_path, report.rows())
    report.seconds = time.perf_counter() - t0
    atomic_write_json(
        out / "predict.json",
        {
            "weights": str(predictor.checkpoint) if predictor.checkpoint else None,
            "weights_kind": (
                "onnx"
                if onnx is not None
                else "original"
                if original_weights is not None
                else "crackkit"
            ),
            "architecture": predictor.cfg.architecture,
            "channel_order": predictor.channel_order,
            "input_scale": "1/255",
            "threshold_seg": predictor.threshold_seg,
            "threshold_dec": predictor.threshold_dec,
            "thresholds_validated": predictor.validated,
            "images": len(report.results),
            "seconds": report.seconds,
        },
    )
    return report


def _write_outputs(
    predictor: Predictor, out: Path, path: Path, rgb: np.ndarray, prob: np.ndarray, score: float
) -> ImageResult:
    mask = predictor.mask(prob)
    stem = path.stem
    prob_u8 = np.clip(np.rint(prob * 255.0), 0, 255).astype(np.uint8)
    return ImageResult(
        image=path,
        width=int(prob.shape[1]),
        height=int(prob.shape[0]),
        score=float(score),
        decision=predictor.decide(score),
        crack_pixels=int(mask.sum()),
        prob_path=_save_png(prob_u8, out / f"{stem}_prob.png"),
        mask_path=_save_png(mask.astype(np.uint8) * 255, out / f"{stem}_mask.png"),
        overlay_path=_save_png(_overlay(rgb, mask), out / f"{stem}_overlay.png"),
    )
