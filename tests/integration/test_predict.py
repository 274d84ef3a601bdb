"""crackkit.predict, crackkit.apply and ``crackkit predict``: a trained run applied to images of any
size."""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crackkit.apply import CSV_COLUMNS, predict_folder
from crackkit.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    validation_thresholds,
)
from crackkit.cli import main
from crackkit.config import make_config
from crackkit.data.folder import DatasetError
from crackkit.model import build_model
from crackkit.predict import Predictor, PredictWarning
from crackkit.run import RunDirError
from crackkit.specs import CHECKPOINT_FORMAT

# name -> (height, width, Pillow mode)
IMAGES = {
    "a_rgb.png": (40, 56, "RGB"),
    "b_photo.jpg": (37, 61, "RGB"),
    "c_gray.bmp": (33, 50, "L"),
    "d_alpha.png": (29, 45, "RGBA"),
    "e_scan.tif": (41, 57, "RGB"),
}


def _write_image(path: Path, height: int, width: int, mode: str = "RGB", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    arr[height // 2 - 1 : height // 2 + 1, :, :3] = 20  # a dark horizontal "crack"
    if mode == "RGBA":
        arr[..., 3] = 255
    Image.fromarray(arr[..., 0] if mode == "L" else arr, mode=mode).save(path)
    return path


def _hand_made_checkpoint(
    path: Path, architecture: str, channels: int = 3, amp: str = "auto"
) -> Path:
    """A never-validated checkpoint with random weights, in the format training writes."""
    params = {"architecture": architecture, "input_channels": channels, "amp": amp}
    cfg = make_config(params, preset="tiny")
    torch.manual_seed(0)
    model = build_model(architecture, channels, cfg.input_height, cfg.input_width)
    best = {"score": -math.inf, "epoch": None, "metrics": None}
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "config": cfg.to_dict(),
        "epoch": 0,
        "best": best,
    }
    return save_checkpoint(path, state)


@pytest.fixture(scope="module")
def kit(module_kit_dirs):
    """A tiny trained segdecnet++ run, hand-made segdecnet checkpoints and a mixed image folder."""
    base = module_kit_dirs["base"]
    mp = pytest.MonkeyPatch()
    try:
        import crackkit.run
        from crackkit.pipeline import train_run

        # Recording versions imports papermill and friends (seconds); not what this module tests.
        mp.setattr(crackkit.run, "environment_info", lambda device=None: {"device": device})
        run_dir = base / "runs" / "tiny"
        small = {"synthetic_train": 4, "synthetic_val": 2, "synthetic_test": 1}
        # amp off: on small images bf16 autocast costs more CPU than it saves
        cfg = make_config(
            {"epochs": 1, "architecture": "segdecnet++", "amp": "off", **small}, preset="tiny"
        )
        train_run(cfg, run_dir, progress=False)
        images = base / "images"
        images.mkdir()
        for i, (name, (h, w, mode)) in enumerate(IMAGES.items()):
            _write_image(images / name, h, w, mode, seed=i)
        yield {
            "base": base,
            "run": run_dir,
            "images": images,
            "segdecnet": _hand_made_checkpoint(base / "segdecnet.pt", "segdecnet"),
            "gray_model": _hand_made_checkpoint(base / "gray.pt", "segdecnet", 1, "off"),
        }
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def folder_report(kit):
    """predict_folder on the mixed folder with the trained run's chosen checkpoint."""
    return predict_folder(kit["images"], kit["run"], progress=False)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def test_outputs_have_each_images_size(folder_report):
    """Probability map, mask and overlay exist per image, at the image's own size."""
    assert [r.image.name for r in folder_report.results] == sorted(IMAGES)
    for r in folder_report.results:
        h, w, _ = IMAGES[r.image.name]
        stem = r.image.stem
        assert (r.height, r.width) == (h, w)
        assert r.prob_path == folder_report.out_dir / f"{stem}_prob.png"
        assert _read(r.prob_path).shape == (h, w)
        assert _read(r.mask_path).shape == (h, w)
        assert _read(r.overlay_path).shape == (h, w, 3)


def test_default_output_folder_is_under_the_run(kit, folder_report):
    """Without --out the results go to RUN/predictions/<folder name>-<timestamp>/."""
    out = folder_report.out_dir
    assert out.parent == kit["run"].resolve() / "predictions"
    assert out.name.startswith("images-")


def test_mask_is_probability_at_validated_threshold(folder_report):
    """The mask is 0/255 and equals prob >= threshold (up to the 8-bit rounding of the map)."""
    thr = folder_report.threshold_seg
    for r in folder_report.results:
        prob = _read(r.prob_path).astype(np.float64) / 255.0
        mask = _read(r.mask_path)
        assert set(np.unique(mask)) <= {0, 255}
        assert np.all(prob[mask == 255] >= thr - 0.5 / 255 - 1e-9)
        assert np.all(prob[mask == 0] <= thr + 0.5 / 255 + 1e-9)
        assert r.crack_pixels == int((mask == 255).sum())


def test_thresholds_are_the_validation_ones(kit, folder_report):
    """Segmentation threshold = validation 2-px best; decision threshold = validation best-F."""
    state = load_checkpoint(folder_report.checkpoint)
    metrics = state["best"]["metrics"]
    assert folder_report.checkpoint.name == "best.pt"
    assert folder_report.validated
    assert folder_report.threshold_seg == metrics["pixel_2px"]["threshold"]
    assert folder_report.threshold_dec == metrics["decision"]["threshold"]


def test_csv_has_one_row_per_image(folder_report):
    """predictions.csv holds the documented columns and one consistent row per image."""
    with open(folder_report.csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    assert [r["image"] for r in rows] == sorted(IMAGES)
    for row, res in zip(rows, folder_report.results, strict=True):
        h, w, _ = IMAGES[row["image"]]
        assert (int(row["height"]), int(row["width"])) == (h, w)
        score = float(row["score"])
        assert 0.0 <= score <= 1.0
        assert int(row["decision"]) == int(score >= folder_report.threshold_dec)
        assert int(row["crack_pixels"]) == res.crack_pixels
        assert float(row["threshold_seg"]) == folder_report.threshold_seg
        assert float(row["threshold_dec"]) == folder_report.threshold_dec


def test_predict_image_matches_folder_results(kit, folder_report):
    """Predictor.predict_image gives float32 maps in [0, 1] that agree with the written files."""
    predictor = Predictor.from_run(kit["run"])
    for r in folder_report.results[:2]:  # a_rgb.png ran batched with c_gray.bmp, b_photo alone
        with Image.open(r.image) as img:
            prob, score = predictor.predict_image(np.asarray(img))
        assert prob.dtype == np.float32 and prob.shape == (r.height, r.width)
        assert 0.0 <= prob.min() and prob.max() <= 1.0
        assert abs(score - r.score) < 0.02
        assert np.abs(np.rint(prob * 255) - _read(r.prob_path)).max() <= 8


@pytest.mark.parametrize("model", ["trained", "segdecnet", "gray_model"])
def test_every_architecture_gives_full_size_maps(kit, model):
    """segdecnet (1/8 output, upsampled) and segdecnet++ give maps of any input's own size."""
    if model == "trained":
        predictor = Predictor.from_run(kit["run"])
    else:
        with pytest.warns(PredictWarning):
            predictor = Predictor.from_checkpoint(kit[model])
    rng = np.random.default_rng(0)
    inputs = [
        rng.integers(0, 256, (37, 61, 3), dtype=np.uint8),
        rng.integers(0, 256, (33, 50), dtype=np.uint8),  # same padded size: one batch
        rng.integers(0, 256, (5, 3, 4), dtype=np.uint8),
    ]
    for image, (prob, score) in zip(inputs, predictor.predict_batch(inputs), strict=True):
        assert prob.shape == image.shape[:2]
        assert np.isfinite(prob).all() and 0.0 <= prob.min() and prob.max() <= 1.0
        assert 0.0 <= score <= 1.0


def test_batched_and_unpadded_predictions_are_exact(kit):
    """Batching changes nothing; a valid-size image is the model's own output, unpadded, its 1/8
    map upsampled x8 by nearest neighbour as the published network returns it."""
    with pytest.warns(PredictWarning):
        predictor = Predictor.from_checkpoint(kit["segdecnet"], device="cpu")
    predictor.placement = dataclasses.replace(predictor.placement, amp_dtype=None)
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (64, 136, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (59, 130, 3), dtype=np.uint8)  # same padded size as a
    batched = predictor.predict_batch([a, b])
    for image, (prob, score) in zip([a, b], batched, strict=True):
        single_prob, single_score = predictor.predict_image(image)
        np.testing.assert_allclose(prob, single_prob, atol=1e-5)
        assert abs(score - single_score) < 1e-5
    with torch.inference_mode():
        x = torch.from_numpy(a.transpose(2, 0, 1).copy())[None].float() / 255
        dec, seg = predictor.model(x)
        direct = torch.sigmoid(seg.repeat_interleave(8, 2).repeat_interleave(8, 3))[0, 0].numpy()
    np.testing.assert_allclose(batched[0][0], direct, atol=1e-5)
    assert abs(batched[0][1] - float(torch.sigmoid(dec[0, 0]))) < 1e-5


def test_unvalidated_checkpoint_falls_back_to_half(kit, tmp_path):
    """A checkpoint without validation warns and uses 0.5 for both thresholds."""
    images = tmp_path / "one"
    images.mkdir()
    _write_image(images / "z.tif", 37, 61)
    with pytest.warns(PredictWarning, match="no validated segmentation and decision threshold"):
        report = predict_folder(
            images, None, tmp_path / "out", checkpoint=kit["segdecnet"], progress=False
        )
    assert (report.threshold_seg, report.threshold_dec, report.validated) == (0.5, 0.5, False)
    assert report.architecture == "segdecnet"
    assert _read(report.results[0].mask_path).shape == (37, 61)


def test_checkpoint_file_alone_is_enough(kit, tmp_path):
    """A bare checkpoint path predicts, and its results land in the run's predictions folder."""
    images = tmp_path / "one"
    images.mkdir()
    _write_image(images / "x.png", 24, 30)
    ckpt = kit["run"] / "checkpoints" / "last.pt"
    report = predict_folder(images, checkpoint=ckpt, progress=False)
    assert report.out_dir.parent == kit["run"].resolve() / "predictions"
    assert report.checkpoint == ckpt and report.validated
    assert _read(report.results[0].prob_path).shape == (24, 30)


def test_last_checkpoint_uses_its_own_epochs_thresholds():
    """last.pt takes the thresholds validated at its epoch, not those of an earlier best epoch."""
    state = {
        "epoch": 3,
        "best": {
            "epoch": 1,
            "metrics": {"decision": {"threshold": 0.1}, "pixel_2px": {"threshold": 0.2}},
        },
        "history": [
            {"epoch": 1, "val_dec_threshold": 0.1, "val_threshold_2px": 0.2, "val_f1_2px": 0.5},
            {"epoch": 3, "val_dec_threshold": 0.7, "val_threshold_2px": 0.6, "val_f1_2px": 0.4},
        ],
    }

    def dec_and_2px(s):
        thresholds = validation_thresholds(s)
        return thresholds["decision"], thresholds["pixel_2px"]

    assert dec_and_2px(state) == (0.7, 0.6)
    assert dec_and_2px({**state, "epoch": 1}) == (0.1, 0.2)
    assert dec_and_2px({**state, "epoch": 2}) == (None, None)


def test_non_empty_output_folder_is_refused(kit, tmp_path):
    """An existing output folder is used only when empty: nothing is overwritten."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not empty"):
        predict_folder(kit["images"], kit["run"], out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_corrupt_images_are_named(kit, tmp_path):
    """A non-image and a truncated image each raise DatasetError naming the file."""
    images = tmp_path / "bad"
    images.mkdir()
    _write_image(images / "good.png", 24, 32)
    (images / "garbage.png").write_bytes(b"this is not a png")
    with pytest.raises(DatasetError, match="garbage.png"):
        predict_folder(images, kit["run"], tmp_path / "o1", progress=False)
    assert not (tmp_path / "o1").exists()
    (images / "garbage.png").unlink()
    whole = _write_image(tmp_path / "whole.png", 48, 64).read_bytes()
    (images / "truncated.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match="truncated.png"):
        predict_folder(images, kit["run"], tmp_path / "o2", progress=False)
    assert not (tmp_path / "o2" / "predictions.csv").exists()


def test_folders_without_images_are_refused(kit, tmp_path):
    """An empty folder, one of non-images only, or a missing folder raise DatasetError."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        predict_folder(tmp_path / "empty", kit["run"], progress=False)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="no images"):
        predict_folder(tmp_path / "docs", kit["run"], progress=False)
    with pytest.raises(DatasetError, match="does not exist"):
        predict_folder(tmp_path / "missing", kit["run"], progress=False)


def test_other_files_are_skipped_with_a_warning_and_stems_must_be_unique(kit, tmp_path):
    """Non-image files and subfolders are listed in a warning; a repeated stem is an error."""
    images = tmp_path / "mixed"
    (images / "sub").mkdir(parents=True)
    (images / "notes.txt").write_text("x")
    (images / ".hidden").write_text("x")
    _write_image(images / "only.png", 16, 16)
    with pytest.warns(PredictWarning, match="notes.txt, sub"):
        report = predict_folder(images, kit["run"], tmp_path / "o", progress=False)
    assert [p.name for p in report.skipped] == ["notes.txt", "sub"]
    assert len(report) == 1
    _write_image(images / "only.jpg", 16, 16)
    with pytest.raises(DatasetError, match="share the stem 'only'"):
        predict_folder(images, kit["run"], tmp_path / "o3", progress=False)


def test_cli_prints_the_output_folder_last(kit, tmp_path, capsys):
    """crackkit predict exits 0 and prints the output folder as its last line."""
    images = tmp_path / "cli"
    images.mkdir()
    _write_image(images / "y.bmp", 20, 28, "L")
    code = main(["predict", str(images), "--run", str(kit["run"]), "--device", "cpu"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    folder = Path(out[-1])
    assert (folder / "predictions.csv").is_file() and (folder / "y_prob.png").is_file()


@pytest.mark.parametrize("problem", ["missing run", "empty folder", "corrupt image", "bad ckpt"])
def test_cli_errors_exit_2_with_one_line(kit, tmp_path, capsys, problem):
    """Missing run, empty folder, corrupt image or damaged checkpoint: one stderr line, exit 2."""
    images = tmp_path / "imgs"
    images.mkdir()
    args = ["predict", str(images), "--run", str(kit["run"])]
    if problem == "missing run":
        _write_image(images / "ok.png", 16, 16)
        args[3] = str(tmp_path / "no-such-run")
    elif problem == "corrupt image":
        (images / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    elif problem == "bad ckpt":
        _write_image(images / "ok.png", 16, 16)
        (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
        args = ["predict", str(images), "--checkpoint", str(tmp_path / "bad.pt")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("crackkit: error:")
    if problem == "corrupt image":
        assert "broken.jpg" in err[0]


def test_missing_checkpoint_is_a_checkpoint_error(kit, tmp_path):
    """A run folder without checkpoints raises CheckpointError."""
    run = tmp_path / "untrained"
    run.mkdir()
    (run / "config.json").write_text((kit["run"] / "config.json").read_text())
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Predictor.from_run(run)
