"""An exponential moving average of a model's weights (the ``ema_decay`` run parameter).

Not in the published method: with ``ema_decay > 0`` validation, the best-model choice, the saved
checkpoints and everything downstream use the average, while the optimizer steps the weights as
usual. The decay is warmed up as ``min(decay, (1 + t) / (10 + t))`` at update ``t`` (the form of
the TensorFlow/timm EMA), so a short run is not dominated by the initial weights.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["WeightEMA", "ema_decay_at"]


def ema_decay_at(decay: float, step: int) -> float:
    """The decay used at 1-based update ``step``: ``min(decay, (1 + step) / (10 + step))``."""
    return min(float(decay), (1.0 + step) / (10.0 + step))


class WeightEMA:
    """``shadow = d·shadow + (1 - d)·weights`` after every optimizer step of ``source``.

    Floating-point parameters and buffers are averaged; other buffers are copied.

    Attributes:
        module: the averaged copy of ``source`` (no gradients), the model to evaluate.
        steps: updates so far.
    """

    def __init__(self, source: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.source = source
        self.decay = float(decay)
        self.module = copy.deepcopy(source)
        self.module.requires_grad_(False)
        self.steps = 0

    def _pairs(self):
        yield from zip(self.module.parameters(), self.source.parameters(), strict=True)
        yield from zip(self.module.buffers(), self.source.buffers(), strict=True)

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        d = ema_decay_at(self.decay, self.steps)
        for shadow, value in self._pairs():
            if shadow.dtype.is_floating_point:
                shadow.lerp_(value.detach(), 1.0 - d)
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load(self, weights: dict[str, torch.Tensor], steps: int) -> None:
        """Restore the average (a checkpoint's ``model``) and its update count."""
        self.module.load_state_dict(weights)
        self.steps = int(steps)
