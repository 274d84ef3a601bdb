"""Cut a prepared data set into tiles, for real crack-free samples.

Some data sets (CrackForest among them) hold no crack-free image: every image shows a crack, so the
decision head never sees a real negative. Most of a road photo is intact surface, though, and
:func:`tile_dataset` writes a tiled variant of any folder in the layout of
:mod:`crackkit.data.folder` whose crack-free tiles are such negatives.

Tiling (stride = tile size): each image is cut into tiles of ``H x W`` from its top-left corner;
along a side that is not a multiple of the tile, the last row (column) of tiles is aligned to the
image's far edge, so it overlaps its neighbour and every tile lies inside the image (a 100 px side
with 64 px tiles gives tiles at 0 and 36). Each tile of ``<stem>`` is ``<stem>_r<row>c<col>``
(tile indices from 0) and stays in its image's split: train, val and test keep their membership.

Classification, with ``margin`` m:

* positive: the tile's mask holds a crack pixel; written with its mask cut the same way;
* crack-free: no crack pixel of the whole image lies within m pixels of the tile (the tile grown
  by m pixels on every side, clipped to the image, holds none); written with an all-zero mask;
* ambiguous: no crack pixel inside, but one within m pixels outside; not written, counted as
  ``dropped`` in ``dataset.json``. A crack just outside a tile often reaches into it unlabelled
  (annotations are a pixel or two thin), so such a tile is no trustworthy negative.

Tiles are written as PNG (lossless: the pixels are the source's as decoded), masks as 0/255 PNG.
The result is built in a hidden sibling of ``dest`` and renamed into place only when everything
succeeded (:func:`crackkit.data.staging.finish_import`); its ``dataset.json`` records the name, the
counts, the source (folder and name), the tile size, margin and rule, the dropped tiles and the
source's license and citation.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from crackkit.data.folder import (
    SPLITS,
    DatasetError,
    read_image,
    read_mask,
    scan_split,
    write_sample,
)
from crackkit.data.staging import check_destination, finish_import, read_record
from crackkit.specs import check_input_size

_log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MARGIN",
    "check_margin",
    "check_tile",
    "classify_tile",
    "tile_dataset",
    "tile_positions",
    "tiled_name",
    "tiling_is_current",
    "write_tiles",
]

DEFAULT_MARGIN = 8
"""Pixels around a tile that must be crack-free for the tile to count as a negative."""


def check_tile(tile: Sequence[int]) -> tuple[int, int]:
    """Validate a tile size ``(H, W)`` against the networks' input rule.

    Raises:
        DatasetError: not two positive integers, or a size the networks cannot take (sides
            multiples of 8, ``floor(H/64) * floor(W/64) >= 2``); the message names the size.
    """
    try:
        height, width = tile
    except (TypeError, ValueError):
        raise DatasetError(f"tile {tile!r}: expected two integers (H, W)") from None
    if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in tile):
        raise DatasetError(f"tile {tile!r}: expected two integers (H, W)")
    height, width = int(height), int(width)
    try:
        check_input_size(height, width)
    except ValueError as err:
        raise DatasetError(f"tile {height}x{width} (HxW) refused: {err}") from None
    return height, width


def check_margin(margin: int) -> int:
    """Validate the margin (an integer >= 0).

    Raises:
        DatasetError: not an integer, or negative; the message names the value.
    """
    if not isinstance(margin, int | np.integer) or isinstance(margin, bool):
        raise DatasetError(f"margin {margin!r}: expected an integer number of pixels >= 0")
    if margin < 0:
        raise DatasetError(f"margin {margin}: must be >= 0 pixels")
    return int(margin)


def tiled_name(source_name: str, tile: Sequence[int]) -> str:
    """``("cfd", (160, 240))`` -> ``"cfd-tiles-160x240"``."""
    return f"{source_name}-tiles-{int(tile[0])}x{int(tile[1])}"


def tile_positions(length: int, size: int) -> list[int]:
    """Start offsets of the tiles along a side of ``length`` pixels.

    Stride ``size`` from 0; when ``length`` is not a multiple of ``size`` the last tile starts at
    ``length - size`` (aligned to the far edge). ``tile_positions(100, 64) == [0, 36]``.

    Raises:
        ValueError: ``size`` < 1 or larger than ``length``.
    """
    if size < 1 or size > length:
        raise ValueError(f"a tile of {size} px does not fit a side of {length} px")
    count = -(-length // size)
    return [min(i * size, length - size) for i in range(count)]


def classify_tile(mask: np.ndarray, top: int, left: int, tile: Sequence[int], margin: int) -> str:
    """``"positive"``, ``"negative"`` or ``"dropped"`` for the tile at ``(top, left)``.

    Args:
        mask: ``(H, W)`` bool mask of the whole image.
        top, left: the tile's top-left pixel.
        tile: ``(h, w)``.
        margin: pixels around the tile (clipped to the image) that must hold no crack for a
            crack-free tile to count as a negative.
    """
    h, w = int(tile[0]), int(tile[1])
    if mask[top : top + h, left : left + w].any():
        return "positive"
    grown = mask[max(0, top - margin) : top + h + margin, max(0, left - margin) : left + w + margin]
    return "dropped" if grown.any() else "negative"


def _tiling_rule(tile: tuple[int, int], margin: int) -> str:
    h, w = tile
    return (
        f"every image cut into tiles of {h}x{w} (HxW) at stride {h}x{w} from its top-left corner; "
        "along a side that is not a multiple of the tile the last row/column of tiles is aligned "
        "to the image's far edge (overlapping its neighbour), so every tile lies inside the image; "
        "stems <stem>_r<row>c<col>; each tile stays in its image's split. A tile is positive when "
        f"its mask holds a crack pixel, crack-free (all-zero mask) when the tile grown by {margin} "
        "px on every side (clipped to the image) holds no crack pixel, and dropped (not written) "
        "otherwise"
    )


def _refuse_nested(source: Path, dest: Path) -> None:
    src, dst = source.resolve(), dest.resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise DatasetError(
            f"{dest}: the tiled data set must lie outside its source {source} (and not contain "
            "it); choose another destination"
        )


def tiling_is_current(
    source_root: str | os.PathLike, dest: str | os.PathLike, tile: Sequence[int], margin: int
) -> bool:
    """Whether ``dest`` already holds this tiling of this very import of ``source_root``
    (same tile, margin, source folder and source ``created`` stamp)."""
    record = read_record(Path(dest))
    source = record.get("source")
    if not isinstance(source, dict):
        return False
    return (
        record.get("tile") == [int(tile[0]), int(tile[1])]
        and record.get("margin") == margin
        and source.get("path") == str(Path(source_root).resolve())
        and source.get("created") == read_record(Path(source_root)).get("created")
    )


def tile_dataset(
    source_root: str | os.PathLike,
    dest: str | os.PathLike,
    tile: Sequence[int],
    *,
    margin: int = DEFAULT_MARGIN,
    name: str | None = None,
    negatives_without_mask: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write the tiled variant of the prepared data set ``source_root`` into ``dest``.

    See the module docstring for the tiling and the positive / crack-free / dropped rule.

    Args:
        source_root: data set folder with ``train/``, optional ``val/``, ``test/``; read only.
        dest: the folder to create (e.g. ``data/processed/cfd-tiles-160x240``).
        tile: ``(H, W)`` of a tile; must be a valid network input (:func:`check_tile`) and fit
            every image.
        margin: pixels around a crack-free tile that must hold no crack (>= 0).
        name: data-set name recorded in ``dataset.json``; default ``<source name>-tiles-HxW``,
            the source name being its ``dataset.json``'s (else its folder's).
        negatives_without_mask: accept source images without a mask as crack-free.
        overwrite: replace an existing ``dest``.
        progress: show a progress bar.

    Returns:
        The record written as ``dest/dataset.json``.

    Raises:
        DatasetError: a bad tile size or margin, an image smaller than the tile, a source that
            breaks the layout, ``dest`` inside the source (or holding it), or an existing ``dest``
            without ``overwrite``.
    """
    source_root, dest = Path(source_root).expanduser(), Path(dest).expanduser()
    size = check_tile(tile)
    margin = check_margin(margin)
    if not source_root.is_dir():
        raise DatasetError(f"{source_root}: source data set folder does not exist")
    _refuse_nested(source_root, dest)
    check_destination(dest, overwrite, "another destination")
    present = [s for s in SPLITS if (source_root / s).is_dir()]
    if not present:
        raise DatasetError(
            f"{source_root}: no split folder ({'/'.join(SPLITS)}) inside; expected a prepared "
            "data set with images/ and masks/ in each split"
        )
    samples = {
        s: scan_split(source_root, s, negatives_without_mask=negatives_without_mask, check=False)
        for s in present
    }
    own = read_record(source_root)
    source_name = str(own.get("name") or source_root.name)
    name = name or tiled_name(source_name, size)
    h, w = size
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.importing-", dir=dest.parent))
    counts: dict[str, dict[str, int]] = {}
    dropped: dict[str, int] = {}
    try:
        total = sum(len(v) for v in samples.values())
        with tqdm(total=total, desc=name, unit="img", disable=not progress) as bar:
            for split in present:
                tally = {"positive": 0, "negative": 0, "dropped": 0}
                stems: set[str] = set()
                for sample in samples[split]:
                    image = read_image(sample.image)
                    height, width = image.shape[:2]
                    if height < h or width < w:
                        raise DatasetError(
                            f"{sample.image}: image is {height}x{width} (HxW), smaller than the "
                            f"tile {h}x{w}; choose a tile that fits every image"
                        )
                    if sample.mask is None:
                        mask = np.zeros((height, width), bool)
                    else:
                        mask = read_mask(sample.mask, shape=(height, width))
                    for row, top in enumerate(tile_positions(height, h)):
                        for col, left in enumerate(tile_positions(width, w)):
                            kind = classify_tile(mask, top, left, size, margin)
                            tally[kind] += 1
                            if kind == "dropped":
                                continue
                            stem = f"{sample.stem}_r{row}c{col}"
                            if stem in stems:
                                raise DatasetError(
                                    f"{sample.image}: tile stem {stem!r} is already taken in "
                                    f"{split}; rename the source image"
                                )
                            stems.add(stem)
                            write_sample(
                                staging,
                                split,
                                stem,
                                np.ascontiguousarray(image[top : top + h, left : left + w]),
                                np.ascontiguousarray(mask[top : top + h, left : left + w]),
                                image_ext=".png",
                            )
                    bar.update(1)
                if not stems:
                    raise DatasetError(
                        f"{source_root / split}: every tile of split {split!r} was dropped as "
                        f"ambiguous (margin {margin}); use a smaller margin or tile"
                    )
                counts[split] = {
                    "positives": tally["positive"],
                    "negatives": tally["negative"],
                    "sum": tally["positive"] + tally["negative"],
                }
                dropped[split] = tally["dropped"]
        record = {
            "name": name,
            "title": f"{own.get('title') or source_name}, tiles of {h}x{w}",
            "license": own.get("license"),
            "citation": own.get("citation"),
            "source": {
                "path": str(source_root.resolve()),
                "name": source_name,
                "created": own.get("created"),
            },
            "tile": [h, w],
            "margin": margin,
            "tiling": _tiling_rule(size, margin),
            "image_format": "png",
            "source_images": {s: len(v) for s, v in samples.items()},
            "counts": counts,
            "dropped": dropped,
            "dest": str(dest),
        }
        finish_import(staging, dest, record, counts, overwrite=overwrite, progress=progress)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return read_record(dest)


