"""The seed fork's training behaviours, each on a worked example: augmentation probabilities,
the batch reduction, SGD without momentum, the decision target of the 1/8 network, the dilation of
evaluation masks, and the crack500 preset against the seed's table and parameter block."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
import torch

from crackkit.config import SEED_REPORT_ROWS, deviations, make_config
from crackkit.data.augment import HFLIP, NONE, ROT180, VFLIP, apply_draw, draw_augmentation
from crackkit.losses import SegDecLoss
from crackkit.original_log import parameter_block
from crackkit.train import build_optimizer

N_DRAWS = 20000


def _draws(mode: str, **kw) -> list:
    return [draw_augmentation(mode, np.random.default_rng([7, 0, i]), **kw) for i in range(N_DRAWS)]


def _freq(draws: list, value) -> float:
    return sum(1 for d in draws if d is not None and d.flip == value) / len(draws)


def _close(observed: float, p: float) -> bool:
    """Within 4.5 standard errors of a binomial proportion over N_DRAWS draws."""
    return abs(observed - p) <= 4.5 * (p * (1 - p) / N_DRAWS) ** 0.5


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        # P(identity) = 0.5 + 0.5 (0.9^3 + 0.1^3); H, V, R each 0.5 (0.1 * 0.9^2 + 0.9 * 0.1^2)
        ({"positive": True}, {NONE: 0.865, HFLIP: 0.045, VFLIP: 0.045, ROT180: 0.045}),
        ({"positive": False}, {NONE: 0.865, HFLIP: 0.045, VFLIP: 0.045, ROT180: 0.045}),
        ({"positive": True, "validation": True}, {NONE: 0.865, ROT180: 0.045}),
    ],
)
def test_fork_2022_02_augments_train_and_validation_at_0_1(kw, expected):
    draws = _draws("fork-2022-02", **kw)
    for flip, p in expected.items():
        assert _close(_freq(draws, flip), p), (flip, _freq(draws, flip))
    assert all(d.jitter is None and d.brightness == 0 for d in draws)


def test_fork_2022_04_augments_training_positives_at_0_5_with_colour_jitter():
    """Geometry unchanged with probability 0.5 + 0.5 * 2/8 = 0.625, H/V/R 0.125 each; the jitter
    with 0.25, its factors in torchvision's ranges; negatives and validation never."""
    draws = _draws("fork-2022-04", positive=True)
    for flip, p in {NONE: 0.625, HFLIP: 0.125, VFLIP: 0.125, ROT180: 0.125}.items():
        assert _close(_freq(draws, flip), p), (flip, _freq(draws, flip))
    jitters = [d.jitter for d in draws if d.jitter is not None]
    assert _close(len(jitters) / N_DRAWS, 0.25)
    for order, b, c, s, h in jitters:
        assert sorted(order) == [0, 1, 2, 3]
        assert 0.8 <= min(b, c, s) and max(b, c, s) <= 1.2 and -0.2 <= h <= 0.2
    for kw in ({"positive": False}, {"positive": True, "validation": True}):
        assert all(d.flip == NONE and d.jitter is None for d in _draws("fork-2022-04", **kw))


def test_crackkit_augmentation_is_unchanged():
    """crackkit's mode: each flip at 0.5, both (a rotation) at 0.25, on every training image."""
    counts = Counter(d.flip for d in _draws("crackkit", positive=False))
    for flip in (NONE, HFLIP, VFLIP, ROT180):
        assert _close(counts[flip] / N_DRAWS, 0.25)
    assert _draws("crackkit", positive=True, validation=True)[0] is None


def test_jitter_changes_the_image_only_and_geometry_moves_both():
    image = np.zeros((8, 10, 3), np.uint8)
    image[1, 2] = (200, 100, 50)
    mask = np.zeros((8, 10), bool)
    mask[1, 2] = True
    rng = np.random.default_rng(0)
    draw = next(
        d
        for d in (draw_augmentation("fork-2022-04", rng, positive=True) for _ in range(200))
        if d.jitter is not None and d.flip == ROT180
    )
    out_image, out_mask = apply_draw(draw, image, mask)
    assert out_mask[6, 7] and out_mask.sum() == 1
    assert out_image[6, 7].any() and not np.array_equal(out_image[6, 7], image[1, 2])


