"""Plots and the Markdown report of a run, mirroring the seed report section by section.

Plots come from the run folder's ``history.csv`` and ``metrics.json``; :func:`render_report`
writes ``REPORT.md`` with the Dataset (and the data set's own record: license, citation, source of
the negatives), Run parameters, Evaluation protocol, Decision, 2 pixel distance, Dice/IoU, Oracle,
Losses, Scores, Gallery, Environment and Output sections. :func:`render_eval` writes the
``EVAL.md`` of a cross-data-set evaluation with the same metric sections.

The Decision, 2 pixel distance and Dice/IoU tables headline the figures at the thresholds chosen
on the validation split; values tuned on the evaluated split are labelled "oracle (tuned on this
split)" and kept in their own section, never beside published rows. The published CRACK500 rows
each carry their protocol and sit beside this run's validation-threshold figures only.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from crackkit.config import SEED_REPORT_ROWS, RunConfig, deviations
from crackkit.data.dataset import RECORD_FIELDS
from crackkit.files import atomic_write_bytes, atomic_write_text
from crackkit.run import RUN_FILES, Run

__all__ = [
    "Document",
    "Section",
    "markdown_table",
    "plot_history",
    "plot_gallery",
    "plot_curves",
    "plot_samples",
    "render_report",
    "render_eval",
    "error_overlay",
    "PUBLISHED_CRACK500",
]

# 2-pixel Pr/Re/F1 on CRACK500 that the seed's authors compared against.
PUBLISHED_CRACK500 = [
    ("Jenkins et al.", 0.6811, 0.6629, 0.6788),
    ("Zhang et al.", 0.7368, 0.7165, 0.7295),
    ("Lau et al.", 0.7426, 0.7285, 0.7327),
    ("Li et al.", 0.7909, 0.7650, 0.7778),
    ("Seed run (SegDecNet, crack500_run6_5)", 0.7436, 0.8105, 0.7583),
]

FP_COLOUR = (1.0, 0.15, 0.15)
FN_COLOUR = (0.1, 0.5, 1.0)
TP_COLOUR = (0.2, 0.9, 0.2)


def _save(fig: Figure, path: Path) -> Path:
    """Render ``fig`` to PNG at ``path`` atomically (figures never touch pyplot's global state)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def _series(history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_history(history: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """loss.png, loss_dec.png, loss_seg.png, loss_val.png and scores.png; returns their paths."""
    out_dir = Path(out_dir)
    specs = {
        "loss": ("Training loss (weighted total)", [("loss", "train")]),
        "loss_dec": ("Decision loss", [("loss_dec", "train"), ("val_loss_dec", "validation")]),
        "loss_seg": ("Segmentation loss", [("loss_seg", "train"), ("val_loss_seg", "validation")]),
        "loss_val": ("Validation loss (weighted total)", [("val_loss", "validation")]),
    }
    paths = {}
    for name, (title, keys) in specs.items():
        fig = Figure(figsize=(6, 3.5))
        ax = fig.subplots()
        for key, label in keys:
            x, y = _series(history, key)
            if x:
                ax.plot(x, y, marker="o" if len(x) < 30 else None, ms=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        paths[name] = _save(fig, out_dir / f"{name}.png")
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    for key, label in [
        ("val_precision_2px", "Pr (2px)"),
        ("val_recall_2px", "Re (2px)"),
        ("val_f1_2px", "F1 (2px)"),
        ("val_dice", "Dice"),
        ("val_iou", "IoU"),
        ("val_ap", "decision AP (step-wise)"),
    ]:
        x, y = _series(history, key)
        if x:
            ax.plot(x, y, marker="o", ms=3, label=label)
    ax.set_title("Validation scores")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    paths["scores"] = _save(fig, out_dir / "scores.png")
    return paths


def error_overlay(image: np.ndarray, mask: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB float (H, W, 3): true positives green, false positives red, false negatives blue.

    image: (H, W, C) uint8; mask, pred: (H, W) bool.
    """
    base = image.astype(np.float32) / 255.0
    if base.shape[-1] == 1:
        base = np.repeat(base, 3, axis=-1)
    out = 0.6 * base
    for sel, colour in (
        (mask & pred, TP_COLOUR),
        (~mask & pred, FP_COLOUR),
        (mask & ~pred, FN_COLOUR),
    ):
        out[sel] = colour
    return out


def plot_gallery(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    probs: Sequence[np.ndarray],
    threshold: float,
    path: Path,
    *,
    titles: list[str] | None = None,
) -> Path:
    """Rows of image | ground truth | probability | error overlay (FP red, FN blue).

    images: N arrays (H_i, W_i, C) uint8 (or one (N, H, W, C) array); masks: N (H_i, W_i) bool;
    probs: N (H_i, W_i) float. Sizes may differ from row to row.
    """
    n = len(images)
    aspect = max(im.shape[0] / im.shape[1] for im in images)
    row_height = 3.0 * aspect + 0.45
    fig = Figure(figsize=(12, n * row_height + 0.3))
    axes = fig.subplots(n, 4, squeeze=False)
    for i in range(n):
        img = images[i] if images[i].shape[-1] == 3 else images[i][..., 0]
        cells = [
            (img, "image" if titles is None else titles[i], None),
            (masks[i], "ground truth", "gray"),
            (probs[i], "crack probability", "magma"),
            (
                error_overlay(images[i], masks[i], probs[i] >= threshold),
                f"errors @ {threshold:.3f}",
                None,
            ),
        ]
        for ax, (data, title, cmap) in zip(axes[i], cells, strict=True):
            ax.imshow(data, cmap=cmap, vmin=0 if cmap else None, vmax=1 if cmap else None)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.suptitle("green: correct crack, red: false positive, blue: false negative", fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_samples(samples: list, cfg: RunConfig, path: Path, n: int = 6) -> Path:
    """PNG of the first ``n`` samples of a split with their masks overlaid in red."""
    from crackkit.data.dataset import CrackDataset

    ds = CrackDataset(samples[:n], cfg, train=False)
    fig = Figure(figsize=(2.6 * len(ds), 2.6 * cfg.input_height / cfg.input_width + 0.4))
    axes = fig.subplots(1, len(ds), squeeze=False)
    for i, ax in enumerate(axes[0]):
        image, mask = ds.read(i, as_fed=False)
        rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image.copy()
        rgb[mask] = (255, 40, 40)
        ax.imshow(rgb)
        label = "crack" if ds.labels[i] else "no crack"
        ax.set_title(f"{ds.samples[i].image.name} ({label})", fontsize=7)
        ax.axis("off")
    return _save(fig, Path(path))


def plot_curves(metrics: dict[str, Any], path: Path) -> Path:
    """Decision precision-recall curve and 2-pixel metrics against threshold, side by side.

    The 2-pixel panel marks the headline threshold (chosen on the validation split, solid) and
    the best one on the evaluated split (oracle, dashed).
    """
    calibration = metrics.get("calibration")
    fig = Figure(figsize=(15 if calibration else 10, 3.6))
    a, b, *rest = fig.subplots(1, 3 if calibration else 2)
    if calibration:
        _plot_reliability(rest[0], calibration)
    curve = metrics.get("decision_curve") or metrics["decision"].get("curve")
    if curve:
        a.plot(curve["recall"], curve["precision"])
    ap = metrics["decision"].get("ap_step", metrics["decision"].get("ap"))
    a.set_title(
        f"Decision PR curve (AP step-wise {ap:.4f})" if ap is not None else "Decision PR curve"
    )
    a.set_xlabel("recall")
    a.set_ylabel("precision")
    a.set_xlim(0, 1.01)
    a.set_ylim(0, 1.01)
    a.grid(alpha=0.3)
    px = metrics.get("pixel_2px_curve")
    if px:
        for key in ("precision", "recall", "f1"):
            b.plot(px["threshold"], px[key], label=key)
        head = metrics.get("pixel_2px", {})
        oracle = metrics.get("pixel_2px_oracle", head)
        if head:
            label = "validation threshold" if _validated(head) else "threshold (oracle)"
            b.axvline(head["threshold"], color="k", lw=0.9, label=label)
        if oracle and _validated(head):
            b.axvline(oracle["threshold"], color="k", lw=0.8, ls="--", label="oracle (this split)")
        b.legend(fontsize=8)
    b.set_title("2-pixel tolerance metrics vs threshold")
    b.set_xlabel("threshold")
    b.set_ylim(0, 1.02)
    b.grid(alpha=0.3)
    return _save(fig, Path(path))


def _plot_reliability(ax: Any, calibration: dict[str, Any]) -> None:
    """Reliability diagram: crack frequency against mean probability per bin, on all pixels."""
    rel = calibration["reliability"]
    pairs = [
        (c, f)
        for c, f in zip(rel["confidence"], rel["frequency"], strict=True)
        if c is not None and f is not None
    ]
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="calibrated")
    if pairs:
        ax.plot(*zip(*pairs, strict=True), marker="o", label="test pixels")
    ax.set_title(
        f"Reliability (ECE {calibration['ece']:.4f}, mean background p "
        f"{calibration['mean_background_prob']:.3f})",
        fontsize=9,
    )
    ax.set_xlabel("mean crack probability in bin")
    ax.set_ylabel("crack fraction in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _calibration_section(m: dict[str, Any]) -> str:
    c = m.get("calibration")
    if not c:
        return ""
    rows = [
        ["Expected calibration error (10 bins)", c["ece"]],
        ["Mean crack probability of background pixels", c["mean_background_prob"]],
        ["Mean crack probability of crack pixels", c["mean_crack_prob"]],
        ["Pixels (crack pixels)", f"{c['n_pixels']} ({c['n_crack_pixels']})"],
    ]
    return "\n\n".join(
        [
            "### Calibration",
            "Over every pixel of the split at native resolution, before `seg_black`; the "
            "reliability diagram is the right panel of the curves plot (Scores).",
            markdown_table(["Metric", "Value"], rows),
        ]
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; cells are formatted (floats to 6 places, None as n/a), strings kept."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.6f}".rstrip("0").rstrip(".") if v != int(v) or abs(v) < 1e6 else f"{v:g}"
    return str(v)


ORACLE = "oracle (tuned on this split)"
_THRESHOLD_LABELS = (
    ("decision", "decision"),
    ("pixel_2px", "2px"),
    ("dice", "Dice"),
    ("iou", "IoU"),
)


def _validated(entry: dict[str, Any] | None) -> bool:
    return bool(entry) and entry.get("threshold_source") == "validation"


def _from(entry: dict[str, Any]) -> str:
    return "validation split" if _validated(entry) else f"**{ORACLE}**"


def _ci(entry: dict[str, Any], key: str) -> str:
    ci = entry.get(key)
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "n/a"


def _ci_note(entry: dict[str, Any], key: str) -> str:
    return ", with its 95% bootstrap interval" if entry.get(key) else " (no interval computed)"


def _record_text(v: Any) -> str:
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_record_text(x)}" for k, x in v.items() if x not in (None, ""))
    if isinstance(v, list | tuple):
        return "; ".join(_record_text(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def _record_table(dataset: dict[str, Any]) -> str:
    """The data set's own notes (name, license, citation...) from a ``dataset.json`` record."""
    keys = [k for k in ("name", *RECORD_FIELDS) if dataset.get(k) not in (None, "", [], {})]
    if keys == ["name"] or not keys:
        return ""
    rows = [[k, _record_text(dataset[k])] for k in keys]
    return "Data set record (its `dataset.json`):\n\n" + markdown_table(["Field", "Value"], rows)


def supervision_counts(run_segmented: Path | None, counts: dict[str, Any]) -> dict[str, int] | None:
    """Training positives used, segmented and image-level only, from the run's
    ``segmented.csv`` (negatives are always segmented) and the data set's counts."""
    if run_segmented is None or not run_segmented.is_file():
        return None
    try:
        with open(run_segmented, newline="", encoding="utf-8") as fh:
            flags = [str(row.get("is_segmented", "")).strip() for row in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    zeros = flags.count("0")
    negatives = int(counts.get("train", {}).get("negatives") or 0)
    positives = len(flags) - negatives
    return {
        "positives": positives,
        "segmented": positives - zeros,
        "image_level": zeros,
        "available": int(counts.get("train", {}).get("positives") or 0),
    }


def _dataset_section(cfg: RunConfig, dataset: dict[str, Any], segmented: Path | None = None) -> str:
    counts = dataset.get("counts", {})
    sup = supervision_counts(segmented, counts)
    train_counts = dict(counts.get("train", {}))
    if sup is not None:
        train_counts |= {"positives": sup["positives"], "image_level": sup["image_level"]}
        train_counts["sum"] = sup["positives"] + int(train_counts.get("negatives") or 0)
    rows = [
        ["Input channels", cfg.input_channels],
        ["Input height", cfg.input_height],
        ["Input width", cfg.input_width],
        ["Train samples", train_counts.get("sum")],
        ["Test samples", counts.get("test", {}).get("sum")],
        ["Validation samples", counts.get("val", {}).get("sum")],
    ]
    per_split = {
        "train": train_counts,
        "test": counts.get("test", {}),
        "val": counts.get("val", {}),
    }
    mixed = any(c.get("image_level") for c in per_split.values())

    def positives(c: dict[str, Any]) -> Any:
        if not mixed or c.get("positives") is None:
            return c.get("positives")
        weak = int(c.get("image_level") or 0)
        return f"{c['positives']} ({c['positives'] - weak} / {weak})"

    split_rows = [
        [
            label,
            positives(per_split[key]),
            per_split[key].get("negatives"),
            per_split[key].get("sum"),
        ]
        for key, label in (("train", "Train"), ("test", "Test"), ("val", "Validation"))
    ]
    total = {
        k: sum(int(c.get(k) or 0) for c in per_split.values())
        for k in ("positives", "negatives", "sum", "image_level")
    }
    split_rows.append(["**Sum**", positives(total), total["negatives"], total["sum"]])
    header = "Positives (segmented / image-level only)" if mixed else "Positives"
    source = dataset.get("root", cfg.dataset)
    notes = []
    if sup is not None and (mixed or sup["positives"] != sup["available"]):
        notes.append(
            f"Mixed supervision: {sup['segmented']} of the {sup['positives']} positive training "
            f"images train with their pixel masks, {sup['image_level']} with their image-level "
            f"label only (num_segmented {_all(cfg.num_segmented)}, train_num "
            f"{_all(cfg.train_num)}"
            + (
                f", segmented_list `{cfg.segmented_list}`"
                if cfg.segmented_list
                else f", segmented_seed {cfg.segmented_seed}"
            )
            + f"; the choice is in `segmented.csv`); {sup['available']} positives in the data "
            "set's training split. Crack-free images are always segmented."
        )
    weak_eval = {
        key: int(per_split[key].get("image_level") or 0)
        for key in ("val", "test")
        if per_split[key].get("image_level")
    }
    if weak_eval:
        notes.append(
            "Images with an image-level label only count in the decision metrics; the pixel "
            "metrics are over the images with masks ("
            + ", ".join(f"{k}: {v} without mask" for k, v in weak_eval.items())
            + ")."
        )
    return "\n\n".join(
        s
        for s in [
            "## Dataset",
            f"Data set: `{cfg.dataset}` (`{source}`)",
            markdown_table(["Parameter", "Value"], rows),
            markdown_table(["Set", header, "Negatives", "Sum"], split_rows),
            *notes,
            _record_table(dataset),
        ]
        if s
    )


def _all(value: int | None) -> str:
    return "all" if value is None else str(value)


def _init_weights_text(record: dict[str, Any] | None) -> str:
    if not record:
        return ""
    size = record.get("source_input_size")
    trained = f", trained at {size[0]}x{size[1]}" if size else ""
    epoch = f", epoch {record['epoch']}" if record.get("epoch") is not None else ""
    return (
        f"Initial weights (`init_weights` = `{record.get('given')}`): `{record.get('file')}`, "
        f"a {record.get('kind')} for `{record.get('architecture')}` "
        f"({record.get('input_channels')} channel(s), {str(record.get('channel_order')).upper()}"
        f"{trained}{epoch}), SHA-256 `{record.get('sha256')}`. A new run from these weights "
        "(its own optimizer; the prior initialisation skipped), not a resume."
    )


def _parameters_section(cfg: RunConfig, init_record: dict[str, Any] | None = None) -> str:
    label = {"adam": "Adam", "sgd": "SGD"}
    rows = [[name, label.get(getattr(cfg, f), getattr(cfg, f))] for name, f in SEED_REPORT_ROWS]
    extra = [
        ["Architecture", cfg.architecture],
        ["Weighted seg. loss p / max", f"{cfg.weighted_seg_loss_p} / {cfg.weighted_seg_loss_max}"],
        ["Class-weighted BCE (bce_loss_w, SegDecNet++)", cfg.bce_loss_w],
        ["Augmentation mode", cfg.augmentation_mode if cfg.augmentation else "off"],
        [
            "Loss reduction over the batch / decision target",
            f"{cfg.loss_reduction} / {cfg.decision_target}",
        ],
        ["Channel order fed to the network", cfg.channel_order.upper()],
        [
            "Segmented positives (num_segmented) / positives used (train_num)",
            f"{_all(cfg.num_segmented)} / {_all(cfg.train_num)}",
        ],
        ["Validation every (epochs)", cfg.validation_every],
        [
            "LR scheduler (step, gamma)",
            f"{cfg.scheduler_step}, {cfg.scheduler_gamma}" if cfg.scheduler_step else "none",
        ],
        ["Seed", cfg.seed],
        [
            "Mixed precision / channels_last / FFT 15x15 conv",
            f"{cfg.amp} / {cfg.channels_last} / {cfg.fft_conv}",
        ],
        ["Distance tolerance (px)", cfg.tolerance],
        ["Zero the segmentation of images decided crack-free (seg_black)", cfg.seg_black],
    ]
    changed = deviations(cfg)
    deviation_text = (
        "Deviations from the published method (parameters not at the original code's value):\n\n"
        + "\n".join(f"- `{k}` = `{getattr(cfg, k)}`: {text}" for k, text in changed.items())
        if changed
        else "No deviation from the published method's training (every parameter of "
        "`crackkit.config.DEVIATIONS` at the original code's value)."
    )
    return "\n\n".join(
        s
        for s in [
            "## Run parameters",
            markdown_table(["Parameter", "Value"], rows),
            "Further parameters of this run:",
            markdown_table(["Parameter", "Value"], extra),
            _init_weights_text(init_record),
            deviation_text,
        ]
        if s
    )


def _protocol_section(m: dict[str, Any]) -> str:
    pr = m.get("protocol", {})
    vt = m.get("val_thresholds", {})
    lines = []
    if pr.get("thresholds") == "validation":
        chosen = ", ".join(f"{label} {_cell(vt.get(k))}" for k, label in _THRESHOLD_LABELS)
        lines.append(
            "Thresholds: every headline figure is at the threshold chosen on the **validation "
            f"split**, each metric at its own ({chosen})."
        )
    else:
        lines.append(
            "Thresholds: **"
            + (pr.get("note") or "some metrics have no validation threshold")
            + f"**. Entries without one are at the best threshold on this split, labelled "
            f"{ORACLE}: sources {pr.get('threshold_sources')}."
        )
    lines += [
        f"Resolution: {pr.get('resolution', 'n/a')}. Probability resize: "
        f"{pr.get('probability_resize', 'n/a')}. Network input "
        f"{'x'.join(str(v) for v in pr.get('input_size', []))}, "
        f"{pr.get('network_input', '')}; segmentation output: {pr.get('output_upsampling')}. "
        f"Maps resized for {pr.get('n_resized')} of {m.get('n_images')} images (native sizes: "
        f"{', '.join(pr.get('native_sizes', [])[:6])}"
        + (", ..." if len(pr.get("native_sizes", [])) > 6 else "")
        + f"); {m.get('n_gt_pixels')} crack pixels counted.",
        f"Prediction: {pr.get('prediction_rule')}. Per-image means (crackkit): "
        f"{pr.get('per_image_mean')}. The original code's mean is given beside it: "
        f"{pr.get('original_mean')}.",
        f"Tolerance: {pr.get('tolerance')} px, {pr.get('tolerance_element')}. Threshold grid: "
        f"{_grid(pr.get('threshold_grid', {}))}; probability quantisation: "
        f"{pr.get('quantisation')}.",
        "Zeroed segmentation (seg_black): "
        + (
            f"on: {pr['seg_black']['n_blackened']} image(s) scored below the decision threshold "
            f"{_cell(pr['seg_black']['decision_threshold'])} had their maps set to 0 before "
            "every pixel metric."
            if pr.get("seg_black", {}).get("enabled")
            else "off."
        ),
        "Intervals: "
        + (
            f"95% bootstrap, {pr['bootstrap']['method']}; {pr['bootstrap']['resamples']} "
            f"resamples, seed {pr['bootstrap']['seed']}."
            if pr.get("bootstrap")
            else "none computed."
        ),
        f"Decision AP: step-wise = {pr.get('ap_step')}; trapezoidal = {pr.get('ap_trapezoid')}.",
    ]
    return "### Evaluation protocol\n\n" + "\n".join(f"- {line}" for line in lines)


def _grid(g: dict[str, Any]) -> str:
    if not g:
        return "n/a"
    step = f" in steps of {g['step']:g}" if "step" in g else ""
    return f"{g['first']:g} to {g['last']:g}{step} ({g['n']} thresholds)"


def _decision_section(m: dict[str, Any]) -> str:
    d = m["decision"]
    main = markdown_table(
        [
            "Precision",
            "Recall",
            "F1",
            "Accuracy",
            "Threshold",
            "TP",
            "FP",
            "FN",
            "TN",
            "AP (step-wise)",
            "AP (trapezoidal)",
            "AUC",
        ],
        [
            [
                d["precision"],
                d["recall"],
                d["f1"],
                d["accuracy"],
                d["threshold"],
                d["tp"],
                d["fp"],
                d["fn"],
                d["tn"],
                d.get("ap_step"),
                d.get("ap_trapezoid"),
                d["auc"],
            ]
        ],
    )
    parts = [
        "### Decision",
        f"Threshold from the {_from(d)}. AP and AUC do not depend on a threshold; AP (step-wise) "
        "is scikit-learn's average_precision_score, AP (trapezoidal) the area the original "
        "code logged as AP.",
        main,
    ]
    if d.get("notes"):
        parts.append("Notes: " + "; ".join(d["notes"]))
    return "\n\n".join(parts)


def _pixel_section(m: dict[str, Any], cfg: RunConfig, dataset_name: str) -> str:
    title = f"### {cfg.tolerance} pixel distance"
    if "pixel_2px" not in m:
        return (
            f"{title}\n\nThe evaluated split has no crack pixels.\n\n### Dice and IoU\n\n"
            "The evaluated split has no crack pixels."
        )
    p, o = m["pixel_2px"], m.get("pixel_2px_original_mean", {})
    n_crack = p.get("n_images")
    parts = [
        title,
        f"Threshold from the {_from(p)}; mean over the {n_crack} crack-containing images "
        f"(prob >= threshold){_ci_note(p, 'f1_ci95')}.",
        markdown_table(
            ["Precision", "Recall", "F1", "F1 95% CI", "Threshold"],
            [[p["precision"], p["recall"], p["f1"], _ci(p, "f1_ci95"), p["threshold"]]],
        ),
        "The same threshold, each way of taking the per-image mean:",
        markdown_table(
            ["Mean", "Images", "Rule", "Precision", "Recall", "F1", "Threshold"],
            [
                [
                    "crackkit: crack-containing images",
                    n_crack,
                    "prob >= t",
                    p["precision"],
                    p["recall"],
                    p["f1"],
                    p["threshold"],
                ],
                [
                    "original: all images, crack-free count 0",
                    o.get("n_images"),
                    "prob > t",
                    o.get("precision"),
                    o.get("recall"),
                    o.get("f1"),
                    o.get("threshold"),
                ],
            ],
        ),
    ]
    if dataset_name == "crack500":
        parts.append(_published_table(m))
    dice, iou = m["dice"], m["iou"]
    rows = [
        ["Dice", dice["value"], _ci(dice, "value_ci95"), dice["threshold"], _from(dice)],
        ["IoU", iou["value"], _ci(iou, "value_ci95"), iou["threshold"], _from(iou)],
    ]
    parts += [
        "### Dice and IoU",
        f"Each at its own threshold; mean over the {dice.get('n_images')} crack-containing images "
        f"(no tolerance){_ci_note(dice, 'value_ci95')}.",
        markdown_table(["Metric", "Value", "95% CI", "Threshold", "Threshold from"], rows),
    ]
    return "\n\n".join(parts)


PUBLISHED_PROTOCOL = {
    "Seed run (SegDecNet, crack500_run6_5)": (
        "threshold tuned on the test split (0.305); mean over all test images (none is "
        "crack-free), prob > t"
    ),
}
PUBLISHED_DEFAULT_PROTOCOL = "as published (threshold choice and averaging not restated here)"


def _published_table(m: dict[str, Any]) -> str:
    p, o = m["pixel_2px"], m.get("pixel_2px_original_mean", {})
    rows = [
        [name, pr, re, f1, PUBLISHED_PROTOCOL.get(name, PUBLISHED_DEFAULT_PROTOCOL)]
        for name, pr, re, f1 in PUBLISHED_CRACK500
    ]
    note = (
        "Published 2-pixel results on CRACK500, each row with its protocol (rows of different "
        "protocols are not strictly comparable):"
    )
    if _validated(p):
        rows += [
            [
                "**This run**",
                p["precision"],
                p["recall"],
                p["f1"],
                "threshold from the validation split; mean over crack-containing images, "
                "prob >= t, native resolution",
            ],
            [
                "**This run** (original mean)",
                o.get("precision"),
                o.get("recall"),
                o.get("f1"),
                "threshold from the validation split; mean over all images, crack-free count 0, "
                "prob > t, native resolution",
            ],
        ]
    else:
        note += (
            " this run has no validation threshold, so its figures (tuned on this split) are "
            "not listed here; see the oracle section."
        )
    return note + "\n\n" + markdown_table(["Method", "Pr", "Re", "F1", "Protocol"], rows)


def _oracle_section(m: dict[str, Any], cfg: RunConfig) -> str:
    if "pixel_2px_oracle" not in m:
        return ""
    r = cfg.tolerance
    px, orig, plain = m["pixel_2px_oracle"], m["pixel_2px_original_mean_oracle"], m["pixel_oracle"]
    dec = m["decision_oracle"]
    rows = [
        [
            f"{r}px, crackkit mean (crack-containing images, >=)",
            px["precision"],
            px["recall"],
            px["f1"],
            px["threshold"],
        ],
        [
            f"{r}px, original mean (all images, crack-free count 0, >)",
            orig["precision"],
            orig["recall"],
            orig["f1"],
            orig["threshold"],
        ],
        [
            "Pixel, no tolerance (crackkit mean)",
            plain["precision"],
            plain["recall"],
            plain["f1"],
            plain["threshold"],
        ],
        ["Dice", None, None, m["dice_oracle"]["value"], m["dice_oracle"]["threshold"]],
        ["IoU", None, None, m["iou_oracle"]["value"], m["iou_oracle"]["threshold"]],
        ["Decision (best F1)", dec["precision"], dec["recall"], dec["f1"], dec["threshold"]],
        [
            f"ODS F1 ({r}px), oracle by definition",
            m["ods"]["precision"],
            m["ods"]["recall"],
            m["ods"]["f1"],
            m["ods"]["threshold"],
        ],
        [f"OIS F1 ({r}px), oracle by definition", None, None, m["ois"]["f1"], None],
    ]
    return "\n\n".join(
        [
            f"### {ORACLE[0].upper()}{ORACLE[1:]}",
            "The best value of each metric over the threshold grid on the evaluated split itself: "
            "optimistic, since the threshold is tuned on the data it scores, and never compared "
            "with published figures. The seed report's 2-pixel table is of this kind (original "
            "mean, threshold tuned on its test split).",
            markdown_table(
                ["Metric (oracle)", "Precision", "Recall", "F1 / value", "Threshold"], rows
            ),
        ]
    )


def _metrics_sections(m: dict[str, Any], cfg: RunConfig, dataset_name: str) -> list[str]:
    return [
        _protocol_section(m),
        _decision_section(m),
        _pixel_section(m, cfg, dataset_name),
        _calibration_section(m),
        _oracle_section(m, cfg),
    ]


def _intro(m: dict[str, Any]) -> str:
    split = m.get("split", "test")
    pr = m.get("protocol", {})
    text = (
        f"Metrics on the **{split}** split, counted at each annotation's native resolution. "
        "Headline figures are at the thresholds chosen on the validation split, each metric at "
        f"its own; values tuned on the {split} split itself are labelled {ORACLE}."
    )
    if pr.get("thresholds") != "validation":
        text += (
            f" **Here {pr.get('thresholds')} thresholds: "
            + (pr.get("note") or "some metrics have no validation threshold")
            + "; those entries fall back to the oracle and are labelled so.**"
        )
    return text


#: What a section of a report shows, by title; any other section holds results (text, tables).
SECTION_KINDS = {
    "Losses": "figures",
    "Scores": "figures",
    "Gallery": "figures",
    "Curves": "figures",
    "Environment": "record",
    "Output": "record",
}
_FIGURE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


@dataclass(frozen=True)
class Section:
    """One headed section of a report: its title, heading level, Markdown body and kind.

    ``kind`` is ``"results"`` (text and tables), ``"figures"`` (plots) or ``"record"`` (the
    environment and the run's log); ``figures`` are the paths of the images it shows.
    """

    title: str
    level: int
    body: str
    kind: str = "results"
    figures: tuple[Path, ...] = ()

    @property
    def markdown(self) -> str:
        return "\n\n".join(s for s in ("#" * self.level + " " + self.title, self.body) if s)


@dataclass(frozen=True)
class Document:
    """A written report (``REPORT.md``, ``EVAL.md``) as sections, and the file it is in.

    ``str(doc)`` is its path; :meth:`read_text` its text. Notebooks show
    :meth:`markdown` of the kinds they want and the :attr:`figures`.
    """

    path: Path
    title: str
    intro: str
    sections: tuple[Section, ...] = field(default_factory=tuple)

    @classmethod
    def write(cls, path: Path, blocks: Sequence[str]) -> Document:
        """Write ``blocks`` (headings and bodies, Markdown) to ``path``; returns the document."""
        blocks = [b for b in blocks if b]
        atomic_write_text(path, "\n\n".join(blocks) + "\n")
        return cls.parse(path, blocks)

    @classmethod
    def parse(cls, path: Path, blocks: Sequence[str]) -> Document:
        title, intro, sections = "", [], []
        current: list[Any] | None = None
        for block in blocks:
            head, _, rest = block.partition("\n")
            level = len(head) - len(head.lstrip("#"))
            if level == 1 and not title:
                title = head[1:].strip()
                continue
            if level >= 2:
                if current is not None:
                    sections.append(current)
                current = [head[level:].strip(), level, [rest.strip()] if rest.strip() else []]
            elif current is None:
                intro.append(block)
            else:
                current[2].append(block)
        if current is not None:
            sections.append(current)
        parent = Path(path).parent
        made = []
        for name, level, parts in sections:
            body = "\n\n".join(parts)
            figures = tuple(parent / f for f in _FIGURE.findall(body))
            kind = SECTION_KINDS.get(name, "results")
            if level > 2 and made and made[-1].kind != "results":
                kind = made[-1].kind  # a subsection (the log under Environment) is of its kind
            made.append(Section(name, level, body, kind, figures))
        return cls(Path(path), title, "\n\n".join(intro), tuple(made))

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    def read_text(self) -> str:
        return self.path.read_text()

    def section(self, title: str) -> Section:
        """The section called ``title``.

        Raises:
            KeyError: no such section (the message lists them).
        """
        for s in self.sections:
            if s.title == title:
                return s
        raise KeyError(f"no section {title!r}; sections: {', '.join(self.titles)}")

    @property
    def titles(self) -> list[str]:
        return [s.title for s in self.sections]

    @property
    def figures(self) -> list[Path]:
        """Every image the document shows that exists, in order."""
        return [f for s in self.sections for f in s.figures if f.exists()]

    def markdown(self, kinds: Sequence[str] = ("results",), *, intro: bool = True) -> str:
        """The title, the introduction and the sections of the given kinds, as Markdown."""
        parts = [f"# {self.title}"] + ([self.intro] if intro and self.intro else [])
        parts += [s.markdown for s in self.sections if s.kind in kinds]
        return "\n\n".join(parts)


def render_report(run: Run) -> Document:
    """Write ``plots/*.png`` from the history and ``REPORT.md``; returns the report.

    Raises:
        FileNotFoundError: the run has no ``metrics.json`` yet (evaluate it first).
    """
    cfg = run.cfg
    if not run.file("metrics").is_file():
        raise FileNotFoundError(f"missing file: {run.file('metrics')}; evaluate the run first")
    metrics = run.read("metrics")
    dataset = run.read("dataset")
    env = run.read("environment")
    history = run.history()
    run_dir = run.path
    plots = run.file("plots")
    plot_history(history, plots)
    plot_curves(metrics, plots / "curves.png")

    sections = [
        f"# Results of training on the {cfg.dataset} dataset",
        f"Run folder `{run_dir.name}`; architecture `{cfg.architecture}`. " + _intro(metrics),
        _dataset_section(cfg, dataset, run.file("segmented")),
        _parameters_section(
            cfg,
            run.read("init_weights") if run.file("init_weights").is_file() else None,
        ),
        *_metrics_sections(metrics, cfg, cfg.dataset),
        "## Losses",
        "![Loss](plots/loss.png)\n\n![Dec Loss](plots/loss_dec.png)\n\n"
        "![Seg Loss](plots/loss_seg.png)\n\n![Val Loss](plots/loss_val.png)",
        "## Scores",
        "![Scores](plots/scores.png)\n\n![Curves](plots/curves.png)",
        _scores_table(history),
    ]
    if (plots / "gallery.png").exists():
        sections += [
            "## Gallery",
            "Test images at native size with ground truth, predicted probability and errors at "
            "the headline 2-pixel threshold (green: correct crack pixels, red: false positives, "
            "blue: false negatives).",
            "![Gallery](plots/gallery.png)",
        ]
    sections += ["## Environment", _env_table(env, metrics), "### Output", _output(run_dir)]
    return Document.write(run.file("report"), sections)


def render_eval(out_dir: Path, cfg: RunConfig, metrics: dict[str, Any]) -> Document:
    """Write ``EVAL.md`` of a cross-data-set evaluation into ``out_dir``; returns its path."""
    out_dir = Path(out_dir)
    ds = metrics.get("dataset", {})
    name = str(ds.get("name", "?"))
    split = metrics.get("split", "test")
    counts = ds.get("counts", {}).get(split, {})
    sections = [
        f"# Run `{Path(metrics.get('run', '')).name}` evaluated on `{name}` ({split})",
        f"Checkpoint `{metrics.get('checkpoint')}` (epoch {metrics.get('checkpoint_epoch')}), "
        f"architecture `{cfg.architecture}` trained on `{cfg.dataset}`; images resized to the "
        f"run's input size {cfg.input_height}x{cfg.input_width}; thresholds are the run's own, "
        f"chosen on its validation split. " + _intro(metrics),
        "## Dataset",
        f"`{name}` (`{ds.get('root')}`), split `{split}`: {counts.get('positives')} positives, "
        f"{counts.get('negatives')} negatives, {counts.get('sum')} images.",
        _record_table(ds),
        "## Results",
        *_metrics_sections(metrics, cfg, Path(name).name if name else ""),
    ]
    if (out_dir / "gallery.png").exists():
        sections += ["## Gallery", "![Gallery](gallery.png)"]
    return Document.write(out_dir / "EVAL.md", sections)


def _scores_table(history: list[dict[str, Any]]) -> str:
    rows = [
        [
            r["epoch"],
            r.get("val_precision_2px"),
            r.get("val_recall_2px"),
            r.get("val_f1_2px"),
            r.get("val_dice"),
            r.get("val_iou"),
            r.get("val_ap"),
            "yes" if r.get("best") else "",
        ]
        for r in history
        if r.get("val_f1_2px") is not None
    ]
    if not rows:
        return ""
    header = ["Epoch", "Pr (2px)", "Re (2px)", "F1 (2px)", "Dice", "IoU", "Dec. AP (step-wise)"]
    return "Validation scores (each at its best threshold on the validation split):\n\n" + (
        markdown_table([*header, "Best"], rows)
    )


def _env_table(env: dict[str, Any], metrics: dict[str, Any]) -> str:
    keys = [
        "time",
        "device",
        "gpu",
        "python",
        "torch",
        "torchvision",
        "numpy",
        "skimage",
        "sklearn",
        "papermill",
        "platform",
        "cpu_count",
        "torch_threads",
        "commit",
        "dirty",
    ]
    rows = [[k, env.get(k)] for k in keys if k in env]
    rows += _switch_rows(env.get("speed_switches", {}))
    timing = metrics.get("timing", {})
    rows += [[f"time: {k}", f"{v:.1f} s"] for k, v in timing.items()]
    return markdown_table(["What", "Value"], rows) if rows else "Not recorded."


def _switch_rows(resolutions: Any) -> list[list[Any]]:
    """One row per kind (training, inference): each speed switch as settled, and how
    (``measured`` now, ``cached`` from an earlier measurement on this machine, ``static`` rule,
    ``fixed`` by the run's parameters)."""
    rows = []
    if not isinstance(resolutions, dict):
        return rows
    for kind, record in resolutions.items():
        switches = record.get("switches", {}) if isinstance(record, dict) else {}
        if not isinstance(switches, dict) or not switches:
            continue
        text = ", ".join(
            f"{name} {entry.get('choice')} ({entry.get('source')})"
            for name, entry in switches.items()
            if isinstance(entry, dict)
        )
        rows.append([f"speed switches: {kind}", text])
    return rows


def _output(run_dir: Path) -> str:
    log = run_dir / RUN_FILES["log"]
    if not log.exists():
        return "No log was recorded."
    text = log.read_text()
    lines = text.splitlines()
    if len(lines) > 400:
        text = "\n".join(lines[:50] + [f"... ({len(lines) - 100} lines omitted) ..."] + lines[-50:])
    return f"[run.log](run.log)\n\n```text\n{text}\n```"
