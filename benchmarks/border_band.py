"""Where the band of false positives along the bottom border comes from (issue 25).

The probability maps of the ``synthetic`` preset's runs (``segdecnet++``, the published
initialisation) show, on crack-free images, a band of higher crack probability along the bottom
border. Two properties of the published network can act on one border and not the other:

* the decoder's crop: each of its three stages is a 5x5 transposed convolution with stride 2 and
  no padding, whose ``2h + 3`` output rows the original code fits to the skip's ``2h`` rows by
  padding with ``(d // 2, d - d // 2)`` for ``d = -3``, i.e. cropping 2 rows at the top and 1 at
  the bottom (2 columns left, 1 right). After that crop the first row misses one of its three
  taps, the last row one of its two and the row above it one of its three;
* the zero padding of every convolution (5x5, and 15x15 at 1/8), which is symmetric, but meets
  trained kernels that need not be: a kernel that weighs the rows below a pixel differently from
  those above reacts differently to the zeros under the last row than to those over the first.

This script takes a trained run's chosen checkpoint and the crack-free images of its test split
(as the network sees them, at the input size) and prints the share of false-positive pixels (at
the run's validated 2-pixel threshold) in the border rows and columns against the interior, for:

1. crackkit's network (float64, direct convolutions);
2. the original's function with the same weights: the functional forward written from the
   published definitions in ``tests/unit/test_model_fidelity.py`` (the oracle of crackkit's
   fidelity tests), fed the run's weights under the originals' key names;
3. that function on the images flipped upside down, its maps flipped back (a band that stays
   with the network's bottom rows moves to the top; one that follows the image content stays);
4. the crop's missing taps filled: each transposed convolution's input extended by one
   edge-replicated row and column on every side, the output cropped to the original alignment;
5. the crop moved to the other side (1 row at the top, 2 at the bottom);
6. every convolution padding by edge replication instead of zeros (the crop unchanged).

Run:

    .venv/bin/python benchmarks/border_band.py runs/<run>    # e.g. the run of `make report`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from crackkit.checkpoint import load_checkpoint, validation_thresholds
from crackkit.config import make_config
from crackkit.data.dataset import CrackDataset
from crackkit.model import build_model, original_key_shapes
from crackkit.pipeline import prepare
from crackkit.run import Run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import test_model_fidelity as published  # noqa: E402 - the fidelity tests' functional oracle
from _common import cpu_line  # noqa: E402

BAND = 8  # rows (columns) counted as the border: one cell of the 1/8 volume


def original_weights(model: torch.nn.Module, architecture: str) -> dict[str, torch.Tensor]:
    """crackkit's weights under the original code's key names (float64)."""
    from crackkit.model import _expected_mapping

    ours = model.state_dict()
    return {orig: ours[mine].double() for orig, mine in _expected_mapping(architecture).items()}


class FilledTaps:
    """``torch.nn.functional`` whose transposed convolution first extends its input by one
    edge-replicated row and column on every side, so that every output row and column of the
    original's crop gets all its taps. With :func:`crop_filled` the alignment is the original's
    (the output shifted by the 2 rows the extension adds)."""

    def __getattr__(self, name: str):
        return getattr(torch.nn.functional, name)

    @staticmethod
    def conv_transpose2d(x, weight, bias=None, stride=1):
        x = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
        return torch.nn.functional.conv_transpose2d(x, weight, bias, stride=stride)


def crop_filled(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The original's crop (start at row/column 2) moved by the 2 rows/columns of the extension."""
    return x[:, :, 4 : 4 + h, 4 : 4 + w]


