"""The pipeline's steps, one function per notebook: prepare, train, evaluate, report.

Notebooks call these; so does the batch driver through the notebooks. Every step reads from and
writes into the run folder (see :mod:`crackkit.runs`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from crackkit import distributed
from crackkit import metrics as M
from crackkit.config import RunConfig, load_config, save_config
from crackkit.data.dataset import CrackDataset, load_splits, resolve_dataset, split_summary
from crackkit.data.folder import DatasetError, Sample, read_image
from crackkit.evaluate import evaluate
from crackkit.predict import checkpoint_thresholds
from crackkit.report import plot_gallery, render_report
from crackkit.runs import (
    RUN_FILES,
    RunDirError,
    atomic_write_json,
    create_run_dir,
    environment_info,
    read_json,
    run_logger,
    write_csv,
)
from crackkit.runtime import configure_speed, resolve_device
from crackkit.train import CheckpointError, TrainResult, load_checkpoint, load_model, train

__all__ = [
    "Prepared",
    "prepare",
    "start_run",
    "train_run",
    "chosen_checkpoint",
    "evaluate_run",
    "report_run",
]


@dataclass
class Prepared:
    root: Path
    splits: dict[str, list[Sample]]
    summary: dict[str, dict[str, int]]


def prepare(
    cfg: RunConfig,
    run_dir: Path | None = None,
    *,
    progress: bool = True,
    decode_images: bool | None = None,
) -> Prepared:
    """Resolve (and for ``synthetic`` generate) the data set, scan and check its splits.

    Writes ``dataset.json`` into ``run_dir`` when one is given.

    Args:
        decode_images: decode every image in full, so that a truncated or corrupt file stops the
            run now rather than when training or evaluation first reads it (the scan itself reads
            only image headers); by default only when ``run_dir`` is given.

    Raises:
        DatasetError: missing data set, bad files or an empty split (the message names them).
    """
    root = resolve_dataset(cfg, progress=progress)
    splits = load_splits(
        root,
        cfg.seed,
        negatives_without_mask=cfg.negatives_without_mask,
        negatives_dir=cfg.negatives_dir or None,
    )
    for name, samples in splits.items():
        if not samples:
            raise DatasetError(f"split {name!r} of {root} is empty")
    if decode_images if decode_images is not None else run_dir is not None:
        _decode_all(splits, cfg, progress=progress)
    summary = split_summary(splits)
    if summary["train"]["positives"] == 0:
        raise DatasetError(
            f"{root}/train has no crack images (every mask is empty); training needs at least one "
            "image whose mask marks crack pixels with 255"
        )
    if run_dir is not None:
        atomic_write_json(
            Path(run_dir) / RUN_FILES["dataset"],
            {"name": cfg.dataset, "root": str(root), "counts": summary},
        )
    return Prepared(root=root, splits=splits, summary=summary)


def _decode_all(splits: dict[str, list[Sample]], cfg: RunConfig, *, progress: bool) -> None:
    samples = [s for split in splits.values() for s in split]
    for sample in tqdm(
        samples, desc="decoding images", unit="img", disable=not progress or len(samples) < 200
    ):
        read_image(sample.image, cfg.input_channels)


def start_run(
    cfg: RunConfig,
    run_dir: Path | str | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Create the run folder and record the configuration and environment.

    On resume the folder's configuration must equal ``cfg``.
    """
    label = f"{cfg.dataset if cfg.dataset in ('synthetic', 'crack500') else Path(cfg.dataset).name}"
    path = create_run_dir(run_dir, label=label, overwrite=overwrite, resume=resume)
    config_path = path / RUN_FILES["config"]
    if config_path.exists():
        recorded = load_config(config_path)
        if recorded != cfg:
            changed = sorted(k for k, v in cfg.to_dict().items() if getattr(recorded, k) != v)
            raise RunDirError(
                f"{path} was started with other run parameters ({', '.join(changed)}); "
                "use a new run folder"
            )
    else:
        save_config(cfg, config_path)
    env_path = path / RUN_FILES["environment"]
    if not env_path.exists() or resume:
        env = environment_info(str(resolve_device(cfg)))
        if resume and env_path.exists():
            env["resumed_from"] = read_json(env_path)
        atomic_write_json(env_path, env)
    return path


