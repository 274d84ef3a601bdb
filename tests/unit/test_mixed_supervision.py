"""Mixed supervision: the loss per sample as the original, the choice of segmented images, weak
labels in folders, and evaluation of images without masks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from crackkit.config import ConfigError, make_config
from crackkit.data.dataset import CrackDataset, load_splits, split_summary
from crackkit.data.folder import DatasetError, Sample, scan_split, write_sample
from crackkit.data.supervision import read_segmented_list, select_supervision
from crackkit.losses import SegDecLoss, loss_weights, segmentation_loss, total_loss


def _bce(z: float, y: float) -> float:
    """Binary cross-entropy of a logit: -[y log σ(z) + (1 - y) log(1 - σ(z))]."""
    p = 1.0 / (1.0 + math.exp(-z))
    return -(y * math.log(p) + (1.0 - y) * math.log(1.0 - p))


# One batch, by hand: a segmented positive, an image-level positive, a negative. Full-resolution
# 1x2 maps, so no downsizing enters.
SEG = [[[[0.5, -1.0]]], [[[2.0, 0.3]]], [[[-0.7, 0.2]]]]
MASKS = [[[[1.0, 0.0]]], [[[0.0, 1.0]]], [[[0.0, 0.0]]]]  # the image-level one's is ignored
DEC = [[1.5], [-0.4], [0.8]]
LABELS = [1.0, 1.0, 0.0]
SEGMENTED = [1.0, 0.0, 1.0]


def _expected(seg_w: float, dec_w: float) -> tuple[float, float, float]:
    """The original's per-sample loss, averaged over the batch (crackkit's batch reduction)."""
    per_sample, seg_terms, dec_terms = [], [], []
    for seg, mask, dec, label, known in zip(SEG, MASKS, DEC, LABELS, SEGMENTED, strict=True):
        pixels = [_bce(z, y) for z, y in zip(seg[0][0], mask[0][0], strict=True)]
        l_seg = sum(pixels) / len(pixels) if known else 0.0
        l_dec = _bce(dec[0], label)
        per_sample.append(seg_w * l_seg + dec_w * l_dec if known else dec_w * l_dec)
        seg_terms.append(l_seg)
        dec_terms.append(l_dec)
    n = len(per_sample)
    return sum(per_sample) / n, sum(seg_terms) / n, sum(dec_terms) / n


@pytest.mark.parametrize("epoch", [1, 3])
def test_loss_of_a_mixed_batch_matches_the_hand_computed_original(epoch):
    """Segmented positive: λ·L_seg + δ(1-λ)·L_dec; image-level positive: δ(1-λ)·L_dec only;
    negative: both terms (its all-zero mask is known)."""
    seg_w, dec_w = loss_weights(epoch, 4, 1.0, True)
    assert dec_w > 0
    loss = SegDecLoss(epochs=4, delta=1.0, dynamic=True)
    out = loss(
        torch.tensor(DEC),
        torch.tensor(SEG),
        torch.tensor(LABELS),
        torch.tensor(MASKS),
        epoch=epoch,
        segmented=torch.tensor(SEGMENTED),
    )
    total, seg, dec = _expected(seg_w, dec_w)
    assert float(out["loss"]) == pytest.approx(total, rel=1e-6)
    assert float(out["loss_seg"]) == pytest.approx(seg, rel=1e-6)
    assert float(out["loss_dec"]) == pytest.approx(dec, rel=1e-6)


def test_an_image_level_positive_mask_never_reaches_the_loss_or_its_gradient():
    """Any mask in place of the image-level positive's gives the same loss and gradients."""
    results = []
    for fill in (0.0, 1.0):
        masks = torch.tensor(MASKS)
        masks[1] = fill
        seg = torch.tensor(SEG, requires_grad=True)
        out = total_loss(
            torch.tensor(DEC),
            seg,
            torch.tensor(LABELS),
            masks,
            seg_weight=0.5,
            dec_weight=0.5,
            segmented=torch.tensor(SEGMENTED),
        )
        out["loss"].backward()
        results.append((float(out["loss"].detach()), seg.grad.clone()))
    assert results[0][0] == results[1][0]
    assert torch.equal(results[0][1], results[1][1])
    assert torch.all(results[0][1][1] == 0), "the image-level positive's map got a gradient"


