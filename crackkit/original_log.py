"""The run log in the format of the seed's fork, where crackkit reports the same quantities.

The seed run's log (``crack500_run6_5.out`` of maticsuc/mixed-segdec-net-comind2021) prints a
parameter block in the original's names, then per epoch the loss weights, the gradient multiplier,
an ``Epoch`` line with the mean losses, the correct decisions and the epoch and forward/backward
times, the learning rate, and at validation the decision metrics (AUC, trapezoidal AP, the best
threshold, FP/FN) and the best 2-pixel F1. These functions write those lines, so crackkit's
``run.log`` can be put beside the seed's line by line; crackkit's own figures (step-wise AP, its
per-image mean, Dice, IoU) follow on lines of their own.

The fork's own spelling is kept where a reader would diff against it (``sat f-measure``).
"""

from __future__ import annotations

from typing import Any

from crackkit.config import RunConfig

__all__ = [
    "dataset_line",
    "epoch_line",
    "lr_line",
    "new_best_line",
    "parameter_block",
    "saving_line",
    "validation_lines",
    "weight_lines",
]


def _fmt(value: Any) -> str:
    if value is None:
        return "None"
    return str(value)


def parameter_block(
    cfg: RunConfig,
    *,
    dataset_name: str,
    dataset_path: str,
    n_segmented: int,
    results_path: str,
    gpu: int | None = None,
) -> list[str]:
    """The fork's ``print_run_params`` block for ``cfg``: its 35 keys, sorted as the fork sorts
    them (``"KEY:value"`` strings), each as ``f"{KEY:25s} : {value}"``.

    Args:
        dataset_name: the original's DATASET (``CRACK500`` for the crack500 preset).
        dataset_path: where the data set lies.
        n_segmented: NUM_SEGMENTED, the positive training images trained with their masks.
        results_path: RESULTS_PATH (the folder holding the run folder).
        gpu: the CUDA device index, None on a CPU.
    """
    weighted = cfg.weighted_seg_loss
    values = {
        "AUGMENTATION": cfg.augmentation,
        "BATCH_SIZE": cfg.batch_size,
        "BEST_MODEL_TYPE": cfg.best_model_type,
        "DATASET": dataset_name,
        "DATASET_PATH": dataset_path,
        "DELTA_CLS_LOSS": cfg.delta_cls_loss,
        "DILATE": cfg.dilate,
        "DYN_BALANCED_LOSS": cfg.dyn_balanced_loss,
        "EPOCHS": cfg.epochs,
        "FOLD": None,
        "FREQUENCY_SAMPLING": cfg.frequency_sampling,
        "GPU": gpu,
        "GRADIENT_ADJUSTMENT": cfg.gradient_adjustment,
        "INPUT_CHANNELS": cfg.input_channels,
        "INPUT_HEIGHT": cfg.input_height,
        "INPUT_WIDTH": cfg.input_width,
        "LEARNING_RATE": cfg.lr,
        "MEMORY_FIT": 1,
        "NUM_SEGMENTED": n_segmented,
        "ON_DEMAND_READ": False,
        "OPTIMIZER": cfg.optimizer,
        "REPRODUCIBLE_RUN": True,
        "RESULTS_PATH": results_path,
        "SAVE_IMAGES": True,
        "SCHEDULER": [float(cfg.scheduler_step), cfg.scheduler_gamma]
        if cfg.scheduler_step
        else None,
        "TRAIN_NUM": cfg.train_num,
        "USE_BEST_MODEL": cfg.use_best_model,
        "USE_NEGATIVES": cfg.use_negatives,
        "VALIDATE": cfg.validate,
        "VALIDATE_ON_TEST": cfg.validate_on_test,
        "VALIDATION_N_EPOCHS": cfg.validation_every,
        "WEIGHTED_SEG_LOSS": weighted,
        "WEIGHTED_SEG_LOSS_MAX": cfg.weighted_seg_loss_max if weighted else None,
        "WEIGHTED_SEG_LOSS_P": cfg.weighted_seg_loss_p if weighted else None,
    }
    lines = sorted(f"{k}:{_fmt(v)}" for k, v in values.items())
    return [f"{k:25s} : {v}" for k, v in (line.split(":", 1) for line in lines)]


def dataset_line(split: str, positives: int, negatives: int) -> str:
    """``TRAIN: Number of positives: 1896, Number of negatives: 1411, Sum: 3307``."""
    return (
        f"{split.upper()}: Number of positives: {positives}, Number of negatives: {negatives}, "
        f"Sum: {positives + negatives}"
    )


def weight_lines(seg_weight: float, dec_weight: float, gradient_multiplier: float) -> list[str]:
    """The loss weights and the decision head's gradient multiplier of an epoch."""
    grad = (
        int(gradient_multiplier) if float(gradient_multiplier).is_integer() else gradient_multiplier
    )
    return [
        f"Returning seg_loss_weight {seg_weight} and dec_loss_weight {dec_weight}",
        f"Returning dec_gradient_multiplier {grad}",
    ]


def epoch_line(epoch: int, epochs: int, row: dict[str, Any]) -> str:
    """``Epoch e/E ==> avg_loss_seg=..., avg_loss_dec=..., avg_loss=..., correct=c/n, in Xs/epoch
    (fwd/bck in Ys/epoch)``: mean losses over the epoch's samples."""
    return (
        f"Epoch {epoch}/{epochs} ==> avg_loss_seg={row['loss_seg']:.5f}, "
        f"avg_loss_dec={row['loss_dec']:.5f}, avg_loss={row['loss']:.5f}, "
        f"correct={row['correct']}/{row['n_train']}, in {row['time_s']:.2f}s/epoch "
        f"(fwd/bck in {row.get('compute_s', row['time_s']):.2f}s/epoch)"
    )


def lr_line(lr: float, scheduler: bool = False) -> str:
    """The learning rate after the epoch's scheduler step."""
    kind = "scheduler" if scheduler else "optimizer"
    return f"Last computing learning rate by {kind}: {lr}"


def validation_lines(metrics: dict[str, Any], split: str = "VAL", tolerance: int = 2) -> list[str]:
    """The fork's validation lines from crackkit's validation metrics.

    The decision line: AUC, the trapezoidal AP (what the original logs as AP), the threshold of
    the best decision F1 on the split with that F1, and FP/FN there. The pixel lines: the best
    2-pixel F1 over the thresholds the original sweeps, with its precision and recall, as the
    original averages it (all images, ``prob > t``: ``pixel_2px_original_mean_oracle``).
    """
    dec = metrics["decision"]
    auc = dec.get("auc")
    lines = [
        f"VALIDATION on {split} set || AUC={float('nan') if auc is None else auc:f}, and "
        f"AP={dec.get('ap_trapezoid') or 0.0:f}, with best thr={dec['threshold']:f} sat "
        f"f-measure={dec['f1']:.3f} and FP={int(dec['fp']):d}, FN={int(dec['fn']):d}, "
        f"TOTAL SAMPLES={int(dec['tp'] + dec['fp'] + dec['fn'] + dec['tn']):d}",
    ]
    px = metrics.get("pixel_2px_original_mean_oracle")
    if px is not None:
        lines += [
            f"Validation metrics on {split} set. {tolerance} pixel distance used. "
            "Threshold step: 0.005",
            f"Best F1: {px['f1']:f} at {px['threshold']:f}. Pr: {px['precision']:f}, "
            f"Re: {px['recall']:f}",
        ]
    return lines


def new_best_line(best_model_type: str) -> str:
    return f"New best model based on {best_model_type} metrics."


def saving_line(path: Any) -> str:
    return f"Saving current model state to {path}"
