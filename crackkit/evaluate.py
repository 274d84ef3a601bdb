"""Batched inference and evaluation of a SegDecNet model on a split, under the seed's protocol.

:func:`count_split` runs the model (:func:`crackkit.inference.forward`) under
``torch.inference_mode`` in batches and counts, image by
image, the pixels of every threshold at the annotation's native resolution; :func:`compute_metrics`
turns the counts and the image scores into the seed report's metrics with the functions of
:mod:`crackkit.metrics`.

Protocol
--------
Network input.
    Each image is resized to the run's input size (bilinear, :class:`~crackkit.data.dataset.
    CrackDataset`), as the original does.

Probability maps.
    The segmentation logits go through the sigmoid at the network's output. A ``segdecnet``
    output (1/8 of the input, ``model.output_stride`` 8) is first brought to the input size by
    nearest-neighbour upsampling x8 (each output cell becomes an 8x8 block), as the published
    network returns it; never bilinear. The probability map at the input size is then resized to
    its mask's own (native) size by **bilinear** interpolation of the probabilities
    (``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``, no antialiasing,
    clipped to [0, 1]); when the sizes agree nothing is resized. Masks are read at their native
    size (:func:`native_mask`) and never resized, so every count is of annotated pixels.

Counting.
    Maps are counted batch by batch (:func:`crackkit.metrics.count_stats` on the batch's list of
    native-size maps) at the thresholds of :func:`count_grid`, and then dropped, so memory holds
    (N, T) counts rather than N maps and no probability is quantised: the thresholds compare
    float32 probabilities exactly. Only the maps of the images asked for in ``keep`` (a gallery)
    are kept.

Thresholds.
    Headline figures (``decision``, ``pixel_2px``, ``dice``, ``iou``) are taken at thresholds
    chosen on the validation split, each metric at its own (``val_thresholds``); where none is
    given, the best threshold on the evaluated split is used and the entry says so
    (``threshold_source: "oracle"``). The best-on-this-split values are always kept as
    ``*_oracle`` entries; ODS/OIS are oracle by definition.

Per-image means.
    crackkit's means are over the crack-containing images with ``prob >= threshold``.
    ``pixel_2px_original_mean`` (at the headline threshold) and ``pixel_2px_original_mean_oracle``
    (best threshold on this split) are the original code's means: over all images, a crack-free
    image counting 0, with ``prob > threshold``.

Zeroed segmentation (``seg_black``).
    Before the pixel metrics, the maps of the images whose score is below the headline decision
    threshold (decided crack-free) are set to 0, as the original's SEG_BLACK; every pixel view,
    oracle ones included, then reads the zeroed maps.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from crackkit import metrics as M
from crackkit.checkpoint import THRESHOLD_KEYS
from crackkit.data.augment import unflip
from crackkit.data.folder import Sample, image_size, read_mask
from crackkit.data.weights import dilate_mask
from crackkit.inference import forward
from crackkit.losses import decision_loss, segmentation_loss
from crackkit.runtime import Placement

__all__ = [
    "CALIBRATION_BINS",
    "PROBABILITY_RESIZE",
    "THRESHOLD_KEYS",
    "Predictions",
    "calibration_metrics",
    "compute_metrics",
    "count_grid",
    "count_split",
    "evaluate",
    "native_mask",
    "native_probability",
]

PROBABILITY_RESIZE = (
    "bilinear interpolation of the probabilities (after the sigmoid) from the input size to "
    "each mask's native size: torch.nn.functional.interpolate(mode='bilinear', "
    "align_corners=False, antialias=False), clipped to [0, 1]; none where the sizes agree"
)


@dataclass
class Predictions:
    """Model outputs on a split, with the pixel counts of every image at its native size.

    Attributes:
        scores: (N,) float64 in [0, 1], the image-level crack probability.
        labels: (N,) int64 in {0, 1}, 1 for an image whose mask marks a crack.
        losses: mean ``loss_seg`` and ``loss_dec`` over the split (at the input size).
        counts: :class:`crackkit.metrics.Counts` (N, T) at the thresholds of :func:`count_grid`.
        sweep: (T',) the thresholds best values are searched over (a subset of the counted ones).
        sizes: native ``(height, width)`` of each image's mask.
        input_size: ``(height, width)`` the network saw.
        output_stride: input size over segmentation output size (8 for ``segdecnet``, else 1).
        kept: for the positions asked for in ``keep``, ``(prob (h, w) float32, mask (h, w)
            bool)`` at native size.
        calibration: (4, :data:`CALIBRATION_BINS`) float64 over every pixel at native size: per
            probability bin the pixel count, the sum of probabilities, the crack pixels; row 3
            holds in its first two cells the sum of probabilities over background pixels and
            over crack pixels (:func:`calibration_metrics`).
        segmented: (N,) bool, False for an image-level positive (a crack image without mask):
            it counts in the decision metrics only, and ``counts``, ``sizes``, ``kept`` and
            ``calibration`` hold the other images alone. None: every image has its mask.
    """

    scores: np.ndarray
    labels: np.ndarray
    losses: dict[str, float]
    counts: M.Counts
    sweep: np.ndarray
    sizes: list[tuple[int, int]]
    input_size: tuple[int, int]
    output_stride: int
    kept: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    calibration: np.ndarray | None = None
    segmented: np.ndarray | None = None

    @property
    def pixel_images(self) -> np.ndarray:
        """(N,) bool: the images whose pixels are counted (all but image-level positives)."""
        if self.segmented is None:
            return np.ones(len(self.scores), dtype=bool)
        return self.segmented

    @property
    def n_resized(self) -> int:
        """Images whose native size differs from the input size (their maps were resized)."""
        return sum(tuple(s) != tuple(self.input_size) for s in self.sizes)


def native_probability(prob: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A probability map (1, 1, H, W) resized to a mask's native ``size`` (see the module)."""
    if tuple(prob.shape[-2:]) == tuple(size):
        return prob
    out = F.interpolate(prob.float(), size=tuple(size), mode="bilinear", align_corners=False)
    return out.clamp_(0.0, 1.0)


def native_mask(sample: Sample, dilate: int = 1) -> np.ndarray:
    """A sample's mask at its native size, (H, W) bool; all False for a sample without mask.
    ``dilate > 1`` dilates it by that square (``dilate_mode="original"``, the original's
    protocol)."""
    if sample.mask is None:
        return np.zeros(image_size(sample.image), dtype=bool)
    return dilate_mask(read_mask(sample.mask), dilate)


def count_grid(extra: Sequence[float] = (), sweep: np.ndarray | None = None) -> np.ndarray:
    """The thresholds :func:`count_split` counts at.

    The sweep grid (default :func:`crackkit.metrics.default_thresholds`) and the ``extra``
    thresholds (those chosen on the validation split), each also at ``numpy.nextafter(t, inf)``:
    ``prob >= nextafter(t)`` is exactly ``prob > t``, the original code's rule.

    Returns:
        (T,) float64, strictly increasing.
    """
    base = M.default_thresholds() if sweep is None else np.asarray(sweep, dtype=np.float64)
    base = np.union1d(base, np.asarray(list(extra), dtype=np.float64))
    return np.union1d(base, np.nextafter(base, np.inf))


def _base_dataset(dataset: Dataset) -> Dataset:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _samples_of(dataset: Dataset) -> tuple[list[Sample], list[int]]:
    """The samples behind ``dataset`` and, for each of its positions, the index among them."""
    positions = list(range(len(dataset)))
    while isinstance(dataset, Subset):
        positions = [int(dataset.indices[i]) for i in positions]
        dataset = dataset.dataset
    return list(dataset.samples), positions


@torch.inference_mode()
def count_split(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device,
    *,
    tolerance: int = 2,
    thresholds: np.ndarray | None = None,
    sweep: np.ndarray | None = None,
    keep: Collection[int] = (),
    batch_size: int = 16,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    num_workers: int = 0,
    progress: bool = False,
    desc: str = "evaluate",
) -> Predictions:
    """Run ``model`` over every sample of ``dataset`` in order and count its pixels.

    Args:
        dataset: a :class:`~crackkit.data.dataset.CrackDataset` (or a ``Subset`` of one). Its
            image-level positives (no mask) are scored but their pixels are not counted.
        tolerance: radius of the 2-pixel view's dilation.
        thresholds: thresholds to count at; default :func:`count_grid` of ``sweep``.
        sweep: thresholds to search best values over; default
            :func:`crackkit.metrics.default_thresholds`. Each must be counted.
        keep: positions in ``dataset`` whose native maps are returned in ``kept``.

    With ``channels_last``, the model's weights are put in that memory format too.
    """
    sweep = M.default_thresholds() if sweep is None else np.asarray(sweep, dtype=np.float64)
    thresholds = count_grid(sweep=sweep) if thresholds is None else np.asarray(thresholds, float)
    missing = np.setdiff1d(sweep, thresholds)
    if missing.size:
        raise ValueError(f"the sweep thresholds {missing.tolist()[:5]} are not counted")
    samples, positions = _samples_of(dataset)
    cfg = getattr(_base_dataset(dataset), "cfg", None)
    dilate = cfg.dilate if cfg is not None and cfg.dilate_mode == "original" else 1
    keep = set(int(i) for i in keep)
    was_training = model.training
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    parts: list[M.Counts] = []
    calibration = np.zeros((4, CALIBRATION_BINS))
    scores, labels, sizes = [], [], []
    kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    seg_sum = torch.zeros((), device=device)
    dec_sum = torch.zeros((), device=device)
    input_size, stride, position = (0, 0), 1, 0
    placement = Placement(device, amp_dtype, channels_last)
    segmented: list[bool] = []
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        y = batch["mask"].to(device, non_blocking=True)
        lab = batch["label"].to(device, non_blocking=True)
        known, flips = batch.get("segmented"), batch.get("flip")
        out = forward(model, batch["image"], placement)
        n = out.dec.shape[0]
        if known is not None:
            known = known.to(device, non_blocking=True)
        seg_sum += segmentation_loss(out.seg, y, segmented=known) * n
        dec_sum += decision_loss(out.dec, lab) * n
        input_size = (int(out.probs.shape[-2]), int(out.probs.shape[-1]))
        stride = input_size[0] // int(out.seg.shape[-2])
        prob = out.probs
        if flips is not None:  # augmented validation (fork-2022-02): back to the mask's frame
            prob = torch.stack([unflip(int(f), p) for f, p in zip(flips, prob, strict=True)])
        maps, masks = [], []
        for j in range(n):
            sample = samples[positions[position]]
            segmented.append(sample.segmented)
            if not sample.segmented:
                position += 1
                continue
            gt = native_mask(sample, dilate)
            p = native_probability(prob[j : j + 1], gt.shape)[0, 0].cpu().numpy()
            p = p.astype(np.float32, copy=False)
            maps.append(p)
            masks.append(gt)
            sizes.append((int(gt.shape[0]), int(gt.shape[1])))
            if position in keep:
                kept[position] = (p, gt)
            position += 1
        if maps:
            parts.append(M.count_stats(maps, masks, tolerance, thresholds))
        for p, gt in zip(maps, masks, strict=True):
            calibration += _calibration_counts(p, gt)
        scores.append(out.scores.cpu())
        labels.append(batch["label"])
    model.train(was_training)
    n_total = len(dataset)
    if not segmented:
        raise ValueError("the data set is empty: no image to evaluate")
    if not parts:  # image-level positives only: no pixel to count
        empty = np.zeros((0, len(thresholds)), dtype=np.int64)
        thr = np.asarray(thresholds, dtype=np.float64)
        parts = [M.Counts(thr, tolerance, empty, empty, empty, empty, empty, empty[:, 0])]
    return Predictions(
        scores=torch.cat(scores).numpy().astype(np.float64),
        labels=torch.cat(labels).numpy().astype(np.int64),
        losses={
            "loss_seg": float(seg_sum) / n_total,
            "loss_dec": float(dec_sum) / n_total,
        },
        counts=M.Counts.concatenate(parts),
        sweep=sweep,
        sizes=sizes,
        input_size=input_size,
        output_stride=stride,
        kept=kept,
        calibration=calibration,
        segmented=None if all(segmented) else np.asarray(segmented, dtype=bool),
    )


#: Equal-width probability bins of the reliability diagram and the expected calibration error.
CALIBRATION_BINS = 10


def _calibration_counts(prob: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """One image's rows of :attr:`Predictions.calibration`."""
    prob = prob.ravel().astype(np.float64)
    crack = gt.ravel()
    bins = np.minimum((prob * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    out = np.zeros((4, CALIBRATION_BINS))
    out[0] = np.bincount(bins, minlength=CALIBRATION_BINS)
    out[1] = np.bincount(bins, weights=prob, minlength=CALIBRATION_BINS)
    out[2] = np.bincount(bins[crack], minlength=CALIBRATION_BINS)
    out[3, 0] = prob[~crack].sum()
    out[3, 1] = prob[crack].sum()
    return out


def calibration_metrics(calibration: np.ndarray) -> dict[str, Any]:
    """Calibration of the crack probabilities over every pixel of a split.

    ``ece``: the expected calibration error over :data:`CALIBRATION_BINS` equal-width bins
    (Guo et al. 2017), ``sum_b (n_b / N) * |mean probability_b - crack frequency_b|``;
    ``mean_background_prob`` / ``mean_crack_prob``: mean probability over the background and
    the crack pixels; ``reliability``: per bin the mean probability, the crack frequency and
    the pixel count (empty bins: None).
    """
    count, prob_sum, crack = calibration[0], calibration[1], calibration[2]
    n = count.sum()
    n_crack = crack.sum()
    filled = count > 0
    confidence = np.where(filled, prob_sum / np.maximum(count, 1), np.nan)
    frequency = np.where(filled, crack / np.maximum(count, 1), np.nan)
    ece = float(np.sum(count[filled] / n * np.abs(confidence[filled] - frequency[filled])))

    def listed(values: np.ndarray) -> list[float | None]:
        return [None if not np.isfinite(v) else float(v) for v in values]

    return {
        "bins": CALIBRATION_BINS,
        "ece": ece,
        "mean_background_prob": float(calibration[3, 0] / max(n - n_crack, 1)),
        "mean_crack_prob": float(calibration[3, 1] / n_crack) if n_crack else None,
        "n_pixels": int(n),
        "n_crack_pixels": int(n_crack),
        "reliability": {
            "confidence": listed(confidence),
            "frequency": listed(frequency),
            "count": [int(c) for c in count],
        },
        "definition": (
            "over every pixel at native resolution, before seg_black; ece = sum over 10 "
            "equal-width probability bins of (pixels in bin / all pixels) * |mean probability "
            "in bin - crack fraction in bin|"
        ),
    }


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _grid_text(sweep: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"first": float(sweep[0]), "last": float(sweep[-1]), "n": int(sweep.size)}
    if sweep.size > 1:
        steps = np.round(np.diff(sweep), 12)
        if np.all(steps == steps[0]):
            out["step"] = float(steps[0])
    return out


def compute_metrics(
    pred: Predictions,
    *,
    val_thresholds: dict[str, float | None] | None = None,
    seg_black: bool = False,
    bootstrap: int = 0,
    bootstrap_seed: int = 0,
) -> dict[str, Any]:
    """The report's metrics from predictions (see the module docstring for the protocol).

    Args:
        val_thresholds: thresholds chosen on the validation split, by :data:`THRESHOLD_KEYS`;
            a missing or None entry falls back to the best threshold on this split, labelled
            ``threshold_source: "oracle"`` in its entry.
        seg_black: zero the maps of images decided crack-free (score below the headline decision
            threshold) before the pixel metrics.
        bootstrap: resamples of the 95% percentile bootstrap interval of the headline 2px F1,
            Dice and IoU over the crack-containing images (0: none).
        bootstrap_seed: seed of those resamples.

    Returns:
        A JSON-ready dict, the body of ``metrics.json`` (its keys are listed in
        :func:`crackkit.pipeline.evaluate_run`). The pixel entries are absent when no image of
        the split has a crack pixel.

    Raises:
        ValueError: a validation threshold of a pixel metric was not counted by :func:`count_split`.
    """
    given = {k: _float_or_none((val_thresholds or {}).get(k)) for k in THRESHOLD_KEYS}
    counts = pred.counts
    n = counts.n_images

    def source(key: str) -> str:
        return "validation" if given[key] is not None else "oracle"

    out: dict[str, Any] = {
        "n_images": int(len(pred.labels)),
        "n_positive": int(pred.labels.sum()),
        "n_gt_pixels": int(counts.gt_pos.sum()),
    }
    dec_oracle = M.decision_metrics(pred.labels, pred.scores)
    dec_thr = given["decision"] if given["decision"] is not None else dec_oracle.threshold
    dec = M.decision_metrics(pred.labels, pred.scores, threshold=dec_thr)
    out["decision"] = dec.to_dict(curve=False) | {"threshold_source": source("decision")}
    out["decision_oracle"] = dec_oracle.to_dict(curve=False)
    out["decision_curve"] = {
        "precision": dec_oracle.pr_precision,
        "recall": dec_oracle.pr_recall,
        "thresholds": dec_oracle.pr_thresholds,
    }
    pixel_images = pred.pixel_images
    if not pixel_images.all():
        out["n_image_level"] = int((~pixel_images).sum())
        out["n_pixel_images"] = int(n)
    blackened = np.zeros(n, dtype=bool)
    if seg_black:
        blackened = pred.scores[pixel_images] < dec_thr
        counts = counts.without_predictions(blackened)

    has_pixels = bool(counts.has_crack.any())
    if has_pixels:
        sweep_cols = [counts.column(t) for t in pred.sweep]
        views = M.segmentation_metrics_counts(counts.columns(sweep_cols))
        tol, plain, di = views["tolerance"], views["pixel"], views["dice_iou"]
        out["pixel_2px_oracle"] = tol.to_dict() | {"n_images": tol.n_images}
        out["pixel_2px_curve"] = {
            "threshold": tol.thresholds.tolist(),
            "precision": tol.precision.tolist(),
            "recall": tol.recall.tolist(),
            "f1": tol.f1.tolist(),
        }
        out["pixel_oracle"] = plain.to_dict() | {"n_images": plain.n_images}
        oracle_di = di.to_dict()
        out["dice_oracle"] = oracle_di["dice"] | {"n_images": di.n_images}
        out["iou_oracle"] = oracle_di["iou"] | {"n_images": di.n_images}
        out.update(views["ods_ois"])

        thr = {
            "pixel_2px": given["pixel_2px"]
            if given["pixel_2px"] is not None
            else tol.best_threshold,
            "dice": given["dice"] if given["dice"] is not None else di.best_dice_threshold,
            "iou": given["iou"] if given["iou"] is not None else di.best_iou_threshold,
        }
        crack = counts.has_crack
        at_2px = counts.columns([counts.column(thr["pixel_2px"])])
        head = M.tolerance_sweep_counts(at_2px)
        out["pixel_2px"] = head.to_dict() | {
            "n_images": head.n_images,
            "threshold_source": source("pixel_2px"),
        }
        f1_images = M.per_image_tolerance(at_2px)[2][crack, 0]
        dice_images = M.per_image_dice_iou(counts.columns([counts.column(thr["dice"])]))[0]
        iou_images = M.per_image_dice_iou(counts.columns([counts.column(thr["iou"])]))[1]
        for key, values in (("dice", dice_images[crack, 0]), ("iou", iou_images[crack, 0])):
            out[key] = {
                "value": float(values.mean()),
                "threshold": thr[key],
                "n_images": int(crack.sum()),
                "threshold_source": source(key),
            }
        if bootstrap:
            kw = {"resamples": int(bootstrap), "seed": int(bootstrap_seed), "level": 0.95}
            out["pixel_2px"]["f1_ci95"] = M.bootstrap_ci(f1_images, **kw)
            out["dice"]["value_ci95"] = M.bootstrap_ci(dice_images[crack, 0], **kw)
            out["iou"]["value_ci95"] = M.bootstrap_ci(iou_images[crack, 0], **kw)

        above = np.nextafter(pred.sweep, np.inf)
        original = M.tolerance_sweep_counts(
            counts.columns([counts.column(t) for t in above], thresholds=pred.sweep),
            all_images=True,
        )
        out["pixel_2px_original_mean_oracle"] = original.to_dict() | {"n_images": n}
        t2 = thr["pixel_2px"]
        at_t2 = counts.columns([counts.column(np.nextafter(t2, np.inf))], thresholds=[t2])
        out["pixel_2px_original_mean"] = M.tolerance_sweep_counts(at_t2, all_images=True).to_dict()
        out["pixel_2px_original_mean"] |= {
            "n_images": n,
            "threshold_source": source("pixel_2px"),
        }

    used = [k for k in THRESHOLD_KEYS if k == "decision" or has_pixels]
    sources = {source(k) for k in used}
    overall = sources.pop() if len(sources) == 1 else "mixed"
    if pred.calibration is not None:
        out["calibration"] = calibration_metrics(pred.calibration)
    out["val_thresholds"] = {k: given[k] for k in THRESHOLD_KEYS}
    out["protocol"] = {
        "thresholds": overall,
        "threshold_sources": {k: source(k) for k in used},
        "prediction_rule": "prob >= threshold (also for the image score)",
        "per_image_mean": "over the crack-containing images only; crack-free images are skipped",
        "original_mean": (
            "over all images, a crack-free image counting 0, with prob > threshold, as the "
            "original code (pixel_2px_original_mean*)"
        ),
        "resolution": (
            "native: each probability map is resized to its mask's own size before counting; "
            "masks are read at their native size and never resized"
        ),
        "probability_resize": PROBABILITY_RESIZE,
        "network_input": "each image resized (bilinear) to the input size",
        "input_size": list(pred.input_size),
        "output_stride": int(pred.output_stride),
        "output_upsampling": (
            f"nearest-neighbour x{pred.output_stride} to the input size"
            if pred.output_stride > 1
            else "none (full-resolution output)"
        ),
        "n_resized": int(pred.n_resized),
        "native_sizes": sorted({f"{h}x{w}" for h, w in pred.sizes}),
        "tolerance": int(counts.tolerance),
        "tolerance_element": (
            "plus-shaped: centre row and column of a (2r+1)x(2r+1) square "
            "(cv2.MORPH_CROSS); true positives against the dilated mask, false negatives "
            "against the undilated one"
        ),
        "threshold_grid": _grid_text(pred.sweep),
        "quantisation": "none (float32 probabilities compared with float64 thresholds)",
        "seg_black": {
            "enabled": bool(seg_black),
            "decision_threshold": float(dec_thr) if seg_black else None,
            "n_blackened": int(blackened.sum()),
        },
        "bootstrap": (
            {
                "resamples": int(bootstrap),
                "seed": int(bootstrap_seed),
                "level": 0.95,
                "method": (
                    "percentile (numpy.percentile, linear) of the means of resamples of the "
                    "crack-containing images drawn with replacement"
                ),
            }
            if bootstrap
            else None
        ),
        "ap_step": "sklearn.metrics.average_precision_score (step-wise sum)",
        "ap_trapezoid": (
            "trapezoidal area under the PR curve, sklearn.metrics.auc(recall, precision), what "
            "the original code logged as 'AP'"
        ),
    }
    return out


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device,
    *,
    tolerance: int = 2,
    val_thresholds: dict[str, float | None] | None = None,
    seg_black: bool | None = None,
    bootstrap: int = 0,
    bootstrap_seed: int = 0,
    keep: Collection[int] = (),
    **predict_kwargs: Any,
) -> tuple[dict[str, Any], Predictions]:
    """Predict and compute metrics; returns ``(metrics, predictions)``.

    ``seg_black=None`` takes the data set's run parameter (``dataset.cfg.seg_black``), so a
    validation during training zeroes maps when the run does. The validation thresholds of the
    pixel metrics are counted besides the sweep grid.
    """
    if seg_black is None:
        seg_black = bool(getattr(getattr(dataset, "cfg", None), "seg_black", False))
    extra = [
        float(v)
        for k, v in (val_thresholds or {}).items()
        if k != "decision" and _float_or_none(v) is not None
    ]
    sweep = predict_kwargs.pop("sweep", None)
    sweep = M.default_thresholds() if sweep is None else np.asarray(sweep, dtype=np.float64)
    pred = count_split(
        model,
        dataset,
        device,
        tolerance=tolerance,
        thresholds=count_grid(extra, sweep=sweep),
        sweep=sweep,
        keep=keep,
        **predict_kwargs,
    )
    metrics = compute_metrics(
        pred,
        val_thresholds=val_thresholds,
        seg_black=seg_black,
        bootstrap=bootstrap,
        bootstrap_seed=bootstrap_seed,
    )
    metrics["loss_seg"] = pred.losses["loss_seg"]
    metrics["loss_dec"] = pred.losses["loss_dec"]
    return metrics, pred
