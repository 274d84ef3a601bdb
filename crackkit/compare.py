"""Compare finished runs side by side: ``COMPARE.md`` and overlaid curves.

:func:`compare_runs` reads each run folder's ``config.json``, ``metrics.json`` and ``history.csv``
and writes a Markdown file with

- the parameters equal across all runs, listed once;
- the seed report's tables (decision; Dice and IoU; 2-pixel distance), read from the headline
  entries of ``metrics.json`` (``decision``, ``dice``, ``iou``, ``pixel_2px``: each metric at the
  threshold chosen on the run's validation split; decision AP both step-wise and trapezoidal),
  with one column per varied parameter and one row per group of runs that differ only by their
  seed: the mean
  ± the sample standard deviation over the group's seeds (denominator n - 1, as
  :func:`statistics.stdev`), a single value when n = 1; the best mean of each metric column is in
  bold (ties, judged on the printed digits, are all bold);
- the published CRACK500 comparison rows, each with its protocol, when runs used CRACK500;
  a group is listed beside them only when all its runs have validation thresholds;
- a table per run, with where its thresholds come from (``protocol.thresholds``), and overlaid
  loss and score curves (``<stem>_loss.png``, ``<stem>_val_f1_2px.png`` ... next to the
  Markdown file, ``<stem>`` being its lower-cased name: ``compare_loss.png``);
- the runs a sweep's early stopping ended (``stopped.json``, no ``metrics.json``), listed apart
  with the epoch and validation score they were stopped at, never in the tables' means;
- the folders that hold no finished run, listed as unfinished.
"""

from __future__ import annotations

import io
import json
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from crackkit.config import ConfigError, RunConfig
from crackkit.files import atomic_write_bytes
from crackkit.report import (
    PUBLISHED_CRACK500,
    PUBLISHED_DEFAULT_PROTOCOL,
    PUBLISHED_PROTOCOL,
    Document,
    markdown_table,
    supervision_counts,
)
from crackkit.run import RUN_FILES, Run, RunDirError

__all__ = [
    "RunRecord",
    "Metric",
    "DECISION",
    "SEGMENTATION",
    "PIXEL_2PX",
    "CURVES",
    "collect_run_dirs",
    "parse_run_dirs",
    "load_run",
    "mean_std",
    "compare_runs",
]

DIGITS = 4
OUR_PROTOCOL = (
    "threshold from the validation split; mean over crack-containing images, prob >= t, "
    "native resolution"
)


@dataclass(frozen=True)
class Metric:
    """A column of a comparison table: its label, where it is in metrics.json, and its sense."""

    label: str
    path: tuple[str, ...]
    higher_is_better: bool | None = True


DECISION = [
    Metric("Pr", ("decision", "precision")),
    Metric("Re", ("decision", "recall")),
    Metric("F1", ("decision", "f1")),
    Metric("Acc", ("decision", "accuracy")),
    Metric("AP (step)", ("decision", "ap_step")),
    Metric("AP (trapz)", ("decision", "ap_trapezoid")),
    Metric("AUC", ("decision", "auc")),
]
SEGMENTATION = [Metric("Dice", ("dice", "value")), Metric("IoU", ("iou", "value"))]
PIXEL_2PX = [
    Metric("Pr", ("pixel_2px", "precision")),
    Metric("Re", ("pixel_2px", "recall")),
    Metric("F1", ("pixel_2px", "f1")),
    Metric("Threshold", ("pixel_2px", "threshold"), None),
]
PER_RUN = [
    Metric("Dec. F1", ("decision", "f1")),
    Metric("Dec. AP (step)", ("decision", "ap_step")),
    Metric("Dec. AUC", ("decision", "auc")),
    Metric("Dice", ("dice", "value")),
    Metric("IoU", ("iou", "value")),
    Metric("Pr (2px)", ("pixel_2px", "precision")),
    Metric("Re (2px)", ("pixel_2px", "recall")),
    Metric("F1 (2px)", ("pixel_2px", "f1")),
]
# history.csv column, plot title, y-axis label
CURVES = [
    ("loss", "Training loss (weighted total)", "loss"),
    ("val_loss", "Validation loss (weighted total)", "loss"),
    ("val_f1_2px", "Validation F1 (2-pixel tolerance)", "F1"),
    ("val_ap", "Validation decision AP (step-wise)", "AP"),
]


