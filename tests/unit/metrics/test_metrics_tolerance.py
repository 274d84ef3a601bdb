"""Pixel-level metrics against plain-loop oracles: tolerance sweep, Dice/IoU, ODS/OIS, counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from crackkit import metrics
from crackkit.metrics import (
    count_stats,
    cross_footprint,
    default_thresholds,
    dice_iou_sweep,
    ods_ois,
    tolerance_sweep,
)

ATOL = 1e-12


# --------------------------------------------------------------------------- oracle


def oracle_dilate(mask: np.ndarray, tolerance: int) -> np.ndarray:
    """Plus-shaped dilation by explicit loops over pixels and offsets, with bounds checks."""
    offsets = [(0, 0)]
    for s in range(1, tolerance + 1):
        offsets += [(s, 0), (-s, 0), (0, s), (0, -s)]
    h, w = mask.shape
    out = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            if mask[y, x]:
                for dy, dx in offsets:
                    if 0 <= y + dy < h and 0 <= x + dx < w:
                        out[y + dy, x + dx] = True
    return out


def oracle_counts(probs, masks, tolerance, thresholds) -> dict[str, np.ndarray]:
    """Counts (N, T) from a loop over thresholds and images, with np.sum."""
    probs = np.asarray(probs, dtype=np.float64)
    masks = np.asarray(masks).astype(bool)
    dilated = [oracle_dilate(m, tolerance) for m in masks]
    n, t = len(probs), len(thresholds)
    out = {k: np.zeros((n, t), dtype=np.int64) for k in ("tp", "fp", "fn", "tp_plain", "pred_pos")}
    for j, threshold in enumerate(thresholds):
        for i in range(n):
            pred, gt, dil = probs[i] >= threshold, masks[i], dilated[i]
            out["tp"][i, j] = np.sum(pred & dil)
            out["fp"][i, j] = np.sum(pred & ~dil)
            out["fn"][i, j] = np.sum(gt & ~pred)
            out["tp_plain"][i, j] = np.sum(pred & gt)
            out["pred_pos"][i, j] = np.sum(pred)
    out["gt_pos"] = np.array([np.sum(m) for m in masks])
    return out


def oracle_prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1 of one image, 0 when tp == 0."""
    if tp == 0:
        return 0.0, 0.0, 0.0
    pr, re = tp / (tp + fp), tp / (tp + fn)
    return pr, re, 2 * pr * re / (pr + re)


def oracle_sweep(probs, masks, tolerance, thresholds):
    """Mean per-image P/R/F1 over crack images, per threshold, and the first best index."""
    c = oracle_counts(probs, masks, tolerance, thresholds)
    crack = [i for i in range(len(probs)) if c["gt_pos"][i] > 0]
    curves = []
    for j in range(len(thresholds)):
        rows = [oracle_prf(c["tp"][i, j], c["fp"][i, j], c["fn"][i, j]) for i in crack]
        curves.append(np.mean(np.array(rows), axis=0))
    p, r, f = np.array(curves).T
    return p, r, f, int(np.argmax(f)), len(crack)


