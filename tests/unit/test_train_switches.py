"""Training switches that live in the dataset and the loop: their effects, not their presence."""

from __future__ import annotations

import numpy as np
import pytest

from crackkit.checkpoint import Checkpoints
from crackkit.config import make_config
from crackkit.data.dataset import CrackDataset, load_splits
from crackkit.data.folder import write_sample
from crackkit.train import selection_score, train


def _bar_image(h=64, w=128, row=10):
    """An image with a dark horizontal bar in its top half, and the bar's mask."""
    image = np.full((h, w, 3), 200, np.uint8)
    mask = np.zeros((h, w), bool)
    mask[row : row + 2, 5:40] = True
    image[mask] = 30
    image[:, :3] = (255, 0, 0)  # a red left edge shows horizontal flips
    return image, mask


@pytest.fixture
def folder(tmp_path):
    """A tiny data set: 4 crack images and 2 crack-free ones per split."""
    for split in ("train", "val", "test"):
        for i in range(6):
            image, mask = _bar_image(row=4 + 3 * i)
            if i >= 4:
                mask[:] = False
                image[:] = 190
            write_sample(tmp_path, split, f"{split}{i}", image, mask, image_ext=".png")
    return tmp_path


def _cfg(folder, **kw):
    base = dict(dataset=str(folder), augmentation=False, epochs=2, validation_every=1)
    return make_config(base | kw, preset="tiny")


def test_augmentation_moves_image_and_mask_together(folder):
    """Every augmented sample keeps the mask on the dark bar, whatever flips were drawn."""
    cfg = _cfg(folder, augmentation=True)
    ds = CrackDataset(load_splits(folder)["train"], cfg, train=True)
    flips = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(4):
            item = ds[i]
            img = item["image"].numpy().astype(int)
            mask = item["mask"][0].numpy() > 0.5
            assert img[0][mask].mean() < img[0][~mask].mean() - 50
            flips.add(
                (
                    bool(img[0, :, -1].mean() > img[1, :, -1].mean() + 100),
                    int(np.flatnonzero(mask.any(axis=1))[0]),
                )
            )
    assert len(flips) > 2, "augmentation never changed the geometry"


def test_no_augmentation_and_eval_samples_are_unchanged(folder):
    """Without augmentation (and always for evaluation) samples are the files as stored."""
    splits = load_splits(folder)
    for cfg, is_train in [(_cfg(folder), True), (_cfg(folder, augmentation=True), False)]:
        ds = CrackDataset(splits["train"], cfg, train=is_train)
        image, mask = _bar_image(row=4)
        assert np.array_equal(ds[0]["image"].numpy().transpose(1, 2, 0), image)
        assert np.array_equal(ds[0]["mask"][0].numpy() > 0.5, mask)


def test_dilate_widens_training_masks_only(folder):
    """dilate=3 grows the training mask by one pixel each side; evaluation keeps the annotation."""
    splits = load_splits(folder)
    cfg = _cfg(folder, dilate=3)
    train_mask = CrackDataset(splits["train"], cfg, train=True)[0]["mask"][0].numpy() > 0.5
    eval_mask = CrackDataset(splits["train"], cfg, train=False)[0]["mask"][0].numpy() > 0.5
    assert eval_mask.sum() == 2 * 35
    assert train_mask.sum() == 4 * 37
    assert train_mask[eval_mask].all()


def test_weighted_loss_adds_weights(folder):
    """weighted_seg_loss serves per-pixel weights: 1 on background, other values on cracks."""
    cfg = _cfg(folder, weighted_seg_loss=True, weighted_seg_loss_max=3.0)
    item = CrackDataset(load_splits(folder)["train"], cfg, train=True)[0]
    w, m = item["weight"][0].numpy(), item["mask"][0].numpy() > 0.5
    assert np.all(w[~m] == 1.0) and w[m].max() == pytest.approx(3.0)


@pytest.mark.parametrize(("kind", "expected"), [("seg", 0.8), ("dec", 0.6), ("both", 0.7)])
def test_selection_score_follows_best_model_type(kind, expected):
    """best_model_type picks 2-pixel F1, decision F1 or their mean."""
    metrics = {"pixel_2px": {"f1": 0.8}, "decision": {"f1": 0.6}}
    assert selection_score(make_config({"best_model_type": kind}), metrics) == pytest.approx(
        expected
    )


def _train(cfg, splits, folder):
    return train(
        cfg,
        splits,
        Checkpoints(folder / "checkpoints"),
        history_path=folder / "history.csv",
        progress=False,
        log=lambda _: None,
    )


def test_validation_every_and_validate_on_test(folder, tmp_path):
    """Validation runs as the original's: after epoch 1, every N-th epoch after it and the last
    (0-based epoch % N == 0); validate_on_test validates on test."""
    splits = load_splits(folder)
    splits["test"] = splits["test"][:3]
    cfg = _cfg(folder, epochs=4, validation_every=2, validate_on_test=True)
    result = _train(cfg, splits, tmp_path / "run")
    validated = [r["epoch"] for r in result.history if r.get("val_f1_2px") is not None]
    assert validated == [1, 3, 4]
    assert all(r["val_loss"] is not None for r in result.history if r["epoch"] in validated)


def test_no_validation_uses_last_model(folder, tmp_path):
    """validate=False trains without validation and keeps the last model, with no best.pt."""
    cfg = _cfg(folder, validate=False, epochs=1)
    result = _train(cfg, load_splits(folder), tmp_path / "run")
    assert result.checkpoint.name == "last.pt"
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()


def test_negatives_dir_adds_crack_free_images(folder, tmp_path):
    """negatives_dir/<split>/ images join that split as negatives with all-zero masks."""
    extra = tmp_path / "negatives"
    (extra / "train").mkdir(parents=True)
    for i in range(3):
        write_img = np.full((32, 48, 3), 90 + i, np.uint8)
        from PIL import Image

        Image.fromarray(write_img).save(extra / "train" / f"clean{i}.png")
    splits = load_splits(folder, negatives_dir=extra)
    added = [s for s in splits["train"] if s.image.parent == extra / "train"]
    assert len(added) == 3 and all(s.positive is False and s.mask is None for s in added)
    assert len(splits["val"]) == 6
    ds = CrackDataset(splits["train"], _cfg(folder), train=False)
    assert ds[len(ds) - 1]["mask"].sum() == 0 and ds.labels.count(False) == 2 + 3


def test_negatives_dir_errors_name_the_folder(folder, tmp_path):
    """A missing or empty negatives_dir is refused with its path named."""
    from crackkit.data.folder import DatasetError

    with pytest.raises(DatasetError, match="negatives_dir .*nowhere: folder not found"):
        load_splits(folder, negatives_dir=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no train/, val/ or test/ folder inside"):
        load_splits(folder, negatives_dir=tmp_path / "empty")
