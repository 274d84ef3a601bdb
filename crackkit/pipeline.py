"""The pipeline's steps, one function per notebook: prepare, train, evaluate, report.

Notebooks call these; so does the torchrun launcher. Each step takes a :class:`~crackkit.run.Run`
(or a run folder, which it opens once) and reads from and writes into that run's folder.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from crackkit import autotune, distributed, original_log
from crackkit.checkpoint import load_checkpoint, load_model, validation_thresholds
from crackkit.config import RunConfig
from crackkit.data.dataset import (
    CrackDataset,
    dataset_record,
    load_splits,
    resolve_dataset,
    split_summary,
)
from crackkit.data.folder import DatasetError, Sample, read_image, scan_split
from crackkit.data.supervision import Supervision, select_supervision, training_config
from crackkit.evaluate import evaluate
from crackkit.files import atomic_write_json, write_csv
from crackkit.report import plot_gallery, render_eval, render_report
from crackkit.run import RUN_FILES, Run, RunDirError, run_lock
from crackkit.tensorboard import RunBoard
from crackkit.train import TrainResult, train
from crackkit.warmstart import InitWeights, read_init_weights

__all__ = [
    "Prepared",
    "prepare",
    "supervise",
    "warm_start",
    "train_run",
    "evaluate_run",
    "evaluate_dataset",
    "report_run",
]


@dataclass
class Prepared:
    root: Path
    splits: dict[str, list[Sample]]
    summary: dict[str, dict[str, int]]


def prepare(
    cfg: RunConfig,
    run: Run | None = None,
    *,
    progress: bool = True,
    decode_images: bool | None = None,
) -> Prepared:
    """Resolve (and for ``synthetic`` generate) the data set, scan and check its splits.

    Writes the run's ``dataset.json`` (:func:`crackkit.data.dataset.dataset_record`) when a run
    is given.

    Args:
        decode_images: decode every image in full, so that a truncated or corrupt file stops the
            run now rather than when training or evaluation first reads it (the scan itself reads
            only image headers). By default once per run: when a run is given whose
            ``dataset.json`` does not record this data set yet.

    Raises:
        DatasetError: missing data set, bad files or an empty split (the message names them).
    """
    root = resolve_dataset(cfg, progress=progress)
    splits = load_splits(
        root,
        cfg.seed,
        negatives_without_mask=cfg.negatives_without_mask,
        negatives_dir=cfg.negatives_dir or None,
        progress=progress,
        max_pixels=cfg.max_image_pixels,
    )
    for name, samples in splits.items():
        if not samples:
            raise DatasetError(f"split {name!r} of {root} is empty")
    summary = split_summary(splits)
    record = dataset_record(root, summary)
    if decode_images is None:
        decode_images = run is not None and run.read("dataset") != record
    if decode_images:
        _decode_all(splits, cfg, progress=progress)
    if summary["train"]["positives"] == 0:
        raise DatasetError(
            f"{root}/train has no crack images (every mask is empty); training needs at least one "
            "image whose mask marks crack pixels with 255"
        )
    if run is not None:
        run.write("dataset", record)
    return Prepared(root=root, splits=splits, summary=summary)


def _decode_all(splits: dict[str, list[Sample]], cfg: RunConfig, *, progress: bool) -> None:
    samples = [s for split in splits.values() for s in split]
    for sample in tqdm(
        samples, desc="decoding images", unit="img", disable=not progress or len(samples) < 200
    ):
        read_image(sample.image, cfg.input_channels)


def supervise(cfg: RunConfig, run: Run, prepared: Prepared, *, record: bool = True) -> Supervision:
    """Choose the run's segmented and image-level positives (mixed supervision) and record it.

    Applies ``num_segmented``, ``train_num`` and ``segmented_list``
    (:func:`crackkit.data.supervision.select_supervision`) to ``prepared``'s training split, in
    place. The choice is written to the run's ``segmented.csv`` once; when that file exists (a
    resumed run, another process of a distributed one) it is read back and applied as it is.

    Raises:
        DatasetError: a list or record that does not fit the training split.
    """
    path = run.file("segmented")
    recorded = path if path.exists() else None
    sup = select_supervision(
        prepared.splits["train"],
        num_segmented=cfg.num_segmented,
        train_num=cfg.train_num,
        seed=cfg.segmented_seed,
        listed=cfg.segmented_list or None,
        recorded=recorded,
    )
    if sup.n_positive == 0:
        raise DatasetError(
            f"no positive training image is left ({sup.source}); training needs at least one"
        )
    if recorded is None and record:
        write_csv(path, sup.rows)
    prepared.splits["train"] = sup.samples
    return sup


def warm_start(cfg: RunConfig, run: Run, *, record: bool = True) -> InitWeights | None:
    """Read the run's starting weights (``init_weights``) and record them in
    ``init_weights.json``; None without ``init_weights`` or when the run resumes from a
    checkpoint of its own. A run folder stands for its chosen checkpoint (as ``predict --run``).

    Raises:
        CheckpointError: missing, unreadable or unfit weights (the message names both sides).
        RunDirError: a folder that is not a run folder.
    """
    if not cfg.init_weights or run.checkpoints.last.exists():
        return None
    given = Path(cfg.init_weights).expanduser()
    if given.is_dir():
        try:
            path = Run.open(given).checkpoint()
        except RunDirError as exc:
            raise RunDirError(f"init_weights {given}: {exc}") from None
    else:
        path = given
    init = read_init_weights(path, cfg)
    if record:
        run.write("init_weights", init.record(cfg.init_weights))
    return init


#: The original's DATASET names of the kit's prepared sets.
ORIGINAL_DATASET_NAMES = {"crack500": "CRACK500", "cfd": "CFD"}


def _log_original_header(
    cfg: RunConfig, run: Run, prepared: Prepared, sup: Supervision, log: Any
) -> None:
    """The seed fork's parameter block and data set lines, at the start of the run log."""
    block = original_log.parameter_block(
        training_config(cfg, sup.n_segmented),
        dataset_name=ORIGINAL_DATASET_NAMES.get(cfg.dataset, cfg.dataset),
        dataset_path=str(prepared.root),
        n_segmented=sup.n_segmented,
        results_path=str(run.path.parent),
    )
    log.info("Run parameters in the original code's names:")
    for line in block:
        log.info(line)
    pos = sup.n_positive
    log.info(original_log.dataset_line("train", pos, len(sup.samples) - pos))
    val = prepared.summary.get("test" if cfg.validate_on_test else "val", {})
    log.info(original_log.dataset_line("val", val.get("positives", 0), val.get("negatives", 0)))


