"""Set-up files agree: pyproject, environment.yml, Makefile, CI and README."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml

from crackkit import paths
from crackkit.paths import ROOT

CLONE = Path(__file__).resolve().parents[2]


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


def test_clone_uses_its_top_level_notebooks():
    """Run from the clone (or an editable install), the notebooks are the top-level notebooks/."""
    assert paths.NOTEBOOKS_DIR == CLONE / "notebooks"
    assert not (CLONE / "crackkit" / "notebooks").exists(), "notebooks/ is their one source"


def test_wheel_ships_every_notebook(tmp_path):
    """A built wheel holds every notebooks/*.ipynb as package data in crackkit/notebooks/, so an
    installed ``crackkit run`` finds them (tests/integration/test_install.py runs one)."""
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "notebooks")
    shutil.copytree(CLONE / "crackkit", src / "crackkit", ignore=skip)
    shutil.copytree(CLONE / "notebooks", src / "notebooks", ignore=skip)
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(CLONE / name, src / name)
    build = "import sys; from setuptools import build_meta; build_meta.build_wheel(sys.argv[1])"
    subprocess.run(
        [sys.executable, "-c", build, str(tmp_path)], cwd=src, check=True, capture_output=True
    )
    (wheel,) = tmp_path.glob("crackkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    notebooks = sorted((CLONE / "notebooks").glob("*.ipynb"))
    assert notebooks
    missing = [p.name for p in notebooks if f"crackkit/notebooks/{p.name}" not in names]
    assert not missing, f"the wheel lacks {missing}"
