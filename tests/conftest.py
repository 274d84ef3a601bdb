"""Shared fixtures: tests that write data or runs work in their own temporary folders."""

from __future__ import annotations

import pytest


@pytest.fixture
def kit_dirs(tmp_path, monkeypatch):
    """Private data and runs folders, for this process and for notebook kernels it starts."""
    import crackkit.paths as paths

    data = tmp_path / "data"
    runs = tmp_path / "runs"
    (data / "processed").mkdir(parents=True)
    runs.mkdir()
    monkeypatch.setattr(paths, "DATA_DIR", data)
    monkeypatch.setattr(paths, "RAW_DIR", data / "raw")
    monkeypatch.setattr(paths, "PROCESSED_DIR", data / "processed")
    monkeypatch.setattr(paths, "RUNS_DIR", runs)
    monkeypatch.setenv("CRACKKIT_DATA_DIR", str(data))
    monkeypatch.setenv("CRACKKIT_RUNS_DIR", str(runs))
    return {"data": data, "processed": data / "processed", "runs": runs}
