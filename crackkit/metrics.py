"""Evaluation metrics for crack detection (image level) and crack segmentation (pixel level).

Every pixel-level metric is a thin view on one counting pass, :func:`count_stats`, which counts
per image and per threshold in a single sweep over the pixels (no loop over thresholds).

Definitions
-----------
Thresholds.
    :func:`default_thresholds` is the grid 0.100, 0.105, ..., 0.995 (180 values, step 0.005), each
    the float64 nearest to its three-decimal value (so ``0.5`` is exactly ``0.5``). A threshold grid
    passed by the caller must be 1-D, finite and strictly increasing.

Prediction.
    A pixel (or an image) is predicted positive at threshold ``t`` when ``prob >= t``, compared
    between the stored probability (float16/32/64 widened to float64 without rounding) and the
    float64 threshold. A probability exactly equal to ``t`` is positive.

Tolerance region.
    For a ground-truth mask ``G`` and ``tolerance = r``, ``D`` is ``G`` dilated by a plus-shaped
    structuring element: the offsets ``(i, j)`` with ``i == 0 or j == 0`` and ``|i|, |j| <= r``
    (``4 r + 1`` pixels: the centre row and centre column of a ``(2r+1) x (2r+1)`` square, as
    ``cv2.getStructuringElement(cv2.MORPH_CROSS, (2r+1, 2r+1))`` in the original SegDecNet code;
    it is not the diamond/L1 ball). Pixels outside the image are absent: nothing wraps around the
    border. ``r = 0`` gives ``D = G``. Always ``G ⊆ D``.

Per-image counts at threshold ``t`` (``P`` = predicted-positive pixels):
    ``tp = |P ∧ D|``, ``fp = |P ∧ ¬D|``, ``tp_plain = |P ∧ G|``, ``fn = |G ∧ ¬P|``,
    ``pred_pos = |P|``, ``gt_pos = |G|``. True positives are counted against the dilated mask,
    false negatives against the undilated mask, as the original code did.

Tolerance precision / recall / F1 (per image).
    ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``,
    ``f1 = 2 precision recall / (precision + recall)``; each is 0 when ``tp == 0`` (0/0 included).
    :func:`tolerance_sweep` averages them over the crack-containing images (``gt_pos > 0``); images
    with an empty mask are skipped. ``tolerance = 0`` gives plain pixel precision / recall / F1.
    The original code averaged over *all* images instead, a crack-free image counting 0 (its
    ``tp`` is 0), and predicted ``prob > t``: :func:`tolerance_sweep_counts` with
    ``all_images=True`` gives that mean; counted at ``numpy.nextafter(t, inf)``, ``prob >= t'``
    is exactly ``prob > t`` (see :mod:`crackkit.evaluate`).

Dice / IoU (per image, no tolerance).
    ``dice = 2 |P ∧ G| / (|P| + |G|)``, ``iou = |P ∧ G| / |P ∨ G|``, averaged over the
    crack-containing images (whose denominators are never 0).

ODS / OIS.
    ODS (optimal dataset scale): sum ``tp``, ``fp``, ``fn`` over all images (crack-free images add
    their false positives), compute precision, recall and F1 from the sums at each threshold (each
    0 when the summed ``tp`` is 0), and take the best threshold. OIS (optimal image scale): each
    crack-containing image's best F1 over the thresholds, averaged over those images.

Best threshold.
    The threshold maximising the mean metric; ties go to the lowest threshold (first index).

Zeroed segmentation (the original's SEG_BLACK).
    :meth:`Counts.without_predictions` gives the counts of maps set to 0 for chosen images: no
    predicted pixel there at any threshold (``tp = fp = 0``, ``fn = gt_pos``).

Bootstrap interval (:func:`bootstrap_ci`).
    The percentile interval of the mean of per-image values over resamples of the images drawn
    with replacement (seeded; see the function for the exact draw).

Image-level decision metrics (:func:`decision_metrics`).
    ``ap_step`` is ``sklearn.metrics.average_precision_score`` (step-wise sum), ``ap_trapezoid`` is
    ``sklearn.metrics.auc(recall, precision)`` over ``precision_recall_curve`` (the trapezoidal
    area the original code logged as "AP"), ``auc`` is ``roc_auc_score``. With one class only, the
    undefined quantities are ``None`` and a note says why. Without an explicit threshold the
    operating point is the precision-recall-curve threshold of best F1, where
    ``F1 = 2 tp / (2 tp + fp + fn)`` (equal to ``2PR / (P + R)``, computed from integer counts so
    that equal F1 values tie exactly) and ties go to the lowest threshold; without any positive
    label F1 is 0 everywhere and that rule picks the lowest score. At the operating point
    precision, recall and F1 are 0 when ``tp == 0``; ``accuracy = (tp + tn) / N``.

Inputs: numpy arrays or torch tensors (moved to the CPU); maps are ``probs: (N, H, W)`` floats in
``[0, 1]`` and ``masks: (N, H, W)`` binary (bool, or 0/1 integers or floats), or lists of N maps
``(H_i, W_i)`` whose sizes may differ between images (each mask the size of its map: an image is
counted on its own pixel grid). Invalid inputs raise a ``ValueError`` naming the argument (for a
list, its index) and what was found.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Counts",
    "DecisionMetrics",
    "DiceIoU",
    "ToleranceSweep",
    "bootstrap_ci",
    "count_stats",
    "cross_footprint",
    "decision_metrics",
    "default_thresholds",
    "dice_iou_sweep",
    "ods_ois",
    "per_image_dice_iou",
    "per_image_tolerance",
    "segmentation_metrics",
    "segmentation_metrics_counts",
    "tolerance_sweep",
    "tolerance_sweep_counts",
]

_CHUNK_PIXELS = 1 << 22
_N_DEFAULT_THRESHOLDS = 180


def default_thresholds() -> np.ndarray:
    """The original sweep grid: 0.100 to 0.995 in steps of 0.005.

    Returns:
        (180,) float64, strictly increasing, each value the float nearest its 3-decimal value.
    """
    return np.round(0.1 + 0.005 * np.arange(_N_DEFAULT_THRESHOLDS), 3)


def cross_footprint(tolerance: int) -> np.ndarray:
    """The plus-shaped structuring element used to dilate ground truth.

    Args:
        tolerance: radius ``r >= 0``.

    Returns:
        (2r+1, 2r+1) bool, True on the centre row and the centre column only.
    """
    r = _check_tolerance(tolerance)
    footprint = np.zeros((2 * r + 1, 2 * r + 1), dtype=bool)
    footprint[r, :] = True
    footprint[:, r] = True
    return footprint


# --------------------------------------------------------------------------- input checking


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """A numpy view of ``x``; torch tensors are detached and moved to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; found dtype {arr.dtype}")
    return arr