def write_tiles(
    source_root: str | os.PathLike,
    tile: Sequence[int],
    *,
    margin: int = DEFAULT_MARGIN,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Tile ``source_root`` into its sibling ``<source name>-tiles-HxW`` and print the counts and
    the folder (the ``--tiled-copy`` step of the importers' commands).

    A sibling that already holds this tiling of this import (:func:`tiling_is_current`) is kept;
    any other existing one needs ``overwrite``.

    Returns:
        The tiled folder.
    """
    source_root = Path(source_root)
    size = check_tile(tile)
    name = tiled_name(str(read_record(source_root).get("name") or source_root.name), size)
    dest = source_root.parent / name
    if not overwrite and tiling_is_current(source_root, dest, size, margin):
        _log.info(f"{dest} already holds this tiling; nothing to do")
        record = read_record(dest)
    else:
        record = tile_dataset(
            source_root, dest, size, margin=margin, overwrite=overwrite, progress=progress
        )
    for split, c in record.get("counts", {}).items():
        _log.info(
            f"  {split}: {c['sum']} tiles of {size[0]}x{size[1]} ({c['positives']} with cracks, "
            f"{c['negatives']} crack-free); {record.get('dropped', {}).get(split, 0)} ambiguous "
            f"tiles dropped (margin {record.get('margin')})"
        )
    _log.info(str(dest))
    return dest