def random_case(seed: int, dtype=np.float64, n: int = 5, h: int = 17, w: int = 23):
    """Thin random lines (some on the border), the last image crack-free, many exact ties."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n - 1):
        for _ in range(int(rng.integers(1, 4))):
            kind = int(rng.integers(3))
            if kind == 0:
                c0, c1 = sorted(rng.integers(0, w, 2))
                masks[i, rng.integers(h), c0 : c1 + 1] = True
            elif kind == 1:
                r0, r1 = sorted(rng.integers(0, h, 2))
                masks[i, r0 : r1 + 1, rng.integers(w)] = True
            else:
                y, x = int(rng.integers(h)), int(rng.integers(w))
                while 0 <= y < h and 0 <= x < w:
                    masks[i, y, x] = True
                    y, x = y + 1, x + 1
    masks[0, 0, :6] = True
    masks[1, 3:9, w - 1] = True
    near = ndimage.binary_dilation(masks, structure=np.ones((1, 3, 3), dtype=bool))
    probs = np.where(near, rng.uniform(0.2, 1.0, masks.shape), rng.random(masks.shape) ** 4)
    ties = rng.random(masks.shape) < 0.15
    probs[ties] = rng.choice(default_thresholds(), int(ties.sum()))
    probs[0, 0, 0], probs[0, 0, 1], probs[-1, 5, 5] = 0.0, 1.0, 0.97
    return probs.astype(dtype), masks


# --------------------------------------------------------------------------- grid and footprint


def test_default_thresholds_grid():
    """The default grid is 0.100..0.995 by 0.005, each value the nearest float of its decimal."""
    t = default_thresholds()
    assert t.shape == (180,) and t.dtype == np.float64
    assert t[0] == 0.1 and t[-1] == 0.995 and 0.5 in t
    assert t.tolist() == [float(f"{0.1 + 0.005 * i:.3f}") for i in range(180)]


@pytest.mark.parametrize("tolerance", [0, 1, 2, 3])
def test_cross_footprint_is_plus_shaped(tolerance):
    """The footprint is the centre row plus the centre column, 4r+1 pixels."""
    fp = cross_footprint(tolerance)
    expected = np.zeros((2 * tolerance + 1,) * 2, dtype=bool)
    expected[tolerance, :] = expected[:, tolerance] = True
    assert np.array_equal(fp, expected) and fp.sum() == 4 * tolerance + 1


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tolerance", [0, 1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_count_stats_matches_oracle(seed, tolerance, dtype):
    """Every count equals the loop oracle exactly, for each image and threshold."""
    probs, masks = random_case(seed, dtype)
    counts = count_stats(probs, masks, tolerance)
    expected = oracle_counts(probs, masks, tolerance, default_thresholds())
    for name, value in expected.items():
        assert np.array_equal(getattr(counts, name), value), name
    assert counts.tolerance == tolerance


@pytest.mark.parametrize(
    "thresholds",
    [
        [0.05, 0.1, 0.5, 0.51, 0.9],
        np.linspace(0.0, 1.0, 11),
        [0.5],
        np.round(np.arange(0.1, 1.0, 0.01), 2),
    ],
)
def test_count_stats_custom_grids(thresholds):
    """Uneven, uniform and single-value grids give the oracle counts, ties included."""
    probs, masks = random_case(3)
    flat = probs.reshape(-1)
    grid = np.asarray(thresholds, dtype=np.float64)
    values = np.concatenate([grid, np.nextafter(grid, -1.0).clip(0), np.nextafter(grid, 2.0)])
    flat[: min(values.size, flat.size)] = values.clip(0, 1)[: flat.size]
    counts = count_stats(probs, masks, 2, thresholds)
    expected = oracle_counts(probs, masks, 2, grid)
    for name, value in expected.items():
        assert np.array_equal(getattr(counts, name), value), name


def test_float32_ties_compare_in_float64():
    """A float32 prob just under a float64 threshold is negative there, as the oracle says."""
    grid = default_thresholds()
    j = next(i for i, t in enumerate(grid) if float(np.float32(t)) < t)
    probs = np.zeros((1, 3, 3), dtype=np.float32)
    probs[0, 1, 1] = np.float32(grid[j])
    masks = np.zeros((1, 3, 3), dtype=bool)
    masks[0, 1, 1] = True
    counts = count_stats(probs, masks, 0)
    assert counts.pred_pos[0, j - 1] == 1 and counts.pred_pos[0, j] == 0


def test_tie_at_threshold_is_positive():
    """A prob exactly equal to the threshold is predicted positive; one ulp below is not."""
    probs = np.zeros((1, 1, 3))
    probs[0, 0] = [0.5, np.nextafter(0.5, 0.0), 0.25]
    masks = np.ones((1, 1, 3), dtype=bool)
    counts = count_stats(probs, masks, 0, [0.25, 0.5])
    assert counts.pred_pos.tolist() == [[3, 1]]
    assert counts.tp.tolist() == [[3, 1]] and counts.fn.tolist() == [[0, 2]]


@pytest.mark.parametrize(
    ("point", "tolerance", "expected_area"),
    [((3, 3), 2, 9), ((0, 0), 2, 5), ((0, 3), 2, 7), ((6, 6), 3, 7), ((3, 3), 0, 1)],
)
def test_dilation_is_a_cross_without_wraparound(point, tolerance, expected_area):
    """One mask pixel dilates to a plus sign clipped at the border (no wrap-around)."""
    probs = np.ones((1, 7, 7))
    masks = np.zeros((1, 7, 7), dtype=bool)
    masks[0][point] = True
    counts = count_stats(probs, masks, tolerance, [0.5])
    assert counts.tp[0, 0] == expected_area
    assert counts.fp[0, 0] == 49 - expected_area


@pytest.mark.parametrize("tolerance", [1, 2, 3])
def test_dilation_agrees_with_scipy(tolerance):
    """The dilated area equals scipy's binary_dilation with the same cross footprint."""
    _, masks = random_case(7, n=4, h=12, w=9)
    counts = count_stats(np.ones(masks.shape), masks, tolerance, [0.5])
    ref = ndimage.binary_dilation(masks, structure=cross_footprint(tolerance)[None])
    assert np.array_equal(counts.tp[:, 0], ref.sum(axis=(1, 2)))