@dataclass
class RunRecord:
    """What one run folder holds; ``problem`` says why it counts as unfinished."""

    path: Path
    config: RunConfig | None = None
    metrics: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None
    stopped: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def finished(self) -> bool:
        return self.problem is None

    @property
    def thresholds(self) -> str:
        """Where the run's headline thresholds come from: validation, oracle, mixed or n/a."""
        protocol = (self.metrics or {}).get("protocol") or {}
        return str(protocol.get("thresholds", "n/a"))

    def value(self, metric: Metric) -> float | None:
        node: Any = self.metrics or {}
        for key in metric.path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def parse_run_dirs(value: str | Sequence[str] | None) -> list[str]:
    """Run folders from a notebook parameter: a comma-separated string or a list of paths."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list | tuple) and all(isinstance(p, str) for p in value):
        return [p for p in value if p.strip()]
    raise ConfigError(
        f"parameter 'run_dirs' must be a comma-separated string of folders, got {value!r}"
    )


def collect_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand each path: a run folder stays; any other folder stands for its run subfolders.

    A run folder is one with ``config.json``. Subfolders are taken in name order.

    Raises:
        FileNotFoundError: a path does not exist, or a folder holds no run at all.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no such run folder: {p}")
        if (p / RUN_FILES["config"]).is_file() or not p.is_dir():
            candidates = [p]
        else:
            candidates = sorted(c for c in p.iterdir() if (c / RUN_FILES["config"]).is_file())
            if not candidates:
                raise FileNotFoundError(f"{p} is no run folder and holds no run folders")
        out += [c.resolve() for c in candidates if c.resolve() not in out]
    if not out:
        raise FileNotFoundError("no run folders given")
    return out


def load_run(path: str | Path) -> RunRecord:
    """Read a run folder; a missing or broken file makes it unfinished, never an exception."""
    rec = RunRecord(Path(path))
    try:
        run = Run.open(rec.path)
    except (OSError, ConfigError, RunDirError, TypeError) as exc:
        rec.problem = f"no readable {RUN_FILES['config']} ({exc})"
        return rec
    rec.config = run.cfg
    metrics_path = rec.path / RUN_FILES["metrics"]
    if not metrics_path.is_file():
        rec.stopped = _read_stopped(rec.path)
        if rec.stopped is not None:
            rec.problem = f"stopped early by {rec.stopped.get('by', 'a sweep')}"
        elif (rec.path / RUN_FILES["checkpoints"] / "last.pt").is_file():
            rec.problem = (
                f"no {RUN_FILES['metrics']}; has checkpoints/last.pt (continue it with "
                f"`crackkit run --resume --run {rec.path}`)"
            )
        else:
            rec.problem = (
                f"no {RUN_FILES['metrics']} and no checkpoint (not started, or failed early)"
            )
        return rec
    try:
        rec.metrics = json.loads(metrics_path.read_text())
    except (OSError, ValueError) as exc:
        rec.problem = f"unreadable {RUN_FILES['metrics']} ({exc})"
        return rec
    try:
        rec.history = run.history()
    except (OSError, ValueError):
        rec.history = []
    return rec


def _read_stopped(path: Path) -> dict[str, Any] | None:
    """The run's ``stopped.json`` (why early stopping ended it), or None."""
    stopped = path / RUN_FILES["stopped"]
    if not stopped.is_file():
        return None
    try:
        data = json.loads(stopped.read_text())
    except (OSError, ValueError):
        data = None
    return data if isinstance(data, dict) else {"by": "a sweep (unreadable stopped.json)"}


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, sample standard deviation (n - 1) and count of the values that are not None."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None, None, 0
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else None), len(xs)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.{DIGITS}f}"


def _mean_std_text(values: Sequence[float | None], n: int) -> str:
    mean, std, k = mean_std(values)
    if mean is None:
        return "n/a"
    text = _fmt(mean) if std is None else f"{_fmt(mean)} ± {_fmt(std)}"
    return text if k == n else f"{text} ({k} of {n})"


def _param_text(v: Any) -> str:
    if v is None:
        return "all"
    if isinstance(v, float):
        return f"{v:g}"
    return "all" if v is None else str(v)


@dataclass
class _Group:
    values: tuple[Any, ...]
    runs: list[RunRecord]

    @property
    def seeds(self) -> str:
        return ", ".join(str(r.config.seed) for r in self.runs)

    def label(self, varied: Sequence[str]) -> str:
        if not varied:
            return "all runs"
        return ", ".join(f"{k}={_param_text(v)}" for k, v in zip(varied, self.values, strict=True))


