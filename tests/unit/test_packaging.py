"""Set-up files agree: pyproject, environment.yml, Makefile, CI and README."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from crackkit import paths
from crackkit.paths import ROOT

CLONE = Path(__file__).resolve().parents[2]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements(extra: str | None = None) -> list[Requirement]:
    meta = _pyproject()["project"]
    reqs = meta["dependencies"] if extra is None else meta["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt pins exact versions, got {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


@pytest.mark.parametrize("extra", [None, "onnx", "docs", "test"])
def test_dependencies_are_ranges_not_pins(extra):
    """The package's metadata holds ranges a library can live with: a lower bound and an upper
    bound below the next major; no exact pin (the extras included)."""
    for req in _requirements(extra):
        if req.name == "crackkit":
            continue
        ops = {s.operator for s in req.specifier}
        assert "==" not in ops and "===" not in ops, f"{req} is an exact pin"
        assert ">=" in ops and "<" in ops, f"{req} needs a lower and an upper bound"


def test_constraints_pin_the_tested_versions_inside_the_ranges():
    """constraints.txt pins every declared dependency at a version its range admits, so the
    lower bounds name releases that were installed and tested here."""
    pins = _constraints()
    for extra in (None, "onnx", "docs", "test"):
        for req in _requirements(extra):
            if req.name == "crackkit":
                continue
            name = canonicalize_name(req.name)
            assert name in pins, f"constraints.txt lacks {req.name}"
            assert req.specifier.contains(pins[name]), f"{req.name}=={pins[name]} outside {req}"


def test_make_installs_with_the_constraints():
    """make installs the measured environment: every pip install of the Makefile takes -c
    constraints.txt, and the test install brings the docs tools."""
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and "-e" in line]
    assert installs and all("-c constraints.txt" in line for line in installs)
    assert any(".[test]" in line for line in installs)
    test_extra = {r.name: r for r in _requirements("test")}
    assert "docs" in test_extra["crackkit"].extras and "onnx" in test_extra["crackkit"].extras


def test_python_versions():
    """Any current Python from 3.11 on; the classifiers name the three that were verified."""
    meta = _pyproject()["project"]
    assert meta["requires-python"] == ">=3.11"
    classifiers = meta["classifiers"]
    for minor in (11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers


def test_torchvision_is_a_dependency_because_it_is_used():
    """torchvision is a dependency only because crackkit uses it (the fork's ColorJitter)."""
    names = {canonicalize_name(r.name) for r in _requirements()}
    assert "torchvision" in names
    sources = [p.read_text() for p in (ROOT / "crackkit").rglob("*.py")]
    assert any("from torchvision" in s for s in sources)


def test_environment_yml_installs_the_constraints():
    """environment.yml installs the project with the same constraints file."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-c constraints.txt" in pip and any(p.startswith("-e .") for p in pip)


def test_requested_dependencies_are_declared():
    """Every dependency the kit is built on is declared in pyproject."""
    names = {r.name for r in _requirements()}
    assert {
        "torch",
        "numpy",
        "scikit-image",
        "scikit-learn",
        "matplotlib",
        "jupyterlab",
        "papermill",
        "tensorboard",
        "pyyaml",
    } <= names


def test_version_has_one_source(capsys):
    """crackkit.__version__ and crackkit --version are pyproject's version, and CHANGELOG.md
    has its section."""
    import crackkit
    from crackkit.cli import main

    version = _pyproject()["project"]["version"]
    assert crackkit.__version__ == version
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"crackkit {version}"
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()


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
