"""The run configuration: one typed dataclass, the single source of truth for run parameters.

Field names follow the rows of the seed report's "Run parameters" table in snake_case. Notebooks
expose these fields in their ``parameters`` cell; ``crackkit run -p NAME VALUE`` takes the same
names. :func:`make_config` validates a mapping of overrides and refuses unknown names or bad values
with a :class:`ConfigError` that names the parameter and the allowed values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from crackkit.files import atomic_write_text
from crackkit.specs import ARCHITECTURES, MAX_IMAGE_PIXELS, check_input_size

__all__ = [
    "ConfigError",
    "RunConfig",
    "PRESETS",
    "DATA_FIELDS",
    "DEVIATIONS",
    "deviations",
    "DEVIATION_APPLIES",
    "AUGMENTATION_MODES",
    "SEED_REPORT_ROWS",
    "make_config",
    "coerce_value",
    "load_config",
    "save_config",
    "config_diff",
    "field_names",
    "ALL_FIELDS",
    "AUTO_ZERO_FIELDS",
    "check_device",
    "read_config_file",
    "DEVICE_VALUES",
]

OPTIMIZERS = ("adam", "sgd")
BEST_MODEL_TYPES = ("dec", "seg", "both")
AMP_MODES = ("auto", "off", "bf16")
#: What a ``device`` may be: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda``,
#: ``cuda:N`` (the N-th GPU) or ``mps`` (Apple's GPUs); :func:`check_device` holds it.
DEVICE_VALUES = "auto, cpu, cuda, cuda:N, mps"
_DEVICE_PATTERN = re.compile(r"auto|cpu|cuda|cuda:\d+|mps")
LR_SCHEDULES = ("constant", "cosine")
#: ``crackkit``: flips and brightness/contrast on every training image. ``fork-2022-02`` and
#: ``fork-2022-04``: the seed fork's two versions of its dataset.py (see DEVIATIONS below).
AUGMENTATION_MODES = ("crackkit", "fork-2022-02", "fork-2022-04")


class ConfigError(ValueError):
    """A run parameter has an unknown name or a bad value."""


def _choice(*allowed: str) -> dict[str, Any]:
    return {"choices": allowed}


def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> dict:
    return {"lo": lo, "hi": hi, "lo_open": lo_open}


@dataclass(frozen=True)
class RunConfig:
    """Parameters of one SegDecNet run.

    The fields from ``input_channels`` to ``use_negatives`` are the rows of the seed report's
    run-parameter table; the rest are what a reproducible run also needs.
    """

    # Data set
    dataset: str = "synthetic"
    input_channels: int = field(default=3, metadata=_choice(1, 3))
    input_height: int = field(default=96, metadata=_range(8))
    input_width: int = field(default=160, metadata=_range(8))
    synthetic_train: int = field(default=320, metadata=_range(1))
    synthetic_val: int = field(default=64, metadata=_range(1))
    synthetic_test: int = field(default=96, metadata=_range(1))
    synthetic_negative_fraction: float = field(default=0.3, metadata=_range(0.0, 0.9))
    # Model
    architecture: str = field(default="segdecnet++", metadata=_choice(*ARCHITECTURES))
    # Not in the original code: start the segmentation output at the training masks' crack
    # fraction (the final FeatureNorm's bias = logit(fraction), RetinaNet's prior
    # initialisation) instead of 0 (p = 0.5). See crackkit.model.init_segmentation_prior. On
    # by default: on CrackForest (8 epochs, segdecnet++) it took the mean background
    # probability from 0.433 to 0.020, the ECE from 0.423 to 0.012 and the test 2px F1 from
    # 0.838 to 0.848 (benchmarks/real_data.py); the crack500 and synthetic presets keep it off.
    seg_prior_init: bool = True
    # Not in the original code: start the decision head's linear layer at the segmentation's
    # strongest response (weight 1 on the global maximum of the segmentation logits, 0 elsewhere;
    # crackkit.model.init_decision_prior) instead of at random. On by default: on 192x256 roads
    # with joints, lane paint and stains (benchmarks/decision_defaults.py, 6 epochs) it took the
    # test decision AP from 0.655 to 0.871 with the 2-pixel F1 unchanged (0.704): under
    # gradient-flow adjustment it changes nothing but the decision head. The crack500 and
    # synthetic presets keep it off.
    dec_prior_init: bool = True
    # Training (the seed report's table)
    batch_size: int = field(default=4, metadata=_range(1))
    # 10: a folder of about 100 training images of 320x480 trains, validates, tests and
    # reports within 20 minutes of a 2-core CPU (11 epochs took 20.3 min; README, "With no
    # preset").
    epochs: int = field(default=10, metadata=_range(1))
    lr: float = field(default=0.001, metadata=_range(0.0, lo_open=True))
    delta_cls_loss: float = field(default=1.0, metadata=_range(0.0))
    dilate: int = field(default=1, metadata=_range(0))
    # "train": crackkit dilates the training masks at the input size; "original": as the original
    # code, at each mask's native size before resizing, training, validation and test masks alike
    # (so the evaluation counts against dilated ground truth: the original's protocol quirk).
    dilate_mode: str = field(default="train", metadata=_choice("train", "original"))
    # The published dynamic balancing (segmentation alone at first, the decision handed over
    # linearly). Off by default: within a few epochs it leaves the decision head its first epoch
    # untrained; on 192x256 roads (benchmarks/decision_defaults.py, 6 epochs, dec_prior_init on)
    # off gave test decision AP 0.905 against 0.871 and 2px F1 0.718 against 0.704. The
    # crack500, synthetic and cfd presets keep it on.
    dyn_balanced_loss: bool = False
    gradient_adjustment: bool = True
    frequency_sampling: bool = False
    weighted_seg_loss: bool = False
    # SegDecNet++'s BCE_LOSS_W (vicoslab/segdec-net-plusplus-conbuildmat2023, on in its paper's
    # runs; the seed's fork has no such switch): BCE positives weighted by the training set's
    # negative-to-positive ratio, pixels for segmentation, images for the decision. With
    # seg_prior_init on, the weighted loss is taken on the logits plus log(weight), which keeps
    # the outputs calibrated (crackkit.losses.SegDecLoss.from_config).
    bce_loss_w: bool = False
    weighted_seg_loss_p: float = field(default=2.0, metadata=_range(0.0))
    weighted_seg_loss_max: float = field(default=1.0, metadata=_range(0.0))
    # d_max of the weighted segmentation loss: "mask", one over the whole mask (the published
    # code's distance_transform), or "component", one per connected crack (the forks' version).
    weighted_seg_loss_dmax: str = field(default="mask", metadata=_choice("mask", "component"))
    use_best_model: bool = True
    best_model_type: str = field(default="seg", metadata=_choice(*BEST_MODEL_TYPES))
    validate: bool = True
    validate_on_test: bool = False
    validation_every: int = field(default=2, metadata=_range(1))
    augmentation: bool = True
    augmentation_mode: str = field(default="crackkit", metadata=_choice(*AUGMENTATION_MODES))
    optimizer: str = field(default="adam", metadata=_choice(*OPTIMIZERS))
    # SGD's momentum; the original's SGD has none (momentum 0).
    momentum: float = field(default=0.9, metadata=_range(0.0, 1.0))
    # How a batch's per-sample losses become the loss: "mean" (crackkit) or "sum" (the original
    # sums the losses of its sub-iterations: gradient x batch size).
    loss_reduction: str = field(default="mean", metadata=_choice("mean", "sum"))
    # The decision head's target: "label" (the image's label) or "mask_max" (the original: the
    # maximum of the mask as the loss sees it, which for the 1/8 network is the pooled soft mask,
    # below 1 for thin cracks; an image-level positive's target stays 1).
    decision_target: str = field(default="label", metadata=_choice("label", "mask_max"))
    scheduler_step: int = field(default=0, metadata=_range(0))
    scheduler_gamma: float = field(default=0.1, metadata=_range(0.0, 1.0, lo_open=True))
    # Not in the original code (a constant learning rate, or StepLR via scheduler_step):
    # "cosine" warms up linearly over the first lr_warmup of the optimizer steps, then decays
    # the learning rate to 0 by a half cosine over the rest, stepped every batch.
    lr_schedule: str = field(default="constant", metadata=_choice(*LR_SCHEDULES))
    lr_warmup: float = field(default=0.0, metadata=_range(0.0, 0.5))
    # Not in the original code: validate, choose and save an exponential moving average of the
    # weights, decay ema_decay per optimizer step (warmed up; crackkit.ema); 0 = off.
    ema_decay: float = field(default=0.0, metadata=_range(0.0, 0.999))
    # Not in the original code (it trains on the whole input): a random train_crop_height x
    # train_crop_width window of each (resized, augmented) training image per epoch, 0 x 0 = off.
    # A crop without crack pixels is a crack-free sample (label 0). Validation, test and
    # prediction still see the whole input.
    train_crop_height: int = field(default=0, metadata=_range(0))
    train_crop_width: int = field(default=0, metadata=_range(0))
    use_negatives: bool = True
    negatives_without_mask: bool = False
    negatives_dir: str = ""
    # Not in the original code: an image (training, validation, test) of more pixels is refused
    # from its header, before it is decoded (crackkit.data.folder).
    max_image_pixels: int = field(default=MAX_IMAGE_PIXELS, metadata=_range(1))
    # The channel order the network is fed: "rgb", or "bgr" as the original read images (OpenCV);
    # weights saved by the original code expect "bgr".
    channel_order: str = field(default="rgb", metadata=_choice("rgb", "bgr"))
    # Start from these weights instead of the initialisation (not a resume: a new run with its own
    # optimizer): a crackkit run folder (its chosen checkpoint), a crackkit checkpoint, or a
    # state dict saved by the original code. The prior initialisation is then skipped.
    init_weights: str = ""
    # Mixed supervision, the original's NUM_SEGMENTED and TRAIN_NUM (None = "all"): how many
    # positive training images keep their pixel masks (the others train from their image-level
    # label only), and how many positive training images are used at all. Which ones is drawn
    # from segmented_seed, or read from segmented_list (crackkit.data.supervision).
    num_segmented: int | None = field(default=None, metadata=_range(0))
    # With no segmented positive to train the segmentation on cracks (num_segmented 0, or
    # image-level labels only), train as a weakly supervised classifier: dynamic balancing and
    # gradient-flow adjustment off (crackkit.data.supervision.training_config). False keeps them
    # as set (the published N_0 runs turn off dynamic balancing only).
    no_mask_switches: bool = True
    train_num: int | None = field(default=None, metadata=_range(1))
    segmented_seed: int = field(default=0, metadata=_range(0))
    segmented_list: str = ""
    # Reproducibility and speed
    seed: int = field(default=0, metadata=_range(0))
    device: str = field(default="auto", metadata={"allowed": DEVICE_VALUES})
    amp: str = field(default="auto", metadata=_choice(*AMP_MODES))
    channels_last: str = field(default="auto", metadata=_choice("auto", "on", "off"))
    fft_conv: str = field(default="auto", metadata=_choice("auto", "on", "off"))
    num_workers: int = field(default=0, metadata=_range(0))
    nproc_per_node: int = field(default=1, metadata=_range(1))
    # Images per batch in evaluation and validation; 0 (or the word 'auto') measures the fastest
    # of 1, 2, 4 and 8 for evaluation on the machine at hand (crackkit.autotune; validation during
    # training and unmeasured runs take crackkit.runtime.STATIC_EVAL_BATCH, 4).
    eval_batch_size: int = field(default=0, metadata=_range(0))
    tolerance: int = field(default=2, metadata=_range(0))
    # Also keep the weights every snapshot_every epochs, as the original's ep_XX.pth (checkpoints/
    # ep_XX.pt, 0-based XX at the start of that epoch: ep_00 is the initialisation); 0 = off.
    snapshot_every: int = field(default=0, metadata=_range(0))
    # The original's SEG_BLACK: before the pixel metrics, zero the segmentation of every image the
    # decision (at its validation threshold) calls crack-free. Off in the seed's run.
    seg_black: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, coerce_value(f.name, value))
            _check_value(f, getattr(self, f.name))
        if self.validate_on_test and not self.validate:
            raise ConfigError("validate_on_test=True needs validate=True")
        try:
            check_input_size(self.input_height, self.input_width)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._check_schedule_and_crop()
        self._check_supervision()

    def _check_supervision(self) -> None:
        if not self.segmented_list.strip():
            return
        for name in ("num_segmented", "train_num"):
            if getattr(self, name) is not None:
                raise ConfigError(
                    f"segmented_list={self.segmented_list!r} names the segmented images itself; "
                    f"leave {name} at 'all' (got {getattr(self, name)})"
                )

    def _check_schedule_and_crop(self) -> None:
        if self.lr_schedule != "constant" and self.scheduler_step > 0:
            raise ConfigError(
                f"lr_schedule={self.lr_schedule!r} and scheduler_step={self.scheduler_step} "
                "are two learning-rate schedules; set scheduler_step=0 or lr_schedule='constant'"
            )
        if self.lr_warmup > 0 and self.lr_schedule == "constant":
            raise ConfigError(
                f"lr_warmup={self.lr_warmup} needs lr_schedule='cosine' (a constant schedule "
                "has no warm-up)"
            )
        crop = (self.train_crop_height, self.train_crop_width)
        if crop == (0, 0):
            return
        if 0 in crop:
            raise ConfigError(
                f"train_crop_height={crop[0]} and train_crop_width={crop[1]}: set both (a crop) "
                "or neither (0 x 0, the whole input)"
            )
        if crop[0] > self.input_height or crop[1] > self.input_width:
            raise ConfigError(
                f"train crop {crop[0]}x{crop[1]} is larger than the input "
                f"{self.input_height}x{self.input_width}"
            )
        try:
            check_input_size(*crop)
        except ValueError as exc:
            raise ConfigError(f"train crop (train_crop_height, train_crop_width): {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RunConfig:
        return make_config(self.to_dict() | changes)


_FIELDS = {f.name: f for f in fields(RunConfig)}

#: The run parameters that say which data a run reads (preparing a data set needs only these).
DATA_FIELDS = (
    "dataset",
    "input_channels",
    "input_height",
    "input_width",
    "synthetic_train",
    "synthetic_val",
    "synthetic_test",
    "synthetic_negative_fraction",
    "negatives_without_mask",
    "negatives_dir",
    "max_image_pixels",
    "seed",
)


def field_names() -> list[str]:
    return list(_FIELDS)


def _field_type(name: str) -> type:
    hints = typing.get_type_hints(RunConfig)
    hint = hints[name]
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _optional(name: str) -> bool:
    hint = typing.get_type_hints(RunConfig)[name]
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


_TYPES = {name: _field_type(name) for name in _FIELDS}
#: Fields where None means "all" (and the word ``all`` is accepted for it).
ALL_FIELDS = frozenset(name for name in _FIELDS if _optional(name))
#: Integer fields where 0 means "auto" (and the word ``auto`` is accepted for it).
AUTO_ZERO_FIELDS = frozenset({"eval_batch_size"})
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce_value(name: str, value: Any) -> Any:
    """Convert ``value`` to the type of field ``name``; strings from a command line are parsed.

    Raises:
        ConfigError: ``name`` is no field, or ``value`` cannot be read as the field's type.
    """
    if name not in _TYPES:
        raise ConfigError(_unknown_message(name))
    if name in ALL_FIELDS and (
        value is None or (isinstance(value, str) and value.strip().lower() == "all")
    ):
        return None
    if name in AUTO_ZERO_FIELDS and isinstance(value, str) and value.strip().lower() == "auto":
        return 0
    kind = _TYPES[name]
    expected = (
        kind.__name__
        + (" or 'all'" if name in ALL_FIELDS else "")
        + (" or 'auto'" if name in AUTO_ZERO_FIELDS else "")
    )
    bad = ConfigError(
        f"parameter {name!r} must be of type {expected}, got {value!r} ({type(value).__name__})"
    )
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad
    if kind is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad from None
        raise bad
    if kind is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise bad from None
        else:
            raise bad
        if not math.isfinite(number):
            raise ConfigError(f"parameter {name!r} got {value!r}; it must be a finite number")
        return number
    if kind is str:
        if isinstance(value, str):
            return value
        raise bad
    raise AssertionError(f"unsupported field type {kind}")


def _check_value(f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    if value is None and f.name in ALL_FIELDS:
        return
    if "choices" in meta and value not in meta["choices"]:
        allowed = ", ".join(repr(c) for c in meta["choices"])
        raise ConfigError(f"parameter {f.name!r} got {value!r}; allowed values: {allowed}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        bound = f"{op} {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise ConfigError(f"parameter {f.name!r} got {value!r}; it must be {bound}")
    if hi is not None and value > hi:
        raise ConfigError(f"parameter {f.name!r} got {value!r}; it must be <= {hi}")
    if f.name == "device":
        check_device(value)
    if f.name == "dataset" and not value.strip():
        raise ConfigError(
            "parameter 'dataset' is empty; give 'synthetic', a prepared name or a path"
        )


def check_device(value: str) -> str:
    """``value`` when it names a device (:data:`DEVICE_VALUES`); whether it is present is
    :func:`crackkit.runtime.resolve_device`'s question.

    Raises:
        ConfigError: any other value (the message lists the allowed forms).
    """
    if not isinstance(value, str) or not _DEVICE_PATTERN.fullmatch(value):
        raise ConfigError(f"parameter 'device' got {value!r}; allowed values: {DEVICE_VALUES}")
    return value


def _unknown_message(name: str) -> str:
    valid = ", ".join(_FIELDS)
    return f"unknown parameter {name!r}; valid parameters: {valid}"


PRESETS: dict[str, dict[str, Any]] = {
    # make report's set: the training its README figures were measured with (the published
    # initialisation; its REPORT.md lists the deviations it keeps, e.g. crackkit's augmentation)
    "synthetic": {
        "seg_prior_init": False,
        "dec_prior_init": False,
        "dyn_balanced_loss": True,
        "epochs": 12,
    },
    "tiny": {
        "input_height": 64,
        "input_width": 128,
        "synthetic_train": 8,
        "synthetic_val": 4,
        "synthetic_test": 6,
        "batch_size": 2,
        "epochs": 2,
        "validation_every": 1,
        "eval_batch_size": 4,
    },
    "crack500": {
        "dataset": "crack500",
        "input_channels": 3,
        "input_height": 360,
        "input_width": 640,
        "batch_size": 1,
        "epochs": 100,
        "lr": 0.001,
        "delta_cls_loss": 0.01,
        "dilate": 1,
        "dyn_balanced_loss": True,
        "gradient_adjustment": True,
        "frequency_sampling": False,
        "weighted_seg_loss": False,
        "bce_loss_w": False,
        "use_best_model": True,
        "best_model_type": "seg",
        "validate": True,
        "validate_on_test": False,
        # The seed's log, where its table is silent: VALIDATION_N_EPOCHS 5 and the fork's
        # upsampling network (models.py of maticsuc/mixed-segdec-net-comind2021).
        "validation_every": 5,
        "augmentation": True,
        "optimizer": "adam",
        "use_negatives": True,
        "architecture": "segdecnet-up",
        "seg_black": False,
        # the original code's initialisation (crackkit's prior initialisations are off)
        "seg_prior_init": False,
        "dec_prior_init": False,
        # The seed fork, line by line (docs: "The seed's training exactly"): its dataset.py of
        # April 2022, float32, SGD without momentum were SGD chosen, the per-sample losses
        # summed, images fed BGR as OpenCV read them, snapshots ep_XX every 5 epochs, and, where
        # they take effect, the original's dilation, d_max and decision target.
        "augmentation_mode": "fork-2022-04",
        "amp": "off",
        "momentum": 0.0,
        "loss_reduction": "sum",
        "channel_order": "bgr",
        "snapshot_every": 5,
        "dilate_mode": "original",
        "weighted_seg_loss_dmax": "mask",
        "decision_target": "mask_max",
    },
    # CrackForest in 10 minutes of a 2-core CPU, evaluation included (benchmarks/real_data.py):
    # 9 epochs of 61 images at batch 4 (144 steps) with the prior initialisation.
    "cfd": {
        "dataset": "cfd",
        "input_channels": 3,
        "input_height": 320,
        "input_width": 480,
        "seg_prior_init": True,
        "dyn_balanced_loss": True,
        "epochs": 9,
    },
}


def make_config(params: Mapping[str, Any] | None = None, *, preset: str | None = None) -> RunConfig:
    """Build a validated :class:`RunConfig` from a preset and overrides.

    Args:
        params: overrides by field name; strings are parsed to the field's type.
        preset: name of an entry of :data:`PRESETS` applied before ``params``.

    Raises:
        ConfigError: an unknown preset or parameter, or a bad value; the message names it.
    """
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError(f"run parameters must map names to values, got a {type(params).__name__}")
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; available presets: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    for name, value in (params or {}).items():
        if name not in _FIELDS:
            raise ConfigError(_unknown_message(name))
        values[name] = value
    return RunConfig(**values)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    atomic_write_text(Path(path), json.dumps(cfg.to_dict(), indent=2) + "\n")


def config_diff(a: RunConfig | Mapping[str, Any], b: RunConfig | Mapping[str, Any]) -> list[str]:
    """The names of the run parameters whose values differ between ``a`` and ``b``, sorted.

    Either side may be a :class:`RunConfig` or its dict (e.g. a checkpoint's); a field missing
    from a dict (one written before the field existed) takes the field's default, so a run
    started by an older crackkit resumes when its parameters are the defaults of the new ones.
    """
    defaults = {f.name: f.default for f in fields(RunConfig)}
    da = a.to_dict() if isinstance(a, RunConfig) else defaults | dict(a)
    db = b.to_dict() if isinstance(b, RunConfig) else defaults | dict(b)
    return sorted(k for k in _FIELDS if da.get(k) != db.get(k))


#: A configuration file larger than this is refused before it is parsed.
CONFIG_FILE_MAX_BYTES = 1 << 20


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The run parameters in a YAML, TOML or JSON file (by its suffix), by name, unvalidated.

    The file is a flat mapping of :class:`RunConfig` field names to values, as a run's
    ``config.json`` is (so a run's ``config.json`` reruns it). It is only parsed, never
    executed (YAML through ``safe_load``), and refused above :data:`CONFIG_FILE_MAX_BYTES`.
    :func:`make_config` validates the values.

    Raises:
        ConfigError: a missing, oversized or unparsable file, an unknown suffix, or content
            that is not a mapping of names to plain values (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {path} not found")
    size = path.stat().st_size
    if size > CONFIG_FILE_MAX_BYTES:
        raise ConfigError(
            f"configuration file {path} is {size} bytes; at most {CONFIG_FILE_MAX_BYTES} read"
        )
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(
                f"configuration file {path}: unknown suffix {path.suffix!r}; use .yaml, .yml, "
                ".toml or .json"
            )
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - each parser has its own error class
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"configuration file {path} cannot be parsed: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"configuration file {path} holds a {type(data).__name__}; expected a mapping of "
            "run parameter names to values"
        )
    for name, value in data.items():
        if isinstance(value, dict | list):
            raise ConfigError(
                f"configuration file {path}: parameter {name!r} holds a "
                f"{type(value).__name__}; run parameters are single values"
            )
    return {str(k): v for k, v in data.items()}


def load_config(path: str | Path) -> RunConfig:
    """The :class:`RunConfig` a ``config.json`` records.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: not JSON, not an object of run parameters, or a bad parameter; the message
            names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no run configuration at {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} holds a JSON {type(data).__name__}, not an object of run parameters "
            '({"lr": 0.001, ...})'
        )
    try:
        return make_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