def _varied_fields(configs: Sequence[RunConfig]) -> list[str]:
    names = [f.name for f in fields(RunConfig)]
    return [n for n in names if len({repr(getattr(c, n)) for c in configs}) > 1]


def _group(records: Sequence[RunRecord], varied: Sequence[str]) -> list[_Group]:
    keys = [k for k in varied if k != "seed"]
    groups: dict[tuple, _Group] = {}
    for rec in records:
        key = tuple(getattr(rec.config, k) for k in keys)
        groups.setdefault(key, _Group(key, [])).runs.append(rec)
    return list(groups.values())


def _metric_table(groups: Sequence[_Group], keys: Sequence[str], metrics: Sequence[Metric]) -> str:
    cells = [
        [_mean_std_text([r.value(m) for r in g.runs], len(g.runs)) for m in metrics] for g in groups
    ]
    for j, metric in enumerate(metrics):
        if metric.higher_is_better is None or len(groups) < 2:
            continue
        means = [mean_std([r.value(metric) for r in g.runs])[0] for g in groups]
        shown = [None if m is None else round(m, DIGITS) for m in means]
        present = [s for s in shown if s is not None]
        if not present:
            continue
        best = max(present) if metric.higher_is_better else min(present)
        for i, s in enumerate(shown):
            if s == best:
                cells[i][j] = f"**{cells[i][j]}**"
    header = list(keys) + ["Seeds", "n"] + [m.label for m in metrics]
    rows = [
        [_param_text(v) for v in g.values] + [g.seeds, str(len(g.runs))] + cells[i]
        for i, g in enumerate(groups)
    ]
    return markdown_table(header, rows)


