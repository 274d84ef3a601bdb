"""Project paths, rooted at the repository (or the current directory when installed elsewhere).

Raw downloads are immutable and live in ``data/raw``; prepared data sets in ``data/processed``;
every run writes into its own folder under ``runs``. The environment variables
``CRACKKIT_DATA_DIR`` and ``CRACKKIT_RUNS_DIR`` move the data and runs folders (tests use them).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _find_root() -> Path:
    env = os.environ.get("CRACKKIT_ROOT")
    if env:
        return Path(env).resolve()
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").exists() and (candidate / "notebooks").is_dir():
        return candidate
    return Path.cwd().resolve()


ROOT = _find_root()
NOTEBOOKS_DIR = ROOT / "notebooks"
DATA_DIR = Path(os.environ.get("CRACKKIT_DATA_DIR") or ROOT / "data").resolve()
RAW_DIR = DATA_DIR / "raw"
PROCESSED_DIR = DATA_DIR / "processed"
RUNS_DIR = Path(os.environ.get("CRACKKIT_RUNS_DIR") or ROOT / "runs").resolve()
