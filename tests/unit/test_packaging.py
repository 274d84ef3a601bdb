"""Set-up files agree: pyproject, environment.yml, Makefile, CI and README."""

from __future__ import annotations

import tomllib

import yaml

from crackkit.paths import ROOT


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_torch_pair_is_pinned():
    """torch and torchvision are pinned as the matching pair that PyPI's torchvision needs."""
    deps = _pyproject()["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def test_environment_yml_agrees_with_pyproject():
    """environment.yml pins the same torch pair and installs the project itself from pyproject."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = {p for p in pip if "==" in p}
    deps = set(_pyproject()["project"]["dependencies"])
    assert pins <= deps, pins - deps
    assert {"torch==2.14.1", "torchvision==0.29.1"} <= pins
    assert any(p.startswith("-e .") for p in pip)


def test_requested_dependencies_are_declared():
    """Every dependency the kit is built on is declared in pyproject."""
    names = {
        d.split("=")[0].split(">")[0].split("<")[0] for d in _pyproject()["project"]["dependencies"]
    }
    assert {
        "torch",
        "torchvision",
        "numpy",
        "scikit-image",
        "scikit-learn",
        "matplotlib",
        "jupyterlab",
        "papermill",
    } <= names


def test_ci_and_readme_use_make_test():
    """CI runs the README's test command, and the README shows both commands."""
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make report" in readme and "make test" in readme