def train_run(
    cfg: RunConfig,
    run_dir: Path | str | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Start (or resume) a run and train it; returns the trained model and its history.

    The run folder's lock is held while it trains (:meth:`crackkit.run.Run.start`): a second
    run into the same folder is refused meanwhile.
    """
    with Run.start(cfg, run_dir, resume=resume, overwrite=overwrite) as run:
        return _train(cfg, run, resume=resume, progress=progress)


def _train(cfg: RunConfig, run: Run, *, resume: bool, progress: bool) -> TrainResult:
    autotune.clear_resolutions()  # this run records its own switches only
    run.record_environment(resumed=resume)
    log = run.log
    log.info(f"Run folder: {run.path}")
    prepared = prepare(cfg, run, progress=progress)
    log.info(
        f"Data set {cfg.dataset} at {prepared.root}: "
        + ", ".join(
            f"{k} {v['sum']} ({v['positives']} pos / {v['negatives']} neg)"
            for k, v in prepared.summary.items()
            if k != "sum"
        )
    )
    sup = supervise(cfg, run, prepared)
    log.info(f"Supervision: {sup.summary()}")
    _log_original_header(cfg, run, prepared, sup, log)
    init = warm_start(cfg, run) if distributed.info().enabled or cfg.nproc_per_node == 1 else None
    t0 = time.perf_counter()
    if cfg.nproc_per_node > 1 and not distributed.info().enabled:
        log.info(f"Launching torchrun with {cfg.nproc_per_node} processes")
        distributed.launch(cfg.nproc_per_node, run.path, resume=resume)
        return _result_from_checkpoints(run)
    try:
        with RunBoard(run) as board:
            result = train(
                cfg,
                prepared.splits,
                run.checkpoints,
                history_path=run.file("history"),
                resume=resume,
                progress=progress,
                log=log.info,
                on_epoch=board.epoch,
                init=init,
            )
    except Exception as exc:
        log.error(f"Training stopped: {type(exc).__name__}: {exc}")
        raise
    log.info(f"Training finished in {time.perf_counter() - t0:.1f}s")
    run.record_speed_switches(autotune.resolutions())
    return result


def _result_from_checkpoints(run: Run) -> TrainResult:
    """The TrainResult of a run trained in other processes, read back from its checkpoints."""
    chosen = run.checkpoint()
    with autotune.fixed_rules():  # handed back, not run here: nothing to measure
        model, _, _, _ = load_model(chosen, run.cfg.device)
    last = load_checkpoint(run.checkpoints.last)
    return TrainResult(
        model=model, history=last["history"], best=last["best"], run_dir=run.path, checkpoint=chosen
    )


#: Resamples and seed of the 95% bootstrap intervals of the headline pixel metrics.
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def evaluate_run(
    run: Run | Path | str,
    *,
    split: str = "test",
    checkpoint: Path | str | None = None,
    n_gallery: int = 6,
    progress: bool = True,
    bootstrap: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, Any]:
    """Evaluate the run's chosen model on ``split``; writes ``metrics.json`` and the gallery.

    Headline figures are at the thresholds chosen on the validation split (the checkpoint's
    recorded validation metrics), each metric at its own; without them (``validate=False``) at
    the best thresholds on ``split``, labelled ``threshold_source: "oracle"``. Pixel metrics are
    counted at each mask's native resolution (see :mod:`crackkit.evaluate`).

    ``metrics.json`` keys: ``split``, ``n_images``, ``n_positive``, ``n_gt_pixels``;
    ``decision`` (precision, recall, f1, accuracy, threshold, tp, fp, fn, tn, ap_step,
    ap_trapezoid, auc, n_samples, n_positive, notes, threshold_source), ``decision_oracle``,
    ``decision_curve``; ``pixel_2px`` (precision, recall, f1, threshold, tolerance, n_images,
    threshold_source, f1_ci95), ``pixel_2px_oracle``, ``pixel_2px_curve``, ``pixel_oracle``;
    ``dice`` and ``iou`` (value, threshold, n_images, threshold_source, value_ci95),
    ``dice_oracle``, ``iou_oracle``; ``ods``, ``ois``; ``pixel_2px_original_mean`` and
    ``pixel_2px_original_mean_oracle`` (the original code's all-image mean with ``>``);
    ``val_thresholds`` {decision, pixel_2px, dice, iou}; ``protocol``; ``checkpoint``,
    ``checkpoint_epoch``, ``loss_seg``, ``loss_dec``, ``timing``.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    with run_lock(run.path):
        return _evaluate_run(run, split, checkpoint, n_gallery, progress, bootstrap)


def _evaluate_run(
    run: Run,
    split: str,
    checkpoint: Path | str | None,
    n_gallery: int,
    progress: bool,
    bootstrap: int,
) -> dict[str, Any]:
    cfg, log = run.cfg, run.log
    autotune.clear_resolutions()  # this evaluation records its own switches only
    ckpt = run.checkpoint(checkpoint)
    prepared = prepare(cfg, progress=progress)
    if split not in prepared.splits:
        raise DatasetError(f"unknown split {split!r}; available: {', '.join(prepared.splits)}")
    dataset = CrackDataset(prepared.splits[split], cfg, train=False)
    metrics, pred, state = _evaluate_split(
        cfg, ckpt, dataset, n_gallery=n_gallery, progress=progress, bootstrap=bootstrap, split=split
    )
    run.record_speed_switches(autotune.resolutions())
    metrics["timing"]["train_and_validate"] = run.train_seconds()
    metrics["checkpoint"] = run.relative(ckpt)
    _write_scores(run.file("predictions") / f"{split}_scores.csv", dataset, pred, metrics)
    if n_gallery > 0:
        _gallery(dataset, pred, metrics, run.file("gallery"))
    run.write("metrics", metrics)
    with RunBoard(run) as board:
        board.evaluation(
            metrics,
            labels=pred.labels,
            scores=pred.scores,
            gallery=run.file("gallery") if n_gallery > 0 else None,
        )
    d, p = metrics["decision"], metrics.get("pixel_2px", {})
    log.info(
        f"{split.upper()} ({len(dataset)} images, {ckpt.name} of epoch {state.get('epoch')}, "
        f"thresholds: {metrics['protocol']['thresholds']}): decision AP (step-wise)="
        f"{d['ap_step']}, F1={d['f1']:.4f} @ {d['threshold']:.4f}; 2px Pr/Re/F1="
        f"{p.get('precision', 0):.4f}/{p.get('recall', 0):.4f}/{p.get('f1', 0):.4f}"
        f" @ {p.get('threshold', 0):.3f}; evaluated in {metrics['timing']['evaluate']:.1f}s"
    )
    return metrics


def _evaluate_split(
    cfg: RunConfig,
    ckpt: Path,
    dataset: CrackDataset,
    *,
    n_gallery: int,
    progress: bool,
    bootstrap: int,
    split: str,
) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Load ``ckpt`` and evaluate it on ``dataset`` at its validation thresholds."""
    model, _, state, placement = load_model(ckpt, cfg.device, inference=True)
    val_thr = validation_thresholds(state)
    t0 = time.perf_counter()
    metrics, pred = evaluate(
        model,
        dataset,
        placement.device,
        tolerance=cfg.tolerance,
        val_thresholds=val_thr,
        seg_black=cfg.seg_black,
        bootstrap=bootstrap,
        bootstrap_seed=BOOTSTRAP_SEED,
        keep=_gallery_picks(dataset.labels, n_gallery, dataset.segmented),
        batch_size=placement.eval_batch_size,
        amp_dtype=placement.amp_dtype,
        channels_last=placement.channels_last,
        num_workers=cfg.num_workers,
        progress=progress,
        desc=f"evaluate {split}",
    )
    metrics.update(
        split=split,
        checkpoint=str(ckpt),
        checkpoint_epoch=state.get("epoch"),
        timing={"evaluate": time.perf_counter() - t0},
    )
    if all(v is None for v in val_thr.values()):
        metrics["protocol"]["note"] = (
            f"checkpoint {ckpt.name} (epoch {state.get('epoch')}) holds no validation metrics "
            "(validate=False, or its epoch was not validated): every threshold is the best on "
            "the evaluated split (oracle)"
        )
    return metrics, pred, state


def _write_scores(path: Path, dataset: CrackDataset, pred: Any, metrics: dict[str, Any]) -> None:
    threshold = metrics["decision"]["threshold"]
    write_csv(
        path,
        [
            {
                "image": s.image.name,
                "label": int(lab),
                "score": float(sc),
                "decision": int(sc >= threshold),
            }
            for s, lab, sc in zip(dataset.samples, pred.labels, pred.scores, strict=True)
        ],
    )


def _gallery_picks(labels: list[bool], n: int, segmented: list[bool] | None = None) -> list[int]:
    """Up to ``n`` positions: crack images spread over the split, then a third crack-free; only
    images with a known mask (not ``segmented`` False) are picked."""
    if n <= 0:
        return []
    flags = np.asarray(labels, dtype=bool)
    known = np.ones_like(flags) if segmented is None else np.asarray(segmented, dtype=bool)
    positives = np.flatnonzero(flags & known)
    negatives = np.flatnonzero(~flags & known)
    n_neg = min(len(negatives), max(1, n // 3)) if len(negatives) else 0
    n_pos = min(n - n_neg, len(positives))
    pos_pick = positives[np.linspace(0, len(positives) - 1, n_pos).astype(int)] if n_pos else []
    picks = [int(i) for i in pos_pick] + [int(i) for i in negatives[:n_neg]]
    return list(dict.fromkeys(picks))


def _gallery(dataset: CrackDataset, pred: Any, metrics: dict[str, Any], path: Path) -> None:
    """Native-size image | ground truth | probability | errors, at the headline 2px threshold.

    With ``seg_black`` the maps of images decided crack-free are shown zeroed, as counted.
    """
    idx = sorted(pred.kept)
    if not idx:
        return
    threshold = metrics.get("pixel_2px", {}).get("threshold", 0.5)
    black = metrics.get("protocol", {}).get("seg_black", {})
    dec_thr = metrics["decision"]["threshold"]
    images, masks, probs, titles = [], [], [], []
    for i in idx:
        prob, mask = pred.kept[i]
        zeroed = bool(black.get("enabled")) and pred.scores[i] < dec_thr
        images.append(read_image(dataset.samples[i].image, dataset.cfg.input_channels))
        masks.append(mask)
        probs.append(np.zeros_like(prob) if zeroed else prob)
        titles.append(
            f"{dataset.samples[i].image.name} (score {pred.scores[i]:.2f}"
            + (", zeroed: seg_black)" if zeroed else ")")
        )
    plot_gallery(images, masks, probs, threshold, path, titles=titles)


def report_run(run: Run | Path | str) -> Path:
    """Render the plots and ``REPORT.md`` of a run; returns the report's path."""
    return render_report(run if isinstance(run, Run) else Run.open(run))


CROSS_DIR = "cross"


def evaluate_dataset(
    run: Run | Path | str,
    dataset: str | Path,
    *,
    split: str = "test",
    checkpoint: Path | str | None = None,
    n_gallery: int = 6,
    progress: bool = True,
    bootstrap: int = BOOTSTRAP_RESAMPLES,
    overwrite: bool = False,
    device: str | None = None,
) -> Path:
    """Evaluate a trained run on another data set; returns the path of its ``EVAL.md``.

    ``dataset`` is a prepared name (``crack500``, ``cfd``...), ``synthetic`` or a folder with
    the split folders. Its images are resized to the run's input size; the metrics use the
    run's own validation thresholds, tolerance and ``seg_black``, under the protocol of
    :func:`evaluate_run`. Everything goes into ``RUN/cross/<dataset>-<split>/``
    (``metrics.json``, ``scores.csv``, ``gallery.png``, ``EVAL.md``); the run's own files are
    never touched.

    Raises:
        DatasetError: the data set or its split is missing or broken.
        RunDirError: the output folder already holds an evaluation (and not ``overwrite``).

    ``device`` (``auto``, ``cpu``, ``cuda:1``...) overrides the run's own.
    """
    run = run if isinstance(run, Run) else Run.open(run)
    cfg = run.cfg
    ckpt = run.checkpoint(checkpoint)
    eval_cfg = cfg.replace(dataset=str(dataset), **({"device": device} if device else {}))
    root = resolve_dataset(eval_cfg, progress=progress)
    if (Path(root) / split).is_dir():  # only the split evaluated need be there
        samples = scan_split(
            root,
            split,
            negatives_without_mask=cfg.negatives_without_mask,
            progress=progress,
            max_pixels=cfg.max_image_pixels,
        )
    else:  # a validation split drawn from train, as the data set's runs draw it
        splits = load_splits(
            root,
            cfg.seed,
            negatives_without_mask=cfg.negatives_without_mask,
            progress=progress,
            max_pixels=cfg.max_image_pixels,
        )
        if split not in splits:
            raise DatasetError(f"data set {root} has no {split!r} split")
        samples = splits[split]
    if not samples:
        raise DatasetError(f"split {split!r} of {root} is empty")
    name = Path(str(dataset)).name if Path(str(dataset)).expanduser().is_dir() else str(dataset)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "dataset"
    out = run.path / CROSS_DIR / f"{name}-{split}"
    if (out / RUN_FILES["metrics"]).exists() and not overwrite:
        raise RunDirError(
            f"{out} already holds an evaluation; pass overwrite=True (--overwrite) to redo it"
        )
    out.mkdir(parents=True, exist_ok=True)
    ds = CrackDataset(samples, eval_cfg, train=False)
    metrics, pred, _ = _evaluate_split(
        eval_cfg, ckpt, ds, n_gallery=n_gallery, progress=progress, bootstrap=bootstrap, split=split
    )
    metrics["checkpoint"] = run.relative(ckpt)
    metrics["dataset"] = dataset_record(root, split_summary({split: samples}), name=str(dataset))
    metrics["run"] = str(run.path)
    _write_scores(out / "scores.csv", ds, pred, metrics)
    if n_gallery > 0:
        _gallery(ds, pred, metrics, out / "gallery.png")
    atomic_write_json(out / RUN_FILES["metrics"], metrics)
    return render_eval(out, cfg, metrics).path