#: Run parameters that can take a run away from the published method: the value that reproduces
#: the authors' code, and what another value does. REPORT.md lists each one a run deviates in.
DEVIATIONS: dict[str, tuple[Any, str]] = {
    "lr_schedule": (
        "constant",
        "the learning rate warms up linearly over the first lr_warmup of the steps, then "
        "decays to 0 by a half cosine (per batch); the original keeps it constant",
    ),
    "train_crop_height": (
        0,
        "training sees a random train_crop_height x train_crop_width window of each image per "
        "epoch (a window without crack pixels counts as crack-free); the original trains on "
        "the whole input",
    ),
    "ema_decay": (
        0.0,
        "validation, the best-model choice and the saved model use an exponential moving "
        "average of the weights (decay ema_decay per optimizer step); the original uses the "
        "weights as trained",
    ),
    "seg_prior_init": (
        False,
        "the final segmentation bias starts at logit(crack fraction of the training masks), "
        "RetinaNet's prior initialisation; the original starts it at 0 (p = 0.5). With "
        "bce_loss_w the weighted loss is taken on the logits plus log(pos_weight), which keeps "
        "the outputs calibrated (the same gradients as the original, the bias shifted)",
    ),
}


DEVIATIONS.update(
    {
        "augmentation_mode": (
            "fork-2022-04",
            "crackkit's augmentation: each training image flipped left-right and up-down with "
            "probability 0.5 each, brightness +-0.1 and contrast 0.8-1.2; the seed's fork "
            "(fork-2022-04) augments training positives only: with probability 0.5, h-flip, "
            "v-flip, rotation by 180 degrees and ColorJitter(0.2, 0.2, 0.2, 0.2) each at 0.5 "
            "(fork-2022-02: training and validation images, with probability 0.5 each flip and "
            "the rotation at 0.1); the upstream code has no augmentation",
        ),
        "momentum": (
            0.0,
            "SGD with momentum; the original's SGD has none",
        ),
        "loss_reduction": (
            "sum",
            "a batch's loss is the mean of its per-sample losses; the original sums them (its "
            "gradient is batch_size times larger)",
        ),
        "weighted_seg_loss_dmax": (
            "mask",
            "the weighted segmentation loss normalises distances per connected crack (every "
            "crack's centre line weighs weighted_seg_loss_max); the published code takes one "
            "d_max over the whole mask, so a hairline beside a wide crack weighs far less",
        ),
        "dilate_mode": (
            "original",
            "dilation of the training masks only, at the input size; the original dilates every "
            "mask (training, validation and test) at its native size before resizing, so its "
            "evaluation counts against dilated ground truth",
        ),
        "dyn_balanced_loss": (
            True,
            "the segmentation and decision losses keep the weights 1 and delta_cls_loss "
            "throughout; the published dynamic balancing starts with the segmentation alone "
            "(decision weight 0 in the first epoch) and hands over linearly",
        ),
        "dec_prior_init": (
            False,
            "the decision head's linear layer starts at weight 1 on the segmentation's maximum "
            "logit and 0 elsewhere (the decision starts as the segmentation's strongest "
            "response); the original starts it at random",
        ),
        "no_mask_switches": (
            False,
            "with no segmented positive, gradient-flow adjustment is turned off as well as "
            "dynamic balancing, so the decision loss trains the whole network; the published "
            "N_0 runs turn off dynamic balancing only",
        ),
        "decision_target": (
            "mask_max",
            "the decision head learns the image label; the original's target is the maximum of "
            "the pooled 1/8 soft mask, below 1 for thin cracks",
        ),
        "amp": (
            "off",
            "mixed precision (bf16 autocast where amp resolves to it: on a GPU, and on CPUs whose "
            "bf16 the kit uses); the original trains in float32",
        ),
    }
)