def test_all_segmented_equals_no_segmented_argument():
    """segmented = all ones is the full-supervision loss."""
    seg, masks = torch.tensor(SEG), torch.tensor(MASKS)
    plain = segmentation_loss(seg, masks)
    ones = segmentation_loss(seg, masks, segmented=torch.ones(3))
    assert float(plain) == pytest.approx(float(ones), rel=1e-6)


# ----------------------------------------------------------------------------------------------
# The choice of segmented images


def _samples(n_pos: int, n_neg: int) -> list[Sample]:
    """Checked training samples: positives ``p00..`` and negatives ``n00..``, all with masks."""
    out = [Sample(Path(f"p{i:02d}.png"), Path(f"m/p{i:02d}.png"), True) for i in range(n_pos)]
    out += [Sample(Path(f"n{i:02d}.png"), Path(f"m/n{i:02d}.png"), False) for i in range(n_neg)]
    return sorted(out, key=lambda s: s.stem)


def _segmented_stems(samples: list[Sample]) -> set[str]:
    return {s.stem for s in samples if s.positive and s.mask is not None}


@pytest.mark.parametrize("k", [0, 1, 5, 12])
def test_exactly_k_positives_keep_their_masks(k):
    """num_segmented = k: k positives keep their masks, the rest are image-level (mask None);
    every image is still used; negatives keep their masks."""
    sup = select_supervision(_samples(12, 7), num_segmented=k, seed=3)
    assert len(sup.samples) == 19
    assert sup.n_segmented == k and sup.n_image_level == 12 - k
    assert all(s.mask is not None for s in sup.samples if not s.positive)
    assert sum(row["is_segmented"] for row in sup.rows) == k + 7


def test_the_draw_depends_on_its_seed_only_and_is_nested():
    """The same seed gives the same images; the images at k are among those at k' > k."""
    samples = _samples(20, 5)
    draw = {
        k: _segmented_stems(select_supervision(samples, num_segmented=k, seed=1).samples)
        for k in (3, 8)
    }
    again = _segmented_stems(select_supervision(samples, num_segmented=3, seed=1).samples)
    other = _segmented_stems(select_supervision(samples, num_segmented=3, seed=2).samples)
    assert draw[3] == again and draw[3] <= draw[8] and other != draw[3]


@pytest.mark.parametrize("k", [None, 12, 50])
def test_num_segmented_at_or_above_the_positives_changes_nothing(k):
    """'all', the positive count, or more: the very same samples."""
    samples = _samples(12, 4)
    assert select_supervision(samples, num_segmented=k, seed=0).samples == samples


def test_train_num_keeps_that_many_positives_and_every_negative():
    sup = select_supervision(_samples(10, 6), train_num=4, num_segmented=2, seed=0)
    assert sup.n_positive == 4 and sup.n_segmented == 2 and sup.n_dropped == 6
    assert len(sup.samples) == 10


def test_positives_without_mask_are_never_drawn_as_segmented():
    """Image-level positives of a folder (no mask) stay image-level; the draw is among the rest."""
    samples = [replace_mask(s) if s.stem in ("p00", "p01") else s for s in _samples(6, 2)]
    sup = select_supervision(samples, num_segmented=10, seed=0)
    assert _segmented_stems(sup.samples) == {"p02", "p03", "p04", "p05"}


def replace_mask(sample: Sample) -> Sample:
    return Sample(sample.image, None, sample.positive)


def test_a_list_file_names_the_choice(tmp_path):
    """A plain list segments the listed positives; a segmented.csv reproduces a run's choice,
    train_num's left-out positives included."""
    samples = _samples(6, 2)
    plain = tmp_path / "list.txt"
    plain.write_text("# my masks\np01\np04\n")
    sup = select_supervision(samples, listed=plain)
    assert _segmented_stems(sup.samples) == {"p01", "p04"} and sup.n_positive == 6
    first = select_supervision(samples, num_segmented=2, train_num=4, seed=5)
    record = tmp_path / "segmented.csv"
    record.write_text(
        "image,is_segmented\n" + "".join(f"{r['image']},{r['is_segmented']}\n" for r in first.rows)
    )
    again = select_supervision(samples, listed=record)
    assert again.samples == first.samples
    assert select_supervision(samples, recorded=record).samples == first.samples


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p01\np01\n", "listed twice"),
        ("p01\nzz\n", "'zz' is not an image of the training split"),
        ("image,is_segmented\np01,2\n", "is_segmented 0 or 1"),
        ("p01,p02\n", "one image stem per line"),
        ("\n# nothing\n", "lists no image"),
    ],
)
def test_a_bad_list_is_refused_with_its_name(tmp_path, text, message):
    path = tmp_path / "list.txt"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message) as err:
        select_supervision(_samples(4, 1), listed=path)
    assert str(path) in str(err.value)