def crop_other_side(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The original's fit with the two sides swapped: crop 1 row/column first, 2 last."""
    dy, dx = h - x.shape[2], w - x.shape[3]
    top, left = dy - dy // 2, dx - dx // 2
    return x[:, :, -top : x.shape[2] + dy // 2, -left : x.shape[3] + dx // 2]


class ReplicatePadding:
    """``torch.nn.functional`` whose padded convolutions pad by edge replication (where the map
    is larger than the padding; the decision head's last maps keep zeros)."""

    def __getattr__(self, name: str):
        return getattr(torch.nn.functional, name)

    @staticmethod
    def conv2d(x, weight, bias=None, padding=0, **kwargs):
        if padding and min(x.shape[-2:]) > padding:
            x = torch.nn.functional.pad(x, (padding,) * 4, mode="replicate")
            return torch.nn.functional.conv2d(x, weight, bias, **kwargs)
        return torch.nn.functional.conv2d(x, weight, bias, padding=padding, **kwargs)


def border_table(probs: np.ndarray, threshold: float) -> dict[str, float]:
    """The share of pixels at or above ``threshold`` (false positives: every image is
    crack-free) in the first/last BAND rows and columns and in the interior.

    Args:
        probs: (N, H, W) crack probabilities of crack-free images.
    """
    fp = probs >= threshold
    return {
        "top": float(fp[:, :BAND].mean()),
        "bottom": float(fp[:, -BAND:].mean()),
        "left": float(fp[:, :, :BAND].mean()),
        "right": float(fp[:, :, -BAND:].mean()),
        "interior": float(fp[:, BAND:-BAND, BAND:-BAND].mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a trained run folder (segdecnet-up or segdecnet++)")
    parser.add_argument("--checkpoint", help="default: the run's chosen checkpoint")
    parser.add_argument("--limit", type=int, default=1000, help="crack-free images used, at most")
    args = parser.parse_args(argv)
    print(cpu_line(), flush=True)

    run = Run.open(args.run)
    cfg = run.cfg
    if cfg.architecture == "segdecnet":
        raise SystemExit("segdecnet has no decoder (its map is 1/8, brought up x8)")
    state = load_checkpoint(run.checkpoint(args.checkpoint))
    cfg = make_config(state["config"])
    model = build_model(cfg.architecture, cfg.input_channels, cfg.input_height, cfg.input_width)
    model.load_state_dict(state["model"])
    model = model.double().eval()
    weights = original_weights(model, cfg.architecture)
    assert set(weights) == set(original_key_shapes(cfg.architecture, cfg.input_channels))

    prepared = prepare(cfg, progress=False)
    ds = CrackDataset(prepared.splits["test"], cfg, train=False)
    negatives = [i for i, lab in enumerate(ds.labels) if not lab][: args.limit]
    x = torch.stack([ds[i]["image"] for i in negatives]).double() / 255.0

    def published_forward(inputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(published.reference_forward(weights, inputs, cfg.architecture)[1])

    with torch.no_grad():
        ours = torch.sigmoid(model(x)[1])
        original = published_forward(x)
        flipped = published_forward(x.flip(-2)).flip(-2)
        saved = published.crop_or_pad, published.F
        try:
            published.crop_or_pad = crop_other_side
            moved = published_forward(x)
            published.crop_or_pad, published.F = crop_filled, FilledTaps()
            filled = published_forward(x)
            published.crop_or_pad, published.F = saved[0], ReplicatePadding()
            replicated = published_forward(x)
        finally:
            published.crop_or_pad, published.F = saved

    threshold = validation_thresholds(state)["pixel_2px"] or 0.5
    print(
        f"{run.path.name}: {cfg.architecture}, input {cfg.input_height}x{cfg.input_width}, "
        f"{checkpoint_name(run, args.checkpoint)} (epoch {state.get('epoch')}), "
        f"{len(negatives)} crack-free test images; share of pixels >= {threshold:.3f} (the "
        f"validated 2-pixel threshold), border = {BAND} px"
    )
    gap = float((ours - original).abs().max())
    print(f"crackkit vs the original's function, max |difference|: {gap:.2e}")
    rows = {
        "crackkit": ours,
        "original function, same weights": original,
        "original function, image flipped, map flipped back": flipped,
        "original function, border taps filled (same alignment)": filled,
        "original function, crop moved (1 top, 2 bottom)": moved,
        "original function, convolutions pad by replication": replicated,
    }
    keys = list(border_table(ours[:, 0].numpy(), threshold))
    print("| " + " | ".join(["forward", *keys]) + " |")
    print("|" + " --- |" * (len(keys) + 1))
    for name, probs in rows.items():
        table = border_table(probs[:, 0].numpy(), threshold)
        print("| " + " | ".join([name, *(f"{table[k]:.4f}" for k in keys)]) + " |")
    return 0


def checkpoint_name(run: Run, checkpoint: str | None) -> str:
    return Path(run.checkpoint(checkpoint)).name


if __name__ == "__main__":
    raise SystemExit(main())
