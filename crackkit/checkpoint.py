"""Checkpoint files: what a trained model is saved as, and what it says about its own epoch.

A checkpoint is a ``torch.save`` of a dict: ``format`` (:data:`crackkit.specs.CHECKPOINT_FORMAT`),
``model`` (the state dict, on the CPU), ``config`` (the run's :class:`~crackkit.config.RunConfig`
as a dict), ``epoch`` (1-based) and ``best`` (``{"score", "epoch", "metrics"}``: the best
validation so far, with that epoch's validation metrics). ``last.pt``, written at the end of each
epoch, also holds what resuming needs: ``optimizer``, ``scheduler``, ``sampler``, ``rng`` and
``history``. A run folder keeps them in ``checkpoints/`` (:class:`Checkpoints`).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    "load_checkpoint",
    "load_model",
    "model_state",
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


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write a checkpoint atomically: a crash leaves the previous file intact."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: Path, *, architecture: str | None = None) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: missing or damaged file, or one made for another architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise CheckpointError(
            f"checkpoint {path} is damaged or not a crackkit checkpoint: {exc}"
        ) from None
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
    found = state["config"].get("architecture")
    if architecture is not None and found != architecture:
        raise CheckpointError(
            f"checkpoint {path} holds a {found!r} model, "
            f"but architecture {architecture!r} was asked"
        )
    return state


def load_model(
    path: Path, device: torch.device | str | None = "cpu", *, inference: bool = False
) -> tuple[nn.Module, RunConfig, dict[str, Any], Placement]:
    """The device-ready model of a checkpoint file (:func:`crackkit.runtime.model_for`).

    Returns:
        ``(model, config, checkpoint dict, placement)``.

    Raises:
        CheckpointError: missing or damaged file, or weights that do not fit the architecture
            its config names.
    """
    state = load_checkpoint(path)
    cfg = make_config(state["config"])
    try:
        model, placement = model_for(cfg, device, inference=inference, state_dict=state["model"])
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
