"""Project paths, rooted at the repository (or the current directory when installed elsewhere).

Raw downloads are immutable and live in ``data/raw``; prepared data sets in ``data/processed``;
every run writes into its own folder under ``runs``. The environment variables
``CRACKKIT_DATA_DIR`` and ``CRACKKIT_RUNS_DIR`` move the data and runs folders (tests use them);
``CRACKKIT_ROOT`` moves the root both default to.

The notebooks come with the code that runs: a clone (or an editable install of it) uses its
top-level ``notebooks/``, the one source; an installed wheel uses the copy that the build put into
the package as ``crackkit/notebooks/`` (see setup.py).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _clone_root() -> Path | None:
    """The repository this package is imported from, or None for an installed package."""
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").is_file() and (candidate / "notebooks").is_dir():
        return candidate
    return None


def _find_root() -> Path:
    env = os.environ.get("CRACKKIT_ROOT")
    if env:
        return Path(env).resolve()
    return _clone_root() or Path.cwd().resolve()


def _find_notebooks() -> Path:
    clone = _clone_root()
    if clone is not None:
        return clone / "notebooks"
    packaged = PACKAGE_DIR / "notebooks"
    if packaged.is_dir():
        return packaged
    return ROOT / "notebooks"  # neither: a package built without its notebooks


ROOT = _find_root()
NOTEBOOKS_DIR = _find_notebooks()
DATA_DIR = Path(os.environ.get("CRACKKIT_DATA_DIR") or ROOT / "data").resolve()
RAW_DIR = DATA_DIR / "raw"
PROCESSED_DIR = DATA_DIR / "processed"
RUNS_DIR = Path(os.environ.get("CRACKKIT_RUNS_DIR") or ROOT / "runs").resolve()
