"""Checkpoint files: what a trained model is saved as, and what it says about its own epoch.

A checkpoint is a ``torch.save`` of a dict: ``format`` (:data:`crackkit.specs.CHECKPOINT_FORMAT`),
``model`` (the state dict, on the CPU), ``config`` (the run's :class:`~crackkit.config.RunConfig`
as a dict), ``epoch`` (1-based) and ``best`` (``{"score", "epoch", "metrics"}``: the best
validation so far, with that epoch's validation metrics). ``last.pt``, written at the end of each
epoch, also holds what resuming needs: ``optimizer``, ``scheduler``, ``sampler``, ``rng`` and
``history``. A run folder keeps them in ``checkpoints/`` (:class:`Checkpoints`).

Checkpoints come from outside (shared run folders, downloads), so they are read with
``torch.load(weights_only=True)``: tensors, numbers, strings and containers only, never a Python
object whose unpickling could run code. Everything crackkit writes is of those types
(:func:`plain_state`; NumPy's random state is kept as a tensor). A file that needs more, such as a
``last.pt`` of an earlier crackkit that kept NumPy's state as an array, is refused with the command
that converts it once its owner trusts it (:func:`convert_checkpoint`,
``crackkit checkpoint convert --trust FILE``).
"""

from __future__ import annotations

import io
import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crackkit.config import RunConfig, make_config
from crackkit.files import atomic_write_bytes
from crackkit.runtime import Placement, model_for
from crackkit.specs import CHECKPOINT_FORMAT

__all__ = [
    "RESUME_KEYS",
    "THRESHOLD_KEYS",
    "CheckpointError",
    "Checkpoints",
    "convert_checkpoint",
    "convert_command",
    "load_checkpoint",
    "load_model",
    "model_state",
    "plain_state",
    "save_checkpoint",
    "slim_metrics",
    "validation_thresholds",
]

#: What ``last.pt`` holds besides the model, so that a run continues exactly.
RESUME_KEYS = ("epoch", "optimizer", "sampler", "rng", "history", "best")
#: The metrics whose thresholds are chosen on the validation split, in metrics.json's order.
THRESHOLD_KEYS = ("decision", "pixel_2px", "dice", "iou")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or from another architecture."""


def convert_command(path: Path | str) -> str:
    """The command that converts a trusted checkpoint which needs more than tensors to load."""
    return f"crackkit checkpoint convert --trust {path}"


def plain_state(value: Any, where: str = "checkpoint") -> Any:
    """``value`` with NumPy arrays turned into tensors and NumPy scalars into Python numbers.

    What remains is what ``torch.load(weights_only=True)`` reads: tensors, numbers, strings,
    ``None`` and dicts, lists and tuples of them.

    Raises:
        CheckpointError: an object of another type; ``where`` names its place.
    """
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return value.item()
    if isinstance(value, torch.Tensor | str | bool | int | float | None):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise CheckpointError(f"{where} holds a NumPy array of {value.dtype}")
        wide = np.int64 if value.dtype.kind in "iu" else None
        return torch.from_numpy(np.array(value, dtype=wide if wide else value.dtype))
    if isinstance(value, dict):
        return type(value)((k, plain_state(v, f"{where}[{k!r}]")) for k, v in value.items())
    if isinstance(value, list | tuple):
        items = [plain_state(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise CheckpointError(f"{where} holds a {type(value).__module__}.{type(value).__name__}")


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write a checkpoint atomically: a crash leaves the previous file intact.

    The state goes through :func:`plain_state`, so :func:`load_checkpoint` reads it back with
    ``weights_only=True``.
    """
    buf = io.BytesIO()
    torch.save(plain_state(state), buf)
    return atomic_write_bytes(Path(path), buf.getvalue())


def _refused_global(exc: Exception) -> str | None:
    """The global a weights-only load refused (``posix.system``...), or None for another error."""
    found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", str(exc))
    return found.group(1) if found else None


