"""RunConfig: names, coercion, validation messages, presets."""

from __future__ import annotations

import dataclasses

import pytest

from crackkit.config import PRESETS, SEED_REPORT_ROWS, ConfigError, RunConfig, make_config

SEED_NAMES = [
    "input_channels",
    "input_height",
    "input_width",
    "batch_size",
    "epochs",
    "lr",
    "delta_cls_loss",
    "dilate",
    "dyn_balanced_loss",
    "gradient_adjustment",
    "frequency_sampling",
    "weighted_seg_loss",
    "use_best_model",
    "best_model_type",
    "validate",
    "validate_on_test",
    "augmentation",
    "optimizer",
    "use_negatives",
    "architecture",
    "dataset",
    "seed",
]


def test_seed_report_names_are_fields():
    """Every run parameter the seed report names is a RunConfig field."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    assert set(SEED_NAMES) <= names
    assert {f for _, f in SEED_REPORT_ROWS} <= names


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("lr", "0.01", 0.01),
        ("epochs", "3", 3),
        ("augmentation", "False", False),
        ("augmentation", "true", True),
        ("optimizer", "sgd", "sgd"),
        ("delta_cls_loss", 1, 1.0),
    ],
)
def test_strings_are_coerced(name, text, expected):
    """Command-line strings become the field's type."""
    value = getattr(make_config({name: text}), name)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"learning_rate": 0.1}, "unknown parameter 'learning_rate'.*valid parameters: .*lr"),
        ({"lr": 0}, "'lr' got 0.0; it must be > 0"),
        ({"lr": -1e-3}, "'lr'"),
        ({"epochs": 0}, "'epochs' got 0; it must be >= 1"),
        ({"delta_cls_loss": -0.5}, "'delta_cls_loss'"),
        ({"optimizer": "rmsprop"}, "'optimizer' got 'rmsprop'; allowed values: 'adam', 'sgd'"),
        (
            {"architecture": "unet"},
            "allowed values: 'segdecnet', 'segdecnet-up', 'segdecnet\\+\\+'",
        ),
        ({"input_height": 64, "input_width": 64}, "input_height=64, input_width=128"),
        ({"best_model_type": "x"}, "'dec', 'seg', 'both'"),
        ({"epochs": "many"}, "'epochs' must be of type int, got 'many'"),
        ({"augmentation": "maybe"}, "'augmentation' must be of type bool"),
        ({"epochs": 2.5}, "'epochs' must be of type int"),
        (
            {"validate": False, "validate_on_test": True},
            "validate_on_test=True needs validate=True",
        ),
    ],
)
def test_bad_values_name_the_parameter(params, match):
    """A bad name or value is refused with a message naming it and what is allowed."""
    with pytest.raises(ConfigError, match=match):
        make_config(params)


def test_unknown_preset_lists_presets():
    """An unknown preset lists the available ones."""
    with pytest.raises(ConfigError, match="unknown preset 'nope'; available presets: synthetic"):
        make_config(preset="nope")


def test_crack500_preset_is_the_seed_table():
    """The crack500 preset carries exactly the seed report's run parameters."""
    cfg = make_config(preset="crack500")
    seed = {
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
        "use_best_model": True,
        "best_model_type": "seg",
        "validate": True,
        "validate_on_test": False,
        "augmentation": True,
        "optimizer": "adam",
        "use_negatives": True,
        "dataset": "crack500",
    }
    assert {k: getattr(cfg, k) for k in seed} == seed
    # and no crackkit deviation from the original code's training
    from crackkit.config import deviations

    assert deviations(cfg) == {}


def test_crack500_preset_follows_the_seed_log_where_the_table_is_silent():
    """The seed's log (crack500_run6_5.out): VALIDATION_N_EPOCHS 5, the fork's upsampling
    network, and no SEG_BLACK blanking of the segmentation."""
    cfg = make_config(preset="crack500")
    assert (cfg.validation_every, cfg.architecture, cfg.seg_black) == (5, "segdecnet-up", False)


def test_presets_are_valid_and_overridable():
    """Every preset builds, and explicit parameters win over the preset."""
    for name in PRESETS:
        make_config(preset=name)
    assert make_config({"epochs": 7}, preset="crack500").epochs == 7


def test_replace_revalidates():
    """replace() goes through validation too."""
    with pytest.raises(ConfigError):
        RunConfig().replace(lr=-1.0)


def test_make_report_keeps_its_12_epochs_while_the_default_is_10():
    """The synthetic preset (make report) pins the 12 epochs its README figures were measured
    with; a run with no preset trains 10 (the 20-minute budget for about 100 images)."""
    assert make_config().epochs == 10
    assert make_config(preset="synthetic").epochs == 12


@pytest.mark.parametrize("value, expected", [("auto", 0), ("AUTO ", 0), (0, 0), ("8", 8), (2, 2)])
def test_eval_batch_size_takes_auto_for_zero(value, expected):
    """``eval_batch_size`` 0, also written ``auto``, is settled by measurement; the default."""
    assert RunConfig(eval_batch_size=value).eval_batch_size == expected
    assert RunConfig().eval_batch_size == 0


@pytest.mark.parametrize("value", ["fast", -1, 1.5])
def test_eval_batch_size_refuses_anything_else(value):
    with pytest.raises(ConfigError, match="eval_batch_size"):
        RunConfig(eval_batch_size=value)
