"""Plots and the Markdown report of a run, mirroring the seed report section by section.

Plots come from the run folder's ``history.csv`` and ``metrics.json``; :func:`render_report`
writes ``REPORT.md`` with the Dataset, Run parameters, Decision, 2 pixel distance, Dice/IoU,
Losses, Scores, Gallery, Environment and Output sections.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from crackkit.config import SEED_REPORT_ROWS, RunConfig, load_config
from crackkit.runs import RUN_FILES, atomic_write_bytes, atomic_write_text, read_json

__all__ = [
    "read_history",
    "plot_history",
    "plot_gallery",
    "plot_curves",
    "plot_samples",
    "render_report",
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


def read_history(path: Path) -> list[dict[str, Any]]:
    """Rows of ``history.csv`` with numbers parsed (empty cells become ``None``)."""
    rows = []
    with open(path, newline="") as fh:
        for raw in csv.DictReader(fh):
            rows.append({k: _parse(v) for k, v in raw.items()})
    return rows


def _parse(v: str) -> Any:
    if v in ("", None):
        return None
    if v in ("True", "False"):
        return v == "True"
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


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
        ("val_ap", "decision AP"),
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
    images: np.ndarray,
    masks: np.ndarray,
    probs: np.ndarray,
    threshold: float,
    path: Path,
    *,
    titles: list[str] | None = None,
) -> Path:
    """Rows of image | ground truth | probability | error overlay (FP red, FN blue).

    images: (N, H, W, C) uint8; masks: (N, H, W) bool; probs: (N, H, W) float.
    """
    n = len(images)
    row_height = 3.0 * images.shape[1] / images.shape[2] + 0.45
    fig = Figure(figsize=(12, n * row_height + 0.3))
    axes = fig.subplots(n, 4, squeeze=False)
    for i in range(n):
        img = images[i] if images.shape[-1] == 3 else images[i][..., 0]
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
        image, mask = ds.read(i)
        rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image.copy()
        rgb[mask] = (255, 40, 40)
        ax.imshow(rgb)
        label = "crack" if ds.labels[i] else "no crack"
        ax.set_title(f"{ds.samples[i].image.name} ({label})", fontsize=7)
        ax.axis("off")
    return _save(fig, Path(path))


def plot_curves(metrics: dict[str, Any], path: Path) -> Path:
    """Decision precision-recall curve and 2-pixel F1 against threshold, side by side."""
    fig = Figure(figsize=(10, 3.6))
    a, b = fig.subplots(1, 2)
    curve = metrics["decision"].get("curve")
    if curve:
        a.plot(curve["recall"], curve["precision"])
    ap = metrics["decision"].get("ap")
    a.set_title(f"Decision PR curve (AP {ap:.4f})" if ap is not None else "Decision PR curve")
    a.set_xlabel("recall")
    a.set_ylabel("precision")
    a.set_xlim(0, 1.01)
    a.set_ylim(0, 1.01)
    a.grid(alpha=0.3)
    px = metrics.get("pixel_2px_curve")
    if px:
        for key in ("precision", "recall", "f1"):
            b.plot(px["threshold"], px[key], label=key)
        b.axvline(metrics["pixel_2px"]["threshold"], color="k", lw=0.8, ls="--")
        b.legend(fontsize=8)
    b.set_title("2-pixel tolerance metrics vs threshold")
    b.set_xlabel("threshold")
    b.set_ylim(0, 1.02)
    b.grid(alpha=0.3)
    return _save(fig, Path(path))


def _table(header: list[str], rows: list[list[Any]]) -> str:
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


def _dataset_section(cfg: RunConfig, dataset: dict[str, Any]) -> str:
    counts = dataset.get("counts", {})
    rows = [
        ["Input channels", cfg.input_channels],
        ["Input height", cfg.input_height],
        ["Input width", cfg.input_width],
        ["Train samples", counts.get("train", {}).get("sum")],
        ["Test samples", counts.get("test", {}).get("sum")],
        ["Validation samples", counts.get("val", {}).get("sum")],
    ]
    split_rows = []
    for key, label in (
        ("train", "Train"),
        ("test", "Test"),
        ("val", "Validation"),
        ("sum", "**Sum**"),
    ):
        c = counts.get(key, {})
        split_rows.append([label, c.get("positives"), c.get("negatives"), c.get("sum")])
    source = dataset.get("root", cfg.dataset)
    return "\n\n".join(
        [
            "## Dataset",
            f"Data set: `{cfg.dataset}` (`{source}`)",
            _table(["Parameter", "Value"], rows),
            _table(["Set", "Positives", "Negatives", "Sum"], split_rows),
        ]
    )


def _parameters_section(cfg: RunConfig) -> str:
    label = {"adam": "Adam", "sgd": "SGD"}
    rows = [[name, label.get(getattr(cfg, f), getattr(cfg, f))] for name, f in SEED_REPORT_ROWS]
    extra = [
        ["Architecture", cfg.architecture],
        ["Weighted seg. loss p / max", f"{cfg.weighted_seg_loss_p} / {cfg.weighted_seg_loss_max}"],
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
    ]
    return "\n\n".join(
        [
            "## Run parameters",
            _table(["Parameter", "Value"], rows),
            "Further parameters of this run:",
            _table(["Parameter", "Value"], extra),
        ]
    )


def _decision_section(m: dict[str, Any]) -> str:
    d = m["decision"]
    main = _table(
        ["Precision", "Recall", "F1", "Accuracy", "Threshold", "TP", "FP", "FN", "TN", "AP", "AUC"],
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
                d["ap"],
                d["auc"],
            ]
        ],
    )
    parts = ["### Decision", main]
    if d.get("notes"):
        parts.append("Notes: " + "; ".join(d["notes"]))
    at_val = m.get("decision_at_val_threshold")
    if at_val:
        parts.append(
            "At the threshold chosen on the validation split "
            f"({at_val['threshold']:.6f}): precision {at_val['precision']:.4f}, recall "
            f"{at_val['recall']:.4f}, F1 {at_val['f1']:.4f}, accuracy {at_val['accuracy']:.4f} "
            f"(TP {at_val['tp']}, FP {at_val['fp']}, FN {at_val['fn']}, TN {at_val['tn']})."
        )
    return "\n\n".join(parts)


def _pixel_section(m: dict[str, Any], cfg: RunConfig) -> str:
    if "pixel_2px" not in m:
        return "### 2 pixel distance\n\nThe evaluated split has no crack pixels."
    p = m["pixel_2px"]
    parts = [
        f"### {cfg.tolerance} pixel distance",
        _table(
            ["Precision", "Recall", "F1", "Threshold"],
            [[p["precision"], p["recall"], p["f1"], p["threshold"]]],
        ),
    ]
    if "pixel_2px_at_val_threshold" in m:
        v = m["pixel_2px_at_val_threshold"]
        parts.append(
            f"At the validation split's threshold ({v['threshold']:.3f}): precision "
            f"{v['precision']:.4f}, recall {v['recall']:.4f}, F1 {v['f1']:.4f}."
        )
    if cfg.dataset == "crack500":
        rows = [[name, pr, re, f1] for name, pr, re, f1 in PUBLISHED_CRACK500]
        rows.append(["**This run**", p["precision"], p["recall"], p["f1"]])
        parts += [
            "Published 2-pixel results on CRACK500:",
            _table(["Method", "Pr", "Re", "F1"], rows),
        ]
    rows = [
        ["Dice", m["dice"]["value"], m["dice"]["threshold"]],
        ["IoU", m["iou"]["value"], m["iou"]["threshold"]],
        ["Pixel F1 (no tolerance)", m["pixel"]["f1"], m["pixel"]["threshold"]],
        [f"ODS F1 ({cfg.tolerance}px)", m["ods"]["f1"], m["ods"]["threshold"]],
        [f"OIS F1 ({cfg.tolerance}px)", m["ois"]["f1"], None],
    ]
    parts += ["### Dice and IoU", _table(["Metric", "Value", "Threshold"], rows)]
    return "\n\n".join(parts)


def render_report(run_dir: Path) -> Path:
    """Write ``plots/*.png`` from the history and ``REPORT.md``; returns the report's path."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / RUN_FILES["config"])
    metrics = read_json(run_dir / RUN_FILES["metrics"])
    dataset = _optional_json(run_dir / RUN_FILES["dataset"])
    env = _optional_json(run_dir / RUN_FILES["environment"])
    history_path = run_dir / RUN_FILES["history"]
    history = read_history(history_path) if history_path.exists() else []
    plots = run_dir / RUN_FILES["plots"]
    plot_history(history, plots)
    plot_curves(metrics, plots / "curves.png")

    split = metrics.get("split", "test")
    sections = [
        f"# Results of training on the {cfg.dataset} dataset",
        f"Run folder `{run_dir.name}`; architecture `{cfg.architecture}`; metrics on the "
        f"**{split}** split. Thresholds in the tables are the best on that split, as in the seed "
        "report; the values at the thresholds chosen on the validation split follow each table.",
        _dataset_section(cfg, dataset),
        _parameters_section(cfg),
        _decision_section(metrics),
        _pixel_section(metrics, cfg),
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
            "Test images with ground truth, predicted probability and errors "
            "(green: correct crack pixels, red: false positives, blue: false negatives).",
            "![Gallery](plots/gallery.png)",
        ]
    sections += ["## Environment", _env_table(env, metrics), "### Output", _output(run_dir)]
    path = run_dir / RUN_FILES["report"]
    atomic_write_text(path, "\n\n".join(s for s in sections if s) + "\n")
    return path


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
    return _table(
        ["Epoch", "Pr (2px)", "Re (2px)", "F1 (2px)", "Dice", "IoU", "Dec. AP", "Best"], rows
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
    timing = metrics.get("timing", {})
    rows += [[f"time: {k}", f"{v:.1f} s"] for k, v in timing.items()]
    return _table(["What", "Value"], rows) if rows else "Not recorded."


def _output(run_dir: Path) -> str:
    log = run_dir / RUN_FILES["log"]
    if not log.exists():
        return "No log was recorded."
    text = log.read_text()
    lines = text.splitlines()
    if len(lines) > 400:
        text = "\n".join(lines[:50] + [f"... ({len(lines) - 100} lines omitted) ..."] + lines[-50:])
    return f"[run.log](run.log)\n\n```text\n{text}\n```"


def _optional_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