def test_chunked_counts_equal_unchunked(monkeypatch):
    """Processing two images per chunk gives the same counts as one chunk."""
    probs, masks = random_case(4)
    whole = count_stats(probs, masks, 2)
    monkeypatch.setattr(metrics, "_CHUNK_PIXELS", 2 * 17 * 23)
    chunked = count_stats(probs, masks, 2)
    for name in ("tp", "fp", "fn", "tp_plain", "pred_pos", "gt_pos"):
        assert np.array_equal(getattr(whole, name), getattr(chunked, name)), name


@pytest.mark.parametrize("mask_dtype", [bool, np.uint8, np.int64, np.float32])
def test_mask_dtypes_are_equivalent(mask_dtype):
    """Bool, integer and float 0/1 masks give identical counts."""
    probs, masks = random_case(5)
    ref = count_stats(probs, masks, 1)
    got = count_stats(probs, masks.astype(mask_dtype), 1)
    assert np.array_equal(ref.tp, got.tp) and np.array_equal(ref.fn, got.fn)


# --------------------------------------------------------------------------- tolerance sweep


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tolerance", [0, 1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tolerance_sweep_matches_oracle(seed, tolerance, dtype):
    """Mean P/R/F1 curves and the best point equal the loop oracle."""
    probs, masks = random_case(seed, dtype)
    sweep = tolerance_sweep(probs, masks, tolerance)
    p, r, f, best, n_crack = oracle_sweep(probs, masks, tolerance, default_thresholds())
    np.testing.assert_allclose(sweep.precision, p, rtol=0, atol=ATOL)
    np.testing.assert_allclose(sweep.recall, r, rtol=0, atol=ATOL)
    np.testing.assert_allclose(sweep.f1, f, rtol=0, atol=ATOL)
    assert sweep.best_index == best and sweep.n_images == n_crack == 4
    assert sweep.best_threshold == default_thresholds()[best]
    assert sweep.best_f1 == pytest.approx(f[best], abs=ATOL)


def _hand_case():
    """Image 0: a 3-pixel horizontal crack; image 1: crack-free with one confident pixel."""
    probs = np.zeros((2, 5, 7))
    masks = np.zeros((2, 5, 7), dtype=bool)
    masks[0, 2, 1:4] = True
    probs[0, 2, 1] = 0.9  # on the crack
    probs[0, 2, 2] = 0.5  # on the crack, exactly at a threshold
    probs[0, 2, 3] = 0.4  # on the crack, below 0.5
    probs[0, 1, 1] = 0.7  # one pixel from the crack (inside D for tolerance >= 1)
    probs[0, 0, 0] = 0.8  # diagonal, outside D
    probs[0, 1, 0] = 0.6  # diagonal neighbour of (2, 1): outside a plus-shaped D
    probs[1, 3, 3] = 0.9
    return probs, masks