def _check_probs_range(probs: np.ndarray, name: str) -> None:
    if probs.size == 0 or probs.dtype.kind == "b":
        return
    lo, hi = probs.min(), probs.max()
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError(f"{name} contains NaN")
    if np.isinf(lo) or np.isinf(hi):
        raise ValueError(f"{name} contains infinite values (min {lo}, max {hi})")
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} must lie in [0, 1]; found values in [{lo}, {hi}]")


def _check_binary(masks: np.ndarray, name: str) -> None:
    if masks.dtype.kind == "b" or masks.size == 0:
        return
    if masks.dtype.kind in "iu":
        lo, hi = masks.min(), masks.max()
        if lo < 0 or hi > 1:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} must be binary (bool or 0/1); found value {bad}")
        return
    flat = masks.reshape(-1)
    for start in range(0, flat.size, _CHUNK_PIXELS):
        part = flat[start : start + _CHUNK_PIXELS]
        bad = (part != 0) & (part != 1)
        if bad.any():
            raise ValueError(
                f"{name} must be binary (bool or 0/1); found value {part[np.argmax(bad)]}"
            )


def _check_tolerance(tolerance: Any) -> int:
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | np.integer) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative integer; found {tolerance!r}")
    return int(tolerance)


def _check_thresholds(thresholds: Any) -> np.ndarray:
    if thresholds is None:
        return default_thresholds()
    arr = _to_numpy(thresholds, "thresholds").astype(np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("thresholds is empty")
    if not np.isfinite(arr).all():
        raise ValueError("thresholds must be finite")
    if arr.size > 1 and not (np.diff(arr) > 0).all():
        raise ValueError("thresholds must be strictly increasing")
    return arr


def _check_maps(probs: Any, masks: Any) -> tuple[Any, Any]:
    """Checked maps: two (N, H, W) arrays, or two lists of N (H_i, W_i) arrays.

    A list (or tuple) on either side makes both lists: maps of different sizes stay apart.
    """
    if isinstance(probs, list | tuple) or isinstance(masks, list | tuple):
        return _check_map_list(list(probs), list(masks))
    probs = _to_numpy(probs, "probs")
    masks = _to_numpy(masks, "masks")
    if probs.ndim != 3:
        raise ValueError(
            f"probs must be 3-D (N, H, W); found {probs.ndim}-D with shape {probs.shape}"
        )
    if masks.ndim != 3:
        raise ValueError(
            f"masks must be 3-D (N, H, W); found {masks.ndim}-D with shape {masks.shape}"
        )
    if masks.shape != probs.shape:
        raise ValueError(f"masks shape {masks.shape} does not match probs shape {probs.shape}")
    _check_probs_range(probs, "probs")
    _check_binary(masks, "masks")
    if probs.dtype.kind in "biu":
        probs = probs.astype(np.float64)
    return probs, masks


def _check_map_list(
    probs: list[Any], masks: list[Any]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if len(probs) != len(masks):
        raise ValueError(f"probs holds {len(probs)} maps but masks holds {len(masks)}")
    out_p, out_g = [], []
    for i, (p, g) in enumerate(zip(probs, masks, strict=True)):
        p, g = _to_numpy(p, f"probs[{i}]"), _to_numpy(g, f"masks[{i}]")
        for arr, name in ((p, f"probs[{i}]"), (g, f"masks[{i}]")):
            if arr.ndim != 2:
                raise ValueError(
                    f"{name} must be 2-D (H, W); found {arr.ndim}-D with shape {arr.shape}"
                )
        if g.shape != p.shape:
            raise ValueError(
                f"masks[{i}] shape {g.shape} does not match probs[{i}] shape {p.shape}"
            )
        _check_probs_range(p, f"probs[{i}]")
        _check_binary(g, f"masks[{i}]")
        out_p.append(p.astype(np.float64) if p.dtype.kind in "biu" else p)
        out_g.append(g)
    return out_p, out_g


def _blocks(probs: Any, masks: Any) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(start, probs (b, h, w), masks (b, h, w))`` over consecutive images of one size and
    dtype, about :data:`_CHUNK_PIXELS` pixels at a time (list maps are stacked block by block)."""
    if isinstance(probs, np.ndarray):
        n, h, w = probs.shape
        step = max(1, _CHUNK_PIXELS // max(1, h * w))
        for start in range(0, n, step):
            yield start, probs[start : start + step], masks[start : start + step]
        return
    start = 0
    while start < len(probs):
        shape, dtype = probs[start].shape, probs[start].dtype
        step = max(1, _CHUNK_PIXELS // max(1, shape[0] * shape[1]))
        stop = start + 1
        while (
            stop < len(probs)
            and stop - start < step
            and probs[stop].shape == shape
            and probs[stop].dtype == dtype
        ):
            stop += 1
        yield start, np.stack(probs[start:stop]), np.stack(masks[start:stop])
        start = stop


# --------------------------------------------------------------------------- counting core


@dataclass(frozen=True)
class Counts:
    """Per-image, per-threshold pixel counts: the one pass every segmentation metric reads.

    Attributes:
        thresholds: (T,) float64 thresholds.
        tolerance: dilation radius of the plus-shaped element.
        tp: (N, T) int64, ``|P ∧ D|`` (predicted pixels inside the dilated mask).
        fp: (N, T) int64, ``|P ∧ ¬D|``.
        fn: (N, T) int64, ``|G ∧ ¬P|`` (undilated mask pixels missed).
        tp_plain: (N, T) int64, ``|P ∧ G|`` (no tolerance).
        pred_pos: (N, T) int64, ``|P|``.
        gt_pos: (N,) int64, ``|G|``.
    """

    thresholds: np.ndarray
    tolerance: int
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tp_plain: np.ndarray
    pred_pos: np.ndarray
    gt_pos: np.ndarray

    @property
    def has_crack(self) -> np.ndarray:
        """(N,) bool, True for images whose mask is not empty."""
        return self.gt_pos > 0

    def without_tolerance(self) -> Counts:
        """The same counts for tolerance 0, derived from ``tp_plain``, ``pred_pos``, ``gt_pos``."""
        return Counts(
            thresholds=self.thresholds,
            tolerance=0,
            tp=self.tp_plain,
            fp=self.pred_pos - self.tp_plain,
            fn=self.gt_pos[:, None] - self.tp_plain,
            tp_plain=self.tp_plain,
            pred_pos=self.pred_pos,
            gt_pos=self.gt_pos,
        )

    @property
    def n_images(self) -> int:
        return int(self.gt_pos.size)

    def column(self, threshold: float) -> int:
        """Index of ``threshold`` among the counted thresholds (exact float equality).

        Raises:
            ValueError: ``threshold`` was not counted.
        """
        t = float(threshold)
        j = int(np.searchsorted(self.thresholds, t))
        if j == self.thresholds.size or self.thresholds[j] != t:
            raise ValueError(
                f"threshold {t!r} was not counted (counted {self.thresholds.size} thresholds from "
                f"{self.thresholds[0]!r} to {self.thresholds[-1]!r}); count it by passing it in "
                "the thresholds of count_stats"
            )
        return j

    def columns(self, index: Any, thresholds: Any = None) -> Counts:
        """The counts at the threshold indices ``index`` (labelled ``thresholds`` if given)."""
        index = np.asarray(index, dtype=np.intp).reshape(-1)
        labels = self.thresholds[index] if thresholds is None else np.asarray(thresholds, float)
        if labels.shape != index.shape:
            raise ValueError(f"{labels.size} threshold labels for {index.size} columns")
        return Counts(
            thresholds=labels,
            tolerance=self.tolerance,
            tp=self.tp[:, index],
            fp=self.fp[:, index],
            fn=self.fn[:, index],
            tp_plain=self.tp_plain[:, index],
            pred_pos=self.pred_pos[:, index],
            gt_pos=self.gt_pos,
        )

    def without_predictions(self, rows: Any) -> Counts:
        """The counts with every pixel of the images ``rows`` (N,) bool predicted negative.

        What zeroing those images' probability maps gives (the original's SEG_BLACK): no
        predicted pixel, so ``tp = fp = tp_plain = pred_pos = 0`` and ``fn = gt_pos``.
        """
        rows = np.asarray(rows, dtype=bool).reshape(-1)
        if rows.size != self.n_images:
            raise ValueError(f"rows has {rows.size} entries for {self.n_images} images")
        keep = ~rows[:, None]
        return Counts(
            thresholds=self.thresholds,
            tolerance=self.tolerance,
            tp=np.where(keep, self.tp, 0),
            fp=np.where(keep, self.fp, 0),
            fn=np.where(keep, self.fn, self.gt_pos[:, None]),
            tp_plain=np.where(keep, self.tp_plain, 0),
            pred_pos=np.where(keep, self.pred_pos, 0),
            gt_pos=self.gt_pos,
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Counts]) -> Counts:
        """The counts of several image sets, in order; thresholds and tolerance must agree.

        Raises:
            ValueError: no part, or parts counted at other thresholds or tolerances.
        """
        if not parts:
            raise ValueError("no counts to concatenate")
        first = parts[0]
        for part in parts[1:]:
            if part.tolerance != first.tolerance or not np.array_equal(
                part.thresholds, first.thresholds
            ):
                raise ValueError("counts of other thresholds or tolerance cannot be concatenated")
        return cls(
            thresholds=first.thresholds,
            tolerance=first.tolerance,
            **{
                name: np.concatenate([getattr(p, name) for p in parts])
                for name in ("tp", "fp", "fn", "tp_plain", "pred_pos", "gt_pos")
            },
        )


def _dilate(g: np.ndarray, r: int) -> np.ndarray:
    """(n, H, W) bool dilated by the plus-shaped element of radius r, border pixels absent."""
    d = g.copy()
    for s in range(1, r + 1):
        d[:, s:, :] |= g[:, :-s, :]
        d[:, :-s, :] |= g[:, s:, :]
        d[:, :, s:] |= g[:, :, :-s]
        d[:, :, :-s] |= g[:, :, s:]
    return d


def _native_cut(threshold: float, dtype: np.dtype) -> np.floating:
    """The smallest ``dtype`` value ``c >= threshold``: ``p >= c`` in ``dtype`` equals the float64
    comparison ``p >= threshold`` for every ``p`` of that dtype, without widening the array."""
    with np.errstate(over="ignore"):
        cut = np.asarray(threshold).astype(dtype)[()]
    if float(cut) < float(threshold):
        cut = np.nextafter(cut, dtype.type(np.inf))
    return cut


def _threshold_index(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Number of thresholds ``<= value`` for each value: ``searchsorted(..., side="right")``.

    For a (near-)uniform grid the index is estimated arithmetically, which is off by at most one,
    then corrected by one exact comparison each way; other grids use ``np.searchsorted``.

    Args:
        values: (M,) float64.
        thresholds: (T,) float64, strictly increasing.

    Returns:
        (M,) intp in ``[0, T]``.
    """
    n_t = thresholds.size
    if n_t < 2:
        return np.searchsorted(thresholds, values, side="right")
    start = thresholds[0]
    step = (thresholds[-1] - start) / (n_t - 1)
    if np.abs(thresholds - (start + step * np.arange(n_t))).max() > 0.25 * step:
        return np.searchsorted(thresholds, values, side="right")
    estimate = values - start
    estimate /= step
    np.floor(estimate, out=estimate)
    np.clip(estimate, -1, n_t - 1, out=estimate)
    k = estimate.astype(np.intp)
    k += 1
    padded = np.concatenate(([-np.inf], thresholds, [np.inf]))
    k += values >= np.take(padded, k + 1)
    k -= values < np.take(padded, k)
    return k


def count_stats(probs: Any, masks: Any, tolerance: int = 2, thresholds: Any = None) -> Counts:
    """Count TP/FP/FN per image for every threshold in one pass over the pixels.

    Only pixels with ``prob >= thresholds[0]`` can be positive. Each gets ``k``, the number of
    thresholds ``<= prob`` (exactly ``np.searchsorted(thresholds, prob, side="right")``; the pixel
    is positive at threshold indices ``0 .. k-1``), and a class: outside ``D``, in ``D`` but not
    ``G``, or in ``G``. One ``bincount`` per block of images over the key ``(image, class, k)``
    and a reverse cumulative sum over ``k`` give every count at every threshold. Memory is
    bounded by the block size (about 4 M pixels), never ``N * H * W * T``.

    Args:
        probs: (N, H, W) float in [0, 1]; or a list of N (H_i, W_i) maps, whose sizes may differ
            from image to image (each image is counted on its own grid).
        masks: (N, H, W) binary, or a list of N (H_i, W_i) binary masks, each the size of its map.
        tolerance: radius of the plus-shaped dilation of the masks (0: none).
        thresholds: (T,) strictly increasing; default :func:`default_thresholds`.

    Returns:
        :class:`Counts` with (N, T) arrays.

    Raises:
        ValueError: on malformed inputs (see the module docstring).
    """
    probs, masks = _check_maps(probs, masks)
    radius = _check_tolerance(tolerance)
    thresholds = _check_thresholds(thresholds)
    n = len(probs)
    n_bins = thresholds.size + 1
    hist = np.zeros((n, 3, n_bins), dtype=np.int64)
    gt_pos = np.zeros(n, dtype=np.int64)
    for start, p_block, g_block in _blocks(probs, masks):
        stop = start + len(p_block)
        _count_block(p_block, g_block, radius, thresholds, hist[start:stop], gt_pos[start:stop])
    at_least = np.cumsum(hist[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:]
    pred_pos = at_least.sum(axis=1)
    tp_plain = at_least[:, 2]
    tp = at_least[:, 1] + tp_plain
    return Counts(
        thresholds=thresholds,
        tolerance=radius,
        tp=tp,
        fp=pred_pos - tp,
        fn=gt_pos[:, None] - tp_plain,
        tp_plain=np.ascontiguousarray(tp_plain),
        pred_pos=pred_pos,
        gt_pos=gt_pos,
    )


def _count_block(
    probs: np.ndarray,
    masks: np.ndarray,
    radius: int,
    thresholds: np.ndarray,
    hist: np.ndarray,
    gt_pos: np.ndarray,
) -> None:
    """Add the (b, 3, T+1) histogram and (b,) mask sizes of one block of equal-sized images."""
    b, h, w = probs.shape
    n_bins = thresholds.size + 1
    p = np.ascontiguousarray(probs).reshape(-1)
    g = np.ascontiguousarray(masks)
    g = g if g.dtype == bool else g != 0
    gt_pos += np.count_nonzero(g, axis=(1, 2))
    idx = np.flatnonzero(p >= _native_cut(thresholds[0], p.dtype))
    if idx.size == 0:
        return
    k = _threshold_index(np.take(p, idx).astype(np.float64), thresholds)
    in_g = g.reshape(-1)[idx]
    in_d = _dilate(g, radius).reshape(-1)[idx] if radius else in_g
    key = (idx // (h * w)) * (3 * n_bins)
    key += (in_d.astype(np.intp) + in_g) * n_bins
    key += k
    hist += np.bincount(key, minlength=b * 3 * n_bins).reshape(b, 3, n_bins)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den where num > 0, else 0 (no warnings for 0/0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=num > 0)


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, ...]:
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1


def _crack_rows(counts: Counts) -> np.ndarray:
    rows = counts.has_crack
    if not rows.any():
        raise ValueError(
            "masks: no crack-containing image (every mask is empty), so per-image "
            "precision, recall, Dice and IoU are undefined"
        )
    return rows


# --------------------------------------------------------------------------- tolerance sweep


@dataclass(frozen=True)
class ToleranceSweep:
    """Mean tolerance precision / recall / F1 at every threshold, and the best F1 point.

    Attributes:
        thresholds: (T,) float64.
        precision: (T,) mean over crack-containing images.
        recall: (T,) same.
        f1: (T,) mean of the per-image F1 (not the F1 of the means).
        best_index: index of the highest mean F1 (lowest threshold on ties).
        best_threshold, best_precision, best_recall, best_f1: values at ``best_index``.
        n_images: number of crack-containing images averaged.
        tolerance: dilation radius used.
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    best_index: int
    best_threshold: float
    best_precision: float
    best_recall: float
    best_f1: float
    n_images: int
    tolerance: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready best point: precision, recall, f1, threshold, plus the tolerance."""
        return {
            "precision": self.best_precision,
            "recall": self.best_recall,
            "f1": self.best_f1,
            "threshold": self.best_threshold,
            "tolerance": self.tolerance,
        }


def tolerance_sweep(
    probs: Any, masks: Any, tolerance: int = 2, thresholds: Any = None
) -> ToleranceSweep:
    """Mean per-image precision / recall / F1 within ``tolerance`` pixels, for every threshold.

    Args:
        probs: (N, H, W) float in [0, 1], numpy or torch.
        masks: (N, H, W) binary, numpy or torch.
        tolerance: radius of the plus-shaped dilation (2 reproduces the original 5x5 cross).
        thresholds: (T,) strictly increasing; default :func:`default_thresholds`.

    Returns:
        :class:`ToleranceSweep`.

    Raises:
        ValueError: on malformed inputs, or when no mask contains a crack.
    """
    return _tolerance_sweep(count_stats(probs, masks, tolerance, thresholds))


def tolerance_sweep_counts(counts: Counts, *, all_images: bool = False) -> ToleranceSweep:
    """:func:`tolerance_sweep` from counts already made by :func:`count_stats`.

    Args:
        counts: the counts (at the thresholds to sweep).
        all_images: average over all N images, a crack-free image counting 0 (its ``tp`` is 0),
            as the original code did; default: over the crack-containing images only.

    Raises:
        ValueError: no crack-containing image.
    """
    return _tolerance_sweep(counts, all_images=all_images)


def _tolerance_sweep(counts: Counts, *, all_images: bool = False) -> ToleranceSweep:
    rows = _crack_rows(counts)
    if all_images:
        rows = np.ones_like(rows)
    precision, recall, f1 = _prf(counts.tp[rows], counts.fp[rows], counts.fn[rows])
    mean_p, mean_r, mean_f = precision.mean(axis=0), recall.mean(axis=0), f1.mean(axis=0)
    best = int(np.argmax(mean_f))
    return ToleranceSweep(
        thresholds=counts.thresholds,
        precision=mean_p,
        recall=mean_r,
        f1=mean_f,
        best_index=best,
        best_threshold=float(counts.thresholds[best]),
        best_precision=float(mean_p[best]),
        best_recall=float(mean_r[best]),
        best_f1=float(mean_f[best]),
        n_images=int(rows.sum()),
        tolerance=counts.tolerance,
    )


def per_image_tolerance(counts: Counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image tolerance precision, recall and F1, each (N, T), 0 where ``tp == 0``."""
    return _prf(counts.tp, counts.fp, counts.fn)


def per_image_dice_iou(counts: Counts) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Dice and IoU (no tolerance), each (N, T); 0 where the numerator is 0 (so an
    image with an empty mask and no predicted pixel scores 0, not 1)."""
    inter, pred, gt = counts.tp_plain, counts.pred_pos, counts.gt_pos[:, None]
    return _ratio(2 * inter, pred + gt), _ratio(inter, pred + gt - inter)


# --------------------------------------------------------------------------- bootstrap


def bootstrap_ci(
    values: Any, *, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> list[float]:
    """Percentile bootstrap interval of the mean of ``values``.

    Each of ``resamples`` resamples draws ``n = len(values)`` indices uniformly with replacement
    (``numpy.random.default_rng(seed).integers(0, n, size=(resamples, n))``, one row per
    resample); the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    resample means (``numpy.percentile``, linear interpolation). The same ``seed`` and ``n``
    give the same resamples, so intervals of several per-image metrics are paired.

    Args:
        values: (n,) finite numbers, n >= 1.
        resamples: number of resamples, >= 1.
        seed: seed of the generator.
        level: coverage, in (0, 1).

    Returns:
        ``[lo, hi]``, plain floats.

    Raises:
        ValueError: empty or non-finite values, ``resamples < 1`` or ``level`` outside (0, 1).
    """
    arr = _to_numpy(values, "values").astype(np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("values is empty: nothing to resample")
    if not np.isfinite(arr).all():
        raise ValueError("values must be finite")
    if isinstance(resamples, bool) or not isinstance(resamples, int | np.integer) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer; found {resamples!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie in (0, 1); found {level!r}")
    rng = np.random.default_rng(seed)
    n = arr.size
    means = np.empty(int(resamples))
    rows = max(1, _CHUNK_PIXELS // n)
    for start in range(0, int(resamples), rows):
        stop = min(int(resamples), start + rows)
        means[start:stop] = arr[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = (1.0 - float(level)) / 2.0
    lo, hi = np.percentile(means, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return [float(lo), float(hi)]


# --------------------------------------------------------------------------- Dice / IoU


@dataclass(frozen=True)
class DiceIoU:
    """Mean per-image Dice and IoU at every threshold, each with its own best threshold.

    Attributes:
        thresholds: (T,) float64.
        dice: (T,) mean Dice over crack-containing images.
        iou: (T,) mean IoU over crack-containing images.
        best_dice, best_dice_threshold: highest mean Dice and its threshold (lowest on ties).
        best_iou, best_iou_threshold: highest mean IoU and its threshold (lowest on ties).
        n_images: number of crack-containing images averaged.
    """

    thresholds: np.ndarray
    dice: np.ndarray
    iou: np.ndarray
    best_dice: float
    best_dice_threshold: float
    best_iou: float
    best_iou_threshold: float
    n_images: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"dice": {"value", "threshold"}, "iou": {"value", "threshold"}}``."""
        return {
            "dice": {"value": self.best_dice, "threshold": self.best_dice_threshold},
            "iou": {"value": self.best_iou, "threshold": self.best_iou_threshold},
        }


def dice_iou_sweep(probs: Any, masks: Any, thresholds: Any = None) -> DiceIoU:
    """Mean per-image Dice and IoU (no tolerance) for every threshold.

    Args:
        probs: (N, H, W) float in [0, 1], numpy or torch.
        masks: (N, H, W) binary, numpy or torch.
        thresholds: (T,) strictly increasing; default :func:`default_thresholds`.

    Returns:
        :class:`DiceIoU`.

    Raises:
        ValueError: on malformed inputs, or when no mask contains a crack.
    """
    return _dice_iou(count_stats(probs, masks, 0, thresholds))


def _dice_iou(counts: Counts) -> DiceIoU:
    rows = _crack_rows(counts)
    inter = counts.tp_plain[rows]
    pred = counts.pred_pos[rows]
    gt = counts.gt_pos[rows, None]
    dice = _ratio(2 * inter, pred + gt).mean(axis=0)
    iou = _ratio(inter, pred + gt - inter).mean(axis=0)
    best_dice, best_iou = int(np.argmax(dice)), int(np.argmax(iou))
    return DiceIoU(
        thresholds=counts.thresholds,
        dice=dice,
        iou=iou,
        best_dice=float(dice[best_dice]),
        best_dice_threshold=float(counts.thresholds[best_dice]),
        best_iou=float(iou[best_iou]),
        best_iou_threshold=float(counts.thresholds[best_iou]),
        n_images=int(rows.sum()),
    )


# --------------------------------------------------------------------------- ODS / OIS


def ods_ois(probs: Any, masks: Any, tolerance: int = 2, thresholds: Any = None) -> dict[str, Any]:
    """Optimal dataset scale (ODS) and optimal image scale (OIS) F1 with tolerance.

    Args:
        probs: (N, H, W) float in [0, 1], numpy or torch.
        masks: (N, H, W) binary, numpy or torch.
        tolerance: radius of the plus-shaped dilation.
        thresholds: (T,) strictly increasing; default :func:`default_thresholds`.

    Returns:
        ``{"ods": {"f1", "threshold", "precision", "recall"}, "ois": {"f1"}}``, plain Python
        numbers. ODS sums counts over all N images; OIS averages over the
        crack-containing ones.

    Raises:
        ValueError: on malformed inputs, or when no mask contains a crack.
    """
    return _ods_ois(count_stats(probs, masks, tolerance, thresholds))


def _ods_ois(counts: Counts) -> dict[str, Any]:
    rows = _crack_rows(counts)
    precision, recall, f1 = _prf(
        counts.tp.sum(axis=0), counts.fp.sum(axis=0), counts.fn.sum(axis=0)
    )
    best = int(np.argmax(f1))
    per_image_f1 = _prf(counts.tp[rows], counts.fp[rows], counts.fn[rows])[2]
    return {
        "ods": {
            "f1": float(f1[best]),
            "threshold": float(counts.thresholds[best]),
            "precision": float(precision[best]),
            "recall": float(recall[best]),
        },
        "ois": {"f1": float(per_image_f1.max(axis=1).mean())},
    }


# --------------------------------------------------------------------------- decision metrics


_DECISION_SCALARS = (
    "precision",
    "recall",
    "f1",
    "accuracy",
    "threshold",
    "tp",
    "fp",
    "fn",
    "tn",
    "ap_step",
    "ap_trapezoid",
    "auc",
    "n_samples",
    "n_positive",
)


def segmentation_metrics(
    probs: Any, masks: Any, tolerance: int = 2, thresholds: Any = None
) -> dict[str, Any]:
    """Every pixel-level view from one counting pass: what an evaluation reports.

    Returns:
        ``{"tolerance": ToleranceSweep, "pixel": ToleranceSweep (tolerance 0), "dice_iou": DiceIoU,
        "ods_ois": dict}``, each equal to what :func:`tolerance_sweep`, :func:`dice_iou_sweep` and
        :func:`ods_ois` return for the same inputs.
    """
    return segmentation_metrics_counts(count_stats(probs, masks, tolerance, thresholds))


def segmentation_metrics_counts(counts: Counts) -> dict[str, Any]:
    """:func:`segmentation_metrics` from counts already made by :func:`count_stats`."""
    plain = counts.without_tolerance()
    return {
        "tolerance": _tolerance_sweep(counts),
        "pixel": _tolerance_sweep(plain),
        "dice_iou": _dice_iou(plain),
        "ods_ois": _ods_ois(counts),
    }


@dataclass(frozen=True)
class DecisionMetrics:
    """Image-level crack / no-crack metrics at one operating threshold, plus threshold-free ones.

    Attributes:
        precision, recall, f1, accuracy: at ``threshold`` (0 when ``tp == 0``).
        threshold: operating threshold (``score >= threshold`` is a crack).
        tp, fp, fn, tn: confusion counts at ``threshold``.
        ap_step: step-wise average precision, ``sklearn.metrics.average_precision_score``
            (sum of precision times recall increments); None without positive labels.
        ap_trapezoid: trapezoidal area under the PR curve, ``sklearn.metrics.auc(recall,
            precision)``, what the original code logged as "AP"; None without positive labels.
        auc: ROC AUC; None when only one class is present.
        pr_precision, pr_recall: (K+1,) PR curve as ``precision_recall_curve`` returns it.
        pr_thresholds: (K,) increasing curve thresholds.
        n_samples, n_positive: number of images and of crack images.
        notes: human-readable remarks on undefined quantities.
    """

    precision: float
    recall: float
    f1: float
    accuracy: float
    threshold: float
    tp: int
    fp: int
    fn: int
    tn: int
    ap_step: float | None
    ap_trapezoid: float | None
    auc: float | None
    pr_precision: list[float]
    pr_recall: list[float]
    pr_thresholds: list[float]
    n_samples: int
    n_positive: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self, curve: bool = True) -> dict[str, Any]:
        """JSON-ready dict of plain Python numbers; the PR curve under ``"curve"`` if asked."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _DECISION_SCALARS}
        out["notes"] = list(self.notes)
        if curve:
            out["curve"] = {
                "precision": list(self.pr_precision),
                "recall": list(self.pr_recall),
                "thresholds": list(self.pr_thresholds),
            }
        return out


def _check_decision_inputs(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    labels = _to_numpy(labels, "labels")
    scores = _to_numpy(scores, "scores")
    for arr, name in ((labels, "labels"), (scores, "scores")):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D (N,); found shape {arr.shape}")
    if labels.size == 0:
        raise ValueError("labels is empty (N = 0): no image to evaluate")
    if labels.shape != scores.shape:
        raise ValueError(
            f"labels and scores must have the same length; found {labels.size} and {scores.size}"
        )
    bad = (labels != 0) & (labels != 1)
    if bad.any():
        raise ValueError(f"labels must be binary (0/1); found value {labels[np.argmax(bad)]}")
    _check_probs_range(scores, "scores")
    return labels.astype(np.int64), scores.astype(np.float64)


def _count_at_or_above(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="left")


def decision_metrics(labels: Any, scores: Any, threshold: float | None = None) -> DecisionMetrics:
    """Image-level detection metrics: AP, ROC AUC and the confusion matrix at a threshold.

    Args:
        labels: (N,) binary, 1 for an image with a crack.
        scores: (N,) float in [0, 1], the predicted crack probability.
        threshold: operating threshold; default the PR-curve threshold of best F1 (lowest on ties).

    Returns:
        :class:`DecisionMetrics`.

    Raises:
        ValueError: on N = 0, mismatched lengths, non-binary labels, scores outside [0, 1] or not
            finite, or a non-finite ``threshold``.
    """
    from sklearn.metrics import auc as trapezoid_area
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    labels, scores = _check_decision_inputs(labels, scores)
    n_positive = int(labels.sum())
    n_negative = labels.size - n_positive
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pr_precision, pr_recall, pr_thresholds = precision_recall_curve(labels, scores)
    if n_positive == 0:
        ap_step = ap_trapezoid = None
        notes.append("no positive (crack) label: AP and trapezoidal AP are undefined (None)")
    else:
        ap_step = float(average_precision_score(labels, scores))
        ap_trapezoid = float(trapezoid_area(pr_recall, pr_precision))
    if n_positive == 0 or n_negative == 0:
        roc_auc = None
        present = "positive (crack)" if n_negative == 0 else "negative (no-crack)"
        notes.append(f"only {present} labels present: ROC AUC is undefined (None)")
    else:
        roc_auc = float(roc_auc_score(labels, scores))

    positives = np.sort(scores[labels == 1])
    negatives = np.sort(scores[labels == 0])
    if threshold is None:
        tps = _count_at_or_above(positives, pr_thresholds)
        fps = _count_at_or_above(negatives, pr_thresholds)
        curve_f1 = _ratio(2 * tps, 2 * tps + fps + (n_positive - tps))
        threshold = float(pr_thresholds[int(np.argmax(curve_f1))])
        if n_positive == 0:
            notes.append("no positive label: F1 is 0 at every threshold; the lowest score is used")
    else:
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be finite; found {threshold}")
    tp = int(_count_at_or_above(positives, np.array([threshold]))[0])
    fp = int(_count_at_or_above(negatives, np.array([threshold]))[0])
    fn, tn = n_positive - tp, n_negative - fp
    precision = tp / (tp + fp) if tp else 0.0
    recall = tp / (tp + fn) if tp else 0.0
    return DecisionMetrics(
        precision=precision,
        recall=recall,
        f1=2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        accuracy=(tp + tn) / labels.size,
        threshold=threshold,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        ap_step=ap_step,
        ap_trapezoid=ap_trapezoid,
        auc=roc_auc,
        pr_precision=[float(v) for v in pr_precision],
        pr_recall=[float(v) for v in pr_recall],
        pr_thresholds=[float(v) for v in pr_thresholds],
        n_samples=int(labels.size),
        n_positive=n_positive,
        notes=notes,
    )