def test_a_listed_image_without_mask_cannot_be_segmented(tmp_path):
    samples = [replace_mask(s) if s.stem == "p01" else s for s in _samples(3, 1)]
    path = tmp_path / "list.txt"
    path.write_text("p01\n")
    with pytest.raises(DatasetError, match="has no mask"):
        select_supervision(samples, listed=path)


def test_plain_list_reader_returns_incomplete_tables(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("a\nb\n")
    assert read_segmented_list(path) == ({"a": True, "b": True}, False)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"num_segmented": "some"}, "int or 'all'"),
        ({"num_segmented": -1}, ">= 0"),
        ({"train_num": 0}, ">= 1"),
        ({"segmented_list": "x.txt", "num_segmented": 3}, "leave num_segmented at 'all'"),
    ],
)
def test_bad_supervision_parameters_are_refused(params, message):
    with pytest.raises(ConfigError, match=message):
        make_config(params)


def test_all_is_none_and_round_trips():
    cfg = make_config({"num_segmented": "all", "train_num": "ALL"})
    assert cfg.num_segmented is None and cfg.train_num is None
    assert make_config(cfg.to_dict()) == cfg == make_config()


# ----------------------------------------------------------------------------------------------
# Image-level labels in a folder data set (<split>/labels.csv)


def _bar(h: int = 64, w: int = 128, crack: bool = True) -> tuple[np.ndarray, np.ndarray]:
    image = np.full((h, w, 3), 190, np.uint8)
    mask = np.zeros((h, w), bool)
    if crack:
        mask[10:12, 4:50] = True
        image[mask] = 40
    return image, mask


@pytest.fixture
def weak_folder(tmp_path):
    """train/val/test with 2 segmented positives and 1 negative each, plus (by labels.csv) one
    image-level positive without mask and one crack-free image without mask."""
    for split in ("train", "val", "test"):
        for i, crack in enumerate((True, True, False)):
            write_sample(tmp_path, split, f"{split}{i}", *_bar(crack=crack), image_ext=".png")
        image, _ = _bar()
        write_sample(tmp_path, split, "weak", image, np.zeros(image.shape[:2], bool), ".png")
        (tmp_path / split / "masks" / "weak.png").unlink()
        image, _ = _bar(crack=False)
        write_sample(tmp_path, split, "clean", image, np.zeros(image.shape[:2], bool), ".png")
        (tmp_path / split / "masks" / "clean.png").unlink()
        (tmp_path / split / "labels.csv").write_text("image,label\nweak,1\nclean,0\n")
    return tmp_path


def test_labels_make_image_level_positives_and_maskless_negatives(weak_folder):
    samples = {s.stem: s for s in scan_split(weak_folder, "train")}
    assert samples["weak"].positive and samples["weak"].mask is None
    assert not samples["weak"].segmented
    assert not samples["clean"].positive and samples["clean"].segmented
    assert samples["train0"].segmented and samples["train0"].positive
    summary = split_summary({"train": list(samples.values())})
    assert summary["train"] == {"positives": 3, "negatives": 2, "sum": 5, "image_level": 1}


