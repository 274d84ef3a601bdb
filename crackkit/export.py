"""A trained run exported to ONNX: one self-describing graph file that runs without PyTorch.

Usage::

    from crackkit.export import export_onnx

    path = export_onnx("runs/20250101-120000-crack500", "model.onnx")  # or a Run

    crackkit export RUN_DIR --out model.onnx [--checkpoint PATH] [--overwrite]
    crackkit predict IMAGES_DIR --onnx model.onnx          # crackkit.predict, run by onnxruntime

Export and ONNX prediction need the ``onnx`` extra (``pip install 'crackkit[onnx]'``: onnx,
onnxscript, onnxruntime); without it they raise :class:`~crackkit.predict.OnnxDependencyError`
(an ``ImportError``) that says so.

The graph.

* Input ``image``: float32 ``(N, C, H, W)`` in [0, 1]: the uint8 image divided by 255, channels
  in RGB order (``C = 3``), or Pillow's ``L`` luminance for 1-channel runs, NCHW, exactly what
  :func:`crackkit.inference.to_input` feeds the network. ``N``, ``H`` and ``W`` are dynamic
  (named ``batch``, ``height``, ``width``); ``H`` and ``W`` must be multiples of 8, at least 64,
  with ``floor(H / 64) * floor(W / 64) >= 2`` (the smallest inputs are 64x128 and 128x64; see
  :mod:`crackkit.specs`). The graph does not check this: other sizes fail or give NaN. Pad other
  images by reflection and crop the outputs back, as :class:`crackkit.predict.Predictor` does.
* Output ``score``: ``(N,)`` float32, the sigmoid of the decision logit.
* Output ``prob``: ``(N, 1, H, W)`` float32, the sigmoid of the segmentation logits at the input
  size; ``segdecnet``'s 1/8 map is upsampled x8 by nearest neighbour inside the graph
  (:func:`crackkit.inference.full_resolution`).

How it is made. The run's chosen checkpoint (``best.pt`` or ``last.pt``, as the run is set, or
``checkpoint``) is loaded on the CPU in float32: no autocast, whatever the run's ``amp``; the 15x15
convolution direct instead of by FFT (:func:`crackkit.fftconv.set_fft_conv`); contiguous weights.
The model is traced by ``torch.export`` (non-strict) with a dynamic batch and sides ``8 * h``,
``8 * w``, and the program translated by ``torch.onnx.export``'s default exporter in torch 2.14,
the dynamo-based one (``dynamo=True``, onnxscript; default opset 20). The older TorchScript
exporter is not used: it is deprecated and was not needed.

One change makes the graph traceable at any batch size: :class:`crackkit.model.FeatureNorm`
normalises through one ``group_norm`` of ``N * C`` groups, and the group count is an integer the
exporter fixes to the example's batch. For export each FeatureNorm is replaced by the same
formula in element-wise operations (:class:`_TraceableFeatureNorm`); in float32 it differs from the
module by rounding only (some 1e-6 in the probabilities). Before the file is written, onnxruntime
runs it on two batches of random images, compared with :func:`crackkit.inference.forward` on the
loaded model (tolerance :data:`CHECK_TOLERANCE`).

Metadata (``metadata_props``, all strings; :data:`crackkit.predict.ONNX_METADATA_KEYS` are always
there):

* ``crackkit_export_format`` (``"1"``), ``crackkit_version``, ``exporter``, ``opset``;
* ``crackkit_config``: the checkpoint's run configuration as JSON; ``architecture``;
* ``checkpoint`` (its file name), ``checkpoint_epoch`` (empty when unknown);
* ``threshold_seg``, ``threshold_dec``: the thresholds validated at the checkpoint's epoch, as
  :meth:`crackkit.predict.Predictor.from_checkpoint` uses them (2-pixel F1 and decision F1), or
  0.5 where not validated; ``thresholds_validated`` (``"true"``/``"false"``: both validated) and
  ``thresholds_missing`` (``"segmentation"``, ``"decision"``, both, or empty);
* ``input`` (JSON: name, dtype, layout NCHW, channels, channel order, scale 1/255, range) and
  ``input_size_rule``; ``outputs`` (JSON description of ``score`` and ``prob``).

An existing output file is replaced only with ``overwrite=True`` (``--overwrite``); the file is
written atomically.
"""

