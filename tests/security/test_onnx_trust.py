"""ONNX models from outside: metadata that is no configuration, a wrong channel order or channel
count, non-finite thresholds are refused naming the file; and ``predict --run`` and
``predict --onnx`` agree within one 8-bit level with every default, whatever the run's ``amp``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackkit.checkpoint import CheckpointError
from crackkit.cli import main
from crackkit.config import make_config
from crackkit.export import export_onnx
from crackkit.predict import Predictor

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, make_run, photo):
    """A run whose config asks for bf16 autocast, exported to ONNX, and a 128x192 photo."""
    base = tmp_path_factory.mktemp("onnx-trust")
    run = make_run(base / "run", amp="bf16", seed=3)
    model = export_onnx(run, base / "model.onnx")
    photo(base / "photos" / "p.png", 128, 192, seed=5)
    return {"base": base, "run": run, "model": model, "photos": base / "photos"}


def _prob(folder: Path) -> np.ndarray:
    return np.asarray(Image.open(folder / "p_prob.png"), dtype=np.int16)


def test_run_and_onnx_agree_within_one_level_with_defaults(exported, capsys):
    """As a user runs them: `predict --run` and `predict --onnx`, nothing else. PyTorch computes
    in float32 on the CPU by default (the run's amp is bf16), like the graph; predict.json says
    so."""
    base = exported["base"]
    photos = str(exported["photos"])
    assert main(["predict", photos, "--run", str(exported["run"]), "--out", str(base / "pt")]) == 0
    assert (
        main(["predict", photos, "--onnx", str(exported["model"]), "--out", str(base / "ox")]) == 0
    )
    diff = np.abs(_prob(base / "pt") - _prob(base / "ox"))
    assert diff.max() <= 1, diff.max()
    for out in ("pt", "ox"):
        assert json.loads((base / out / "predict.json").read_text())["precision"] == "float32"
    code = main(
        ["predict", photos, "--run", str(exported["run"]), "--out", str(base / "bf"),
         "--precision", "bf16"]
    )  # fmt: skip
    assert code == 0
    assert json.loads((base / "bf" / "predict.json").read_text())["precision"] == (
        "bfloat16 autocast"
    )
    capsys.readouterr()
    argv = ["predict", photos, "--onnx", str(exported["model"]), "--precision", "bf16"]
    assert main([*argv, "--out", str(base / "x")]) == 2
    assert "an ONNX graph computes in float32" in capsys.readouterr().err


def _tampered(exported, tmp_path: Path, **changes: str) -> Path:
    model = onnx.load(str(exported["model"]))
    for prop in model.metadata_props:
        if prop.key in changes:
            prop.value = changes[prop.key]
    path = tmp_path / "tampered.onnx"
    onnx.save(model, str(path))
    return path


def _config(**changes) -> str:
    return json.dumps(make_config({"amp": "bf16"}, preset="tiny").to_dict() | changes)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"crackkit_config": "[1, 2]"}, "run parameters must map names to values, got a list"),
        ({"crackkit_config": '{"lr": NaN}'}, "parameter 'lr' got nan"),
        ({"input": '{"channel_order": "xyz"}'}, "channel_order 'xyz'"),
        ({"input": "[]"}, "'input' is a JSON list"),
        ({"threshold_seg": "nan"}, "threshold_seg is 'nan'"),
        ({"threshold_dec": "-inf"}, "threshold_dec is '-inf'"),
        ({"threshold_seg": "1.5"}, "threshold_seg is '1.5'"),
        ({"crackkit_config": _config(input_channels=1)}, "input_channels=1"),
    ],
    ids=["config-list", "config-nan", "channel-order", "input-list", "seg-nan", "dec-inf",
         "seg-above-1", "channels"],
)  # fmt: skip
def test_tampered_metadata_refused_naming_the_file(exported, tmp_path, capsys, changes, match):
    """Each is a CheckpointError naming the model, and on the command line one line, exit 2."""
    path = _tampered(exported, tmp_path, **changes)
    with pytest.raises(CheckpointError, match="tampered.onnx holds metadata") as err:
        Predictor.from_onnx(path)
    assert match in str(err.value)
    argv = ["predict", str(exported["photos"]), "--onnx", str(path), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err_lines) == 1 and match in err_lines[0]
    assert not (tmp_path / "o").exists()
