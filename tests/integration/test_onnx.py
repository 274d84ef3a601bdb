"""crackkit.export, ``crackkit export`` and ``crackkit predict --onnx``: one ONNX file per run that
predicts what the PyTorch path predicts.

The runs are made by hand (random weights, no training) at the tiny preset's 64x128, with
``amp: "off"``: on a CPU with bf16 instructions ``amp: "auto"`` would run the PyTorch side under
bf16 autocast, while the graph computes in float32. The PyTorch side keeps the run's other
switches (on the CPU the 15x15 convolution runs by FFT; the graph convolves directly).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import crackkit
from crackkit.apply import predict_folder
from crackkit.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from crackkit.cli import main
from crackkit.config import make_config, save_config
from crackkit.data.folder import read_image
from crackkit.export import ExportError, OnnxDependencyError, export_onnx, onnx_metadata
from crackkit.model import build_model
from crackkit.predict import ONNX_METADATA_KEYS, Predictor, PredictWarning
from crackkit.specs import CHECKPOINT_FORMAT

ARCHITECTURES = ("segdecnet++", "segdecnet")
# name -> (height, width, Pillow mode): the run's own size, a larger valid size, and two that need
# padding (to 64x136, and to 64x128, where it runs in one batch with the first).
IMAGES = {
    "a_exact.png": (64, 128, "RGB"),
    "b_larger.png": (72, 136, "RGB"),
    "c_padded.jpg": (59, 130, "RGB"),
    "d_small_gray.bmp": (37, 61, "L"),
}
THRESHOLDS = {"decision": 0.6, "pixel_2px": 0.45}


def _write_image(path: Path, height: int, width: int, mode: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    arr[height // 2 - 1 : height // 2 + 1] = 20  # a dark horizontal "crack"
    Image.fromarray(arr[..., 0] if mode == "L" else arr).save(path)


def _make_run(folder: Path, architecture: str) -> Path:
    """A run folder by hand: config.json and checkpoints.

    ``segdecnet++``: a validated ``best.pt`` (epoch 3) and an unvalidated ``last.pt``;
    ``segdecnet``: an unvalidated ``last.pt`` only (the 0.5 fallback).
    """
    cfg = make_config({"architecture": architecture, "amp": "off"}, preset="tiny")
    (folder / "checkpoints").mkdir(parents=True)
    save_config(cfg, folder / "config.json")

    def save(name: str, seed: int, epoch: int, best: dict) -> None:
        torch.manual_seed(seed)
        model = build_model(architecture, 3, cfg.input_height, cfg.input_width)
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "config": cfg.to_dict(),
            "epoch": epoch,
            "best": best,
        }
        save_checkpoint(folder / "checkpoints" / f"{name}.pt", state)

    unvalidated = {"score": -math.inf, "epoch": None, "metrics": None}
    if architecture == "segdecnet++":
        metrics = {k: {"threshold": v} for k, v in THRESHOLDS.items()}
        save("best", 0, 3, {"score": 0.5, "epoch": 3, "metrics": metrics})
        save("last", 1, 4, unvalidated)
    else:
        save("last", 0, 2, unvalidated)
    return folder


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """Both runs, their ONNX files, and a folder of images of several sizes.

    segdecnet++ is exported by ``crackkit export --overwrite`` over a file already there,
    segdecnet by :func:`export_onnx` with an explicit checkpoint.
    """
    base = tmp_path_factory.mktemp("onnx")
    images = base / "images"
    images.mkdir()
    for i, (name, (h, w, mode)) in enumerate(IMAGES.items()):
        _write_image(images / name, h, w, mode, seed=i)
    runs = {a: _make_run(base / a.replace("+", "p"), a) for a in ARCHITECTURES}

    plus = base / "exports" / "plus.onnx"
    plus.parent.mkdir()
    plus.write_bytes(b"an older export")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            ["export", "--run", str(runs["segdecnet++"]), "--out", str(plus), "--overwrite"]
        )
    plain = export_onnx(
        runs["segdecnet"],
        base / "exports" / "plain.onnx",
        checkpoint=runs["segdecnet"] / "checkpoints" / "last.pt",
    )
    return {
        "images": images,
        "runs": runs,
        "onnx": {"segdecnet++": plus, "segdecnet": plain},
        "cli": (code, stdout.getvalue()),
    }


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def _rows(csv_path: Path) -> dict[str, dict[str, str]]:
    with open(csv_path, newline="") as fh:
        return {row["image"]: row for row in csv.DictReader(fh)}


def test_cli_export_prints_the_path_and_overwrites_when_asked(kit):
    """``crackkit export --overwrite`` replaced the older file and printed its path last."""
    code, out = kit["cli"]
    path = kit["onnx"]["segdecnet++"]
    assert code == 0
    assert out.strip().splitlines()[-1] == str(path)
    assert onnx_metadata(path)["architecture"] == "segdecnet++"


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_metadata_round_trips(kit, architecture):
    """The file records the run's config, the thresholds Predictor uses, the input convention,
    and a graph with a dynamic batch, height and width."""
    import onnx

    run, path = kit["runs"][architecture], kit["onnx"][architecture]
    meta = onnx_metadata(path)
    assert set(ONNX_METADATA_KEYS) <= set(meta)
    ckpt = "best.pt" if architecture == "segdecnet++" else "last.pt"
    state = load_checkpoint(run / "checkpoints" / ckpt)
    assert json.loads(meta["crackkit_config"]) == state["config"]
    assert meta["architecture"] == architecture
    assert meta["checkpoint"] == ckpt
    assert meta["checkpoint_epoch"] == str(state["epoch"])
    assert meta["crackkit_export_format"] == "1"
    assert meta["crackkit_version"] == crackkit.__version__
    assert int(meta["opset"]) >= 18
    if architecture == "segdecnet++":
        assert float(meta["threshold_seg"]) == THRESHOLDS["pixel_2px"]
        assert float(meta["threshold_dec"]) == THRESHOLDS["decision"]
        assert (meta["thresholds_validated"], meta["thresholds_missing"]) == ("true", "")
    else:
        assert (float(meta["threshold_seg"]), float(meta["threshold_dec"])) == (0.5, 0.5)
        assert meta["thresholds_validated"] == "false"
        assert meta["thresholds_missing"] == "segmentation and decision"
    described = json.loads(meta["input"])
    assert described["layout"] == "NCHW" and described["channel_order"] == "rgb"
    assert described["scale"] == "1/255" and described["channels"] == 3
    assert "multiples of 8" in meta["input_size_rule"]
    assert "floor(H/64) * floor(W/64) >= 2" in meta["input_size_rule"]

    graph = onnx.load(str(path), load_external_data=False).graph

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert [i.name for i in graph.input] == ["image"]
    assert dims(graph.input[0]) == ["batch", 3, "height", "width"]
    assert [(o.name, dims(o)) for o in graph.output] == [
        ("score", ["batch"]),
        ("prob", ["batch", 1, "height", "width"]),
    ]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_onnx_predictions_match_pytorch(kit, architecture, tmp_path, capsys):
    """``predict --onnx`` and ``predict --run`` write the same maps (8-bit levels within 1), scores
    (within 1e-4) and masks (except at pixels within 1/255 of the threshold), at every size."""
    run, model, images = kit["runs"][architecture], kit["onnx"][architecture], kit["images"]
    out_onnx, out_torch = tmp_path / "onnx", tmp_path / "torch"
    assert main(["predict", str(images), "--onnx", str(model), "--out", str(out_onnx)]) == 0
    args = ["predict", str(images), "--run", str(run), "--device", "cpu", "--out", str(out_torch)]
    assert main(args) == 0
    err = capsys.readouterr().err
    if architecture == "segdecnet":  # unvalidated: both warn of the 0.5 fallback
        assert err.count("no validated segmentation and decision threshold") == 2

    record_onnx = json.loads((out_onnx / "predict.json").read_text())
    record_torch = json.loads((out_torch / "predict.json").read_text())
    assert record_onnx["weights_kind"] == "onnx" and record_onnx["weights"] == str(model)
    assert record_torch["weights_kind"] == "crackkit"
    for key in ("architecture", "channel_order", "input_scale", "threshold_seg", "threshold_dec"):
        assert record_onnx[key] == record_torch[key], key
    assert record_onnx["thresholds_validated"] == record_torch["thresholds_validated"]
    thr_seg, thr_dec = record_torch["threshold_seg"], record_torch["threshold_dec"]

    rows_onnx, rows_torch = (
        _rows(out_onnx / "predictions.csv"),
        _rows(out_torch / "predictions.csv"),
    )
    assert list(rows_onnx) == list(rows_torch) == sorted(IMAGES)
    unvalidated = architecture == "segdecnet"
    with pytest.warns(PredictWarning) if unvalidated else contextlib.nullcontext():
        torch_predictor = Predictor.from_run(run, device="cpu")
    with pytest.warns(PredictWarning) if unvalidated else contextlib.nullcontext():
        onnx_predictor = Predictor.from_onnx(model)
    assert (onnx_predictor.threshold_seg, onnx_predictor.threshold_dec) == (thr_seg, thr_dec)
    arrays = [read_image(images / name, 3) for name in IMAGES]
    floats = zip(
        torch_predictor.predict_batch(arrays), onnx_predictor.predict_batch(arrays), strict=True
    )
    for name, ((p_torch, s_torch), (p_onnx, s_onnx)) in zip(IMAGES, floats, strict=True):
        h, w, _ = IMAGES[name]
        stem = Path(name).stem
        a, b = rows_onnx[name], rows_torch[name]
        assert (int(a["height"]), int(a["width"])) == (h, w)
        assert abs(float(a["score"]) - float(b["score"])) <= 1e-4
        if abs(float(b["score"]) - thr_dec) > 1e-4:
            assert a["decision"] == b["decision"]
        prob_onnx = _read(out_onnx / f"{stem}_prob.png").astype(int)
        prob_torch = _read(out_torch / f"{stem}_prob.png").astype(int)
        assert prob_onnx.shape == prob_torch.shape == (h, w)
        assert np.abs(prob_onnx - prob_torch).max() <= 1, name

        # The same images through both predictors, in float.
        diff = float(np.abs(p_onnx - p_torch).max())
        print(
            f"{architecture} {name} {h}x{w}: max |prob diff| {diff:.2e} "
            f"({np.abs(prob_onnx - prob_torch).max()} 8-bit levels), "
            f"|score diff| {abs(s_onnx - s_torch):.2e}"
        )
        assert diff <= 1e-4 and abs(s_onnx - s_torch) <= 1e-4
        assert np.array_equal(np.rint(p_onnx * 255.0), prob_onnx)  # the folder wrote these

        mask_onnx = _read(out_onnx / f"{stem}_mask.png")
        mask_torch = _read(out_torch / f"{stem}_mask.png")
        differ = mask_onnx != mask_torch
        assert np.all(np.abs(p_torch[differ].astype(np.float64) - thr_seg) <= 1 / 255), name
        assert int(a["crack_pixels"]) == int((mask_onnx == 255).sum())
        assert _read(out_onnx / f"{stem}_overlay.png").shape == (h, w, 3)


def test_missing_onnxruntime_names_the_extra(kit, monkeypatch, tmp_path, capsys):
    """Without onnxruntime (or onnx), prediction and export raise an ImportError that says
    ``pip install 'crackkit[onnx]'``; the CLI prints it as one line and exits 1."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    model = kit["onnx"]["segdecnet++"]
    with pytest.raises(ImportError, match=r"pip install 'crackkit\[onnx\]'") as caught:
        Predictor.from_onnx(model)
    assert isinstance(caught.value, OnnxDependencyError)
    with pytest.raises(OnnxDependencyError, match="onnxruntime"):
        predict_folder(kit["images"], onnx=model, out_dir=tmp_path / "p", progress=False)
    assert main(["predict", str(kit["images"]), "--onnx", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("crackkit: error: ")
    assert "pip install 'crackkit[onnx]'" in err[0]

    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'crackkit\[onnx\]'"):
        export_onnx(kit["runs"]["segdecnet"], tmp_path / "new.onnx")
    assert (
        main(["export", "--run", str(kit["runs"]["segdecnet"]), "--out", str(tmp_path / "x.onnx")])
        == 2
    )
    assert "pip install 'crackkit[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "new.onnx").exists() and not (tmp_path / "x.onnx").exists()


def test_export_refuses_to_overwrite(kit, tmp_path, capsys):
    """An existing file is kept unless --overwrite / overwrite=True; errors are one line."""
    path = kit["onnx"]["segdecnet"]
    before = path.read_bytes()
    run = str(kit["runs"]["segdecnet"])
    assert main(["export", "--run", run, "--out", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("crackkit: error: ")
    assert "exists" in err[0] and "--overwrite" in err[0]
    with pytest.raises(ExportError, match="exists"):
        export_onnx(run, path)
    assert path.read_bytes() == before

    assert (
        main(["export", "--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.onnx")]) == 2
    )
    assert capsys.readouterr().err.startswith("crackkit: error: no run folder")
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    save_config(make_config({}, preset="tiny"), empty / "config.json")
    assert main(["export", "--run", str(empty), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_files_not_from_crackkit_are_refused(kit, tmp_path):
    """A missing file or an ONNX graph without crackkit's metadata raises CheckpointError;
    an ONNX model goes alone, without checkpoint or original weights."""
    import onnx
    from onnx import TensorProto, helper

    with pytest.raises(CheckpointError, match="no ONNX model"):
        Predictor.from_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        Predictor.from_onnx(tmp_path / "junk.onnx")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["prob"])],
        "other",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 128])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 3, 64, 128])],
    )
    other = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 20)])
    onnx.save(other, tmp_path / "other.onnx")
    with pytest.raises(CheckpointError, match="not written by crackkit export"):
        Predictor.from_onnx(tmp_path / "other.onnx")
    with pytest.raises(ValueError, match="without checkpoint"):
        predict_folder(
            kit["images"],
            onnx=kit["onnx"]["segdecnet"],
            checkpoint=kit["runs"]["segdecnet"] / "checkpoints" / "last.pt",
        )