def _torch_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``, its failures as one-line CheckpointErrors."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _refused_global(exc)
        if refused is None:
            raise CheckpointError(
                f"checkpoint {path} is damaged or not a crackkit checkpoint: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} was not loaded: it asks for the Python object {refused}, and "
            "crackkit reads checkpoints as tensors and plain values only, since unpickling an "
            "object can run code. If you trust where the file came from (e.g. a last.pt of an "
            "earlier crackkit, which kept NumPy's random state as an array), convert it once "
            f"with: {convert_command(path)}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other unpickling failure means a damaged file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} is damaged or not a crackkit checkpoint: {first}"
        ) from None


def load_checkpoint(path: Path, *, architecture: str | None = None) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with ``weights_only=True``.

    Raises:
        CheckpointError: missing or damaged file, one that holds Python objects other than
            tensors and plain values (the message gives :func:`convert_command`), or one made
            for another architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    state = _torch_load(path)
    _check_state(path, state)
    found = state["config"].get("architecture")
    if architecture is not None and found != architecture:
        raise CheckpointError(
            f"checkpoint {path} holds a {found!r} model, "
            f"but architecture {architecture!r} was asked"
        )
    return state


def _check_state(path: Path, state: Any) -> None:
    if (
        not isinstance(state, dict)
        or "model" not in state
        or not isinstance(state.get("config"), dict)
    ):
        raise CheckpointError(f"{path} is not a crackkit checkpoint (no model/config inside)")
    fmt = state.get("format", 1)
    if fmt != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {fmt}, this crackkit reads format {CHECKPOINT_FORMAT}. "
            + (
                "Format 1 (crackkit 0.1) predates the published networks: its FeatureNorm used "
                "sqrt(var + eps) instead of the published sqrt(std + eps), its decision head "
                "pooled with ceil instead of floor, and its 'segdecnet++' was crackkit's own "
                "decoder (bilinear upsampling, 3x3 convolutions, BatchNorm), not SegDecNet++. "
                "Its weights compute another function and are not loaded; retrain the run."
                if fmt == 1
                else "It was written by a newer crackkit; upgrade to read it."
            )
        )


def convert_checkpoint(
    path: Path | str, out: Path | str | None = None, *, trust: bool = False
) -> Path:
    """Rewrite a checkpoint its owner trusts so that :func:`load_checkpoint` reads it.

    The file is unpickled in full (``weights_only=False``), which runs whatever code it holds:
    only for a file whose origin you trust, hence ``trust``. NumPy arrays and scalars become
    tensors and Python numbers (:func:`plain_state`); the result is checked to load with
    ``weights_only=True`` before it is written.

    Args:
        path: the checkpoint.
        out: where to write the converted checkpoint; default ``path`` itself, the original
            then kept as ``<name>.orig`` beside it.
        trust: must be True: the caller vouches for the file.

    Returns:
        The path written.

    Raises:
        CheckpointError: ``trust`` not given, a missing or damaged file, an object that is no
            tensor, number, string or container, or a backup ``<name>.orig`` that exists.
    """
    path = Path(path)
    if not trust:
        raise CheckpointError(
            f"converting {path} unpickles it in full, which runs any code it holds; confirm that "
            f"you trust it: {convert_command(path)}"
        )
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} cannot be read: {first}") from None
    _check_state(path, state)
    state = plain_state(state, f"checkpoint {path}")
    if isinstance(state.get("rng"), dict) and isinstance(state["rng"].get("numpy"), tuple):
        state["rng"]["numpy"] = list(state["rng"]["numpy"])
    buf = io.BytesIO()
    torch.save(state, buf)
    try:
        torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} cannot be converted: it still needs "
            f"{_refused_global(exc) or 'an object that is not a tensor'}"
        ) from None
    target = path if out is None else Path(out)
    if target.resolve() == path.resolve():
        backup = path.with_name(path.name + ".orig")
        if backup.exists():
            raise CheckpointError(f"{backup} exists; move it away or give another output file")
        backup.write_bytes(path.read_bytes())
    return atomic_write_bytes(target, buf.getvalue())


