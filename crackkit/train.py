"""Training a SegDecNet model: a handful of functions you can read top to bottom.

:func:`train` runs a whole training into a run folder: it builds data, model and optimizer from a
:class:`~crackkit.config.RunConfig`, runs :func:`train_one_epoch` per epoch, validates every
``validation_every`` epochs with :func:`crackkit.evaluate.evaluate`, keeps the best model by the
configured criterion, and ends each epoch with an atomic checkpoint from which ``resume=True``
continues exactly.

Losses are accumulated on the device and read once per epoch: no host sync per step.
"""

from __future__ import annotations

import io
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

from crackkit import distributed
from crackkit.config import RunConfig, make_config
from crackkit.data.dataset import CrackDataset
from crackkit.data.folder import Sample
from crackkit.data.sampling import FrequencySampler
from crackkit.evaluate import evaluate, to_input
from crackkit.fftconv import set_fft_conv
from crackkit.losses import decision_loss, loss_weights, segmentation_loss
from crackkit.model import build_model
from crackkit.runs import RUN_FILES, atomic_write_bytes, write_csv
from crackkit.runtime import (
    autocast,
    configure_speed,
    resolve_device,
    resolve_fft_conv,
    rng_state,
    seed_everything,
    set_rng_state,
)
from crackkit.specs import CHECKPOINT_FORMAT

