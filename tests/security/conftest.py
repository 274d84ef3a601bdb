"""Hostile inputs the security tests build themselves: a pickle that runs code, run folders made
by hand (random weights, no training)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crackkit.checkpoint import save_checkpoint
from crackkit.config import make_config, save_config
from crackkit.model import build_model
from crackkit.specs import CHECKPOINT_FORMAT


class _Payload:
    """Unpickled, it writes ``marker``: what a shared checkpoint could do to whoever loads it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _plant_payload(path: Path, marker: Path, cfg_dict: dict | None = None) -> Path:
    """Write ``path`` as a crackkit-looking checkpoint whose pickle runs code when loaded in full.

    The file is checked to be live: ``torch.load(weights_only=False)`` does write ``marker``
    (removed again), so a test that finds no marker shows that crackkit did not run it.
    """
    cfg_dict = cfg_dict or make_config(preset="tiny").to_dict()
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": {"weight": torch.zeros(2)},
        "config": cfg_dict,
        "epoch": 1,
        "best": {"score": 0.5, "epoch": 1, "metrics": None},
        "note": _Payload(marker),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned", "the payload must be live for the test to mean anything"
    marker.unlink()
    return path


def _make_run(folder: Path, *, amp: str = "off", seed: int = 0) -> Path:
    """A run folder by hand at the tiny preset: config.json and a validated best.pt (random
    weights, thresholds 0.45 / 0.6)."""
    cfg = make_config({"amp": amp}, preset="tiny")
    (folder / "checkpoints").mkdir(parents=True)
    save_config(cfg, folder / "config.json")
    torch.manual_seed(seed)
    model = build_model(cfg.architecture, 3, cfg.input_height, cfg.input_width)
    metrics = {"decision": {"threshold": 0.6}, "pixel_2px": {"threshold": 0.45}}
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "config": cfg.to_dict(),
        "epoch": 1,
        "best": {"score": 0.5, "epoch": 1, "metrics": metrics},
    }
    save_checkpoint(folder / "checkpoints" / "best.pt", state)
    unvalidated = {"score": -math.inf, "epoch": None, "metrics": None}
    save_checkpoint(folder / "checkpoints" / "last.pt", state | {"best": unvalidated})
    return folder


def _photo(path: Path, height: int = 64, width: int = 128, seed: int = 0) -> Path:
    """A noisy photo with a dark bar across it."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(90, 200, (height, width, 3), dtype=np.uint8)
    arr[height // 2 - 1 : height // 2 + 1] = 25
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    """Where a payload would write; the tests assert it never appears."""
    return tmp_path / "PWNED"


@pytest.fixture(scope="session")
def plant_payload():
    """``plant_payload(path, marker, cfg_dict=None)``: a live malicious checkpoint at ``path``."""
    return _plant_payload


@pytest.fixture(scope="session")
def make_run():
    """``make_run(folder, amp="off", seed=0)``: a run folder made by hand."""
    return _make_run


@pytest.fixture(scope="session")
def photo():
    """``photo(path, height=64, width=128, seed=0)``: a noisy photo with a dark bar."""
    return _photo
