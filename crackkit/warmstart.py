"""Starting weights for a new run (``init_weights``): a crackkit checkpoint or the original code's.

A warm start is not a resume: the run starts at epoch 1 with its own optimizer, schedule and
sampler, from the given weights instead of the initialisation. The file is read once, with
``torch.load(weights_only=True)`` (nothing in it is executed), hashed, and checked against the
run: the same architecture and number of input channels (a message names both when they differ)
and, for 3-channel weights, the same channel order (the original code was fed BGR). The input size
may differ: the networks are convolutions and global pooling, so their weights do not depend on it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crackkit.checkpoint import CheckpointError
from crackkit.config import RunConfig
from crackkit.model import OriginalWeightsError, convert_original_state_dict
from crackkit.specs import ARCHITECTURES

__all__ = ["InitWeights", "read_init_weights"]

#: The largest file taken as starting weights (the published networks are about 65 MB).
MAX_BYTES = 2 * 2**30


@dataclass(frozen=True)
class InitWeights:
    """Weights read for a warm start, as crackkit's state dict, and where they came from.

    Attributes:
        path: the file read.
        kind: ``"crackkit checkpoint"`` or ``"original state dict"``.
        sha256: the file's SHA-256.
        architecture, input_channels, channel_order: what the weights are for.
        source_input_size: the input size the weights were trained at, where the file says.
        epoch: the checkpoint's epoch, where the file says.
        state_dict: crackkit's parameter names.
    """

    path: Path
    kind: str
    sha256: str
    architecture: str
    input_channels: int
    channel_order: str
    state_dict: dict[str, torch.Tensor]
    source_input_size: tuple[int, int] | None = None
    epoch: int | None = None

    def record(self, given: str) -> dict[str, Any]:
        """What the run folder's ``init_weights.json`` keeps."""
        return {
            "given": given,
            "file": str(self.path),
            "sha256": self.sha256,
            "kind": self.kind,
            "architecture": self.architecture,
            "input_channels": self.input_channels,
            "channel_order": self.channel_order,
            "source_input_size": list(self.source_input_size) if self.source_input_size else None,
            "epoch": self.epoch,
        }

    def summary(self) -> str:
        size = (
            f", trained at {self.source_input_size[0]}x{self.source_input_size[1]}"
            if self.source_input_size
            else ""
        )
        epoch = f", epoch {self.epoch}" if self.epoch is not None else ""
        return (
            f"{self.path} ({self.kind}, {self.architecture}, {self.input_channels} channel(s) "
            f"{self.channel_order}{size}{epoch}; SHA-256 {self.sha256[:16]}...)"
        )


def read_init_weights(path: str | Path, cfg: RunConfig) -> InitWeights:
    """Read and check starting weights for ``cfg``'s network.

    Raises:
        CheckpointError: missing, too large or unreadable file, or weights for another
            architecture, number of input channels or channel order (the message names both).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"init_weights {path}: no such file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise CheckpointError(
            f"init_weights {path}: {size / 2**30:.1f} GB, larger than any SegDecNet weights "
            f"({MAX_BYTES / 2**30:.0f} GB at most)"
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure: not plain weights
        raise CheckpointError(
            f"init_weights {path}: not a file of plain weights that can be read safely "
            f"(torch.load with weights_only=True refused it: {str(exc).splitlines()[0]})"
        ) from None
    if isinstance(loaded, Mapping) and "model" in loaded and isinstance(loaded.get("config"), dict):
        out = _from_crackkit(path, digest, loaded)
    elif isinstance(loaded, Mapping):
        state = loaded.get("state_dict", loaded)
        if not isinstance(state, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise CheckpointError(
                f"init_weights {path}: neither a crackkit checkpoint nor a state dict"
            )
        out = _from_original(path, digest, state, cfg)
    else:
        raise CheckpointError(f"init_weights {path}: holds a {type(loaded).__name__}, not weights")
    _check_fits(out, cfg)
    return out


def _from_crackkit(path: Path, digest: str, loaded: Mapping[str, Any]) -> InitWeights:
    config = loaded["config"]
    height, width = config.get("input_height"), config.get("input_width")
    return InitWeights(
        path=path,
        kind="crackkit checkpoint",
        sha256=digest,
        architecture=str(config.get("architecture")),
        input_channels=int(config.get("input_channels", 3)),
        channel_order=str(config.get("channel_order", "rgb")),
        state_dict=dict(loaded["model"]),
        source_input_size=(int(height), int(width)) if height and width else None,
        epoch=loaded.get("epoch"),
    )


def _from_original(
    path: Path, digest: str, state: Mapping[str, torch.Tensor], cfg: RunConfig
) -> InitWeights:
    """An original state dict: converted for ``cfg``'s architecture, or, when it does not fit
    that one, named by the architecture it does fit."""
    fits, reason = {}, ""
    for arch in ARCHITECTURES:
        try:
            fits[arch] = convert_original_state_dict(state, arch)
        except OriginalWeightsError as exc:
            if arch == cfg.architecture:
                reason = str(exc)
    if cfg.architecture not in fits:
        other = ", ".join(fits) or "none of crackkit's architectures"
        raise CheckpointError(
            f"init_weights {path}: a state dict of the original code for {other}, but this "
            f"run's architecture is {cfg.architecture!r} ({reason})"
        )
    converted = fits[cfg.architecture]
    first = converted["encoder.stage1.0.0.weight"]
    return InitWeights(
        path=path,
        kind="original state dict",
        sha256=digest,
        architecture=cfg.architecture,
        input_channels=int(first.shape[1]),
        channel_order="bgr" if first.shape[1] == 3 else "rgb",
        state_dict=converted,
    )


def _check_fits(weights: InitWeights, cfg: RunConfig) -> None:
    problems = []
    if weights.architecture != cfg.architecture:
        problems.append(
            f"architecture: the weights are {weights.architecture!r}, this run's is "
            f"{cfg.architecture!r}"
        )
    if weights.input_channels != cfg.input_channels:
        problems.append(
            f"input channels: the weights take {weights.input_channels}, this run has "
            f"input_channels={cfg.input_channels}"
        )
    elif cfg.input_channels == 3 and weights.channel_order != cfg.channel_order:
        hint = " (the original code read images with OpenCV)" if "original" in weights.kind else ""
        problems.append(
            f"channel order: the weights were trained on {weights.channel_order.upper()} input"
            f"{hint}, this run feeds {cfg.channel_order.upper()}; set channel_order="
            f"{weights.channel_order}"
        )
    if problems:
        raise CheckpointError(
            f"init_weights {weights.path} does not fit this run: " + "; ".join(problems)
        )
