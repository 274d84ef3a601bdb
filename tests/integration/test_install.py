"""The package as users install it: a built wheel, installed non-editable, runs the pipeline.

The notebooks are package data built from the top-level ``notebooks/`` (setup.py); a clone and
an editable install use that folder in place. These tests build the sdist and the wheel, install
them into fresh virtualenvs outside the repository and run the ``crackkit`` console script there.

The fresh virtualenvs reuse this environment's installed dependencies (torch and the Jupyter
stack) through a ``.pth`` file that lists its site-packages folder: a ``.pth`` line only appends a
folder to ``sys.path``, so the editable install's finder there is not activated and ``crackkit``
comes from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_NAMES = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
PIPELINE_NOTEBOOKS = ["01_prepare", "02_train", "03_evaluate", "04_report"]
KERNEL_WARNING = "without encryption"  # ipykernel: "Kernel is running over TCP without encryption"


def _run(cmd, *, cwd, env=None, timeout=120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CRACKKIT_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env.update(extra)
    return env


def _fresh_venv(path: Path) -> Path:
    """A virtualenv at ``path`` that sees this one's dependencies but not its crackkit."""
    _run([sys.executable, "-m", "venv", "--without-pip", path], cwd=path.parent)
    python = path / "bin" / "python"
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=path.parent,
        env=_clean_env(),
    ).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib) / "zz_test_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    return python


def _pip_install(python: Path, *args) -> None:
    """This environment's pip installs into the fresh virtualenv (``pip --python``).

    ``--ignore-installed``: pip sees this environment's (editable) crackkit through the ``.pth``
    file and must not even try to uninstall it.
    """
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--ignore-installed"]
        + ["--no-deps", "--no-index", *args],
        cwd=python.parent,
        env=_clean_env(),
    )


def _where(python: Path, cwd: Path) -> tuple[Path, Path]:
    """(crackkit's package folder, paths.NOTEBOOKS_DIR) as ``python`` imports them from ``cwd``."""
    out = _run(
        [
            python,
            "-c",
            "import crackkit, crackkit.paths as p; print(p.PACKAGE_DIR); print(p.NOTEBOOKS_DIR)",
        ],
        cwd=cwd,
        env=_clean_env(),
    ).stdout.split("\n")
    return Path(out[0]), Path(out[1])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel as a release is built: sdist from the checkout, then the wheel from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    _run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])",
            out,
        ],
        cwd=REPO,
        env=_clean_env(),
    )
    (sdist,) = out.glob("crackkit-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(out, filter="data")
        members = tar.getnames()
    (src,) = (p for p in out.iterdir() if p.is_dir())
    for name in NOTEBOOK_NAMES:
        assert f"{src.name}/notebooks/{name}" in members, f"the sdist lacks notebooks/{name}"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out, src],
        cwd=out,
        env=_clean_env(),
    )
    (whl,) = out.glob("crackkit-*.whl")
    return whl


def test_wheel_holds_the_notebooks(wheel):
    """The wheel carries every notebook as crackkit/notebooks/, and nothing outside crackkit."""
    names = zipfile.ZipFile(wheel).namelist()
    assert NOTEBOOK_NAMES
    for name in NOTEBOOK_NAMES:
        assert f"crackkit/notebooks/{name}" in names
    assert all(n.startswith(("crackkit/", "crackkit-")) for n in names), names


def test_installed_wheel_runs_the_pipeline(wheel, tmp_path):
    """Why: a non-editable ``pip install .`` once gave a ``crackkit run`` that could not find its
    notebooks. Installed from the wheel, ``crackkit run --preset tiny`` (one epoch on the small
    synthetic set, about a minute on 2 CPU cores), started outside the repository, finishes a run
    folder with REPORT.md and the executed notebooks, using the notebooks packaged in the wheel,
    and its console carries no "Kernel is running over TCP without encryption" warning."""
    python = _fresh_venv(tmp_path / "venv")
    _pip_install(python, wheel)
    work = tmp_path / "work"
    work.mkdir()
    package, notebooks = _where(python, work)
    assert package.is_relative_to(tmp_path / "venv"), f"crackkit imported from {package}"
    assert notebooks == package / "notebooks"
    assert sorted(p.name for p in notebooks.glob("*.ipynb")) == NOTEBOOK_NAMES

    run_dir = tmp_path / "run"
    env = _clean_env(
        CRACKKIT_DATA_DIR=str(tmp_path / "data"), CRACKKIT_RUNS_DIR=str(tmp_path / "runs")
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python.parent / "crackkit", "run", "--preset", "tiny", "-p", "epochs", "1"]
        + ["--run", str(run_dir)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console
    print(f"crackkit run --preset tiny -p epochs 1: {time.perf_counter() - t0:.1f}s")
    assert (run_dir / "REPORT.md").is_file()
    for stem in PIPELINE_NOTEBOOKS:
        assert (run_dir / "notebooks" / f"{stem}.ipynb").is_file(), stem
    assert KERNEL_WARNING not in console, console
    assert not (work / "notebooks").exists() and not (work / "runs").exists()


def test_kernel_starts_without_the_tcp_warning(tmp_path, capfd):
    """Why: every notebook of ``crackkit run`` printed ipykernel's "Kernel is running over TCP
    without encryption" warning. The batch driver has the kernel manager provision CurveZMQ keys
    (or use IPC sockets), so a kernel it starts prints no such line and still runs the cells."""
    import nbformat

    from crackkit.batch import _execute

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    src = tmp_path / "probe.ipynb"
    nbformat.write(nb, src)
    dst = tmp_path / "run" / "notebooks" / "probe.ipynb"
    dst.parent.mkdir(parents=True)
    _execute(src, dst, {}, log_output=False)
    out = nbformat.read(dst, as_version=4).cells[0].outputs
    assert out and out[0]["text"].strip() == "42"
    console = capfd.readouterr()
    assert KERNEL_WARNING not in console.out + console.err, console.err


def test_editable_install_uses_the_clone_notebooks(tmp_path):
    """Why: the build hook must not break ``pip install -e .``: an editable install imports the
    clone's crackkit/ and uses its top-level notebooks/, the one source, and the build copies no
    notebooks into the package folder."""
    src = tmp_path / "clone"
    src.mkdir()
    # a stray crackkit/notebooks/ in the checkout must not fake the result checked below
    skip = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "notebooks")
    shutil.copytree(REPO / "crackkit", src / "crackkit", ignore=skip)
    shutil.copytree(REPO / "notebooks", src / "notebooks", ignore=skip)
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, src / name)
    python = _fresh_venv(tmp_path / "venv")
    _pip_install(python, "--no-build-isolation", "-e", src)
    work = tmp_path / "work"
    work.mkdir()
    package, notebooks = _where(python, work)
    assert package == src / "crackkit"
    assert notebooks == src / "notebooks"
    assert not (src / "crackkit" / "notebooks").exists()