def load_model(
    path: Path,
    device: torch.device | str | None = "cpu",
    *,
    inference: bool = False,
    amp: str | None = None,
    speed: dict[str, Any] | None = None,
) -> tuple[nn.Module, RunConfig, dict[str, Any], Placement]:
    """The device-ready model of a checkpoint file (:func:`crackkit.runtime.model_for`).

    ``amp`` (``"off"``, ``"bf16"``, ``"auto"``) replaces the run's own ``amp`` for this model,
    ``speed`` any speed switches (e.g. ``{"fft_conv": "off"}``: fixed values are not measured);
    the returned config is the checkpoint's.

    Returns:
        ``(model, config, checkpoint dict, placement)``.

    Raises:
        CheckpointError: missing or damaged file, or weights that do not fit the architecture
            its config names.
    """
    state = load_checkpoint(path)
    cfg = make_config(state["config"])
    try:
        switches = dict(speed or {}) | ({} if amp is None else {"amp": amp})
        model, placement = model_for(
            cfg.replace(**switches) if switches else cfg,
            device,
            inference=inference,
            state_dict=state["model"],
        )
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {path} does not fit a {cfg.architecture} model: {exc}"
        ) from None
    return model, cfg, state, placement


def model_state(model: nn.Module, cfg: RunConfig, epoch: int, best: dict) -> dict[str, Any]:
    """The checkpoint of ``model`` at the end of 1-based ``epoch`` (weights copied to the CPU)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": cfg.to_dict(),
        "epoch": epoch,
        "best": best,
    }


def slim_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Validation metrics without the curves, as checkpoints and history keep them."""
    return {k: v for k, v in metrics.items() if not k.endswith("_curve")} | {
        "decision": {k: v for k, v in metrics["decision"].items() if k != "curve"}
    }


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def validation_thresholds(state: dict[str, Any]) -> dict[str, float | None]:
    """The thresholds chosen on the validation split at a checkpoint's own epoch.

    ``{decision, pixel_2px, dice, iou}``: from ``best.pt``'s recorded validation metrics when the
    checkpoint is the best epoch, else from ``last.pt``'s history row of its epoch (the last
    epoch is always validated when the run validates). None where the epoch was not validated,
    where the validation split had no crack pixel (pixel metrics; history then holds 2px F1 0),
    or where an older checkpoint did not record them.
    """
    out: dict[str, float | None] = dict.fromkeys(THRESHOLD_KEYS)
    epoch = state.get("epoch")
    best = state.get("best") or {}
    recorded = best.get("metrics")
    if recorded and best.get("epoch") == epoch:
        for key in THRESHOLD_KEYS:
            out[key] = _float_or_none((recorded.get(key) or {}).get("threshold"))
        if out["pixel_2px"] is None:
            out["dice"] = out["iou"] = None
        return out
    for row in reversed(state.get("history") or []):
        if row.get("epoch") == epoch and row.get("val_dec_threshold") is not None:
            out["decision"] = _float_or_none(row.get("val_dec_threshold"))
            if row.get("val_f1_2px"):
                out["pixel_2px"] = _float_or_none(row.get("val_threshold_2px"))
                out["dice"] = _float_or_none(row.get("val_dice_threshold"))
                out["iou"] = _float_or_none(row.get("val_iou_threshold"))
            break
    return out


@dataclass(frozen=True)
class Checkpoints:
    """The ``checkpoints/`` folder of a run: ``last.pt`` and ``best.pt``."""

    folder: Path

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    @property
    def best(self) -> Path:
        return self.folder / "best.pt"

    def chosen(self, use_best_model: bool) -> Path:
        """``best.pt`` when the run uses the best model and has one, else ``last.pt``.

        Raises:
            CheckpointError: the folder holds no checkpoint.
        """
        if use_best_model and self.best.exists():
            return self.best
        if self.last.exists():
            return self.last
        raise CheckpointError(f"{self.folder.parent} holds no checkpoint; train it first")

    def save(self, name: str, state: dict[str, Any]) -> Path:
        """Write ``name`` (``"last"`` or ``"best"``) atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(self.folder / f"{name}.pt", state)