from __future__ import annotations

import copy
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crackkit.checkpoint import CheckpointError, load_model, validation_thresholds
from crackkit.config import ConfigError
from crackkit.fftconv import set_fft_conv
from crackkit.files import atomic_write_bytes
from crackkit.inference import forward, full_resolution
from crackkit.model import FeatureNorm
from crackkit.predict import (
    DEFAULT_THRESHOLD,
    ONNX_EXTRA,
    ONNX_INPUT,
    ONNX_OUTPUTS,
    OnnxDependencyError,
    import_onnx,
)
from crackkit.run import Run
from crackkit.runtime import Placement
from crackkit.specs import DOWNSAMPLING

__all__ = [
    "CHECK_TOLERANCE",
    "EXPORT_FORMAT",
    "ExportError",
    "ONNX_EXTRA",
    "OnnxDependencyError",
    "export_onnx",
    "onnx_metadata",
]

#: Version of the graph's input, outputs and metadata.
EXPORT_FORMAT = "1"
#: Largest difference of a probability or score between onnxruntime and PyTorch at export.
CHECK_TOLERANCE = 1e-3
#: The smallest side of an input (one decision-head cell, 64 pixels).
MIN_SIDE = 64
INPUT_SIZE_RULE = (
    "H and W are multiples of 8, at least 64, and floor(H/64) * floor(W/64) >= 2 (the smallest "
    "inputs are 64x128 and 128x64); pad other images by reflection and crop the outputs back"
)


class ExportError(RuntimeError):
    """The graph cannot be exported or written as asked (e.g. the file exists)."""


class _TraceableFeatureNorm(nn.Module):
    """:class:`~crackkit.model.FeatureNorm`'s float32 function in element-wise operations.

    FeatureNorm's ``group_norm`` over ``N * C`` groups computes ``(x - mean) / sqrt(var + e0) *
    w + b`` per map, with ``w = scale * sqrt(var + e0) / sqrt(std + eps)``; so does this module,
    without a group count that depends on the batch. It shares the module's parameters.
    """

    def __init__(self, norm: FeatureNorm) -> None:
        super().__init__()
        self.scale = norm.scale
        self.bias = norm.bias
        self.eps = norm.eps
        self.e0 = norm._E0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-2] * x.shape[-1]
        var, mean = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
        std = torch.sqrt(var * (n / (n - 1)))
        weight = self.scale * torch.sqrt(var + self.e0) * torch.rsqrt(std + self.eps)
        return (x - mean) * torch.rsqrt(var + self.e0) * weight + self.bias


# The graph is float32, contiguous and direct: fixed, so loading the model measures nothing.
_EXPORT_SWITCHES = {"amp": "off", "channels_last": "off", "fft_conv": "off", "eval_batch_size": 1}


def _traceable(module: nn.Module) -> nn.Module:
    """Replace every FeatureNorm below ``module`` (in place) by :class:`_TraceableFeatureNorm`."""
    for name, child in list(module.named_children()):
        if isinstance(child, FeatureNorm):
            setattr(module, name, _TraceableFeatureNorm(child))
        else:
            _traceable(child)
    return module


