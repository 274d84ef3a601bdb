"""Shared fixtures: tests that write data or runs work in their own temporary folders."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def _console():
    """Library messages reach the console as they do under a command (crackkit.console)."""
    from crackkit import console

    console.configure()


@pytest.fixture(autouse=True, scope="session")
def _static_speed_switches(tmp_path_factory):
    """The fixed speed-switch rules, no measurement: every test computes the same whatever the
    machine's timings (tests/unit/test_autotune.py measures on purpose); a private cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CRACKKIT_AUTOTUNE", "static")
    mp.setenv("CRACKKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    try:
        yield
    finally:
        mp.undo()


def _redirect(mp: pytest.MonkeyPatch, base) -> dict:
    """Point crackkit's data and runs folders at ``base``, here and in kernels started later."""
    import crackkit.paths as paths

    data = base / "data"
    runs = base / "runs"
    (data / "processed").mkdir(parents=True, exist_ok=True)
    runs.mkdir(exist_ok=True)
    mp.setattr(paths, "DATA_DIR", data)
    mp.setattr(paths, "RAW_DIR", data / "raw")
    mp.setattr(paths, "PROCESSED_DIR", data / "processed")
    mp.setattr(paths, "RUNS_DIR", runs)
    mp.setenv("CRACKKIT_DATA_DIR", str(data))
    mp.setenv("CRACKKIT_RUNS_DIR", str(runs))
    return {"base": base, "data": data, "processed": data / "processed", "runs": runs}


@pytest.fixture
def kit_dirs(tmp_path, monkeypatch):
    """Private data and runs folders for one test."""
    return _redirect(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def module_kit_dirs(tmp_path_factory):
    """Private data and runs folders shared by the tests of one module."""
    mp = pytest.MonkeyPatch()
    try:
        yield _redirect(mp, tmp_path_factory.mktemp("kit"))
    finally:
        mp.undo()


@pytest.fixture
def bar_folder(tmp_path):
    """A data set of 64x128 images, 4 per split: 3 with a dark 2-pixel bar (its mask) and one
    crack-free, on a seeded noisy background."""
    from crackkit.data.folder import write_sample

    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for i in range(4):
            image = rng.integers(150, 220, (64, 128, 3), dtype=np.uint8)
            mask = np.zeros((64, 128), bool)
            if i < 3:
                mask[10 + 8 * i : 12 + 8 * i, 5:100] = True
                image[mask] = 40
            write_sample(tmp_path, split, f"{split}{i}", image, mask, image_ext=".png")
    return tmp_path
