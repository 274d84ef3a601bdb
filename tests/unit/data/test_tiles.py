"""Tiling a prepared data set: positive, crack-free and dropped tiles, stems, splits, record.

The toy set has 128x256 (HxW) images cut into 64x128 tiles, a 2x2 grid per image::

    r0c0 rows 0-63,   cols 0-127    r0c1 rows 0-63,   cols 128-255
    r1c0 rows 64-127, cols 0-127    r1c1 rows 64-127, cols 128-255

* train/a: a crack down column 40 (rows 10-120): r0c0, r1c0 positive; r0c1, r1c1 crack-free
  (the crack is 88 px away).
* train/b: one crack pixel at (30, 125), inside r0c0 and 3 px left of r0c1: r0c0 positive, r0c1
  dropped for a margin >= 3 (crack-free for a margin <= 2), r1c0 (34 rows away) and r1c1
  crack-free.
* val/c: an all-zero mask: four crack-free tiles.
* test/d: one crack pixel in the bottom-right corner (127, 255): r1c1 positive, the rest
  crack-free (the corner is 64 rows from r0c1 and 128 columns from r1c0).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crackkit.cli import main as cli_main
from crackkit.data.folder import DatasetError, read_image, read_mask, scan_split, write_sample
from crackkit.data.tiles import (
    check_tile,
    classify_tile,
    tile_dataset,
    tile_positions,
    tiling_is_current,
)

H, W = 128, 256
TILE = (64, 128)
QUIET = {"progress": False}
LICENSE, CITATION = "toy license", "A. Author, Toy cracks, 2024"


def _image(seed: int, shape=(H, W)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _masks() -> dict[tuple[str, str], np.ndarray]:
    a = np.zeros((H, W), bool)
    a[10:121, 40] = True
    b = np.zeros((H, W), bool)
    b[30, 125] = True
    c = np.zeros((H, W), bool)
    d = np.zeros((H, W), bool)
    d[H - 1, W - 1] = True
    return {("train", "a"): a, ("train", "b"): b, ("val", "c"): c, ("test", "d"): d}


def _make_set(root: Path, record: dict | None = None) -> Path:
    for seed, ((split, stem), mask) in enumerate(_masks().items()):
        write_sample(root, split, stem, _image(seed), mask, image_ext=".png")
    if record is not None:
        (root / "dataset.json").write_text(json.dumps(record))
    return root


@pytest.fixture
def toy(tmp_path) -> Path:
    return _make_set(
        tmp_path / "toy",
        {"name": "toy", "license": LICENSE, "citation": CITATION, "created": "2024-01-01"},
    )


def _stems(root: Path, split: str) -> list[str]:
    return [s.stem for s in scan_split(root, split)]


def test_tile_positions_align_the_last_tile_to_the_far_edge():
    assert tile_positions(128, 64) == [0, 64]
    assert tile_positions(64, 64) == [0]
    assert tile_positions(100, 64) == [0, 36]
    assert tile_positions(136, 64) == [0, 64, 72]
    with pytest.raises(ValueError, match="does not fit"):
        tile_positions(63, 64)


def test_classify_tile_margin_boundary():
    """A crack pixel 3 px outside the tile drops it for margin 3, not for margin 2."""
    mask = _masks()[("train", "b")]
    assert classify_tile(mask, 0, 0, TILE, 8) == "positive"
    assert classify_tile(mask, 0, 128, TILE, 8) == "dropped"
    assert classify_tile(mask, 0, 128, TILE, 3) == "dropped"
    assert classify_tile(mask, 0, 128, TILE, 2) == "negative"
    assert classify_tile(mask, 0, 128, TILE, 0) == "negative"
    assert classify_tile(mask, 64, 0, TILE, 8) == "negative"


def test_tiles_positive_crack_free_dropped_and_stems(toy, tmp_path):
    dest = tmp_path / "out" / "toy-tiles"
    record = tile_dataset(toy, dest, TILE, **QUIET)
    assert _stems(dest, "train") == [
        "a_r0c0",
        "a_r0c1",
        "a_r1c0",
        "a_r1c1",
        "b_r0c0",
        "b_r1c0",
        "b_r1c1",
    ]  # b_r0c1 dropped: a crack pixel 3 px to its left
    assert _stems(dest, "val") == ["c_r0c0", "c_r0c1", "c_r1c0", "c_r1c1"]
    assert _stems(dest, "test") == ["d_r0c0", "d_r0c1", "d_r1c0", "d_r1c1"]
    positives = {
        split: sorted(s.stem for s in scan_split(dest, split) if s.positive)
        for split in ("train", "val", "test")
    }
    assert positives == {
        "train": ["a_r0c0", "a_r1c0", "b_r0c0"],
        "val": [],
        "test": ["d_r1c1"],
    }
    expected_counts = {
        "train": {"positives": 3, "negatives": 4, "sum": 7},
        "val": {"positives": 0, "negatives": 4, "sum": 4},
        "test": {"positives": 1, "negatives": 3, "sum": 4},
    }
    on_disk = json.loads((dest / "dataset.json").read_text())
    assert on_disk == record
    assert record["counts"] == expected_counts
    assert record["dropped"] == {"train": 1, "val": 0, "test": 0}
    assert record["name"] == "toy-tiles-64x128"
    assert record["tile"] == [64, 128] and record["margin"] == 8
    assert "far edge" in record["tiling"] and "8 px" in record["tiling"]
    assert record["license"] == LICENSE and record["citation"] == CITATION
    assert record["source"] == {
        "path": str(toy.resolve()),
        "name": "toy",
        "created": "2024-01-01",
    }
    assert record["source_images"] == {"train": 2, "val": 1, "test": 1}
    assert sorted(p.name for p in dest.parent.iterdir()) == ["toy-tiles"]  # no staging left


def test_tile_pixels_and_masks_are_the_source_crops(toy, tmp_path):
    dest = tmp_path / "tiles"
    tile_dataset(toy, dest, TILE, **QUIET)
    source = read_image(toy / "train" / "images" / "a.png")
    mask_a = _masks()[("train", "a")]
    for row, col in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        top, left = 64 * row, 128 * col
        stem = f"a_r{row}c{col}"
        np.testing.assert_array_equal(
            read_image(dest / "train" / "images" / f"{stem}.png"),
            source[top : top + 64, left : left + 128],
        )
        tile_mask = read_mask(dest / "train" / "masks" / f"{stem}.png")
        np.testing.assert_array_equal(tile_mask, mask_a[top : top + 64, left : left + 128])
    assert read_mask(dest / "train" / "masks" / "a_r0c0.png")[10:, 40].all()
    assert read_mask(dest / "train" / "masks" / "a_r0c0.png").sum() == 54  # rows 10-63
    assert read_mask(dest / "train" / "masks" / "b_r0c0.png").sum() == 1
    assert read_mask(dest / "train" / "masks" / "b_r0c0.png")[30, 125]
    assert not read_mask(dest / "test" / "masks" / "d_r0c0.png").any()
    assert read_mask(dest / "test" / "masks" / "d_r1c1.png")[63, 127]


def test_small_margin_keeps_the_near_tile_and_zero_margin_is_allowed(toy, tmp_path):
    record = tile_dataset(toy, tmp_path / "m2", TILE, margin=2, name="custom", **QUIET)
    assert record["name"] == "custom"
    assert record["dropped"] == {"train": 0, "val": 0, "test": 0}
    assert record["counts"]["train"] == {"positives": 3, "negatives": 5, "sum": 8}
    assert "b_r0c1" in _stems(tmp_path / "m2", "train")
    assert not read_mask(tmp_path / "m2" / "train" / "masks" / "b_r0c1.png").any()
    assert tile_dataset(toy, tmp_path / "m0", TILE, margin=0, **QUIET)["margin"] == 0


def test_far_edge_tiles_of_a_size_that_is_not_a_multiple(tmp_path):
    """A 136x264 image gives 3x3 tiles; the last row and column start at 72 and 136."""
    src = tmp_path / "odd"
    image, mask = _image(7, (136, 264)), np.zeros((136, 264), bool)
    mask[135, 0] = True  # only in the last row of tiles (rows 72-135), column 0
    write_sample(src, "train", "x", image, mask, image_ext=".png")
    write_sample(src, "test", "y", image, np.zeros_like(mask), image_ext=".png")
    dest = tmp_path / "odd-tiles"
    record = tile_dataset(src, dest, TILE, margin=0, **QUIET)
    assert record["name"] == "odd-tiles-64x128"  # no source dataset.json: the folder's name
    assert record["license"] is None and record["source"]["name"] == "odd"
    assert _stems(dest, "train") == [f"x_r{r}c{c}" for r in range(3) for c in range(3)]
    assert record["counts"]["train"] == {"positives": 1, "negatives": 8, "sum": 9}
    assert "val" not in record["counts"] and not (dest / "val").exists()
    np.testing.assert_array_equal(
        read_image(dest / "train" / "images" / "x_r2c2.png"), image[72:136, 136:264]
    )
    assert read_mask(dest / "train" / "masks" / "x_r2c0.png")[63, 0]
    # with margin 8 the middle row's first tile (rows 64-127) sees the pixel at row 135
    record = tile_dataset(src, tmp_path / "odd8", TILE, **QUIET)
    assert record["dropped"]["train"] == 1 and "x_r1c0" not in _stems(tmp_path / "odd8", "train")


@pytest.mark.parametrize(
    ("tile", "message"),
    [
        ((64, 64), r"tile 64x64 .*floor\(H/64\) \* floor\(W/64\) >= 2"),
        ((60, 128), r"tile 60x128 .*multiples of 8"),
        ((64, 100), r"tile 64x100 .*multiples of 8"),
        ((0, 128), r"tile 0x128"),
        ((64,), r"tile \(64,\): expected two integers"),
        ((64.0, 128), r"expected two integers"),
    ],
)
def test_bad_tile_sizes_refused(toy, tmp_path, tile, message):
    with pytest.raises(DatasetError, match=message):
        tile_dataset(toy, tmp_path / "bad", tile, **QUIET)
    assert not (tmp_path / "bad").exists()


def test_tile_larger_than_the_images_and_negative_margin_refused(toy, tmp_path):
    with pytest.raises(DatasetError, match=r"a\.png: image is 128x256 .*smaller than the tile"):
        tile_dataset(toy, tmp_path / "big", (256, 256), **QUIET)
    with pytest.raises(DatasetError, match="margin -1"):
        tile_dataset(toy, tmp_path / "neg", TILE, margin=-1, **QUIET)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]  # no staging left behind
    assert check_tile([64, 128]) == (64, 128)


def test_existing_destination_refused_without_overwrite(toy, tmp_path):
    dest = tmp_path / "tiles"
    tile_dataset(toy, dest, TILE, **QUIET)
    marker = dest / "marker"
    marker.write_text("old")
    with pytest.raises(DatasetError, match="already exists.*overwrite"):
        tile_dataset(toy, dest, TILE, **QUIET)
    assert marker.exists()
    tile_dataset(toy, dest, TILE, margin=2, overwrite=True, **QUIET)
    assert not marker.exists() and json.loads((dest / "dataset.json").read_text())["margin"] == 2
    assert tiling_is_current(toy, dest, TILE, 2) and not tiling_is_current(toy, dest, TILE, 8)


def test_destination_inside_or_equal_to_the_source_refused(toy):
    for dest in (toy, toy / "tiles", toy.parent):
        with pytest.raises(DatasetError, match="outside its source"):
            tile_dataset(toy, dest, TILE, overwrite=True, **QUIET)
    assert _stems(toy, "train") == ["a", "b"]


def _cli(argv: list[str]) -> int:
    """``crackkit data cfd ARGV``: its exit status, errors printed in one line."""
    return cli_main(["data", "cfd", *argv])


def test_cli_tiles_reuse_an_existing_cfd_import(tmp_path, capsys):
    """`crackkit data cfd --tiles H W` tiles an existing processed/cfd instead of refusing it."""
    root = tmp_path / "data"
    _make_set(
        root / "processed" / "cfd",
        {"name": "cfd", "crack_values": [2, 4], "license": LICENSE, "created": "t0"},
    )
    argv = ["--root", str(root), "--quiet", "--tiled-copy", "64", "128"]
    assert _cli(argv) == 0
    out = capsys.readouterr().out
    dest = root / "processed" / "cfd-tiles-64x128"
    assert "reusing it" in out and out.strip().endswith(str(dest))
    assert "train: 7 tiles of 64x128 (3 with cracks, 4 crack-free); 1 ambiguous" in out
    assert json.loads((dest / "dataset.json").read_text())["license"] == LICENSE
    assert _cli(argv) == 0  # the same tiling again: kept
    assert "already holds this tiling" in capsys.readouterr().out
    assert _cli([*argv, "--tile-margin", "2"]) == 2  # another tiling needs --overwrite
    assert "already exists" in capsys.readouterr().err
    assert _cli([*argv, "--crack-values", "2"]) == 2
    assert "imported with crack values [2, 4], not [2]" in capsys.readouterr().err
    assert _cli(["--root", str(root), "--tiled-copy", "64", "64"]) == 2
    assert "tile 64x64" in capsys.readouterr().err
    assert _cli(["--root", str(root), "--tile-margin", "4"]) == 2
    assert "--tile-margin needs --tiled-copy" in capsys.readouterr().err
    assert _cli(["--root", str(root), "--tiled-copy", "64", "128", "--tile-margin", "-1"]) == 2
    assert "margin -1" in capsys.readouterr().err