def _save_png(fig: Figure, path: Path) -> Path:
    """PNG at ``path``, written atomically; figures never touch pyplot's global state."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


_STYLES = ["-", "--", ":", "-."]


def _plot_curves(
    groups: Sequence[_Group], keys: Sequence[str], out: Path, stem: str
) -> list[tuple[str, Path]]:
    """One PNG per history column present in any run: every run a line, coloured by group."""
    written = []
    colours = colormaps["tab10" if len(groups) <= 10 else "tab20"]
    for column, title, ylabel in CURVES:
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        epochs: set[int] = set()
        for gi, g in enumerate(groups):
            for si, rec in enumerate(g.runs):
                pts = [(r["epoch"], r[column]) for r in rec.history if r.get(column) is not None]
                if not pts:
                    continue
                x, y = zip(*pts, strict=True)
                epochs.update(x)
                ax.plot(
                    x,
                    y,
                    color=colours(gi % colours.N),
                    ls=_STYLES[si % len(_STYLES)],
                    marker="o" if len(x) < 30 else None,
                    ms=3,
                    label=f"{g.label(keys)} (seed {rec.config.seed})" if keys else rec.name,
                )
        if not epochs:
            continue
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if len(epochs) <= 15:
            ax.set_xticks(sorted(epochs))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        written.append((title, _save_png(fig, out.parent / f"{stem}_{column}.png")))
    return written


#: The metrics drawn against the number of segmented positives (the paper's figures 5/7/9).
SUPERVISION_METRICS = [
    Metric("Decision AP (step-wise)", ("decision", "ap_step")),
    Metric("2-pixel F1", ("pixel_2px", "f1")),
]


def segmented_positives(rec: RunRecord) -> int | None:
    """The positive training images a run trained with their pixel masks (its segmented.csv)."""
    try:
        counts = json.loads((rec.path / RUN_FILES["dataset"]).read_text()).get("counts", {})
    except (OSError, ValueError, AttributeError):
        return None
    sup = supervision_counts(rec.path / RUN_FILES["segmented"], counts)
    return None if sup is None else sup["segmented"]


def _supervision_section(
    groups: Sequence[_Group], keys: Sequence[str], out: Path, stem: str
) -> str:
    """Decision AP and 2-pixel F1 against the number of segmented positives: one line per
    setting of the other varied parameters, mean ± std over seeds."""
    others = [k for k in keys if k != "num_segmented"]
    lines: dict[tuple, list[tuple[int, _Group]]] = {}
    for g in groups:
        ns = {segmented_positives(r) for r in g.runs}
        if len(ns) != 1 or None in ns:
            continue
        other = tuple(v for k, v in zip(keys, g.values, strict=True) if k != "num_segmented")
        lines.setdefault(other, []).append((ns.pop(), g))
    if not lines:
        return ""
    fig = Figure(figsize=(7, 4))
    axes = fig.subplots(1, len(SUPERVISION_METRICS), sharey=True)
    colours = colormaps["tab10"]
    for ax, metric in zip(axes, SUPERVISION_METRICS, strict=True):
        for li, (other, points) in enumerate(sorted(lines.items(), key=lambda kv: repr(kv[0]))):
            points.sort(key=lambda p: p[0])
            stats = [mean_std([r.value(metric) for r in g.runs]) for _, g in points]
            xs = [n for (n, _), (m, _, _) in zip(points, stats, strict=True) if m is not None]
            ys = [m for m, _, _ in stats if m is not None]
            err = [s or 0.0 for m, s, _ in stats if m is not None]
            label = ", ".join(f"{k}={_param_text(v)}" for k, v in zip(others, other, strict=True))
            ax.errorbar(
                xs, ys, yerr=err, marker="o", capsize=3, color=colours(li % 10), label=label or None
            )
        ax.set_xscale("symlog", linthresh=1)
        ax.set_title(metric.label)
        ax.set_xlabel("segmented positive training images")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score (mean ± std over seeds)")
    if others:
        axes[-1].legend(fontsize=7)
    path = _save_png(fig, out.parent / f"{stem}_num_segmented.png")
    return (
        "## Metric against the number of pixel masks\n\n"
        "Each point a setting of `num_segmented` (x: the positive training images that kept "
        "their masks, from each run's `segmented.csv`; the others trained from their "
        "image-level label only), mean ± sample standard deviation over its seeds.\n\n"
        f"![Metric against the number of pixel masks]({_rel(path, out.parent)})"
    )


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _fixed_section(configs: Sequence[RunConfig], varied: Sequence[str]) -> str:
    rows = [
        [f.name, _param_text(getattr(configs[0], f.name))]
        for f in fields(RunConfig)
        if f.name not in varied
    ]
    return "## Parameters equal across all runs\n\n" + markdown_table(["Parameter", "Value"], rows)


def _crack500_section(groups: Sequence[_Group], keys: Sequence[str]) -> str:
    ours = [g for g in groups if g.runs[0].config.dataset == "crack500"]
    if not ours:
        return ""
    rows = [
        [
            name,
            _fmt(pr),
            _fmt(re),
            _fmt(f1),
            PUBLISHED_PROTOCOL.get(name, PUBLISHED_DEFAULT_PROTOCOL),
        ]
        for name, pr, re, f1 in PUBLISHED_CRACK500
    ]
    left_out = []
    for g in ours:
        n = len(g.runs)
        if not all(r.thresholds == "validation" for r in g.runs):
            left_out.append(g.label(keys))
            continue
        rows.append(
            [f"**This comparison: {g.label(keys)}** (n={n})"]
            + [_mean_std_text([r.value(m) for r in g.runs], n) for m in PIXEL_2PX[:3]]
            + [OUR_PROTOCOL]
        )
    parts = [
        "## Published 2-pixel results on CRACK500",
        markdown_table(["Method", "Pr", "Re", "F1", "Protocol"], rows),
        "Each row with its protocol; rows of different protocols are not strictly comparable.",
    ]
    if left_out:
        parts.append(
            "Not listed, since some of their runs have thresholds tuned on the evaluated split "
            "(no validation metrics): " + "; ".join(left_out) + "."
        )
    return "\n\n".join(parts)


def _per_run_section(finished: Sequence[RunRecord], keys: Sequence[str], base: Path) -> str:
    header = (
        ["Run"]
        + list(keys)
        + ["Seed", "Epoch", "Thresholds"]
        + [m.label for m in PER_RUN]
        + ["Train s"]
    )
    rows = []
    for rec in finished:
        report = rec.path / RUN_FILES["report"]
        link = f"[{rec.name}]({_rel(report, base)})" if report.is_file() else rec.name
        timing = (rec.metrics or {}).get("timing", {}).get("train_and_validate")
        rows.append(
            [link]
            + [_param_text(getattr(rec.config, k)) for k in keys]
            + [str(rec.config.seed), str((rec.metrics or {}).get("checkpoint_epoch", "n/a"))]
            + [rec.thresholds]
            + [_fmt(rec.value(m)) for m in PER_RUN]
            + ["n/a" if timing is None else f"{timing:.1f}"]
        )
    return "## Per run\n\n" + markdown_table(header, rows)


def _stopped_section(stopped: Sequence[RunRecord], keys: Sequence[str], base: Path) -> str:
    header = ["Run"] + list(keys) + ["Seed", "Stopped after epoch", "Score", "Value", "By"]
    rows = []
    for rec in stopped:
        info = rec.stopped or {}
        value = info.get("value")
        rows.append(
            [f"`{_rel(rec.path, base)}`"]
            + [_param_text(getattr(rec.config, k)) for k in keys]
            + [str(rec.config.seed), str(info.get("epoch", "n/a"))]
            + [str(info.get("metric", "n/a"))]
            + [_fmt(value) if isinstance(value, int | float) else "n/a"]
            + [str(info.get("by", "n/a"))]
        )
    note = (
        "Early stopping ended these runs at a validation epoch where their score was below the "
        "scheduler's cutoff; they were not evaluated on the test split, and none of them is in "
        "the tables' means above. The score is on the validation split."
    )
    return note + "\n\n" + markdown_table(header, rows)


def compare_runs(
    run_dirs: Iterable[str | Path], out: str | Path | None = None, *, overwrite: bool = True
) -> Document:
    """Write the comparison of the given runs; returns it (``str()`` of it is its path).

    Args:
        run_dirs: run folders, or folders holding run folders (a sweep's folder).
        out: the Markdown file; default ``COMPARE.md`` in the folder that holds all the runs.
            The curve plots are written beside it.
        overwrite: replace an existing ``out`` (a sweep rewrites its own); ``crackkit
            compare`` passes its ``--overwrite``.

    Raises:
        FileNotFoundError: a given path does not exist or holds no run.
        ConfigError: ``out`` exists and ``overwrite`` is False.
    """
    dirs = collect_run_dirs(run_dirs)
    if out is None:
        out = Path(os.path.commonpath([d.parent for d in dirs])) / "COMPARE.md"
    out = Path(out).resolve()
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    stem = out.stem.lower()
    records = [load_run(d) for d in dirs]
    finished = [r for r in records if r.finished]
    stopped = [r for r in records if not r.finished and r.stopped is not None]
    unfinished = [r for r in records if not r.finished and r.stopped is None]
    configs = [r.config for r in records if r.config is not None]
    varied = _varied_fields(configs) if configs else []
    keys = [k for k in varied if k != "seed"]
    groups = _group(finished, varied)

    sections = [f"# Comparison of {len(records)} runs"]
    intro = (
        f"{len(finished)} finished run(s) in {len(groups)} group(s), "
        + (f"{len(stopped)} stopped early, " if stopped else "")
        + f"{len(unfinished)} unfinished. Runs that differ only by their seed form one row: "
        "mean ± sample standard deviation (n - 1 denominator) over the seeds; n is the number "
        "of runs. The best mean of each metric column is in bold."
    )
    splits = sorted({str((r.metrics or {}).get("split", "test")) for r in finished})
    if splits:
        intro += (
            f" Metrics are on the {' / '.join(splits)} split at the thresholds chosen on each "
            "run's validation split, each metric at its own (the per-run table says where a "
            "run's thresholds come from; 'oracle': tuned on the evaluated split)."
        )
    sections.append(intro)
    if configs:
        sections.append(_fixed_section(configs, varied))
        if varied:
            lines = []
            for k in varied:
                vals = sorted({repr(getattr(c, k)): getattr(c, k) for c in configs}.items())
                lines.append(f"- `{k}`: " + ", ".join(_param_text(v) for _, v in vals))
            sections += ["## Varied parameters", "\n".join(lines)]
    if groups:
        tolerances = {r.config.tolerance for r in finished}
        tol = f"{tolerances.pop()} pixel distance" if len(tolerances) == 1 else "Pixel distance"
        sections += [
            "## Decision",
            _metric_table(groups, keys, DECISION),
            "## Dice and IoU",
            _metric_table(groups, keys, SEGMENTATION),
            f"## {tol}",
            _metric_table(groups, keys, PIXEL_2PX),
            _crack500_section(groups, keys),
            _per_run_section(finished, keys, out.parent),
        ]
        if "num_segmented" in keys:
            sections.append(_supervision_section(groups, keys, out, stem))
        plots = _plot_curves(groups, keys, out, stem)
        if plots:
            sections.append("## Curves")
            sections.append("\n\n".join(f"![{title}]({_rel(p, out.parent)})" for title, p in plots))
    if stopped:
        sections += ["## Stopped early", _stopped_section(stopped, keys, out.parent)]
    if unfinished:
        sections += [
            "## Unfinished runs",
            "\n".join(f"- `{_rel(r.path, out.parent)}`: {r.problem}" for r in unfinished),
        ]
    return Document.write(out, sections)
