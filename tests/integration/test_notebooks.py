"""Notebooks: committed clean, parameters equal to RunConfig, validated on injection, executable."""

from __future__ import annotations

import ast
import dataclasses
import json

import papermill
import pytest

from crackkit.config import RunConfig, field_names
from crackkit.paths import NOTEBOOKS_DIR

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CONFIG_NOTEBOOKS = {
    "01_prepare.ipynb": ("run_dir",),
    "02_train.ipynb": ("run_dir", "resume", "overwrite"),
}
RUN_NOTEBOOKS = {
    "03_evaluate.ipynb": ("run_dir", "split", "n_gallery"),
    "04_report.ipynb": ("run_dir",),
    "05_compare.ipynb": ("run_dirs", "out"),
}


def _parameters_cell(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    return "".join(tagged[0]["source"])


def test_all_notebooks_exist():
    """The pipeline's four notebooks and the compare notebook are present."""
    assert [p.name for p in NOTEBOOKS] == sorted(CONFIG_NOTEBOOKS | RUN_NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    """No code cell carries outputs or an execution count."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} has outputs"
            assert cell.get("execution_count") is None, f"{path.name} has execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_holds_literals_only(path):
    """The parameters cell assigns literal values and derives nothing."""
    for node in ast.parse(_parameters_cell(path)).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1
        ast.literal_eval(node.value)


@pytest.mark.parametrize("name", sorted(CONFIG_NOTEBOOKS))
def test_config_notebook_parameters_match_runconfig(name):
    """papermill sees exactly the RunConfig fields (with their defaults) plus the run options."""
    params = papermill.inspect_notebook(str(NOTEBOOKS_DIR / name))
    assert set(params) == set(field_names()) | set(CONFIG_NOTEBOOKS[name])
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    for field, default in defaults.items():
        assert ast.literal_eval(params[field]["default"]) == default, field


@pytest.mark.parametrize("name", sorted(RUN_NOTEBOOKS))
def test_run_notebook_parameters(name):
    """Evaluate, report and compare notebooks take run folders (and their own options) only."""
    assert set(papermill.inspect_notebook(str(NOTEBOOKS_DIR / name))) == set(RUN_NOTEBOOKS[name])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"learning_rate": 0.1}, "unknown notebook parameter(s) 'learning_rate'"),
        ({"lr": -1.0}, "parameter 'lr' got -1.0; it must be > 0"),
        ({"optimizer": "rmsprop"}, "allowed values: 'adam', 'sgd'"),
        ({"input_height": 100}, "multiples of 8"),
    ],
)
def test_train_notebook_refuses_bad_parameters(tmp_path, kit_dirs, params, message):
    """A bad injected parameter stops the train notebook with a message naming it."""
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(NOTEBOOKS_DIR / "02_train.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters=params,
            kernel_name="python3",
            progress_bar=False,
        )
    assert message in info.value.evalue
    assert not any(kit_dirs["runs"].iterdir()), "a refused run must not create a run folder"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"run_dir": "x"}, "unknown notebook parameter(s) 'run_dir'"),
        ({"run_dirs": 5}, "parameter 'run_dirs' must be a comma-separated string"),
    ],
)
def test_compare_notebook_refuses_bad_parameters(tmp_path, params, message):
    """A bad injected parameter stops the compare notebook with a message naming it."""
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(NOTEBOOKS_DIR / "05_compare.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters=params,
            kernel_name="python3",
            progress_bar=False,
        )
    assert message in info.value.evalue