def test_a_label_may_confirm_a_mask(weak_folder):
    (weak_folder / "train" / "labels.csv").write_text("image,label\nweak,1\nclean,0\ntrain0,1\n")
    assert {s.stem for s in scan_split(weak_folder, "train") if s.positive} >= {"train0", "weak"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image,label\nweak,1\nclean,0\ntrain0,0\n", "'train0' is labelled 0 but its mask"),
        ("image,label\nweak,1\nclean,0\ntrain2,1\n", "'train2' is labelled 1 but its mask"),
        ("image,label\nweak,2\nclean,0\n", "label '2' of 'weak' must be 0 or 1"),
        ("image,label\nweak,1\nweak,1\nclean,0\n", "'weak' is listed twice"),
        ("image,label\nweak,1\nclean,0\nghost,1\n", "no image of stem 'ghost'"),
        ("image,label\nweak.png,1\nclean,0\n", "without the extension"),
        ("name,value\nweak,1\n", "header 'image,label'"),
        ("image,label\nclean,0\n", "weak.png: image with neither a mask"),
    ],
)
def test_bad_labels_are_refused_naming_the_file(weak_folder, text, message):
    path = weak_folder / "train" / "labels.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message) as err:
        scan_split(weak_folder, "train")
    assert "labels.csv" in str(err.value) or "weak" in str(err.value)


def test_training_dataset_hides_unknown_masks(weak_folder):
    """The image-level positive is served with a zero mask and segmented 0, and takes no part
    in the crack fraction; a random training crop is refused."""
    cfg = make_config({"dataset": str(weak_folder), "input_height": 64, "input_width": 128})
    splits = load_splits(weak_folder)
    ds = CrackDataset(splits["train"], cfg, train=True)
    items = {s.stem: ds[i] for i, s in enumerate(ds.samples)}
    assert float(items["weak"]["segmented"]) == 0 and float(items["weak"]["label"]) == 1
    assert float(items["weak"]["mask"].sum()) == 0
    assert float(items["train0"]["segmented"]) == 1
    segmented_pixels = 2 * 46 * 2
    assert ds.crack_fraction() == pytest.approx(segmented_pixels / (4 * 64 * 128))
    crop = cfg.replace(train_crop_height=64, train_crop_width=128)
    with pytest.raises(DatasetError, match="need every positive training image segmented"):
        CrackDataset(splits["train"], crop, train=True)


def test_fully_segmented_samples_carry_no_flag(weak_folder):
    cfg = make_config({"dataset": str(weak_folder), "input_height": 64, "input_width": 128})
    samples = [s for s in load_splits(weak_folder)["train"] if s.segmented]
    assert "segmented" not in CrackDataset(samples, cfg, train=True)[0]


def test_evaluation_counts_pixels_of_images_with_masks_only(weak_folder):
    """An image-level positive of the test split counts in the decision metrics (its label is
    1) and nowhere in the pixel metrics: those equal the pixel metrics of the split without it."""
    from crackkit.evaluate import evaluate
    from crackkit.runtime import model_for, seed_everything

    cfg = make_config(
        {"dataset": str(weak_folder), "input_height": 64, "input_width": 128, "amp": "off"}
    )
    seed_everything(0, torch.device("cpu"))
    model, _ = model_for(cfg, torch.device("cpu"))
    test = load_splits(weak_folder)["test"]
    with_weak, _ = evaluate(model, CrackDataset(test, cfg, train=False), torch.device("cpu"))
    masked = [s for s in test if s.segmented]
    without, _ = evaluate(model, CrackDataset(masked, cfg, train=False), torch.device("cpu"))
    assert with_weak["n_images"] == 5 and with_weak["n_positive"] == 3
    assert with_weak["decision"]["n_samples"] == 5
    assert with_weak["n_image_level"] == 1 and with_weak["n_pixel_images"] == 4
    for key in ("pixel_2px_oracle", "pixel_oracle", "dice_oracle", "ods"):
        assert with_weak[key] == without[key], key
    assert with_weak["loss_seg"] == pytest.approx(without["loss_seg"] * 4 / 5, rel=1e-5)


def test_no_segmented_positive_trains_a_weakly_supervised_classifier():
    """With no segmented positive, dynamic balancing and gradient adjustment are off (unless
    no_mask_switches is off); with one segmented positive nothing changes."""
    from crackkit.data.supervision import training_config

    cfg = make_config({"num_segmented": 0})
    switched = training_config(cfg, 0)
    assert (switched.dyn_balanced_loss, switched.gradient_adjustment) == (False, False)
    assert training_config(cfg, 1) is cfg
    kept = cfg.replace(no_mask_switches=False)
    assert training_config(kept, 0) is kept
    from crackkit.config import deviations

    assert "no_mask_switches" in deviations(cfg)
    assert "no_mask_switches" not in deviations(make_config())
