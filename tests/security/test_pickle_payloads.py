"""A checkpoint whose pickle runs code is refused, unrun, at every door a checkpoint comes in by.

Each test plants a live payload (it writes a marker file when unpickled in full; the helper checks
that it does) and goes through the entry point a user would: ``crackkit predict --checkpoint``,
``predict --run``, ``export``, ``evaluate``, ``run --resume``, and the train notebook's code path
(:func:`crackkit.pipeline.train_run`); then the marker must not exist.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from crackkit.checkpoint import (
    CheckpointError,
    convert_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from crackkit.cli import main
from crackkit.config import make_config, save_config
from crackkit.pipeline import evaluate_run, train_run
from crackkit.runtime import rng_state, set_rng_state


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if line.startswith("crackkit: error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def test_predict_checkpoint_refuses_the_payload(tmp_path, marker, capsys, plant_payload, photo):
    """crackkit predict --checkpoint EVIL: exit 2, the file and the opt-in named, nothing run."""
    evil = plant_payload(tmp_path / "shared.pt", marker)
    photo(tmp_path / "photos" / "a.png")
    code = main(["predict", str(tmp_path / "photos"), "--checkpoint", str(evil), "--out", "o"])
    line = _one_error_line(capsys)
    assert code == 2 and not marker.exists()
    assert str(evil) in line and "crackkit checkpoint convert --trust" in line
    assert "asks for the Python object exec," in line


@pytest.mark.parametrize("command", ["predict", "export"])
def test_run_folder_with_a_planted_best_pt(
    tmp_path, marker, capsys, command, plant_payload, make_run, photo
):
    """best.pt of a shared run folder, through predict --run and export: refused, unrun."""
    run = make_run(tmp_path / "run")
    plant_payload(run / "checkpoints" / "best.pt", marker)
    photo(tmp_path / "photos" / "a.png")
    if command == "predict":
        argv = ["predict", str(tmp_path / "photos"), "--run", str(run)]
    else:
        argv = ["export", "--run", str(run), "--out", str(tmp_path / "m.onnx")]
    assert main(argv) == 2
    assert "best.pt was not loaded" in _one_error_line(capsys)
    assert not marker.exists() and not (tmp_path / "m.onnx").exists()


def test_evaluate_refuses_the_payload(
    tmp_path, marker, capsys, bar_folder, plant_payload, make_run
):
    """crackkit evaluate RUN --dataset DIR with a planted best.pt: refused, unrun, no output."""
    run = make_run(tmp_path / "run")
    plant_payload(run / "checkpoints" / "best.pt", marker)
    argv = ["evaluate", "--run", str(run), "--dataset", str(bar_folder), "--quiet"]
    assert main(argv) == 2
    assert "best.pt was not loaded" in _one_error_line(capsys)
    assert not marker.exists()
    assert not list((run / "cross").glob("*/metrics.json"))
    with pytest.raises(CheckpointError, match="was not loaded"):
        evaluate_run(run, progress=False)  # notebook 03's code path
    assert not marker.exists()


def test_train_notebook_resume_refuses_the_payload(tmp_path, marker, bar_folder, plant_payload):
    """The train notebook's code path (train_run(resume=True)) refuses a planted last.pt."""
    cfg = make_config({"dataset": str(bar_folder), "epochs": 2}, preset="tiny")
    run = tmp_path / "run"
    run.mkdir()
    save_config(cfg, run / "config.json")
    plant_payload(run / "checkpoints" / "last.pt", marker, cfg.to_dict())
    with pytest.raises(CheckpointError, match="last.pt was not loaded"):
        train_run(cfg, run, resume=True, progress=False)
    assert not marker.exists()


def test_cli_run_resume_refuses_the_payload(
    tmp_path, marker, capsys, bar_folder, kit_dirs, plant_payload
):
    """crackkit run --resume RUN with a planted last.pt: the train notebook fails on it, exit 2,
    one line; the payload never runs."""
    cfg = make_config({"dataset": str(bar_folder), "epochs": 2}, preset="tiny")
    run = tmp_path / "run"
    run.mkdir()
    save_config(cfg, run / "config.json")
    (run / "environment.json").write_text("{}")
    plant_payload(run / "checkpoints" / "last.pt", marker, cfg.to_dict())
    assert main(["run", "--resume", "--run", str(run), "--quiet"]) == 2
    line = _one_error_line(capsys)
    assert "02_train.ipynb failed: CheckpointError" in line and "was not loaded" in line
    assert not marker.exists()


def test_what_crackkit_writes_loads_weights_only(tmp_path, bar_folder):
    """A trained run's last.pt and best.pt load with weights_only=True, RNG state included."""
    cfg = make_config(
        {"dataset": str(bar_folder), "epochs": 1, "validation_every": 1}, preset="tiny"
    )
    train_run(cfg, tmp_path / "run", progress=False)
    for name in ("last", "best"):
        state = torch.load(tmp_path / "run" / "checkpoints" / f"{name}.pt", weights_only=True)
        assert state["epoch"] == 1
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert isinstance(state["rng"]["numpy"][1], torch.Tensor)


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    """NumPy's, Python's and torch's random states come back exactly from a saved checkpoint."""
    import random

    np.random.seed(7)
    random.seed(7)
    torch.manual_seed(7)
    np.random.rand(3)
    saved = rng_state()
    expected = (np.random.rand(4), random.random(), torch.rand(2))
    save_checkpoint(tmp_path / "c.pt", {"model": {}, "config": {}, "format": 2, "rng": saved})
    np.random.rand(10)
    set_rng_state(torch.load(tmp_path / "c.pt", weights_only=True)["rng"])
    got = (np.random.rand(4), random.random(), torch.rand(2))
    assert np.array_equal(expected[0], got[0]) and expected[1] == got[1]
    assert torch.equal(expected[2], got[2])


def test_convert_is_an_explicit_opt_in(tmp_path, capsys):
    """An old last.pt (NumPy state as an array) is refused, converted only with --trust, then
    loads; the original is kept beside it."""
    old = tmp_path / "last.pt"
    cfg = make_config(preset="tiny")
    state = {
        "format": 2,
        "model": {"w": torch.ones(2)},
        "config": cfg.to_dict(),
        "epoch": 3,
        "rng": {"python": None, "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        "history": [{"epoch": 3, "loss": np.float64(0.25)}],
    }
    torch.save(state, old)
    before = old.read_bytes()
    with pytest.raises(CheckpointError, match="crackkit checkpoint convert --trust"):
        load_checkpoint(old)
    assert main(["checkpoint", "convert", str(old)]) == 2
    assert "confirm that you trust it" in _one_error_line(capsys)
    assert old.read_bytes() == before
    assert main(["checkpoint", "convert", "--trust", str(old)]) == 0
    loaded = load_checkpoint(old)
    assert loaded["history"][0]["loss"] == 0.25 and loaded["epoch"] == 3
    assert (tmp_path / "last.pt.orig").read_bytes() == before
    keys = loaded["rng"]["numpy"][1]
    assert torch.equal(keys, torch.from_numpy(state["rng"]["numpy"][1].astype(np.int64)))
    shutil.copy(tmp_path / "last.pt.orig", tmp_path / "again.pt")
    assert convert_checkpoint(tmp_path / "again.pt", tmp_path / "out.pt", trust=True)
    assert load_checkpoint(tmp_path / "out.pt")["epoch"] == 3
