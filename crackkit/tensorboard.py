"""TensorBoard event files of a run: ``tensorboard --logdir runs/`` shows every run's curves.

A :class:`RunBoard` writes into ``RUN/tensorboard/`` (:data:`crackkit.run.RUN_FILES`):

* per epoch (:meth:`RunBoard.epoch`, the training loop's ``on_epoch`` hook): the training
  losses (``train/loss``, ``train/loss_seg``, ``train/loss_dec``), the learning rate
  (``train/lr``), the loss weights and the epoch's time; on validated epochs the validation
  metrics (``validation/f1_2px``, ``validation/ap``, ``validation/dice``, ...) and the
  validation split's decision PR curve (``validation/decision_pr``);
* after the evaluation (:meth:`RunBoard.evaluation`): the headline test figures
  (``test/...``), the test split's decision PR curve from its images' scores
  (``test/decision_pr``), the 2-pixel PR curve over the 180 thresholds (``test/pixel_2px_pr``)
  and the gallery image (``test/gallery``).

The step of every value is the epoch (1-based); the evaluation's is the checkpoint's epoch.
TensorBoard's PR plugin wants counts at each threshold: for a curve known only as precision and
recall (validation, 2-pixel), the counts are those implied by them and the number of positives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crackkit.run import RUN_FILES, Run

__all__ = ["RunBoard", "SCALAR_SKIP"]

#: History columns that are not curves (bookkeeping, or thresholds shown elsewhere).
SCALAR_SKIP = frozenset({"epoch", "best", "n_train"})


def _writer(log_dir: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir), flush_secs=30)


def _implied_counts(
    precision: np.ndarray, recall: np.ndarray, n_pos: float, n_total: float
) -> tuple[np.ndarray, ...]:
    """TP, FP, TN, FN implied by precision and recall for ``n_pos`` positives of ``n_total``."""
    tp = recall * n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        fp = np.where(precision > 0, tp * (1 - precision) / precision, 0.0)
    fn = n_pos - tp
    tn = np.maximum(n_total - n_pos - fp, 0.0)
    return tp, fp, tn, fn


class RunBoard:
    """The TensorBoard writer of one run folder; use as a context manager or :meth:`close`."""

    def __init__(self, run: Run | Path | str) -> None:
        path = run.path if isinstance(run, Run) else Path(run)
        self.log_dir = path / RUN_FILES["tensorboard"]
        self._writer = _writer(self.log_dir)

    def __enter__(self) -> RunBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._writer.close()

    def epoch(self, row: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
        """One epoch's history row (``history.csv``'s columns) and, on a validated epoch, the
        validation metrics of :func:`crackkit.evaluate.evaluate`."""
        step = int(row["epoch"])
        for key, value in row.items():
            if key in SCALAR_SKIP or isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int | float):
                tag = f"validation/{key[4:]}" if key.startswith("val_") else f"train/{key}"
                self._writer.add_scalar(tag, float(value), step)
        if metrics is not None:
            self._decision_curve("validation/decision_pr", metrics, step)
        self._writer.flush()

    def _decision_curve(self, tag: str, metrics: dict[str, Any], step: int) -> None:
        curve = metrics.get("decision_curve")
        n_pos, n = metrics.get("n_positive", 0), metrics.get("n_images", 0)
        if not curve or not n_pos or n_pos == n:
            return  # a PR curve needs both classes
        precision = np.asarray(curve["precision"], dtype=np.float64)
        recall = np.asarray(curve["recall"], dtype=np.float64)
        self._raw_curve(tag, precision, recall, n_pos, n, step)

    def _raw_curve(
        self,
        tag: str,
        precision: np.ndarray,
        recall: np.ndarray,
        n_pos: float,
        n_total: float,
        step: int,
    ) -> None:
        tp, fp, tn, fn = _implied_counts(precision, recall, float(n_pos), float(n_total))
        self._writer.add_pr_curve_raw(
            tag, tp, fp, tn, fn, precision, recall, global_step=step, num_thresholds=len(tp)
        )

    def evaluation(
        self,
        metrics: dict[str, Any],
        *,
        labels: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        gallery: Path | None = None,
    ) -> None:
        """The evaluation of :func:`crackkit.pipeline.evaluate_run`: headline figures, PR
        curves (the decision's from the images' ``labels`` and ``scores`` when given) and the
        gallery image."""
        split = metrics.get("split", "test")
        step = int(metrics.get("checkpoint_epoch") or 0)
        headline = {
            "decision_ap": metrics.get("decision", {}).get("ap_step"),
            "decision_f1": metrics.get("decision", {}).get("f1"),
            "f1_2px": metrics.get("pixel_2px", {}).get("f1"),
            "precision_2px": metrics.get("pixel_2px", {}).get("precision"),
            "recall_2px": metrics.get("pixel_2px", {}).get("recall"),
            "dice": metrics.get("dice", {}).get("value"),
            "iou": metrics.get("iou", {}).get("value"),
        }
        for key, value in headline.items():
            if value is not None:
                self._writer.add_scalar(f"{split}/{key}", float(value), step)
        labels_ok = labels is not None and scores is not None and 0 < np.sum(labels) < len(labels)
        if labels_ok:
            self._writer.add_pr_curve(
                f"{split}/decision_pr", np.asarray(labels, bool), np.asarray(scores), step
            )
        curve = metrics.get("pixel_2px_curve")
        if curve and metrics.get("n_gt_pixels"):
            # thresholds ascend, so recall falls along the curve, as TensorBoard expects;
            # background pixels are not counted (true negatives 0)
            precision = np.asarray(curve["precision"], dtype=np.float64)
            recall = np.asarray(curve["recall"], dtype=np.float64)
            n_pos = float(metrics["n_gt_pixels"])
            self._raw_curve(f"{split}/pixel_2px_pr", precision, recall, n_pos, n_pos, step)
        if gallery is not None and Path(gallery).is_file():
            from PIL import Image

            with Image.open(gallery) as img:
                rgb = np.asarray(img.convert("RGB"))
            self._writer.add_image(f"{split}/gallery", rgb, step, dataformats="HWC")
        self._writer.flush()