class _Graph(nn.Module):
    """What the ONNX graph computes: float32 [0, 1] NCHW in, ``(score, prob)`` out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dec, seg = self.model(image)
        prob = torch.sigmoid(full_resolution(seg, (image.shape[-2], image.shape[-1])))
        return torch.sigmoid(dec[:, 0]), prob


def _crackkit_version() -> str:
    try:
        return version("crackkit")
    except PackageNotFoundError:
        return "unknown"


def _name_dims(proto: Any) -> None:
    """Call the input's dynamic dimensions batch, height, width (inputs and outputs alike).

    Raises:
        ExportError: the exporter fixed one of them to the example's value.
    """
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    names = {}
    for axis, label in ((0, "batch"), (2, "height"), (3, "width")):
        if not dims[axis].dim_param:
            raise ExportError(
                f"the exporter fixed the input's {label} to {dims[axis].dim_value}; the graph "
                "would take no other size"
            )
        names[dims[axis].dim_param] = label
    for info in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        for dim in info.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]


def _check(data: bytes, model: nn.Module, channels: int) -> float:
    """Run the serialised graph in onnxruntime against :func:`~crackkit.inference.forward`.

    Returns:
        The largest difference found (probabilities and scores).

    Raises:
        ExportError: a difference above :data:`CHECK_TOLERANCE`, or a graph onnxruntime refuses.
    """
    ort = import_onnx("onnxruntime")
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
        raise ExportError(f"onnxruntime cannot load the exported graph: {exc}") from None
    placement = Placement(torch.device("cpu"), None, False)
    rng = np.random.default_rng(0)
    worst = 0.0
    for shape in ((2, channels, MIN_SIDE, 2 * MIN_SIDE), (1, channels, 72, 136)):
        images = torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8))
        with torch.inference_mode():
            ref = forward(model, images, placement)
        x = images.numpy().astype(np.float32) / np.float32(255.0)
        score, prob = session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: x})
        if prob.shape != tuple(ref.probs.shape) or score.shape != tuple(ref.scores.shape):
            raise ExportError(
                f"the exported graph gives shapes {score.shape} and {prob.shape} for an input "
                f"of {shape}, PyTorch {tuple(ref.scores.shape)} and {tuple(ref.probs.shape)}"
            )
        diff = max(
            float(np.abs(prob - ref.probs.numpy()).max()),
            float(np.abs(score - ref.scores.numpy()).max()),
        )
        if not diff <= CHECK_TOLERANCE:
            raise ExportError(
                f"the exported graph differs from PyTorch by {diff:.3g} on an input of {shape} "
                f"(tolerance {CHECK_TOLERANCE})"
            )
        worst = max(worst, diff)
    return worst


def export_onnx(
    run: Run | str | Path,
    out_path: str | Path,
    *,
    checkpoint: str | Path | None = None,
    opset: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Export a run's chosen checkpoint (or ``checkpoint``) to an ONNX file at ``out_path``.

    Args:
        run: a :class:`~crackkit.run.Run` or its folder.
        out_path: the ``.onnx`` file to write (its folder is created).
        checkpoint: a checkpoint file instead of the run's chosen one.
        opset: ONNX opset; None: the exporter's default (20 in torch 2.14).
        overwrite: replace an existing file.

    Returns:
        The path written. See the module notes for the graph and its metadata.

    Raises:
        OnnxDependencyError: onnx, onnxscript or onnxruntime is missing (an ImportError).
        ExportError: ``out_path`` exists (without ``overwrite``) or is a folder, or the export
            failed or disagrees with PyTorch.
        RunDirError: ``run`` is no run folder.
        CheckpointError: no checkpoint, or a damaged one.
    """
    out = Path(out_path)
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give the file to write, e.g. {out / 'model.onnx'}")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    onnx = import_onnx("onnx")
    import_onnx("onnxscript")
    import_onnx("onnxruntime")
    run = run if isinstance(run, Run) else Run.open(run)
    path = run.checkpoint(checkpoint)
    try:
        model, cfg, state, _ = load_model(path, "cpu", inference=True, speed=dict(_EXPORT_SWITCHES))
    except ConfigError as exc:
        raise CheckpointError(
            f"checkpoint {path} records run parameters this crackkit cannot use: {exc}"
        ) from None
    set_fft_conv(model, False)
    model = model.float().to(memory_format=torch.contiguous_format).eval()
    graph = _Graph(_traceable(copy.deepcopy(model))).eval()

    channels = cfg.input_channels
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, channels, MIN_SIDE, 2 * MIN_SIDE, generator=generator)
    dims = {
        "image": {
            0: torch.export.Dim("batch", min=1),
            2: DOWNSAMPLING * torch.export.Dim("h", min=MIN_SIDE // DOWNSAMPLING),
            3: DOWNSAMPLING * torch.export.Dim("w", min=MIN_SIDE // DOWNSAMPLING),
        }
    }
    try:
        program = torch.export.export(graph, (example,), dynamic_shapes=dims, strict=False)
        onnx_program = torch.onnx.export(
            program,
            (example,),
            input_names=[ONNX_INPUT],
            output_names=list(ONNX_OUTPUTS),
            opset_version=opset,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    except ImportError as exc:
        raise OnnxDependencyError(f"{exc}; install the onnx extra: {ONNX_EXTRA}") from None
    except Exception as exc:  # noqa: BLE001 - torch.export and torch.onnx raise many types
        raise ExportError(f"torch.onnx cannot export {path}: {type(exc).__name__}: {exc}") from exc
    proto = onnx_program.model_proto
    _name_dims(proto)
    used_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)

    thresholds = validation_thresholds(state)
    seg, dec = thresholds["pixel_2px"], thresholds["decision"]
    missing = [n for n, v in (("segmentation", seg), ("decision", dec)) if v is None]
    epoch = state.get("epoch")
    upsampled = getattr(model, "output_stride", 1) != 1
    meta = {
        "crackkit_export_format": EXPORT_FORMAT,
        "crackkit_version": _crackkit_version(),
        "exporter": f"torch.onnx.export (dynamo=True) of torch.export, torch {torch.__version__}",
        "opset": str(used_opset),
        "crackkit_config": json.dumps(state["config"], sort_keys=True),
        "architecture": cfg.architecture,
        "checkpoint": path.name,
        "checkpoint_epoch": "" if epoch is None else str(int(epoch)),
        "threshold_seg": repr(float(DEFAULT_THRESHOLD if seg is None else seg)),
        "threshold_dec": repr(float(DEFAULT_THRESHOLD if dec is None else dec)),
        "thresholds_validated": "false" if missing else "true",
        "thresholds_missing": " and ".join(missing),
        "input": json.dumps(
            {
                "name": ONNX_INPUT,
                "dtype": "float32",
                "layout": "NCHW",
                "channels": channels,
                "channel_order": cfg.channel_order if channels == 3 else "rgb",
                "grayscale": "Pillow L luminance" if channels == 1 else None,
                "scale": "1/255",
                "range": [0.0, 1.0],
            }
        ),
        "input_size_rule": INPUT_SIZE_RULE,
        "outputs": json.dumps(
            {
                "score": "(N,) float32: sigmoid of the decision logit",
                "prob": "(N, 1, H, W) float32: sigmoid of the segmentation logits at the input "
                "size" + (" (the 1/8 map upsampled x8, nearest)" if upsampled else ""),
            }
        ),
    }
    onnx.helper.set_model_props(proto, meta)
    proto.doc_string = (
        f"crackkit {cfg.architecture} ({path.name}, epoch {epoch}): image float32 NCHW RGB/255 "
        "-> score (N,), prob (N, 1, H, W)"
    )
    data = proto.SerializeToString()
    _check(data, model, channels)
    return atomic_write_bytes(out, data)


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, e.g. one :func:`export_onnx` wrote.

    Raises:
        OnnxDependencyError: onnx is missing.
        CheckpointError: no such file.
    """
    onnx = import_onnx("onnx")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no ONNX model at {path}")
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