def train_run(
    cfg: RunConfig,
    run_dir: Path | str | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Start (or resume) a run and train it; returns the trained model and its history."""
    path = start_run(cfg, run_dir, resume=resume, overwrite=overwrite)
    log = run_logger(path)
    log.info(f"Run folder: {path}")
    prepared = prepare(cfg, path, progress=progress)
    log.info(
        f"Data set {cfg.dataset} at {prepared.root}: "
        + ", ".join(
            f"{k} {v['sum']} ({v['positives']} pos / {v['negatives']} neg)"
            for k, v in prepared.summary.items()
            if k != "sum"
        )
    )
    t0 = time.perf_counter()
    if cfg.nproc_per_node > 1 and not distributed.info().enabled:
        log.info(f"Launching torchrun with {cfg.nproc_per_node} processes")
        distributed.launch(cfg.nproc_per_node, path, resume=resume)
        return _result_from_checkpoints(cfg, path)
    try:
        result = train(cfg, path, prepared.splits, resume=resume, progress=progress, log=log.info)
    except Exception as exc:
        log.error(f"Training stopped: {type(exc).__name__}: {exc}")
        raise
    log.info(f"Training finished in {time.perf_counter() - t0:.1f}s")
    return result


def _result_from_checkpoints(cfg: RunConfig, run_dir: Path) -> TrainResult:
    """The TrainResult of a run trained in other processes, read back from its checkpoints."""
    chosen = chosen_checkpoint(run_dir, cfg)
    model, _, _ = load_model(chosen, resolve_device(cfg))
    last = load_checkpoint(run_dir / RUN_FILES["checkpoints"] / "last.pt")
    return TrainResult(
        model=model, history=last["history"], best=last["best"], run_dir=run_dir, checkpoint=chosen
    )


def chosen_checkpoint(run_dir: Path, cfg: RunConfig) -> Path:
    """``best.pt`` when the run uses the best model and has one, else ``last.pt``."""
    ckpt = Path(run_dir) / RUN_FILES["checkpoints"]
    if cfg.use_best_model and (ckpt / "best.pt").exists():
        return ckpt / "best.pt"
    if (ckpt / "last.pt").exists():
        return ckpt / "last.pt"
    raise CheckpointError(f"{run_dir} holds no checkpoint; train it first")


def evaluate_run(
    run_dir: Path | str,
    *,
    split: str = "test",
    checkpoint: Path | str | None = None,
    n_gallery: int = 6,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the run's chosen model on ``split``; writes ``metrics.json`` and the gallery.

    Metrics are reported at the best threshold on ``split`` (as the seed report does) and at the
    thresholds selected on the validation split (``*_at_val_threshold``).
    """
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / RUN_FILES["config"])
    log = run_logger(run_dir)
    ckpt = Path(checkpoint) if checkpoint else chosen_checkpoint(run_dir, cfg)
    device = resolve_device(cfg)
    model, _, state = load_model(ckpt, device)
    amp_dtype, channels_last = configure_speed(cfg, device, inference=True)
    prepared = prepare(cfg, progress=progress)
    if split not in prepared.splits:
        raise DatasetError(f"unknown split {split!r}; available: {', '.join(prepared.splits)}")
    dataset = CrackDataset(prepared.splits[split], cfg, train=False)
    t0 = time.perf_counter()
    metrics, pred = evaluate(
        model,
        dataset,
        device,
        tolerance=cfg.tolerance,
        batch_size=cfg.eval_batch_size,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        num_workers=cfg.num_workers,
        progress=progress,
        desc=f"evaluate {split}",
    )
    eval_s = time.perf_counter() - t0
    dec_thr, seg_thr = checkpoint_thresholds(state)
    if dec_thr is not None:
        metrics["decision_at_val_threshold"] = M.decision_metrics(
            pred.labels, pred.scores, threshold=dec_thr
        ).to_dict()
        metrics["decision_at_val_threshold"].pop("curve", None)
    if seg_thr is not None and "pixel_2px" in metrics:
        metrics["pixel_2px_at_val_threshold"] = M.tolerance_sweep(
            pred.probs, pred.masks, tolerance=cfg.tolerance, thresholds=np.array([seg_thr])
        ).to_dict()
    history_path = run_dir / RUN_FILES["history"]
    train_s = 0.0
    if history_path.exists():
        from crackkit.report import read_history

        train_s = sum(
            (r.get("time_s") or 0) + (r.get("val_time_s") or 0) for r in read_history(history_path)
        )
    metrics.update(
        split=split,
        checkpoint=str(ckpt.relative_to(run_dir) if ckpt.is_relative_to(run_dir) else ckpt),
        checkpoint_epoch=state.get("epoch"),
        val_thresholds={"decision": dec_thr, "pixel_2px": seg_thr},
        timing={"train_and_validate": train_s, "evaluate": eval_s},
    )
    write_csv(
        run_dir / RUN_FILES["predictions"] / f"{split}_scores.csv",
        [
            {
                "image": s.image.name,
                "label": int(lab),
                "score": float(sc),
                "decision": int(sc >= (dec_thr if dec_thr is not None else 0.5)),
            }
            for s, lab, sc in zip(dataset.samples, pred.labels, pred.scores, strict=True)
        ],
    )
    if n_gallery > 0:
        _gallery(dataset, pred, metrics, run_dir, n_gallery, seg_thr)
    atomic_write_json(run_dir / RUN_FILES["metrics"], metrics)
    d, p = metrics["decision"], metrics.get("pixel_2px", {})
    log.info(
        f"{split.upper()} ({len(dataset)} images, {ckpt.name} of epoch {state.get('epoch')}): "
        f"decision AP={d['ap']}, F1={d['f1']:.4f} @ {d['threshold']:.4f}; "
        f"2px Pr/Re/F1={p.get('precision', 0):.4f}/{p.get('recall', 0):.4f}/{p.get('f1', 0):.4f}"
        f" @ {p.get('threshold', 0):.3f}; evaluated in {eval_s:.1f}s"
    )
    logging.getLogger(__name__).debug("metrics written")
    return metrics