__all__ = [
    "CheckpointError",
    "NonFiniteLossError",
    "TrainResult",
    "build_optimizer",
    "build_scheduler",
    "train_one_epoch",
    "train",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "selection_score",
]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or from another architecture."""


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


def build_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer):
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
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    seg_weight: float,
    dec_weight: float,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    progress: bool = True,
    desc: str = "train",
) -> dict[str, Any]:
    """One pass over ``loader``; returns mean losses, correct decisions and the step count.

    Raises:
        NonFiniteLossError: a batch's loss was NaN or infinite (the message names the batch).
    """
    model.train()
    sums = torch.zeros(3, device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    batch_losses = []
    n_samples = 0
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        x = to_input(batch["image"], device, channels_last)
        y = batch["mask"].to(device, non_blocking=True)
        label = batch["label"].to(device, non_blocking=True)
        weight = batch.get("weight")
        if weight is not None:
            weight = weight.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            dec, seg = model(x)
        loss_seg = segmentation_loss(seg, y, weight)
        loss_dec = decision_loss(dec, label)
        loss = seg_weight * loss_seg + dec_weight * loss_dec
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = x.shape[0]
        n_samples += n
        detached = torch.stack([loss.detach(), loss_seg.detach(), loss_dec.detach()])
        batch_losses.append(detached[0])
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
    }


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write a checkpoint atomically: a crash leaves the previous file intact."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: Path, *, architecture: str | None = None) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: missing or damaged file, or one made for another architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise CheckpointError(
            f"checkpoint {path} is damaged or not a crackkit checkpoint: {exc}"
        ) from None
    if (
        not isinstance(state, dict)
        or "model" not in state
        or not isinstance(state.get("config"), dict)
    ):
        raise CheckpointError(f"{path} is not a crackkit checkpoint (no model/config inside)")
    fmt = state.get("format", 1)
    if fmt != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {fmt}, this crackkit reads format {CHECKPOINT_FORMAT}. "
            + (
                "Format 1 (crackkit 0.1) predates the published networks: its FeatureNorm used "
                "sqrt(var + eps) instead of the published sqrt(std + eps), its decision head "
                "pooled with ceil instead of floor, and its 'segdecnet++' was crackkit's own "
                "decoder (bilinear upsampling, 3x3 convolutions, BatchNorm), not SegDecNet++. "
                "Its weights compute another function and are not loaded; retrain the run."
                if fmt == 1
                else "It was written by a newer crackkit; upgrade to read it."
            )
        )
    found = state["config"].get("architecture")
    if architecture is not None and found != architecture:
        raise CheckpointError(
            f"checkpoint {path} holds a {found!r} model, "
            f"but architecture {architecture!r} was asked"
        )
    return state


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, RunConfig, dict]:
    """Model, config and checkpoint dict from a checkpoint file."""
    state = load_checkpoint(path)
    cfg = make_config(state["config"])
    model = build_model(cfg.architecture, cfg.input_channels, cfg.input_height, cfg.input_width)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {path} does not fit a {cfg.architecture} model: {exc}"
        ) from None
    set_fft_conv(model, resolve_fft_conv(cfg, device))
    return model.to(device), cfg, state


def _format_epoch(epoch: int, cfg: RunConfig, row: dict[str, Any]) -> str:
    line = (
        f"Epoch {epoch}/{cfg.epochs} ==> avg_loss_seg={row['loss_seg']:.5f}, "
        f"avg_loss_dec={row['loss_dec']:.5f}, avg_loss={row['loss']:.5f}, "
        f"correct={row['correct']}/{row['n_train']}, lr={row['lr']:.3g}, "
        f"weights seg/dec={row['seg_weight']:.3f}/{row['dec_weight']:.4f}, "
        f"in {row['time_s']:.2f}s/epoch"
    )
    if row.get("val_f1_2px") is not None:
        line += (
            f"\n  VALIDATION ==> loss={row['val_loss']:.5f}, AP={_fmt(row['val_ap'])}, "
            f"dec F1={row['val_dec_f1']:.4f}, 2px Pr/Re/F1={row['val_precision_2px']:.4f}/"
            f"{row['val_recall_2px']:.4f}/{row['val_f1_2px']:.4f} "
            f"@{row['val_threshold_2px']:.3f}, Dice={row['val_dice']:.4f}, IoU={row['val_iou']:.4f}"
            f" in {row['val_time_s']:.2f}s"
        )
    return line


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
    run_dir: Path,
    splits: dict[str, list[Sample]],
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train into ``run_dir`` (checkpoints, history.csv); returns the chosen model and history.

    Args:
        splits: samples per split, as from :func:`crackkit.data.dataset.load_splits`.
        resume: continue from ``run_dir/checkpoints/last.pt``, the end of the last complete epoch
            (from the start when no epoch was completed).

    Raises:
        NonFiniteLossError: the loss became NaN or infinite; the last good checkpoint is kept.
        CheckpointError: ``resume`` with a damaged or foreign checkpoint.
    """
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / RUN_FILES["checkpoints"]
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg)
    dist_info = distributed.init(device.type)
    if dist_info.enabled and device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
    main = dist_info.is_main
    amp_dtype, channels_last = configure_speed(cfg, device)
    seed_everything(cfg.seed, device)

    model = build_model(cfg.architecture, cfg.input_channels, cfg.input_height, cfg.input_width)
    model.gradient_multiplier = 0.0 if cfg.gradient_adjustment else 1.0
    set_fft_conv(model, resolve_fft_conv(cfg, device))
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    step_model = model
    if dist_info.enabled:
        step_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    train_ds = CrackDataset(splits["train"], cfg, train=True)
    val_split = "test" if cfg.validate_on_test else "val"
    val_ds = CrackDataset(splits[val_split], cfg, train=False) if cfg.validate else None
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

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -math.inf, "epoch": None, "metrics": None}
    start_epoch = 0
    last_path = ckpt_dir / "last.pt"
    best_path = ckpt_dir / "best.pt"
    if resume and not last_path.exists():
        log(f"Resuming {run_dir.name}: no epoch was completed yet, starting at epoch 1")
    elif resume:
        state = load_checkpoint(last_path, architecture=cfg.architecture)
        missing = [k for k in _RESUME_KEYS if k not in state]
        if missing:
            raise CheckpointError(
                f"cannot resume from {last_path}: it holds no {', '.join(missing)} (only a "
                "checkpoint written at the end of an epoch as last.pt can be resumed)"
            )
        if state["config"] != cfg.to_dict():
            changed = sorted(k for k, v in cfg.to_dict().items() if state["config"].get(k) != v)
            raise CheckpointError(
                f"cannot resume from {last_path}: its run parameters differ in {', '.join(changed)}"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        set_rng_state(state["rng"])
        history = state["history"]
        best = state["best"]
        start_epoch = state["epoch"]
        log(f"Resuming {run_dir.name} after epoch {start_epoch}/{cfg.epochs}")

    eval_kwargs = dict(
        batch_size=cfg.eval_batch_size,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        num_workers=cfg.num_workers,
        tolerance=cfg.tolerance,
    )
    epochs = tqdm(range(start_epoch, cfg.epochs), desc="epochs", disable=not progress)
    for epoch in epochs:
        seg_w, dec_w = loss_weights(epoch, cfg.epochs, cfg.delta_cls_loss, cfg.dyn_balanced_loss)
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        t0 = time.perf_counter()
        stats = train_one_epoch(
            step_model,
            loader,
            optimizer,
            seg_weight=seg_w,
            dec_weight=dec_w,
            device=device,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
            progress=progress,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
        )
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "seg_weight": seg_w,
            "dec_weight": dec_w,
            **stats,
            "time_s": time.perf_counter() - t0,
        }
        if scheduler is not None:
            scheduler.step()
        is_last = epoch + 1 == cfg.epochs
        # As the original: after the first epoch, every validation_every-th after it, the last.
        validating = val_ds is not None and (epoch % cfg.validation_every == 0 or is_last)
        if validating and main:
            t1 = time.perf_counter()
            metrics, _ = evaluate(
                model, val_ds, device, progress=progress, desc="validate", **eval_kwargs
            )
            row.update(_validation_row(metrics, seg_w, dec_w))
            row["val_time_s"] = time.perf_counter() - t1
            score = selection_score(cfg, metrics)
            row["best"] = score > best["score"]
            if row["best"]:
                best = {"score": score, "epoch": epoch + 1, "metrics": _slim(metrics)}
                save_checkpoint(best_path, _model_state(model, cfg, epoch + 1, best))
        history.append(row)
        if not main:
            distributed.barrier()
            continue
        save_checkpoint(
            last_path,
            {
                **_model_state(model, cfg, epoch + 1, best),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "sampler": sampler.state_dict(),
                "rng": rng_state(),
                "history": history,
            },
        )
        write_csv(run_dir / RUN_FILES["history"], history)
        log(_format_epoch(epoch + 1, cfg, row))
        if row.get("best"):
            log(
                f"  New best model at epoch {epoch + 1}: "
                f"{cfg.best_model_type} score {best['score']:.4f}"
            )
        distributed.barrier()

    chosen = last_path
    if main and cfg.use_best_model and best["epoch"] is not None:
        chosen = best_path
        model.load_state_dict(load_checkpoint(best_path)["model"])
        log(
            f"Using the best model (epoch {best['epoch']}, "
            f"{cfg.best_model_type} {best['score']:.4f})"
        )
    return TrainResult(model=model, history=history, best=best, run_dir=run_dir, checkpoint=chosen)


