"""What every run parameter is: the table behind ``crackkit params`` and the docs' parameter page.

:func:`describe_parameters` reads :class:`~crackkit.config.RunConfig`'s fields (name, type,
default, allowed values), a preset's values (:data:`~crackkit.config.PRESETS`), the departures from
the published method (:data:`~crackkit.config.DEVIATIONS`) and a one-line description from
:data:`PARAMETER_HELP`, which holds one for every field (a test keeps them equal).
:func:`parameters_text` and :func:`parameters_markdown` render it.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, dataclass, fields
from typing import Any

from crackkit.config import (
    ALL_FIELDS,
    AUTO_ZERO_FIELDS,
    DEVIATIONS,
    PRESETS,
    ConfigError,
    RunConfig,
)

__all__ = [
    "PARAMETER_HELP",
    "Parameter",
    "describe_parameters",
    "parameters_text",
    "parameters_markdown",
]

#: One line per run parameter, in the words of the seed report's table where it has the row.
PARAMETER_HELP: dict[str, str] = {
    "dataset": "'synthetic' (generated), a prepared name under data/processed (crack500, cfd) "
    "or a folder with train/, val/, test/ holding images/ and masks/",
    "dec_prior_init": "start the decision at the segmentation's maximum logit (the linear layer's "
    "weight 1 there, 0 elsewhere) instead of at random",
    "input_channels": "1 (grayscale) or 3 (RGB) input channels",
    "input_height": "height every image is resized to (a multiple of 8; 64 at least)",
    "input_width": "width every image is resized to (a multiple of 8; 128 at least at height 64)",
    "synthetic_train": "images of the synthetic set's train split",
    "synthetic_val": "images of the synthetic set's validation split",
    "synthetic_test": "images of the synthetic set's test split",
    "synthetic_negative_fraction": "share of crack-free images in the synthetic set",
    "architecture": "segdecnet (2021, 1/8 output), segdecnet-up (the seed's fork), "
    "segdecnet++ (2023)",
    "seg_prior_init": "start the final segmentation bias at logit(crack fraction of the training "
    "masks) instead of 0: calibrated probabilities from the first epoch",
    "batch_size": "images per optimizer step",
    "epochs": "passes over the training split",
    "lr": "learning rate",
    "delta_cls_loss": "weight δ of the decision loss against the segmentation loss",
    "dilate": "dilation of the training masks, in pixels (1: none)",
    "dyn_balanced_loss": "dynamically balanced loss: the decision loss's weight grows over the "
    "epochs while the segmentation loss's shrinks",
    "gradient_adjustment": "gradient-flow adjustment: the decision loss sends no gradient into "
    "the segmentation path",
    "frequency_sampling": "frequency-of-use sampling of the crack-free images",
    "weighted_seg_loss": "weight the segmentation loss by the distance to the nearest crack",
    "bce_loss_w": "SegDecNet++'s class-weighted BCE: positives weighted by the "
    "negative-to-positive ratio",
    "weighted_seg_loss_p": "exponent of the distance weighting (weighted_seg_loss)",
    "weighted_seg_loss_max": "largest weight of the distance weighting (weighted_seg_loss)",
    "use_best_model": "evaluate the best validated checkpoint instead of the last",
    "best_model_type": "what 'best' maximises: seg (2-pixel F1), dec (decision F1) or both",
    "validate": "validate during training",
    "validate_on_test": "validate on the test split instead of val",
    "validation_every": "validate after the first epoch and every N-th after it (and the last)",
    "augmentation": "random flips of the training images",
    "optimizer": "adam or sgd",
    "momentum": "SGD momentum",
    "scheduler_step": "StepLR: multiply lr by scheduler_gamma every N epochs (0: off)",
    "scheduler_gamma": "StepLR's factor",
    "lr_schedule": "constant, or cosine (linear warm-up, then a half cosine to 0, per step)",
    "lr_warmup": "share of the optimizer steps spent warming up (lr_schedule cosine)",
    "ema_decay": "exponential moving average of the weights, decay per step (0: off)",
    "train_crop_height": "train on random crops of this height (0: the whole input)",
    "train_crop_width": "train on random crops of this width (0: the whole input)",
    "use_negatives": "train on the crack-free images too",
    "negatives_without_mask": "an image without a mask file counts as crack-free (else: error)",
    "negatives_dir": "a folder of extra crack-free images per split (train/, val/, test/)",
    "seed": "seed of data splits, augmentation, sampling and initialisation",
    "dilate_mode": "train: dilate the training masks at the input size; original: every mask "
    "(training, validation, test) at its native size before resizing, as the original code",
    "weighted_seg_loss_dmax": "where the weighted loss takes d_max: mask (the published code, one "
    "over the whole mask) or component (one per connected crack)",
    "augmentation_mode": "crackkit (flips, brightness, contrast on every training image), "
    "fork-2022-02 or fork-2022-04 (the seed fork's two versions)",
    "loss_reduction": "mean of a batch's per-sample losses, or sum (the original's)",
    "decision_target": "label, or mask_max (the original: the maximum of the pooled mask, below 1 "
    "for thin cracks in the 1/8 network)",
    "max_image_pixels": "an image of more pixels (read from its header) is refused, naming it",
    "channel_order": "rgb, or bgr as the original read images (needed by its weights)",
    "init_weights": "start from these weights: a run folder, a crackkit checkpoint or a state dict "
    "of the original code (not a resume)",
    "num_segmented": "positive training images that keep their pixel masks; the others train from "
    "their image-level label (all: every one)",
    "no_mask_switches": "with no segmented positive, turn dynamic balancing and gradient-flow "
    "adjustment off (a weakly supervised classifier)",
    "train_num": "positive training images used at all (all: every one)",
    "segmented_seed": "seed of the draw of the segmented and used positives (apart from seed)",
    "segmented_list": "a file naming the segmented positives (stems, or a run's segmented.csv) "
    "instead of the draw",
    "snapshot_every": "keep the weights every N epochs as checkpoints/ep_XX.pt (0: off)",
    "device": "auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps",
    "amp": "auto (bf16 autocast where the hardware has it), off or bf16",
    "channels_last": "channels-last memory format: auto, on or off",
    "fft_conv": "the 15x15 convolution by tiled FFT (same function): auto (on a CPU), on, off",
    "num_workers": "DataLoader worker processes (0: decode in the main process)",
    "nproc_per_node": "training processes (torchrun, DistributedDataParallel)",
    "eval_batch_size": "images per batch in validation and evaluation; 0 or auto: measured",
    "tolerance": "distance tolerance of the pixel metrics, in pixels",
    "seg_black": "the original's SEG_BLACK: zero the segmentation of images decided crack-free",
}


@dataclass(frozen=True)
class Parameter:
    """One run parameter as :func:`describe_parameters` reports it.

    Attributes:
        name: the field name (``-p NAME VALUE``).
        type: ``int``, ``float``, ``bool`` or ``str``.
        default: the value :class:`RunConfig` holds when nothing sets it.
        allowed: the allowed values or range, in words (``""``: any value of the type).
        preset: the value the preset asked for sets, or None when it leaves the default.
        deviation: what a value other than the published one does (``""``: not a deviation).
        published: the value that reproduces the authors' code (deviations only).
        help: one line on what it does.
    """

    name: str
    type: str
    default: Any
    allowed: str
    preset: Any
    deviation: str
    published: Any
    help: str


def _allowed(meta: typing.Mapping[str, Any]) -> str:
    if "choices" in meta:
        return ", ".join(str(c) for c in meta["choices"])
    if "allowed" in meta:
        return meta["allowed"]
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is None and hi is None:
        return ""
    low = "" if lo is None else f"{'>' if meta.get('lo_open') else '>='} {lo}"
    high = "" if hi is None else f"<= {hi}"
    return " and ".join(p for p in (low, high) if p)


def describe_parameters(preset: str | None = None) -> list[Parameter]:
    """Every field of :class:`RunConfig`, in its order.

    Raises:
        ConfigError: an unknown preset (the message lists them).
    """
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; available presets: {', '.join(PRESETS)}")
    hints = typing.get_type_hints(RunConfig)
    values = PRESETS.get(preset, {}) if preset else {}
    rows = []
    for f in fields(RunConfig):
        default = f.default if f.default is not MISSING else f.default_factory()
        published, deviation = DEVIATIONS.get(f.name, (None, ""))
        rows.append(
            Parameter(
                name=f.name,
                type="int or 'all'"
                if f.name in ALL_FIELDS
                else "int or 'auto' (0)"
                if f.name in AUTO_ZERO_FIELDS
                else getattr(hints[f.name], "__name__", str(hints[f.name])),
                default=default,
                allowed=_allowed(f.metadata)
                + (", or all" if f.name in ALL_FIELDS else "")
                + (", or auto (= 0)" if f.name in AUTO_ZERO_FIELDS else ""),
                preset=values.get(f.name),
                deviation=deviation,
                published=published,
                help=PARAMETER_HELP.get(f.name, ""),
            )
        )
    return rows


def _show(value: Any) -> str:
    if value is None:
        return "all"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def parameters_text(preset: str | None = None) -> str:
    """A plain-text table for a terminal: name, type, default, allowed values, the preset's
    value (with a preset), and ``*`` before parameters that can depart from the published
    method."""
    rows = describe_parameters(preset)
    head = ["parameter", "type", "default", "allowed"] + ([f"preset {preset}"] if preset else [])
    table = [head] + [
        [("* " if r.deviation else "  ") + r.name, r.type, _show(r.default), r.allowed or "-"]
        + ([_show(r.preset) if r.preset is not None else ""] if preset else [])
        for r in rows
    ]
    table[0][0] = "  " + table[0][0]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    lines.append("")
    lines.append(
        "* departs from the published method when set away from the authors' value: "
        + ", ".join(f"{r.name} (published: {_show(r.published)})" for r in rows if r.deviation)
    )
    lines.append("Set one with -p NAME VALUE, or all of them with --config FILE.")
    return "\n".join(lines)


def _md(text: Any) -> str:
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|")


def parameters_markdown(preset: str | None = None) -> str:
    """A Markdown table: name, type, default, allowed values, deviation, description;
    with a preset, a column of its values."""
    rows = describe_parameters(preset)
    head = [
        "parameter",
        "type",
        "default",
        "allowed",
        "deviates from the published method",
        "what it does",
    ]
    if preset:
        head.insert(4, f"`{preset}` preset")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        method = f"**yes** unless `{_show(r.published)}`: {r.deviation}" if r.deviation else "no"
        cells = [f"`{r.name}`", r.type, f"`{_show(r.default)}`", _md(r.allowed) or "any"]
        if preset:
            cells.append(f"`{_show(r.preset)}`" if r.preset is not None else "")
        cells += [_md(method), _md(r.help)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
