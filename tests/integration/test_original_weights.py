"""Prediction with weights saved by the authors' code: converted, fed BGR / 255, recorded."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch
from PIL import Image

from crackkit.cli import main
from crackkit.model import build_model, original_key_shapes
from crackkit.predict import Predictor


def _original_state_dict(architecture: str) -> dict[str, torch.Tensor]:
    """Random weights under the original code's parameter names (a saved ``state_dict``)."""
    g = torch.Generator().manual_seed(0)
    return {
        k: torch.randn(shape, generator=g) * (0.05 if len(shape) == 4 else 1.0)
        for k, shape in original_key_shapes(architecture).items()
    }


def test_original_weights_predict_like_the_original_fed_them(tmp_path):
    """The predictor equals the converted network applied to the BGR image divided by 255."""
    path = tmp_path / "best_state_dict.pth"
    torch.save(_original_state_dict("segdecnet"), path)
    predictor = Predictor.from_original(path, "segdecnet", height=64, width=128, device="cpu")
    predictor.placement = dataclasses.replace(predictor.placement, amp_dtype=None)
    rgb = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    prob, score = predictor.predict_image(rgb)
    model = predictor.model
    bgr = torch.from_numpy(rgb[..., ::-1].transpose(2, 0, 1).copy())[None].float() / 255
    with torch.inference_mode():
        dec, seg = model(bgr)
    expected = torch.sigmoid(seg).repeat_interleave(8, 2).repeat_interleave(8, 3)[0, 0].numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    assert abs(score - float(torch.sigmoid(dec[0, 0]))) < 1e-5
    assert predictor.channel_order == "bgr"


def test_cli_predicts_with_original_weights_and_records_them(tmp_path, capsys):
    """``crackkit predict --original-weights F --architecture A`` writes maps and predict.json."""
    path = tmp_path / "final_state_dict.pth"
    torch.save({f"module.{k}": v for k, v in _original_state_dict("segdecnet-up").items()}, path)
    images = tmp_path / "photos"
    images.mkdir()
    Image.fromarray(np.full((70, 130, 3), 90, np.uint8)).save(images / "a.png")
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            str(images),
            "--original-weights",
            str(path),
            "--architecture",
            "segdecnet-up",
            "--input-size",
            "64",
            "128",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    record = json.loads((out / "predict.json").read_text())
    assert record["weights_kind"] == "original" and record["channel_order"] == "bgr"
    assert record["architecture"] == "segdecnet-up"
    with Image.open(out / "a_prob.png") as im:
        assert im.size == (130, 70)


def test_cli_refuses_weights_of_another_network(tmp_path, capsys):
    """SegDecNet++ weights given as segdecnet-up: exit 2 with the first unexpected key named."""
    path = tmp_path / "w.pth"
    torch.save(_original_state_dict("segdecnet++"), path)
    images = tmp_path / "photos"
    images.mkdir()
    Image.fromarray(np.full((64, 128, 3), 90, np.uint8)).save(images / "a.png")
    code = main(
        [
            "predict",
            str(images),
            "--original-weights",
            str(path),
            "--architecture",
            "segdecnet-up",
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
    )
    assert code == 2
    assert "unexpected key 'conv1_s.weight'" in capsys.readouterr().err


def test_converted_weights_fill_every_parameter():
    """Every crackkit parameter is set from the original dict (none left at its init)."""
    sd = _original_state_dict("segdecnet++")
    from crackkit.model import convert_original_state_dict

    model = build_model("segdecnet++", 3, 64, 128)
    converted = convert_original_state_dict(sd, "segdecnet++")
    assert set(converted) == set(model.state_dict())
    assert sorted(v.shape for v in converted.values()) == sorted(v.shape for v in sd.values())
