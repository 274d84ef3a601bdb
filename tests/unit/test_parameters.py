"""The parameter table behind `crackkit params` and the docs' parameter page."""

from __future__ import annotations

from dataclasses import fields

import pytest

from crackkit.config import (
    ALL_FIELDS,
    AUTO_ZERO_FIELDS,
    DEVIATIONS,
    PRESETS,
    ConfigError,
    RunConfig,
    make_config,
)
from crackkit.parameters import (
    PARAMETER_HELP,
    describe_parameters,
    parameters_markdown,
    parameters_text,
)


def test_every_field_has_a_description():
    """PARAMETER_HELP describes exactly the fields of RunConfig (a new field needs a line)."""
    assert set(PARAMETER_HELP) == {f.name for f in fields(RunConfig)}
    assert all(text.strip() for text in PARAMETER_HELP.values())


def test_rows_hold_what_runconfig_holds():
    """Defaults are RunConfig()'s values; allowed values are what validation accepts."""
    default = RunConfig()
    rows = {r.name: r for r in describe_parameters()}
    assert list(rows) == [f.name for f in fields(RunConfig)]
    for name, row in rows.items():
        assert row.default == getattr(default, name), name
        expected = "int or 'all'" if name in ALL_FIELDS else type(getattr(default, name)).__name__
        if name in AUTO_ZERO_FIELDS:
            expected = "int or 'auto' (0)"
        assert row.type == expected, name
    assert rows["eval_batch_size"].allowed == ">= 0, or auto (= 0)"
    assert rows["optimizer"].allowed == "adam, sgd"
    assert rows["lr"].allowed == "> 0.0"
    assert rows["momentum"].allowed == ">= 0.0 and <= 1.0"
    assert rows["device"].allowed == "auto, cpu, cuda, cuda:N, mps"
    for choice in rows["best_model_type"].allowed.split(", "):
        make_config({"best_model_type": choice})
    with pytest.raises(ConfigError):
        make_config({"momentum": 1.5})


def test_deviations_come_from_config():
    rows = {r.name: r for r in describe_parameters()}
    assert {n for n, r in rows.items() if r.deviation} == set(DEVIATIONS)
    assert rows["seg_prior_init"].published is False


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_column(preset):
    rows = describe_parameters(preset)
    assert {r.name: r.preset for r in rows if r.preset is not None} == PRESETS[preset]
    table = parameters_markdown(preset)
    assert f"`{preset}` preset" in table.splitlines()[0]
    assert f"preset {preset}" in parameters_text(preset).splitlines()[0]


def test_markdown_has_a_row_per_field_and_escapes_pipes():
    table = parameters_markdown()
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(fields(RunConfig))
    n_cols = lines[0].count(" | ") + 1
    for line in lines[2:]:
        assert line.replace("\\|", "").count(" | ") + 1 == n_cols, line


def test_unknown_preset():
    with pytest.raises(ConfigError, match="available presets"):
        describe_parameters("nope")