#: When a deviation matters at all: a parameter whose effect another one switches off is not
#: listed (momentum without SGD, a batch reduction at batch size 1...).
DEVIATION_APPLIES: dict[str, Any] = {
    "augmentation_mode": lambda cfg: cfg.augmentation,
    "momentum": lambda cfg: cfg.optimizer == "sgd",
    "loss_reduction": lambda cfg: cfg.batch_size > 1,
    "weighted_seg_loss_dmax": lambda cfg: cfg.weighted_seg_loss,
    "dilate_mode": lambda cfg: cfg.dilate > 1,
    "decision_target": lambda cfg: cfg.architecture == "segdecnet",
    "no_mask_switches": lambda cfg: cfg.num_segmented == 0 and cfg.gradient_adjustment,
}


def deviations(cfg: RunConfig) -> dict[str, str]:
    """The :data:`DEVIATIONS` of ``cfg`` from the published method, by parameter name (only
    those :data:`DEVIATION_APPLIES` says take effect)."""
    return {
        k: text
        for k, (original, text) in DEVIATIONS.items()
        if getattr(cfg, k) != original and DEVIATION_APPLIES.get(k, lambda c: True)(cfg)
    }


# Rows of the seed report's run-parameter table, in its order and wording.
SEED_REPORT_ROWS: list[tuple[str, str]] = [
    ("Batch size", "batch_size"),
    ("Epochs", "epochs"),
    ("Learning rate", "lr"),
    ("Delta CLS Loss", "delta_cls_loss"),
    ("Dilate", "dilate"),
    ("Dynamically balanced loss", "dyn_balanced_loss"),
    ("Gradient-flow adjustment", "gradient_adjustment"),
    ("Frequency-of-use sampling", "frequency_sampling"),
    ("Weighted segmentation loss", "weighted_seg_loss"),
    ("Use best model", "use_best_model"),
    ("Best model type", "best_model_type"),
    ("Validate", "validate"),
    ("Validate on test", "validate_on_test"),
    ("Augmentation", "augmentation"),
    ("Optimizer", "optimizer"),
    ("Use negatives", "use_negatives"),
]
