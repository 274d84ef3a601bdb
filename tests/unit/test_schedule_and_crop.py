"""The CPU-minute recipe's switches: the cosine learning-rate schedule and random training crops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crackkit.config import ConfigError, deviations, make_config
from crackkit.data.dataset import CrackDataset, load_splits
from crackkit.data.folder import write_sample
from crackkit.train import build_scheduler, lr_factor

# ---------------------------------------------------------------------------------------------
# The schedule, hand-computed: 10 steps, warm-up 0.2 (2 steps), then a half cosine over 8 steps.

COSINE_10_STEPS_WARMUP_02 = [
    (0, 0.5),
    (1, 1.0),
    (2, 1.0),
    (4, 0.5 * (1 + math.cos(math.pi * 2 / 8))),
    (6, 0.5),
    (9, 0.5 * (1 + math.cos(math.pi * 7 / 8))),
    (10, 0.0),
]


@pytest.mark.parametrize(("step", "factor"), COSINE_10_STEPS_WARMUP_02)
def test_lr_factor_warms_up_then_follows_a_half_cosine_to_zero(step, factor):
    assert lr_factor(step, 10, 0.2) == pytest.approx(factor, abs=1e-12)


def test_lr_factor_without_warm_up_starts_at_the_full_rate():
    assert lr_factor(0, 100, 0.0) == 1.0
    assert lr_factor(50, 100, 0.0) == pytest.approx(0.5)


def _lrs(cfg, steps_per_epoch):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=cfg.lr)
    scheduler = build_scheduler(cfg, optimizer, steps_per_epoch=steps_per_epoch)
    lrs = []
    for _ in range(cfg.epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None and getattr(scheduler, "per_step", False):
            scheduler.step()
    return scheduler, lrs


def test_cosine_schedule_is_stepped_per_batch_over_the_whole_run():
    cfg = make_config({"lr": 0.01, "epochs": 2, "lr_schedule": "cosine", "lr_warmup": 0.2})
    scheduler, lrs = _lrs(cfg, steps_per_epoch=5)
    assert scheduler.per_step
    expected = dict(COSINE_10_STEPS_WARMUP_02)
    for step in (0, 1, 2, 4, 6, 9):
        assert lrs[step] == pytest.approx(0.01 * expected[step])
    assert lrs[0] == pytest.approx(0.005)
    assert lrs[6] == pytest.approx(0.005)
    assert max(lrs) == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))


def test_constant_schedule_keeps_the_original_behaviour():
    cfg = make_config({"lr": 0.01, "epochs": 2})
    scheduler, lrs = _lrs(cfg, steps_per_epoch=5)
    assert scheduler is None
    assert lrs == [0.01] * 10
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    step = build_scheduler(make_config({"scheduler_step": 3}), optimizer, steps_per_epoch=5)
    assert isinstance(step, torch.optim.lr_scheduler.StepLR)
    assert not getattr(step, "per_step", False)


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"lr_schedule": "cosine", "scheduler_step": 5}, ("lr_schedule", "scheduler_step")),
        ({"lr_warmup": 0.1}, ("lr_warmup", "cosine")),
        ({"lr_schedule": "cosine", "lr_warmup": 0.6}, ("lr_warmup",)),
        ({"train_crop_height": 64}, ("train_crop_height", "train_crop_width")),
        ({"train_crop_height": 200, "train_crop_width": 160}, ("200x160", "96x160")),
        ({"train_crop_height": 60, "train_crop_width": 128}, ("train crop", "multiples of 8")),
        ({"train_crop_height": 64, "train_crop_width": 64}, ("train crop", "2 cells")),
    ],
)
def test_bad_schedule_or_crop_names_the_parameters(params, names):
    with pytest.raises(ConfigError) as err:
        make_config(params)
    for name in names:
        assert name in str(err.value)


def test_schedule_and_crop_are_named_deviations_the_seed_presets_keep_off():
    cfg = make_config({"lr_schedule": "cosine", "train_crop_height": 64, "train_crop_width": 128})
    assert {"lr_schedule", "train_crop_height"} <= set(deviations(cfg))
    for preset in ("crack500", "synthetic"):
        cfg = make_config(preset=preset)
        assert (cfg.lr_schedule, cfg.lr_warmup) == ("constant", 0.0)
        assert (cfg.train_crop_height, cfg.train_crop_width) == (0, 0)


# ---------------------------------------------------------------------------------------------
# Crops


@pytest.fixture
def folder(tmp_path):
    """One 128x128 training image: a crack confined to the top-left 16x16 corner, every pixel
    of the image its own value (so a crop's position can be read back from its pixels)."""
    yy, xx = np.mgrid[0:128, 0:128]
    image = np.stack([yy, xx, np.zeros_like(yy)], -1).astype(np.uint8)
    mask = np.zeros((128, 128), bool)
    mask[4:12, 4:12] = True
    for split in ("train", "val", "test"):
        write_sample(tmp_path, split, f"{split}0", image, mask, image_ext=".png")
    return tmp_path


def _crop_cfg(folder, **kw):
    base = {
        "dataset": str(folder),
        "input_height": 128,
        "input_width": 128,
        "train_crop_height": 64,
        "train_crop_width": 128,
        "augmentation": False,
    }
    return make_config(base | kw)


def test_a_crop_is_a_window_of_the_image_and_mask_labelled_by_its_crack_pixels(folder):
    cfg = _crop_cfg(folder)
    ds = CrackDataset(load_splits(folder)["train"], cfg, train=True)
    image, mask = ds.read(0)
    tops = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        top, left, h, w = ds.crop_window(0)
        item = ds[0]
        assert (h, w) == (64, 128) and left == 0 and 0 <= top <= 64
        assert tuple(item["image"].shape) == (3, 64, 128)
        # the pixels are those of rows top..top+63 of the whole image
        assert int(item["image"][0, 0, 0]) == top
        np.testing.assert_array_equal(item["mask"][0].numpy() > 0.5, mask[top : top + 64])
        assert float(item["label"]) == float(top < 12)
        tops.add(top)
    assert len(tops) > 6  # the window moves from epoch to epoch


def test_crops_are_drawn_from_seed_epoch_and_index(folder):
    cfg = _crop_cfg(folder)
    a = CrackDataset(load_splits(folder)["train"], cfg, train=True)
    b = CrackDataset(load_splits(folder)["train"], cfg, train=True)
    a.set_epoch(5)
    b.set_epoch(5)
    assert a.crop_window(0) == b.crop_window(0)
    other = CrackDataset(load_splits(folder)["train"], cfg.replace(seed=1), train=True)
    windows = set()
    for epoch in range(8):
        a.set_epoch(epoch)
        other.set_epoch(epoch)
        windows.add((a.crop_window(0), other.crop_window(0)))
    assert any(x != y for x, y in windows)


def test_evaluation_and_uncropped_training_see_the_whole_input(folder):
    splits = load_splits(folder)
    cfg = _crop_cfg(folder)
    assert CrackDataset(splits["val"], cfg, train=False).crop_window(0) is None
    assert tuple(CrackDataset(splits["val"], cfg, train=False)[0]["image"].shape) == (3, 128, 128)
    whole = cfg.replace(train_crop_height=0, train_crop_width=0)
    assert CrackDataset(splits["train"], whole, train=True).crop_window(0) is None
    item = CrackDataset(splits["train"], whole, train=True)[0]
    assert tuple(item["image"].shape) == (3, 128, 128)
