"""Runs as the seed's fork ran: its log lines and snapshots, and training from given weights
(``init_weights``) of each source, with the refusals that name both sides.

The runs train 4 tiny images of 64x128 (the ``tiny`` preset) for one epoch on the CPU.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from crackkit.checkpoint import CheckpointError, load_checkpoint
from crackkit.config import make_config
from crackkit.data.folder import write_sample
from crackkit.model import original_key_shapes
from crackkit.pipeline import train_run

PARAMS = {"epochs": 1, "validation_every": 1, "batch_size": 2, "snapshot_every": 1}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("orig") / "cracks"
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for i in range(4):
            image = rng.integers(150, 220, (64, 128, 3), dtype=np.uint8)
            mask = np.zeros((64, 128), bool)
            if i < 3:
                mask[10 + 8 * i : 12 + 8 * i, 5:100] = True
                image[mask] = 40
            write_sample(root, split, f"{split}{i}", image, mask, image_ext=".png")
    return root


def config(folder: Path, **changes):
    return make_config({"dataset": str(folder), **PARAMS, **changes}, preset="tiny")


@pytest.fixture(scope="module")
def source_run(folder, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("source") / "run"
    train_run(config(folder), run_dir, progress=False)
    return run_dir


def test_the_log_reads_as_the_seed_log(source_run):
    """The fork's parameter block, data set lines, weights, Epoch, learning rate and
    validation lines (trapezoidal AP, FP/FN, best 2-pixel F1), and the ep_XX snapshots."""
    log = (source_run / "run.log").read_text()
    for text in (
        "AUGMENTATION              : True",
        "NUM_SEGMENTED             : 3",
        "TRAIN: Number of positives: 3, Number of negatives: 1, Sum: 4",
        "VAL: Number of positives: 3, Number of negatives: 1, Sum: 4",
        "Returning seg_loss_weight 1.0 and dec_loss_weight 1.0",  # dyn_balanced_loss off
        "Returning dec_gradient_multiplier 0",
        "Epoch 1/1 ==> avg_loss_seg=",
        "Last computing learning rate by optimizer: 0.001",
        "VALIDATION on VAL set || AUC=",
        "Validation metrics on VAL set. 2 pixel distance used. Threshold step: 0.005",
        "Best F1: ",
        "New best model based on seg metrics.",
        "Saving current model state to ",
    ):
        assert text in log, text
    assert "FP=" in log and "FN=" in log and "TOTAL SAMPLES=4" in log
    assert (source_run / "checkpoints" / "ep_00.pt").is_file()
    assert "fwd/bck in" in log


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("source", ["run folder", "checkpoint"])
def test_init_weights_from_crackkit(folder, source_run, tmp_path, source):
    """A run folder stands for its chosen checkpoint; the new run starts from exactly those
    weights at another input size, records path and SHA-256, and skips the prior init."""
    given = source_run if source == "run folder" else source_run / "checkpoints" / "best.pt"
    chosen = source_run / "checkpoints" / "best.pt" if source == "run folder" else given
    run_dir = tmp_path / "warm"
    cfg = config(folder, init_weights=str(given), input_height=128, input_width=192)
    train_run(cfg, run_dir, progress=False)
    assert _same(_weights(run_dir / "checkpoints" / "ep_00.pt"), _weights(chosen))
    record = json.loads((run_dir / "init_weights.json").read_text())
    assert record["file"] == str(chosen)
    assert record["sha256"] == hashlib.sha256(chosen.read_bytes()).hexdigest()
    assert record["source_input_size"] == [64, 128] and record["kind"] == "crackkit checkpoint"
    log = (run_dir / "run.log").read_text()
    assert "Initial weights:" in log and "Segmentation prior: skipped, the loaded weights" in log


def _original_state(architecture: str, in_channels: int = 3) -> dict[str, torch.Tensor]:
    """Random weights under the original code's parameter names (as its state_dict saves)."""
    gen = torch.Generator().manual_seed(1)
    return {
        k: torch.randn(shape, generator=gen) * 0.05
        for k, shape in original_key_shapes(architecture, in_channels).items()
    }


