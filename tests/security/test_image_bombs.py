"""A photo of a few hundred bytes that declares 100 million pixels is refused from its header,
naming the file, in prediction and in training; the limit is a parameter that fits a 50-megapixel
photo by default."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackkit.apply import predict_folder
from crackkit.cli import main
from crackkit.config import ConfigError, make_config
from crackkit.data.folder import DatasetError, image_size, scan_split, write_sample
from crackkit.pipeline import prepare
from crackkit.specs import MAX_IMAGE_PIXELS


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header_bomb(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width x height`` RGB pixels, with one row of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + bytes(3 * min(width, 64)))
    body = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def test_default_fits_a_50_megapixel_photo_not_100():
    """The default limit lies between a 50-megapixel camera (8688 x 5792) and 10000 x 10000."""
    assert 8688 * 5792 <= MAX_IMAGE_PIXELS < 10_000 * 10_000
    assert make_config().max_image_pixels == MAX_IMAGE_PIXELS


def test_header_is_read_not_the_pixels(tmp_path):
    """A 50-megapixel header passes, a 100-megapixel one is refused naming file and parameters."""
    ok = header_bomb(tmp_path / "ok.png", 8688, 5792)
    assert image_size(ok, MAX_IMAGE_PIXELS) == (5792, 8688)
    bomb = header_bomb(tmp_path / "bomb.png", 10_000, 10_000)
    assert bomb.stat().st_size < 1024
    with pytest.raises(DatasetError, match="bomb.png: 10000x10000 is 100.0 megapixels") as err:
        image_size(bomb, MAX_IMAGE_PIXELS)
    assert "max_image_pixels" in str(err.value) and "--max-pixels" in str(err.value)


def test_predict_refuses_at_once_and_writes_nothing(tmp_path, capsys, make_run, photo):
    """crackkit predict on a folder holding the bomb: exit 2 in seconds, one line, no output."""
    run = make_run(tmp_path / "run")
    photo(tmp_path / "photos" / "a.png")
    header_bomb(tmp_path / "photos" / "b.png", 10_000, 10_000)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    code = main(["predict", str(tmp_path / "photos"), "--run", str(run), "--out", str(out)])
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and seconds < 60
    assert len(err) == 1 and "b.png: 10000x10000 is 100.0 megapixels" in err[0], err
    assert not out.exists()
    with pytest.raises(DatasetError, match="b.png"):
        predict_folder(tmp_path / "photos", run, out, progress=False, max_pixels=10_000)
    with pytest.raises(ConfigError, match="max_pixels"):
        predict_folder(tmp_path / "photos", run, out, progress=False, max_pixels=0)


def test_predict_limit_is_a_parameter(tmp_path, make_run, photo):
    """--max-pixels / max_pixels lowers (or raises) the limit."""
    run = make_run(tmp_path / "run")
    photo(tmp_path / "photos" / "a.png", 64, 128)
    with pytest.raises(DatasetError, match=r"a.png: 128x64 is 0.0 megapixels, more than .* 8,000"):
        predict_folder(tmp_path / "photos", run, tmp_path / "o1", progress=False, max_pixels=8000)
    report = predict_folder(tmp_path / "photos", run, tmp_path / "o2", progress=False)
    assert len(report) == 1
    argv = ["predict", str(tmp_path / "photos"), "--run", str(run), "--out", str(tmp_path / "o3")]
    assert main([*argv, "--max-pixels", "8000"]) == 2


def _data_set(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for i in range(2):
            image = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
            mask = np.zeros((64, 128), bool)
            mask[30:32] = i == 0
            write_sample(root, split, f"{split}{i}", image, mask, image_ext=".png")
    return root


def test_training_refuses_the_bomb_naming_it(tmp_path, kit_dirs):
    """A training image declaring 100 megapixels stops prepare() (every run's first step) naming
    the file; max_image_pixels raises the limit."""
    root = _data_set(tmp_path / "set")
    bomb = root / "train" / "images" / "train1.png"
    header_bomb(bomb, 10_000, 10_000)
    cfg = make_config({"dataset": str(root)}, preset="tiny")
    with pytest.raises(DatasetError, match=r"train1.png: 10000x10000 is 100.0 megapixels"):
        prepare(cfg, progress=False)
    with pytest.raises(DatasetError, match="train1.png"):
        scan_split(root, "train", max_pixels=cfg.max_image_pixels)
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(bomb)
    small = cfg.replace(max_image_pixels=100)
    with pytest.raises(DatasetError, match="more than the limit of 100 pixels"):
        prepare(small, progress=False)
    assert prepare(cfg, progress=False).summary["train"]["sum"] == 2


def test_run_parameter_refuses_bad_limits():
    """max_image_pixels is a run parameter: a whole number >= 1."""
    with pytest.raises(ConfigError, match="max_image_pixels"):
        make_config({"max_image_pixels": 0})
    with pytest.raises(ConfigError, match="max_image_pixels"):
        make_config({"max_image_pixels": "inf"})