def test_sum_reduction_scales_the_loss_and_gradient_by_the_batch():
    """loss_reduction='sum': the original's summed sub-iterations, N times the batch mean; the
    logged mean is the same."""
    torch.manual_seed(0)
    dec, seg = torch.randn(3, 1), torch.randn(3, 1, 4, 4)
    labels, masks = torch.tensor([1.0, 0.0, 1.0]), (torch.rand(3, 1, 4, 4) > 0.7).float()
    grads = {}
    for reduction in ("mean", "sum"):
        s = seg.clone().requires_grad_()
        loss = SegDecLoss(epochs=4, delta=1.0, dynamic=True, reduction=reduction)
        out = loss(dec, s, labels, masks, epoch=2)
        out["loss"].backward()
        grads[reduction] = (out, s.grad)
    mean, total = grads["mean"][0], grads["sum"][0]
    assert float(total["loss"].detach()) == pytest.approx(
        3 * float(mean["loss"].detach()), rel=1e-6
    )
    assert float(total["loss_mean"]) == pytest.approx(float(mean["loss"]), rel=1e-6)
    torch.testing.assert_close(grads["sum"][1], 3 * grads["mean"][1])


def test_sgd_without_momentum_is_a_plain_gradient_step():
    """momentum 0: two steps of SGD move each weight by exactly -lr * gradient each time."""
    cfg = make_config({"optimizer": "sgd", "momentum": 0.0, "lr": 0.5})
    model = torch.nn.Linear(2, 1)
    opt = build_optimizer(cfg, model)
    for _ in range(2):
        before = model.weight.detach().clone()
        model.zero_grad()
        model(torch.tensor([[1.0, 2.0]])).sum().backward()
        grad = model.weight.grad.clone()
        opt.step()
        torch.testing.assert_close(model.weight.detach(), before - 0.5 * grad)
    assert "momentum" not in deviations(cfg)
    assert "momentum" in deviations(cfg.replace(momentum=0.9))


def test_decision_target_of_the_1_8_network_is_the_pooled_soft_mask_max():
    """A 1-px line along a 64x128 mask: the original's 17x17 average (stride 8, reflection
    padding 8) holds 17 of its 289 pixels, so the target is 17/289; labels stay for 'label', and
    an image-level positive's target stays 1."""
    masks = torch.zeros(2, 1, 64, 128)
    masks[0, 0, 20, :] = 1.0
    labels = torch.tensor([1.0, 1.0])
    seg = torch.zeros(2, 1, 8, 16)
    dec = torch.zeros(2, 1, requires_grad=True)
    loss = SegDecLoss(epochs=2, delta=1.0, dynamic=False, decision_target="mask_max")
    out = loss(dec, seg, labels, masks, epoch=0, segmented=torch.tensor([1.0, 0.0]))
    out["loss"].backward()
    # d/dz BCE(z=0, y) = 0.5 - y, averaged over the batch of 2, times the decision weight 1
    expected = torch.tensor([[(0.5 - 17 / 289) / 2], [(0.5 - 1.0) / 2]])
    torch.testing.assert_close(dec.grad, expected)


#: The seed report's run-parameter table, row by row (its spelling of "Gradien-flow" aside).
SEED_TABLE = {
    "Batch size": "1",
    "Epochs": "100",
    "Learning rate": "0.001",
    "Delta CLS Loss": "0.01",
    "Dilate": "1",
    "Dynamically balanced loss": "True",
    "Gradient-flow adjustment": "True",
    "Frequency-of-use sampling": "False",
    "Weighted segmentation loss": "False",
    "Use best model": "True",
    "Best model type": "seg",
    "Validate": "True",
    "Validate on test": "False",
    "Augmentation": "True",
    "Optimizer": "Adam",
    "Use negatives": "True",
}


def test_crack500_preset_resolves_to_the_seed_table():
    cfg = make_config(preset="crack500")
    shown = {
        name: {"adam": "Adam"}.get(getattr(cfg, f), str(getattr(cfg, f)))
        for name, f in SEED_REPORT_ROWS
    }
    assert shown == SEED_TABLE


