"""Training a SegDecNet model: a handful of functions you can read top to bottom.

:func:`train` runs a whole training into a run folder: it builds data, model and optimizer from a
:class:`~crackkit.config.RunConfig`, runs :func:`train_one_epoch` per epoch, validates every
``validation_every`` epochs with :func:`crackkit.evaluate.evaluate`, keeps the best model by the
configured criterion, and ends each epoch with an atomic checkpoint from which ``resume=True``
continues exactly.

Losses are accumulated on the device and read once per epoch: no host sync per step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from crackkit import distributed, original_log
from crackkit.checkpoint import (
    RESUME_KEYS,
    CheckpointError,
    Checkpoints,
    load_checkpoint,
    model_state,
    slim_metrics,
)
from crackkit.config import RunConfig, config_diff
from crackkit.data.dataset import CrackDataset
from crackkit.data.folder import Sample
from crackkit.data.sampling import FrequencySampler
from crackkit.data.supervision import training_config
from crackkit.ema import WeightEMA
from crackkit.evaluate import evaluate
from crackkit.files import write_csv
from crackkit.inference import to_input
from crackkit.losses import SegDecLoss
from crackkit.model import init_decision_prior, init_segmentation_prior, segmentation_bias
from crackkit.runtime import (
    STATIC_EVAL_BATCH,
    Placement,
    autocast,
    model_for,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from crackkit.warmstart import InitWeights

__all__ = [
    "NonFiniteLossError",
    "TrainResult",
    "build_optimizer",
    "build_scheduler",
    "lr_factor",
    "train_one_epoch",
    "train",
    "selection_score",
]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, Any]]
    best: dict[str, Any]
    run_dir: Path
    checkpoint: Path = field(default_factory=Path)


def build_optimizer(cfg: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, fused=True)


def lr_factor(step: int, total_steps: int, warmup: float) -> float:
    """The ``cosine`` schedule's learning-rate factor after ``step`` optimizer steps of
    ``total_steps``: ``(step + 1) / W`` for the first ``W = round(warmup · total_steps)`` steps,
    then ``(1 + cos(π · (step - W) / (total_steps - W))) / 2``, which reaches 0 at the end."""
    warm = round(warmup * total_steps)
    if step < warm:
        return (step + 1) / warm
    span = max(total_steps - warm, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, span) / span))


def build_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int = 1):
    """The learning-rate schedule, or None for a constant rate.

    ``StepLR`` (``scheduler_step`` > 0, the original's option) is stepped once per epoch; the
    ``cosine`` schedule (:func:`lr_factor`) once per optimizer step, and is marked ``per_step``.
    """
    if cfg.lr_schedule == "cosine":
        total = cfg.epochs * steps_per_epoch
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, total, cfg.lr_warmup)
        )
        scheduler.per_step = True
        return scheduler
    if cfg.scheduler_step <= 0:
        return None
    return torch.optim.lr_scheduler.StepLR(optimizer, cfg.scheduler_step, cfg.scheduler_gamma)


def selection_score(cfg: RunConfig, val_metrics: dict[str, Any]) -> float:
    """The number ``best_model_type`` maximises: 2-pixel F1 (seg), decision F1 (dec) or both."""
    seg = float(val_metrics.get("pixel_2px", {}).get("f1", 0.0))
    dec = float(val_metrics["decision"]["f1"])
    return {"seg": seg, "dec": dec, "both": (seg + dec) / 2}[cfg.best_model_type]


def train_one_epoch(
    model: nn.Module,
    loss_fn: SegDecLoss,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    epoch: int,
    placement: Placement,
    progress: bool = True,
    desc: str = "train",
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ema: WeightEMA | None = None,
) -> dict[str, Any]:
    """One pass over ``loader`` at 0-based ``epoch``; returns mean losses, correct decisions and
    the sample count (summed over the processes of a distributed run), and ``compute_s``, the
    seconds of forward, backward and optimizer steps (the rest of the epoch is data loading; on a
    GPU, launch time: no step waits for the device). ``scheduler``, when given, is stepped after
    every optimizer step (a per-step schedule), and so is ``ema``.

    Raises:
        NonFiniteLossError: a batch's loss was NaN or infinite (the message names the batch).
    """
    device = placement.device
    model.train()
    sums = torch.zeros(3, device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    batch_losses = []
    n_samples = 0
    compute_s = 0.0
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        t0 = time.perf_counter()
        x = to_input(batch["image"], device, placement.channels_last)
        y = batch["mask"].to(device, non_blocking=True)
        label = batch["label"].to(device, non_blocking=True)
        weight, segmented = batch.get("weight"), batch.get("segmented")
        if weight is not None:
            weight = weight.to(device, non_blocking=True)
        if segmented is not None:
            segmented = segmented.to(device, non_blocking=True)
        with autocast(device, placement.amp_dtype):
            dec, seg = model(x)
        losses = loss_fn(dec, seg, label, y, weight, epoch=epoch, segmented=segmented)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update()
        compute_s += time.perf_counter() - t0
        n = x.shape[0]
        n_samples += n
        mean = losses.get("loss_mean", losses["loss"].detach())
        detached = torch.stack([mean, losses["loss_seg"], losses["loss_dec"]])
        batch_losses.append(losses["loss"].detach())  # what was backpropagated
        sums += detached * n
        correct += ((dec.detach()[:, 0] > 0) == (label > 0.5)).sum()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        totals = torch.cat([sums, correct.view(1).to(sums.dtype), sums.new_tensor([n_samples])])
        torch.distributed.all_reduce(totals)
        sums, correct, n_samples = totals[:3], totals[3].long(), int(totals[4])
    losses = torch.stack(batch_losses)
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0, 0])
        raise NonFiniteLossError(
            f"the training loss became {float(losses[bad])} in {desc}, batch {bad + 1} of "
            f"{len(losses)}; the last good checkpoint is kept. Try a lower lr or amp='off'."
        )
    means = (sums / max(n_samples, 1)).tolist()
    return {
        "loss": means[0],
        "loss_seg": means[1],
        "loss_dec": means[2],
        "correct": int(correct),
        "n_train": n_samples,
        "compute_s": compute_s,
    }


def _epoch_lines(epoch: int, cfg: RunConfig, row: dict[str, Any], scheduled: bool) -> list[str]:
    """The epoch's log lines: the seed fork's (:mod:`crackkit.original_log`), then crackkit's."""
    lines = [
        original_log.epoch_line(epoch, cfg.epochs, row),
        original_log.lr_line(row["lr_after"], scheduler=scheduled),
    ]
    if row.get("val_f1_2px") is not None:
        lines += row.pop("_fork_validation")
        lines.append(
            f"  crackkit validation: loss={row['val_loss']:.5f}, AP (step-wise)="
            f"{_fmt(row['val_ap'])}, dec F1={row['val_dec_f1']:.4f}, 2px Pr/Re/F1 (crack images, "
            f"prob >= t)={row['val_precision_2px']:.4f}/{row['val_recall_2px']:.4f}/"
            f"{row['val_f1_2px']:.4f} @{row['val_threshold_2px']:.3f}, Dice={row['val_dice']:.4f},"
            f" IoU={row['val_iou']:.4f} in {row['val_time_s']:.2f}s"
        )
    return lines


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _validation_row(metrics: dict[str, Any], seg_w: float, dec_w: float) -> dict[str, Any]:
    px = metrics.get("pixel_2px", {})
    return {
        "val_loss": seg_w * metrics["loss_seg"] + dec_w * metrics["loss_dec"],
        "val_loss_seg": metrics["loss_seg"],
        "val_loss_dec": metrics["loss_dec"],
        # val_ap is the step-wise AP (average_precision_score); the trapezoidal one beside it
        "val_ap": metrics["decision"]["ap_step"],
        "val_ap_trapezoid": metrics["decision"]["ap_trapezoid"],
        "val_auc": metrics["decision"]["auc"],
        "val_dec_f1": metrics["decision"]["f1"],
        "val_dec_threshold": metrics["decision"]["threshold"],
        "val_precision_2px": px.get("precision", 0.0),
        "val_recall_2px": px.get("recall", 0.0),
        "val_f1_2px": px.get("f1", 0.0),
        "val_threshold_2px": px.get("threshold", 0.5),
        "val_dice": metrics.get("dice", {}).get("value", 0.0),
        "val_iou": metrics.get("iou", {}).get("value", 0.0),
        # None when the validation split has no crack pixel (no threshold was chosen)
        "val_dice_threshold": metrics.get("dice", {}).get("threshold"),
        "val_iou_threshold": metrics.get("iou", {}).get("threshold"),
    }


def train(
    cfg: RunConfig,
    splits: dict[str, list[Sample]],
    checkpoints: Checkpoints,
    *,
    history_path: Path,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    init: InitWeights | None = None,
    on_epoch: Callable[[dict[str, Any], dict[str, Any] | None], None] | None = None,
) -> TrainResult:
    """Train ``cfg`` on ``splits``; returns the chosen model and the history.

    Writes ``checkpoints.last`` after every epoch (with what resuming needs), ``checkpoints.best``
    at each new best validation score, and ``history_path`` (one row per epoch).

    Args:
        splits: samples per split, as from :func:`crackkit.data.dataset.load_splits`.
        resume: continue from ``last.pt``, the end of the last complete epoch (from the start
            when no epoch was completed).
        init: starting weights (``init_weights``, :func:`crackkit.warmstart.read_init_weights`),
            loaded before the first step of a fresh run; the prior initialisation is then
            skipped. A resumed run continues from ``last.pt`` instead.
        on_epoch: called (by the main process) after each epoch with its history row and, on a
            validated epoch, the validation metrics (else None); e.g. a
            :class:`crackkit.tensorboard.RunBoard`'s ``epoch``.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite; the last good checkpoint is kept.
        CheckpointError: ``resume`` with a damaged or foreign checkpoint.
    """
    device = resolve_device(cfg)
    dist_info = distributed.init(device.type)
    if dist_info.enabled and device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
    main = dist_info.is_main
    seed_everything(cfg.seed, device)
    train_ds = CrackDataset(splits["train"], cfg, train=True)
    switches = training_config(cfg, train_ds.n_segmented_positive)
    if switches is not cfg:
        log(
            "No positive training image is segmented: training as a weakly supervised "
            "classifier, dynamic balancing and gradient-flow adjustment off (no_mask_switches)"
        )
    model, placement = model_for(switches, device)
    fresh = not (resume and checkpoints.last.exists())
    prior = cfg.seg_prior_init and fresh and init is None
    if init is not None and fresh:
        try:
            model.load_state_dict(init.state_dict)
        except RuntimeError as exc:
            raise CheckpointError(f"init_weights {init.path} do not fit the model: {exc}") from None
        log(f"Initial weights: {init.summary()}; a new run with its own optimizer")
        if cfg.seg_prior_init:
            log(
                "Segmentation prior: skipped, the loaded weights keep their output bias "
                f"({float(segmentation_bias(model).detach().reshape(-1)[0]):.4f})"
            )
    if cfg.dec_prior_init and fresh and init is None:
        init_decision_prior(model)
        log("Decision prior: the decision starts at the segmentation's maximum logit")
    needs_fraction = cfg.bce_loss_w or prior
    fraction = train_ds.crack_fraction() if needs_fraction else None  # reads every known mask
    if prior and train_ds.n_segmented_positive == 0:
        log(
            "Segmentation prior: skipped, no positive training image is segmented (the crack "
            "fraction of the known masks is 0); the final segmentation bias stays at 0"
        )
    elif prior:
        bias = init_segmentation_prior(model, fraction)
        log(
            f"Segmentation prior: crack fraction {fraction:.5f} of the segmented training "
            f"images, final segmentation bias set to {bias:.4f}"
        )
    optimizer = build_optimizer(cfg, model)
    n_pos = sum(train_ds.labels)
    loss_fn = SegDecLoss.from_config(
        switches, crack_fraction=fraction, n_positive=n_pos, n_negative=len(train_ds.labels) - n_pos
    )
    if cfg.bce_loss_w:
        log(
            f"Class-weighted BCE (bce_loss_w): segmentation pos_weight "
            f"{loss_fn.seg_pos_weight:.3f}, decision pos_weight {loss_fn.dec_pos_weight:.3f}"
            + (
                f", segmentation loss on the logits + {loss_fn.seg_logit_offset:.4f} "
                "(calibrated outputs, seg_prior_init)"
                if loss_fn.seg_logit_offset
                else ""
            )
        )
    step_model = model
    if dist_info.enabled:
        step_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    val_split = "test" if cfg.validate_on_test else "val"
    val_ds = None
    if cfg.validate:  # fork-2022-02 augments validation samples too
        val_augment = cfg.augmentation_mode == "fork-2022-02"
        val_ds = CrackDataset(splits[val_split], cfg, train=False, augment=val_augment)
    sampler = FrequencySampler(
        train_ds.labels,
        frequency_sampling=cfg.frequency_sampling,
        use_negatives=cfg.use_negatives,
        seed=cfg.seed,
        num_replicas=dist_info.world_size,
        rank=dist_info.rank,
    )
    loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    scheduler = build_scheduler(cfg, optimizer, steps_per_epoch=len(loader))
    per_step = getattr(scheduler, "per_step", False)
    # With ema_decay the average is the run's model: validated, chosen, saved as "model".
    ema = WeightEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    eval_model = ema.module if ema is not None else model

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -math.inf, "epoch": None, "metrics": None}
    start_epoch = 0
    if resume and not checkpoints.last.exists():
        name = checkpoints.folder.parent.name
        log(f"Resuming {name}: no epoch was completed yet, starting at epoch 1")
    elif resume:
        state = _resume_state(checkpoints.last, cfg)
        if ema is not None:
            model.load_state_dict(state["train_model"])
            ema.load(state["model"], state["ema"]["steps"])
        else:
            model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        set_rng_state(state["rng"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"]
        log(f"Resuming {checkpoints.folder.parent.name} after epoch {start_epoch}/{cfg.epochs}")

    for epoch in tqdm(range(start_epoch, cfg.epochs), desc="epochs", disable=not progress):
        if main and cfg.snapshot_every and epoch % cfg.snapshot_every == 0:
            path = checkpoints.save(f"ep_{epoch:02d}", model_state(eval_model, cfg, epoch, best))
            log(original_log.saving_line(path))
        seg_w, dec_w = loss_fn.weights(epoch)
        if main:
            multiplier = 0 if switches.gradient_adjustment else 1
            for line in original_log.weight_lines(seg_w, dec_w, multiplier):
                log(line)
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        if val_ds is not None:
            val_ds.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]  # at the epoch's start (a per-step schedule moves it)
        t0 = time.perf_counter()
        stats = train_one_epoch(
            step_model,
            loss_fn,
            loader,
            optimizer,
            epoch=epoch,
            placement=placement,
            progress=progress,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            scheduler=scheduler if per_step else None,
            ema=ema,
        )
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": lr,
            "seg_weight": seg_w,
            "dec_weight": dec_w,
            **stats,
            "time_s": time.perf_counter() - t0,
        }
        if scheduler is not None and not per_step:
            scheduler.step()
        row["lr_after"] = optimizer.param_groups[0]["lr"]
        # As the original: after the first epoch, every validation_every-th after it, the last.
        last_epoch = epoch + 1 == cfg.epochs
        metrics = None
        if val_ds is not None and (epoch % cfg.validation_every == 0 or last_epoch) and main:
            t1 = time.perf_counter()
            metrics, _ = evaluate(
                eval_model,
                val_ds,
                device,
                tolerance=cfg.tolerance,
                batch_size=cfg.eval_batch_size or STATIC_EVAL_BATCH,
                amp_dtype=placement.amp_dtype,
                channels_last=placement.channels_last,
                num_workers=cfg.num_workers,
                progress=progress,
                desc="validate",
            )
            row.update(_validation_row(metrics, seg_w, dec_w))
            row["val_time_s"] = time.perf_counter() - t1
            split_name = "TEST" if cfg.validate_on_test else "VAL"
            row["_fork_validation"] = original_log.validation_lines(
                metrics, split_name, cfg.tolerance
            )
            score = selection_score(cfg, metrics)
            row["best"] = score > best["score"]
            if row["best"]:
                best = {"score": score, "epoch": epoch + 1, "metrics": slim_metrics(metrics)}
                checkpoints.save("best", model_state(eval_model, cfg, epoch + 1, best))
        fork_lines = _epoch_lines(epoch + 1, cfg, row, scheduler is not None and not per_step)
        history.append(row)
        if main:
            checkpoints.save(
                "last",
                model_state(eval_model, cfg, epoch + 1, best)
                | _ema_state(model, ema)
                | {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "sampler": sampler.state_dict(),
                    "rng": rng_state(),
                    "history": history,
                },
            )
            write_csv(history_path, history)
            if on_epoch is not None:
                on_epoch(row, metrics)
            for line in fork_lines:
                log(line)
            if row.get("best"):
                log(original_log.new_best_line(cfg.best_model_type))
                log(
                    f"  crackkit: new best model at epoch {epoch + 1}, {cfg.best_model_type} "
                    f"score {best['score']:.4f}; {original_log.saving_line(checkpoints.best)}"
                )
        distributed.barrier()

    chosen = checkpoints.last
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
    if main and cfg.use_best_model and best["epoch"] is not None:
        chosen = checkpoints.best
        model.load_state_dict(load_checkpoint(chosen)["model"])
        log(
            f"Using the best model (epoch {best['epoch']}, "
            f"{cfg.best_model_type} {best['score']:.4f})"
        )
    run_dir = checkpoints.folder.parent
    return TrainResult(model, history, best, run_dir=run_dir, checkpoint=chosen)


def _ema_state(model: nn.Module, ema: WeightEMA | None) -> dict[str, Any]:
    """What ``last.pt`` adds with ``ema_decay``: the trained weights and the average's count."""
    if ema is None:
        return {}
    return {
        "train_model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "ema": ema.state_dict(),
    }


def _resume_state(path: Path, cfg: RunConfig) -> dict[str, Any]:
    """``last.pt`` checked for resuming ``cfg``: complete, and of the same run parameters."""
    state = load_checkpoint(path, architecture=cfg.architecture)
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing:
        raise CheckpointError(
            f"cannot resume from {path}: it holds no {', '.join(missing)} (only a "
            "checkpoint written at the end of an epoch as last.pt can be resumed)"
        )
    changed = config_diff(state["config"], cfg)
    if changed:
        raise CheckpointError(
            f"cannot resume from {path}: its run parameters differ in {', '.join(changed)}"
        )
    return state


if __name__ == "__main__":
    raise SystemExit(
        "crackkit.train is a library module; the torchrun entry is "
        "`torchrun --nproc_per_node N -m crackkit.launch --run-dir DIR ...`"
    )