_RESUME_KEYS = ("epoch", "optimizer", "sampler", "rng", "history", "best")


def _slim(metrics: dict[str, Any]) -> dict[str, Any]:
    """Validation metrics without the curves, for checkpoints and history."""
    return {k: v for k, v in metrics.items() if not k.endswith("_curve")} | {
        "decision": {k: v for k, v in metrics["decision"].items() if k != "curve"}
    }


def _model_state(model: nn.Module, cfg: RunConfig, epoch: int, best: dict) -> dict[str, Any]:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {
        "format": CHECKPOINT_FORMAT,
        "model": state,
        "config": cfg.to_dict(),
        "epoch": epoch,
        "best": best,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m crackkit.train`` (under torchrun for several processes).

    Takes the options of ``crackkit run`` (``--preset``, ``--dataset``, ``--run-dir``, ``-p NAME
    VALUE``, ``--resume``). Every rank trains its share of each epoch; rank 0 validates, writes
    the run folder and, unless ``--train-only``, evaluates the test split and renders the report.
    """
    import argparse

    from crackkit import pipeline
    from crackkit.config import load_config
    from crackkit.runs import run_logger

    parser = argparse.ArgumentParser(prog="python -m crackkit.train")
    parser.add_argument("--preset")
    parser.add_argument("--dataset")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="stop after training (the notebooks evaluate and report)",
    )
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    recorded = run_dir / RUN_FILES["config"]
    if recorded.is_file() and not (args.param or args.preset or args.dataset):
        cfg = load_config(recorded)
    else:
        params = dict(args.param or [])
        if args.dataset:
            params["dataset"] = args.dataset
        cfg = make_config(params, preset=args.preset)
    dist_info = distributed.init(resolve_device(cfg).type)
    try:
        if dist_info.is_main:
            path = pipeline.start_run(cfg, run_dir, resume=args.resume)
            logger = run_logger(path)
            prepared = pipeline.prepare(cfg, path, progress=False)
            logger.info(f"Distributed training on {dist_info.world_size} process(es)")
            log = logger.info
        distributed.barrier()
        if not dist_info.is_main:
            path = run_dir
            prepared = pipeline.prepare(cfg, None, progress=False)
            log = _quiet
        train(cfg, path, prepared.splits, resume=args.resume, progress=False, log=log)
        distributed.barrier()
        if dist_info.is_main and not args.train_only:
            pipeline.evaluate_run(path, progress=False)
            print(pipeline.report_run(path))
    finally:
        distributed.cleanup()
    return 0


def _quiet(_: str) -> None:
    return None


if __name__ == "__main__":
    raise SystemExit(main())