#: The seed log's parameter block (crack500_run6_5.out), keys and values as printed there; the
#: machine's (DATASET_PATH, GPU, RESULTS_PATH) and the run's seeding are its own.
SEED_BLOCK = """
AUGMENTATION True; BATCH_SIZE 1; BEST_MODEL_TYPE seg; DATASET CRACK500;
DATASET_PATH ./datasets/CRACK500; DELTA_CLS_LOSS 0.01; DILATE 1; DYN_BALANCED_LOSS True;
EPOCHS 100; FOLD None; FREQUENCY_SAMPLING False; GPU 0; GRADIENT_ADJUSTMENT True;
INPUT_CHANNELS 3; INPUT_HEIGHT 360; INPUT_WIDTH 640; LEARNING_RATE 0.001; MEMORY_FIT 1;
NUM_SEGMENTED 1896; ON_DEMAND_READ False; OPTIMIZER adam; REPRODUCIBLE_RUN False;
RESULTS_PATH ./RESULTS; SAVE_IMAGES True; SCHEDULER None; TRAIN_NUM None; USE_BEST_MODEL True;
USE_NEGATIVES True; VALIDATE True; VALIDATE_ON_TEST False; VALIDATION_N_EPOCHS 5;
WEIGHTED_SEG_LOSS False; WEIGHTED_SEG_LOSS_MAX None; WEIGHTED_SEG_LOSS_P None
"""
MACHINE_KEYS = {"DATASET_PATH", "GPU", "RESULTS_PATH", "REPRODUCIBLE_RUN"}


def test_crack500_preset_prints_the_seed_parameter_block():
    """The fork's 35 keys in its order and format; every value but the machine's equals the
    seed log's."""
    seed = dict(item.split(" ", 1) for item in re.split(r";\s*", SEED_BLOCK.strip()))
    lines = parameter_block(
        make_config(preset="crack500"),
        dataset_name="CRACK500",
        dataset_path="data/processed/crack500",
        n_segmented=1896,
        results_path="runs",
    )
    assert [line[:25].rstrip() for line in lines] == sorted(seed, key=lambda k: f"{k}:")
    for line in lines:
        key, value = line[:25].rstrip(), line[28:]
        assert line[25:28] == " : "
        if key not in MACHINE_KEYS:
            assert value == seed[key], key
    assert deviations(make_config(preset="crack500")) == {}


def test_original_dilation_dilates_evaluation_masks_at_native_size(tmp_path):
    """dilate_mode='original': a 1-px line grows to 3 px in the test split's native mask, as the
    original evaluates; crackkit's mode leaves evaluation masks as drawn."""
    from crackkit.data.dataset import CrackDataset, load_splits
    from crackkit.data.folder import write_sample
    from crackkit.evaluate import native_mask

    for split in ("train", "val", "test"):
        image = np.full((64, 128, 3), 200, np.uint8)
        mask = np.zeros((64, 128), bool)
        mask[30, 10:100] = True
        write_sample(tmp_path, split, f"{split}0", image, mask, image_ext=".png")
    sample = load_splits(tmp_path)["test"][0]
    assert native_mask(sample).sum() == 90
    assert native_mask(sample, 3).sum() == 3 * 92
    cfg = make_config({"dataset": str(tmp_path), "input_height": 64, "input_width": 128})
    for mode, rows in (("train", 1), ("original", 3)):
        ds = CrackDataset([sample], cfg.replace(dilate=3, dilate_mode=mode), train=False)
        assert int(ds[0]["mask"][0].sum(dim=1).gt(0).sum()) == rows


def test_pictures_read_the_data_as_annotated(tmp_path) -> None:
    """A bgr run with dilate_mode 'original' is fed reversed channels and dilated masks;
    ``read(as_fed=False)`` (what plot_samples draws) gives RGB and the mask as drawn."""
    from crackkit.config import make_config
    from crackkit.data.dataset import CrackDataset
    from crackkit.data.folder import scan_split, write_sample

    image = np.zeros((64, 128, 3), np.uint8)
    image[..., 0] = 200  # red
    mask = np.zeros((64, 128), bool)
    mask[30, 10:26] = True
    write_sample(tmp_path, "train", "a", image, mask, image_ext=".png")
    samples = scan_split(tmp_path, "train", progress=False)
    cfg = make_config(
        {
            "input_height": 64,
            "input_width": 128,
            "channel_order": "bgr",
            "dilate": 3,
            "dilate_mode": "original",
        },
        preset="tiny",
    )
    ds = CrackDataset(samples, cfg, train=False)
    fed_image, fed_mask = ds.read(0)
    shown_image, shown_mask = ds.read(0, as_fed=False)
    assert fed_image[0, 0].tolist() == [0, 0, 200] and shown_image[0, 0].tolist() == [200, 0, 0]
    assert shown_mask.sum() == 16 and fed_mask.sum() > 16
