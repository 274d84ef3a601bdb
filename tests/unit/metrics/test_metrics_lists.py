"""Maps of different sizes, the Counts helpers, the original's all-image mean and the bootstrap.

Oracles: explicit per-pixel loops, hand-computed cases and a plain resampling loop.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from crackkit.metrics import (
    Counts,
    bootstrap_ci,
    count_stats,
    per_image_dice_iou,
    per_image_tolerance,
    tolerance_sweep,
    tolerance_sweep_counts,
)

GRID = np.round(np.arange(0.05, 1.0, 0.05), 2)
FIELDS = ("tp", "fp", "fn", "tp_plain", "pred_pos")


def loop_counts(prob: np.ndarray, mask: np.ndarray, tol: int, thresholds) -> dict[str, list[int]]:
    """One image's counts per threshold by loops over pixels (plus-shaped dilation by offsets)."""
    h, w = mask.shape
    dil = np.zeros((h, w), dtype=bool)
    offsets = [(0, 0)] + [(s * a, s * b) for s in range(1, tol + 1) for a, b in _DIRS]
    for y in range(h):
        for x in range(w):
            if mask[y, x]:
                for dy, dx in offsets:
                    if 0 <= y + dy < h and 0 <= x + dx < w:
                        dil[y + dy, x + dx] = True
    out = {k: [] for k in FIELDS}
    for t in thresholds:
        tp = fp = fn = tp_plain = pred = 0
        for y in range(h):
            for x in range(w):
                p = float(prob[y, x]) >= t
                pred += p
                tp += p and dil[y, x]
                fp += p and not dil[y, x]
                tp_plain += p and mask[y, x]
                fn += (not p) and mask[y, x]
        for k, v in zip(FIELDS, (tp, fp, fn, tp_plain, pred), strict=True):
            out[k].append(int(v))
    return out


_DIRS = [(1, 0), (-1, 0), (0, 1), (0, -1)]


def mixed_maps(seed: int = 0):
    """Maps of three sizes (one crack-free), float32 and float64, values on the grid included."""
    rng = np.random.default_rng(seed)
    probs, masks = [], []
    for i, (h, w) in enumerate([(7, 9), (12, 5), (7, 9), (3, 3), (5, 11)]):
        mask = rng.random((h, w)) > 0.8
        if i == 3:
            mask[:] = False
        prob = np.clip(mask * 0.5 + rng.random((h, w)) * 0.6, 0, 1)
        prob.flat[:3] = GRID[[2, 9, 15]]
        probs.append(prob.astype(np.float32 if i % 2 else np.float64))
        masks.append(mask)
    return probs, masks


@pytest.mark.parametrize("tolerance", [0, 1, 2])
def test_list_of_differently_sized_maps_equals_per_image_loops(tolerance):
    """Each image is counted on its own grid: rows equal the per-image loop counts."""
    probs, masks = mixed_maps()
    counts = count_stats(probs, masks, tolerance, GRID)
    assert counts.tp.shape == (len(probs), GRID.size)
    for i, (prob, mask) in enumerate(zip(probs, masks, strict=True)):
        expected = loop_counts(prob, mask, tolerance, GRID)
        for name in FIELDS:
            assert getattr(counts, name)[i].tolist() == expected[name], (i, name)
        assert counts.gt_pos[i] == mask.sum()