def test_hand_computed_tolerance_example():
    """Worked example: at 0.5, TP=3 FP=2 FN=1 so P=0.6, R=0.75, F1=2/3; at 0.85 P=1, R=1/3."""
    probs, masks = _hand_case()
    counts = count_stats(probs, masks, 1, [0.5, 0.85, 0.95])
    assert counts.tp[0].tolist() == [3, 1, 0]
    assert counts.fp[0].tolist() == [2, 0, 0]
    assert counts.fn[0].tolist() == [1, 2, 3]
    assert counts.fp[1].tolist() == [1, 1, 0] and counts.gt_pos.tolist() == [3, 0]
    sweep = tolerance_sweep(probs, masks, 1, [0.5, 0.85, 0.95])
    np.testing.assert_allclose(sweep.precision, [0.6, 1.0, 0.0], rtol=0, atol=ATOL)
    np.testing.assert_allclose(sweep.recall, [0.75, 1 / 3, 0.0], rtol=0, atol=ATOL)
    np.testing.assert_allclose(sweep.f1, [2 / 3, 0.5, 0.0], rtol=0, atol=ATOL)
    assert (sweep.best_index, sweep.best_threshold, sweep.n_images) == (0, 0.5, 1)
    assert sweep.to_dict() == {
        "precision": sweep.best_precision,
        "recall": 0.75,
        "f1": sweep.best_f1,
        "threshold": 0.5,
        "tolerance": 1,
    }


def test_hand_computed_tolerance_zero():
    """Without tolerance the same example gives TP=2 FP=3 FN=1: P=0.4, R=2/3, F1=0.5."""
    probs, masks = _hand_case()
    sweep = tolerance_sweep(probs, masks, 0, [0.5])
    assert sweep.best_precision == pytest.approx(0.4, abs=ATOL)
    assert sweep.best_recall == pytest.approx(2 / 3, abs=ATOL)
    assert sweep.best_f1 == pytest.approx(0.5, abs=ATOL)


def test_empty_prediction_scores_zero_and_is_averaged():
    """A crack image with no prediction counts as 0; a perfect one as 1: the means are 0.5."""
    masks = np.zeros((3, 6, 6), dtype=bool)
    masks[0, 2, :] = masks[1, :, 4] = True
    probs = masks.astype(np.float64)
    probs[1] = 0.0
    probs[2] = 1.0  # crack-free image: skipped however confident
    sweep = tolerance_sweep(probs, masks, 2, [0.2, 0.6])
    for curve in (sweep.precision, sweep.recall, sweep.f1):
        np.testing.assert_allclose(curve, [0.5, 0.5], rtol=0, atol=ATOL)
    assert sweep.n_images == 2 and sweep.best_index == 0


def test_tolerance_sweep_to_dict_is_plain():
    """to_dict holds plain Python floats and ints."""
    probs, masks = random_case(0)
    out = tolerance_sweep(probs, masks).to_dict()
    assert set(out) == {"precision", "recall", "f1", "threshold", "tolerance"}
    assert all(type(v) is float for k, v in out.items() if k != "tolerance")
    assert type(out["tolerance"]) is int


# --------------------------------------------------------------------------- Dice / IoU