def test_init_weights_from_an_original_state_dict(folder, tmp_path):
    """The original code's names are converted; the run must be fed BGR, as the original was."""
    path = tmp_path / "best_state_dict.pth"
    state = _original_state("segdecnet++")
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="channel order: the weights were trained on BGR"):
        train_run(config(folder, init_weights=str(path)), tmp_path / "rgb", progress=False)
    run_dir = tmp_path / "bgr"
    train_run(config(folder, init_weights=str(path), channel_order="bgr"), run_dir, progress=False)
    start = _weights(run_dir / "checkpoints" / "ep_00.pt")
    assert torch.equal(
        start["encoder.stage1.0.0.weight"], state["volume1.downsample.conv_block_1.0.weight"]
    )
    assert json.loads((run_dir / "init_weights.json").read_text())["kind"] == "original state dict"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"architecture": "segdecnet"},
            "architecture: the weights are 'segdecnet++', this run's is 'segdecnet'",
        ),
        (
            {"input_channels": 1},
            "input channels: the weights take 3, this run has input_channels=1",
        ),
        ({"channel_order": "bgr"}, "channel order: the weights were trained on RGB input"),
    ],
)
def test_unfit_weights_are_refused_naming_both(folder, source_run, tmp_path, changes, message):
    cfg = config(folder, init_weights=str(source_run / "checkpoints" / "best.pt"), **changes)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        train_run(cfg, tmp_path / "run", progress=False)


def test_an_original_state_dict_of_another_network_is_named(folder, tmp_path):
    path = tmp_path / "w.pth"
    torch.save(_original_state("segdecnet"), path)
    cfg = config(folder, init_weights=str(path), channel_order="bgr")
    with pytest.raises(
        CheckpointError,
        match="original code for segdecnet, but this run's architecture is 'segdecnet\\+\\+'",
    ):
        train_run(cfg, tmp_path / "run", progress=False)


class _Payload:
    def __reduce__(self):
        import os

        return (os.mkdir, ("/tmp/crackkit-init-weights-payload-ran",))


def test_a_pickle_payload_is_never_executed(folder, tmp_path):
    marker = Path("/tmp/crackkit-init-weights-payload-ran")
    if marker.exists():
        marker.rmdir()
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload(), "config": {}}, path)
    with pytest.raises(CheckpointError, match="weights_only=True refused it"):
        train_run(config(folder, init_weights=str(path)), tmp_path / "run", progress=False)
    assert not marker.exists()


class _Darkness(torch.nn.Module):
    """A flip-equivariant stand-in network: the darker a pixel, the higher its crack logit."""

    output_stride = 1

    def forward(self, x):
        seg = (0.5 - x.mean(dim=1, keepdim=True)) * 20.0
        return seg.amax(dim=(2, 3)), seg


def test_augmented_validation_is_counted_in_the_mask_frame(folder):
    """fork-2022-02 augments validation images; the evaluation flips each map back, so a
    flip-equivariant network scores the same pixels as without augmentation."""
    from crackkit.data.dataset import CrackDataset, load_splits
    from crackkit.evaluate import count_split

    cfg = config(folder, augmentation_mode="fork-2022-02")
    val = load_splits(folder)["val"]
    plain = count_split(_Darkness(), CrackDataset(val, cfg, train=False), torch.device("cpu"))
    flips = set()
    for epoch in range(12):
        ds = CrackDataset(val, cfg, train=False, augment=True)
        ds.set_epoch(epoch)
        flips |= {int(ds[i]["flip"]) for i in range(len(ds))}
        counted = count_split(_Darkness(), ds, torch.device("cpu"))
        np.testing.assert_array_equal(counted.counts.tp, plain.counts.tp)
        np.testing.assert_array_equal(counted.counts.fp, plain.counts.fp)
    assert len(flips) > 1, "no validation image was flipped in 12 epochs"