def _gallery(dataset, pred, metrics, run_dir: Path, n: int, seg_thr: float | None) -> None:
    pixels = pred.masks.reshape(len(pred.masks), -1).sum(axis=1)
    positives = np.flatnonzero(pixels > 0)
    negatives = np.flatnonzero(pixels == 0)
    n_neg = min(len(negatives), max(1, n // 3)) if len(negatives) else 0
    pos_pick = (
        positives[np.linspace(0, len(positives) - 1, min(n - n_neg, len(positives))).astype(int)]
        if len(positives)
        else np.array([], dtype=int)
    )
    neg_pick = negatives[:n_neg]
    idx = [int(i) for i in np.concatenate([pos_pick, neg_pick])]
    if not idx:
        return
    images = np.stack([dataset.read(i)[0] for i in idx])
    threshold = (
        seg_thr if seg_thr is not None else metrics.get("pixel_2px", {}).get("threshold", 0.5)
    )
    titles = [f"{dataset.samples[i].image.name} (score {pred.scores[i]:.2f})" for i in idx]
    plot_gallery(
        images,
        pred.masks[idx],
        pred.probs[idx],
        threshold,
        run_dir / RUN_FILES["plots"] / "gallery.png",
        titles=titles,
    )


def report_run(run_dir: Path | str) -> Path:
    """Render the plots and ``REPORT.md`` of a run; returns the report's path."""
    return render_report(Path(run_dir))