def oracle_dice_iou(probs, masks, thresholds):
    """Mean per-image Dice and IoU over crack images by a loop over thresholds and images."""
    probs = np.asarray(probs, dtype=np.float64)
    crack = [i for i in range(len(masks)) if masks[i].any()]
    dice, iou = [], []
    for t in thresholds:
        d, j = [], []
        for i in crack:
            pred, gt = probs[i] >= t, masks[i].astype(bool)
            inter = np.sum(pred & gt)
            d.append(2 * inter / (np.sum(pred) + np.sum(gt)))
            j.append(inter / np.sum(pred | gt))
        dice.append(np.mean(d))
        iou.append(np.mean(j))
    return np.array(dice), np.array(iou)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dice_iou_matches_oracle(seed, dtype):
    """Dice and IoU curves and their separate best thresholds equal the oracle."""
    probs, masks = random_case(seed, dtype)
    grid = default_thresholds()
    result = dice_iou_sweep(probs, masks)
    dice, iou = oracle_dice_iou(probs, masks, grid)
    np.testing.assert_allclose(result.dice, dice, rtol=0, atol=ATOL)
    np.testing.assert_allclose(result.iou, iou, rtol=0, atol=ATOL)
    assert result.best_dice_threshold == grid[int(np.argmax(dice))]
    assert result.best_iou_threshold == grid[int(np.argmax(iou))]
    assert result.best_dice == pytest.approx(dice.max(), abs=ATOL)
    assert result.best_iou == pytest.approx(iou.max(), abs=ATOL)
    assert result.n_images == 4


def test_dice_iou_hand_example():
    """At 0.5 the worked example has |P∧G|=2, |P|=5, |G|=3: Dice 0.5, IoU 1/3."""
    probs, masks = _hand_case()
    result = dice_iou_sweep(probs, masks, [0.5])
    assert result.to_dict() == {
        "dice": {"value": pytest.approx(0.5, abs=ATOL), "threshold": 0.5},
        "iou": {"value": pytest.approx(1 / 3, abs=ATOL), "threshold": 0.5},
    }


# --------------------------------------------------------------------------- ODS / OIS


def oracle_ods_ois(probs, masks, tolerance, thresholds):
    """ODS from counts summed over all images; OIS from each crack image's best F1."""
    c = oracle_counts(probs, masks, tolerance, thresholds)
    ods = [
        oracle_prf(c["tp"][:, j].sum(), c["fp"][:, j].sum(), c["fn"][:, j].sum())
        for j in range(len(thresholds))
    ]
    ods_f = [f for _, _, f in ods]
    best = int(np.argmax(ods_f))
    per_image = [
        max(
            oracle_prf(c["tp"][i, j], c["fp"][i, j], c["fn"][i, j])[2]
            for j in range(len(thresholds))
        )
        for i in range(len(masks))
        if c["gt_pos"][i] > 0
    ]
    return ods[best], thresholds[best], float(np.mean(per_image))


@pytest.mark.parametrize("tolerance", [0, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ods_ois_matches_oracle(seed, tolerance):
    """ODS (with its threshold) and OIS equal the oracle."""
    probs, masks = random_case(seed)
    grid = default_thresholds()
    out = ods_ois(probs, masks, tolerance)
    (p, r, f), threshold, ois = oracle_ods_ois(probs, masks, tolerance, grid)
    assert out["ods"]["f1"] == pytest.approx(f, abs=ATOL)
    assert out["ods"]["precision"] == pytest.approx(p, abs=ATOL)
    assert out["ods"]["recall"] == pytest.approx(r, abs=ATOL)
    assert out["ods"]["threshold"] == threshold
    assert out["ois"]["f1"] == pytest.approx(ois, abs=ATOL)
    assert set(out) == {"ods", "ois"}


def test_ods_ois_hand_example():
    """ODS adds the crack-free image's false positive: at 0.5 P=0.5, R=0.75, F1=0.6; OIS=2/3."""
    probs, masks = _hand_case()
    out = ods_ois(probs, masks, 1, [0.5, 0.85, 0.95])
    assert out["ods"]["threshold"] == 0.5
    assert out["ods"]["f1"] == pytest.approx(0.6, abs=ATOL)
    assert out["ods"]["precision"] == pytest.approx(0.5, abs=ATOL)
    assert out["ois"]["f1"] == pytest.approx(2 / 3, abs=ATOL)