def test_list_equals_stacked_array_when_sizes_agree():
    """A list of equal-sized maps gives exactly the counts of the stacked (N, H, W) array."""
    rng = np.random.default_rng(1)
    masks = rng.random((4, 6, 8)) > 0.85
    probs = rng.random((4, 6, 8))
    a = count_stats(probs, masks)
    b = count_stats(list(probs), list(masks))
    for name in (*FIELDS, "gt_pos"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize(
    ("probs", "masks", "match"),
    [
        (
            [np.zeros((2, 3)), np.zeros((1, 2, 3))],
            [np.zeros((2, 3))] * 2,
            r"probs\[1\] must be 2-D",
        ),
        ([np.zeros((2, 3))] * 2, [np.zeros((2, 3)), np.zeros((3, 3))], r"masks\[1\] shape"),
        ([np.full((2, 2), 1.5)], [np.zeros((2, 2))], r"probs\[0\] must lie in \[0, 1\]"),
        ([np.zeros((2, 2))], [np.full((2, 2), 0.5)], r"masks\[0\] must be binary"),
        ([np.zeros((2, 2))] * 2, [np.zeros((2, 2))], "probs holds 2 maps but masks holds 1"),
    ],
)
def test_list_inputs_are_checked_by_index(probs, masks, match):
    """A bad map of a list raises a ValueError naming its index."""
    with pytest.raises(ValueError, match=match):
        count_stats(probs, masks)


def test_columns_and_column_lookup():
    """column() finds a counted threshold exactly; columns() keeps the chosen ones (relabelled)."""
    probs, masks = mixed_maps()
    counts = count_stats(probs, masks, 2, GRID)
    j = counts.column(0.5)
    assert GRID[j] == 0.5
    with pytest.raises(ValueError, match="was not counted"):
        counts.column(0.51)
    sub = counts.columns([j, j + 1], thresholds=[10.0, 11.0])
    assert sub.thresholds.tolist() == [10.0, 11.0]
    assert np.array_equal(sub.tp, counts.tp[:, [j, j + 1]])
    assert np.array_equal(sub.gt_pos, counts.gt_pos)


def test_without_predictions_equals_counting_zeroed_maps():
    """Zeroing chosen images' maps and counting gives the counts without_predictions returns."""
    probs, masks = mixed_maps()
    rows = np.array([True, False, False, True, True])
    zeroed = [np.zeros_like(p) if r else p for p, r in zip(probs, rows, strict=True)]
    got = count_stats(probs, masks, 2, GRID).without_predictions(rows)
    want = count_stats(zeroed, masks, 2, GRID)
    for name in (*FIELDS, "gt_pos"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name


def test_concatenate_equals_one_count():
    """Counting two halves and concatenating equals counting everything at once."""
    probs, masks = mixed_maps()
    whole = count_stats(probs, masks, 1, GRID)
    parts = Counts.concatenate(
        [count_stats(probs[:2], masks[:2], 1, GRID), count_stats(probs[2:], masks[2:], 1, GRID)]
    )
    for name in (*FIELDS, "gt_pos"):
        assert np.array_equal(getattr(parts, name), getattr(whole, name)), name
    with pytest.raises(ValueError, match="cannot be concatenated"):
        Counts.concatenate([whole, count_stats(probs, masks, 2, GRID)])


def _hand_case():
    """A: mask at column 2 of a 1x6 row; B: crack-free row, every pixel 0.7."""
    a_prob = np.array([[0.5, 0.2, 0.5, 0.9, 0.1, 0.0]])
    a_mask = np.array([[0, 0, 1, 0, 0, 0]], dtype=bool)
    b_prob = np.full((1, 6), 0.7)
    b_mask = np.zeros((1, 6), dtype=bool)
    return [a_prob, b_prob], [a_mask, b_mask]


def test_crackkit_and_original_means_hand_computed():
    """Tolerance 1, t = 0.5; D(A) = columns 1-3.

    ``>=``: A predicts columns 0, 2, 3: TP 2, FP 1, FN 0 -> P 2/3, R 1, F1 0.8; crackkit skips B.
    ``>``: A predicts column 3: TP 1, FP 0, FN 1 -> P 1, R 1/2, F1 2/3; the original averages with
    B's 0: P 1/2, R 1/4, F1 1/3.
    """
    probs, masks = _hand_case()
    t = 0.5
    counts = count_stats(probs, masks, 1, [t, np.nextafter(t, np.inf)])
    ge = tolerance_sweep_counts(counts.columns([0]))
    assert (ge.best_precision, ge.best_recall, ge.n_images) == (pytest.approx(2 / 3), 1.0, 1)
    assert ge.best_f1 == pytest.approx(0.8)
    gt_a = tolerance_sweep_counts(counts.columns([1], thresholds=[t]))
    assert (gt_a.best_precision, gt_a.best_recall) == (1.0, 0.5)
    original = tolerance_sweep_counts(counts.columns([1], thresholds=[t]), all_images=True)
    assert original.n_images == 2 and original.best_threshold == t
    assert original.best_precision == pytest.approx(0.5)
    assert original.best_recall == pytest.approx(0.25)
    assert original.best_f1 == pytest.approx(1 / 3)
    p, r, f = per_image_tolerance(counts)
    assert p[:, 0].tolist() == pytest.approx([2 / 3, 0.0]) and f[1].tolist() == [0.0, 0.0]
    dice, iou = per_image_dice_iou(counts.without_tolerance())
    # no tolerance, >= 0.5: A has |P∧G| = 1, |P| = 3, |G| = 1: Dice 2/4, IoU 1/3
    assert dice[0, 0] == pytest.approx(0.5) and iou[0, 0] == pytest.approx(1 / 3)


def test_all_image_mean_equals_crack_mean_without_crack_free_images():
    """Without crack-free images the two means agree (as on the seed's CRACK500 test split)."""
    probs, masks = mixed_maps()
    keep = [i for i, m in enumerate(masks) if m.any()]
    counts = count_stats([probs[i] for i in keep], [masks[i] for i in keep], 2, GRID)
    a = tolerance_sweep_counts(counts)
    b = tolerance_sweep_counts(counts, all_images=True)
    assert np.array_equal(a.f1, b.f1)
    assert (
        a.to_dict()
        == tolerance_sweep([probs[i] for i in keep], [masks[i] for i in keep], 2, GRID).to_dict()
    )


# --------------------------------------------------------------------------- bootstrap


def loop_percentile_ci(values, resamples, seed, level=0.95):
    """Resample by a plain loop, average in Python, take the linear-interpolated quantiles."""
    rng = np.random.default_rng(seed)
    n = len(values)
    means = []
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        means.append(sum(float(values[j]) for j in idx) / n)
    means.sort()

    def quantile(q):
        pos = q * (len(means) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return means[lo] + (means[hi] - means[lo]) * (pos - lo)

    alpha = (1 - level) / 2
    return quantile(alpha), quantile(1 - alpha)


@pytest.mark.parametrize(("n", "resamples", "seed"), [(37, 500, 3), (5, 1000, 0), (1, 10, 7)])
def test_bootstrap_matches_a_plain_resampling_loop(n, resamples, seed):
    """The interval equals the loop's to rounding."""
    values = np.random.default_rng(100 + n).random(n)
    lo, hi = bootstrap_ci(values, resamples=resamples, seed=seed)
    want_lo, want_hi = loop_percentile_ci(values, resamples, seed)
    assert lo == pytest.approx(want_lo, abs=1e-12) and hi == pytest.approx(want_hi, abs=1e-12)
    assert lo <= values.mean() + 1e-12 or n == 1


def test_bootstrap_is_seeded_and_degenerate_cases():
    """Same seed, same interval; constant values give a zero-width interval; bad input raises."""
    values = np.linspace(0, 1, 20)
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values, seed=2)
    assert bootstrap_ci(np.full(9, 0.25)) == [0.25, 0.25]
    with pytest.raises(ValueError, match="values is empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="resamples must be a positive integer"):
        bootstrap_ci(values, resamples=0)
    with pytest.raises(ValueError, match="level must lie in"):
        bootstrap_ci(values, level=1.0)
