"""Import CRACK500 (or a mirror of it) into the processed layout of :mod:`crackkit.data.folder`.

CRACK500 (Zhang et al., ICIP 2016; Yang et al., T-ITS 2019) is shared by its authors from a Google
Drive folder linked at :data:`~crackkit.data.download.CRACK500_HOMEPAGE`. Copies in the wild come in
three layouts, each possibly under one or two extra top folders (``CRACK500/...``):

* ``crops``: ``traincrop/``, ``valcrop/``, ``testcrop/``, each holding ``X.jpg`` and its mask
  ``X.png`` side by side. These 640x360 crops (1896/348/1124) are what the seed run trained on.
* ``full``: ``traindata/``, ``valdata/``, ``testdata/`` with the full-size ``X.jpg`` and
  ``X_mask.png`` side by side.
* ``mirror``: ``{train,val,test}/{images,masks}``, a mask having its image's stem.

When crops and full-size images are both present the crops become the splits; the full-size images
only serve ``negatives_from_full``, which cuts crack-free tiles out of them.

The import never touches the archive. It extracts into a temporary folder (refusing absolute paths,
``..`` and links), pairs and checks every image and mask, builds the result in a hidden sibling
folder and renames it into place only when everything succeeded. ``dest/dataset.json`` records the
source archive and its SHA-256, the layout, the counts and any warnings.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from crackkit.data.download import (
    CRACK500,
    CRACK500_HOMEPAGE,
    DownloadError,
    download,
    sha256_file,
)
from crackkit.data.folder import (
    IMAGE_EXTENSIONS,
    SPLITS,
    DatasetError,
    image_size,
    read_image,
    read_mask,
    split_counts,
    write_sample,
)

__all__ = [
    "CRACK500_COUNTS",
    "CRACK500_TILE",
    "LAYOUTS",
    "ImportReport",
    "add_cli_arguments",
    "crack_free_tiles",
    "detect_layout",
    "extract_archive",
    "fetch_crack500",
    "import_archive",
    "import_folder",
    "main_from_args",
]

CRACK500_COUNTS: dict[str, int] = {"train": 1896, "val": 348, "test": 1124}
"""Images per split of the authors' crops, as used by the seed run."""

CRACK500_TILE: tuple[int, int] = (360, 640)
"""(height, width) of the authors' crops, the default size of negative tiles."""

_CROP_DIRS = {"train": "traincrop", "val": "valcrop", "test": "testcrop"}
_FULL_DIRS = {"train": "traindata", "val": "valdata", "test": "testdata"}
LAYOUTS: dict[str, str] = {
    "crops": "traincrop/, valcrop/, testcrop/ holding X.jpg with its mask X.png",
    "full": "traindata/, valdata/, testdata/ holding X.jpg with its mask X_mask.png",
    "mirror": "train/, val/, test/ each holding images/ and masks/ (mask named like its image)",
}
_SEARCH_DEPTH = 3
_JUNK_NAMES = frozenset({"__macosx", ".ds_store", "thumbs.db", "desktop.ini"})
_IMAGE_EXTS = frozenset(IMAGE_EXTENSIONS)


@dataclass
class ImportReport:
    """What an import wrote.

    Attributes:
        name: data-set name, the folder under ``dest_root``.
        layout: detected layout, one of :data:`LAYOUTS`.
        dest: folder holding ``train/``, ``val/``, ``test/`` and ``dataset.json``.
        counts: ``{split: {"positives", "negatives", "sum"}}`` over everything written.
        added_negatives: ``{split: {"full_tiles", "extra"}}`` negatives added to the layout's own.
        binarised_masks: masks of the layout that held values other than 0 and 255 (JPEG noise)
            and were thresholded at 127.
        warnings: count mismatches and skipped files, also printed.
        source: archive or folder imported.
        source_sha256: SHA-256 of the archive (None for a folder).
        negatives_from_full: whether full-size tiles were added, and ``tile`` their (H, W).
    """

    name: str
    layout: str
    dest: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    added_negatives: dict[str, dict[str, int]] = field(default_factory=dict)
    binarised_masks: int = 0
    warnings: list[str] = field(default_factory=list)
    source: str | None = None
    source_sha256: str | None = None
    negatives_from_full: bool = False
    tile: tuple[int, int] | None = None

    def to_dict(self) -> dict:
        """JSON-ready view, the content of ``dataset.json``."""
        return {
            "name": self.name,
            "source": {"path": self.source, "sha256": self.source_sha256},
            "layout": self.layout,
            "counts": self.counts,
            "added_negatives": self.added_negatives,
            "binarised_masks": self.binarised_masks,
            "negatives_from_full": self.negatives_from_full,
            "tile": list(self.tile) if self.tile else None,
            "warnings": list(self.warnings),
            "dest": str(self.dest),
        }


@dataclass(frozen=True)
class _Pair:
    image: Path
    mask: Path

    @property
    def stem(self) -> str:
        return self.image.stem


@dataclass(frozen=True)
class _Layout:
    name: str
    base: Path
    splits: dict[str, Path]
    full: dict[str, Path]


# ---------------------------------------------------------------------------------------------
# Safe extraction


def _is_junk(parts: tuple[str, ...]) -> bool:
    return any(p.lower() in _JUNK_NAMES for p in parts) or parts[-1].startswith("._")


def _member_parts(archive: Path, name: str) -> tuple[str, ...]:
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        raise _unsafe(archive, name, "absolute path")
    parts = tuple(p for p in PurePosixPath(clean).parts if p not in ("", "."))
    if ".." in parts:
        raise _unsafe(archive, name, "'..' would write outside the extraction folder")
    return parts


def _unsafe(archive: Path, name: str, why: str) -> DatasetError:
    return DatasetError(
        f"{archive}: refusing archive member {name!r} ({why}); accepted: regular files and "
        "folders with relative paths inside the archive, no links"
    )


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Extract a zip or tar (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) archive into ``dest``.

    Every member is checked before anything is written: absolute paths, ``..``, symbolic and hard
    links and device files are refused. macOS and Windows clutter (``__MACOSX``, ``._*``,
    ``.DS_Store``, ``Thumbs.db``) is skipped.

    Raises:
        DatasetError: not an archive, or an unsafe member.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DatasetError(f"{archive}: archive not found")
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, dest)
    elif tarfile.is_tarfile(archive):
        _extract_tar(archive, dest)
    else:
        with open(archive, "rb") as handle:
            head = handle.read(512).lstrip().lower()
        hint = (
            " It is a web page: the host served HTML instead of the file; download it by hand."
            if head.startswith((b"<!doctype html", b"<html"))
            else ""
        )
        raise DatasetError(
            f"{archive}: not a zip or tar archive; accepted: .zip, .tar, .tar.gz, .tgz, "
            f".tar.bz2, .tar.xz.{hint}"
        )


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        plan = []
        for info in zf.infolist():
            parts = _member_parts(archive, info.filename)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise _unsafe(archive, info.filename, "symbolic link")
            if parts and not _is_junk(parts):
                plan.append((info, parts))
        for info, parts in plan:
            target = dest.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        plan = []
        for member in tf.getmembers():
            parts = _member_parts(archive, member.name)
            if member.issym() or member.islnk():
                raise _unsafe(archive, member.name, "link")
            if not (member.isfile() or member.isdir()):
                raise _unsafe(archive, member.name, "device, pipe or other special file")
            if parts and not _is_junk(parts):
                plan.append((member, parts))
        for member, parts in plan:
            target = dest.joinpath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(member)
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


# ---------------------------------------------------------------------------------------------
# Layout detection and pairing


def _subdirs(folder: Path) -> dict[str, Path]:
    return {
        p.name.lower(): p
        for p in sorted(folder.iterdir())
        if p.is_dir() and not p.name.startswith(".") and p.name.lower() not in _JUNK_NAMES
    }


def _find_base(root: Path, names: Mapping[str, str], accept: Callable[[Path], bool]) -> Path | None:
    """Shallowest folder under ``root`` with a sub-folder named like a value of ``names``."""
    level = [root]
    for _ in range(_SEARCH_DEPTH + 1):
        for folder in level:
            children = _subdirs(folder)
            if any(n in children and accept(children[n]) for n in names.values()):
                return folder
        level = [child for folder in level for child in _subdirs(folder).values()]
    return None


def _split_folders(base: Path, names: Mapping[str, str]) -> dict[str, Path]:
    children = _subdirs(base)
    return {split: children[n] for split, n in names.items() if n in children}


def detect_layout(root: str | os.PathLike) -> _Layout:
    """Find which of :data:`LAYOUTS` ``root`` holds, looking up to three folders deep.

    Raises:
        DatasetError: no accepted layout; the message lists what was found.
    """
    root = Path(root)
    crops = _find_base(root, _CROP_DIRS, lambda p: True)
    full = _find_base(root, _FULL_DIRS, lambda p: True)
    mirror = _find_base(
        root, {s: s for s in SPLITS}, lambda p: (p / "images").is_dir() or (p / "Images").is_dir()
    )
    full_dirs = _split_folders(full, _FULL_DIRS) if full else {}
    if crops:
        return _Layout("crops", crops, _split_folders(crops, _CROP_DIRS), full_dirs)
    if mirror:
        return _Layout("mirror", mirror, _split_folders(mirror, {s: s for s in SPLITS}), full_dirs)
    if full:
        return _Layout("full", full, full_dirs, full_dirs)
    raise DatasetError(
        f"{root}: no CRACK500 layout recognised; top-level entries: {_describe(root)}. Accepted "
        "layouts (optionally under one or more extra folders such as CRACK500/): "
        + "; ".join(f"{name}: {text}" for name, text in LAYOUTS.items())
    )


def _describe(root: Path) -> str:
    entries = [p for p in sorted(root.iterdir()) if p.name.lower() not in _JUNK_NAMES]
    names = [p.name + ("/" if p.is_dir() else "") for p in entries[:20]]
    if len(entries) > 20:
        names.append(f"... ({len(entries) - 20} more)")
    if len(entries) == 1 and entries[0].is_dir():
        inner = [p.name + ("/" if p.is_dir() else "") for p in sorted(entries[0].iterdir())[:20]]
        names = [f"{names[0]} (holding {', '.join(inner) or 'nothing'})"]
    return ", ".join(names) or "none"


def _image_files(folder: Path, warnings: list[str]) -> list[Path]:
    files, ignored = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name.lower() in _JUNK_NAMES:
            continue
        if path.is_file() and path.suffix.lower() in _IMAGE_EXTS:
            files.append(path)
        else:
            ignored.append(path.name)
    if ignored:
        more = f" and {len(ignored) - 5} more" if len(ignored) > 5 else ""
        shown = ", ".join(ignored[:5]) + more
        warnings.append(f"{folder}: ignored {len(ignored)} non-image entries: {shown}")
    return files


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in files:
        if path.stem in found:
            raise DatasetError(
                f"{path} and {found[path.stem]} share the stem {path.stem!r} in {folder}; "
                "keep exactly one image and one mask per stem"
            )
        found[path.stem] = path
    return found


def _missing_error(missing: list[tuple[Path, str]]) -> DatasetError:
    shown = "; ".join(f"{image} (expected {expected})" for image, expected in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return DatasetError(f"{len(missing)} image(s) without a mask: {shown}{more}")


def _pairs_side_by_side(folder: Path, mask_suffix: str, warnings: list[str]) -> list[_Pair]:
    """Pair ``X.<jpg>`` with ``X<mask_suffix>.png`` (or another image extension) in one folder."""
    files = _image_files(folder, warnings)
    if mask_suffix:
        masks = _by_stem([p for p in files if p.stem.endswith(mask_suffix)], folder)
        images = _by_stem([p for p in files if not p.stem.endswith(mask_suffix)], folder)
        mask_of = {stem[: -len(mask_suffix)]: path for stem, path in masks.items()}
    else:
        images = _by_stem([p for p in files if p.suffix.lower() in (".jpg", ".jpeg")], folder)
        mask_of = _by_stem([p for p in files if p.suffix.lower() not in (".jpg", ".jpeg")], folder)
    missing = [
        (path, f"{stem}{mask_suffix}.png") for stem, path in images.items() if stem not in mask_of
    ]
    if missing:
        raise _missing_error(missing)
    orphans = sorted(set(mask_of) - set(images))
    if orphans:
        warnings.append(
            f"{folder}: ignored {len(orphans)} mask(s) without an image, e.g. "
            f"{mask_of[orphans[0]].name}"
        )
    return [_Pair(images[stem], mask_of[stem]) for stem in sorted(images)]


def _pairs_mirror(split_dir: Path, warnings: list[str]) -> list[_Pair]:
    children = {p.name.lower(): p for p in split_dir.iterdir() if p.is_dir()}
    if "images" not in children or "masks" not in children:
        raise DatasetError(f"{split_dir}: expected images/ and masks/ folders inside")
    images = _by_stem(_image_files(children["images"], warnings), children["images"])
    masks = _by_stem(_image_files(children["masks"], warnings), children["masks"])
    mask_of = {}
    for stem, path in masks.items():
        key = stem if stem in images else stem.removesuffix("_mask")
        mask_of.setdefault(key, path)
    missing = [
        (path, f"{children['masks'] / stem}.png")
        for stem, path in images.items()
        if stem not in mask_of
    ]
    if missing:
        raise _missing_error(missing)
    return [_Pair(images[stem], mask_of[stem]) for stem in sorted(images)]


def _layout_pairs(layout: _Layout, warnings: list[str]) -> dict[str, list[_Pair]]:
    pairs = {}
    names = {"crops": _CROP_DIRS, "full": _FULL_DIRS, "mirror": {s: s for s in SPLITS}}
    for split in SPLITS:
        folder = layout.splits.get(split)
        if folder is None:
            raise DatasetError(
                f"{layout.base}: split {split!r} is empty: no folder "
                f"{names[layout.name][split]}/ found (layout {layout.name!r}: "
                f"{LAYOUTS[layout.name]})"
            )
        if layout.name == "mirror":
            found = _pairs_mirror(folder, warnings)
        else:
            found = _pairs_side_by_side(folder, "_mask" if layout.name == "full" else "", warnings)
        if not found:
            raise DatasetError(f"{folder}: split {split!r} is empty (no image files)")
        pairs[split] = found
    return pairs


# ---------------------------------------------------------------------------------------------
# Checking and writing


def _has_grey_values(path: Path) -> bool:
    """Whether a mask file stores any value other than 0 and 255 (JPEG fringes, anti-aliasing)."""
    with Image.open(path) as img:
        values = np.asarray(img.convert("RGBA") if img.mode in ("P", "PA") else img)
    if values.dtype == bool:
        return False
    return bool(np.any((values != 0) & (values != 255)))


def _check_pair(pair: _Pair) -> tuple[np.ndarray, bool]:
    """Validate a pair; return the binary mask and whether it held grey values."""
    height, width = read_image(pair.image).shape[:2]
    mask_h, mask_w = image_size(pair.mask)
    if (mask_h, mask_w) != (height, width):
        raise DatasetError(
            f"{pair.mask} is {mask_h}x{mask_w} (HxW) but its image {pair.image} is "
            f"{height}x{width}; a mask must match its image pixel for pixel"
        )
    mask = read_mask(pair.mask, shape=(height, width))
    return mask, _has_grey_values(pair.mask)


def _write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(
        path, format="PNG", compress_level=1
    )


def _copy_image(src: Path, split_dir: Path, stem: str) -> Path:
    images = split_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    target = images / f"{stem}{src.suffix.lower()}"
    taken = _files_with_stem(images, stem)
    if taken:
        raise DatasetError(f"{src}: stem {stem!r} is already used by {taken[0]}; rename one")
    shutil.copyfile(src, target)
    return target


def _files_with_stem(folder: Path, stem: str) -> list[Path]:
    return [
        folder / f"{stem}{ext}" for ext in IMAGE_EXTENSIONS if (folder / f"{stem}{ext}").exists()
    ]


def crack_free_tiles(mask: np.ndarray, tile: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corners of the crack-free tiles of a non-overlapping grid.

    Args:
        mask: ``(H, W)`` bool, True on crack pixels.
        tile: ``(h, w)`` tile size; the grid starts at (0, 0) and drops the incomplete border.

    Returns:
        ``(row, col)`` pixel offsets in row-major order of the tiles whose mask is all zero.
    """
    th, tw = tile
    if th <= 0 or tw <= 0:
        raise ValueError(f"tile must be positive (height, width), got {tile!r}")
    height, width = mask.shape
    return [
        (r, c)
        for r in range(0, height - th + 1, th)
        for c in range(0, width - tw + 1, tw)
        if not mask[r : r + th, c : c + tw].any()
    ]


def _add_full_tiles(
    full_dir: Path,
    split_dir: Path,
    split: str,
    tile: tuple[int, int],
    progress: bool,
    warnings: list[str],
) -> int:
    written = 0
    pairs = _pairs_side_by_side(full_dir, "_mask", warnings)
    for pair in tqdm(pairs, desc=f"{split} negative tiles", unit="img", disable=not progress):
        image = read_image(pair.image)
        mask = read_mask(pair.mask, shape=image.shape[:2])
        for r, c in crack_free_tiles(mask, tile):
            stem = f"{pair.stem}_neg_r{r}_c{c}"
            if _files_with_stem(split_dir / "images", stem):
                raise DatasetError(f"{pair.image}: tile stem {stem!r} is already taken")
            crop = image[r : r + tile[0], c : c + tile[1]]
            # JPEG like the crops, so compression artefacts never tell negatives from positives.
            write_sample(split_dir.parent, split, stem, crop, np.zeros(crop.shape[:2], bool))
            written += 1
    return written


def _add_extra_negatives(folder: Path, split_dir: Path, progress: bool, warnings: list[str]) -> int:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: extra-negatives folder not found")
    files = _image_files(folder, warnings)
    for path in tqdm(files, desc=f"{split_dir.name} extra negatives", disable=not progress):
        height, width = read_image(path).shape[:2]
        _copy_image(path, split_dir, path.stem)
        _write_mask(split_dir / "masks" / f"{path.stem}.png", np.zeros((height, width), bool))
    return len(files)


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(message, flush=True)


def _check_destination(final: Path, overwrite: bool) -> None:
    if final.exists() and not overwrite:
        raise DatasetError(
            f"{final} already exists; pass overwrite=True (--overwrite) to replace it, or choose "
            "another name or folder"
        )


def _import_tree(
    src_root: Path,
    dest_root: Path,
    *,
    name: str,
    expected_counts: Mapping[str, int] | None,
    overwrite: bool,
    negatives_from_full: bool,
    tile: tuple[int, int],
    extra_negatives: Mapping[str, str | os.PathLike] | None,
    progress: bool,
    verbose: bool,
    source: str,
    source_sha256: str | None,
    shown_as: tuple[str, str] | None = None,
) -> ImportReport:
    final = dest_root / name
    _check_destination(final, overwrite)
    unknown = sorted(set(extra_negatives or {}) - set(SPLITS))
    if unknown:
        raise ValueError(f"extra_negatives has unknown splits {unknown}; valid: {list(SPLITS)}")
    if negatives_from_full and (len(tile) != 2 or min(tile) <= 0):
        raise ValueError(f"tile must be a positive (height, width), got {tile!r}")
    warnings: list[str] = []
    layout = detect_layout(src_root)
    _say(verbose, _shown(f"{name}: layout {layout.name!r} found in {layout.base}", shown_as))
    pairs = _layout_pairs(layout, warnings)
    if negatives_from_full and not layout.full:
        raise DatasetError(
            f"{src_root}: negatives_from_full needs the full-size images (traindata/, valdata/, "
            f"testdata/ with X.jpg and X_mask.png); none found. Top-level entries: "
            f"{_describe(src_root)}"
        )
    report = ImportReport(
        name=name,
        layout=layout.name,
        dest=final,
        source=source,
        source_sha256=source_sha256,
        negatives_from_full=negatives_from_full,
        tile=tuple(tile) if negatives_from_full else None,
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.importing-", dir=dest_root))
    try:
        for split in SPLITS:
            split_dir = staging / split
            positives = 0
            for pair in tqdm(pairs[split], desc=f"{split}", unit="img", disable=not progress):
                mask, grey = _check_pair(pair)
                report.binarised_masks += grey
                positives += bool(mask.any())
                _copy_image(pair.image, split_dir, pair.stem)
                _write_mask(split_dir / "masks" / f"{pair.stem}.png", mask)
            found = len(pairs[split])
            added = {"full_tiles": 0, "extra": 0}
            if negatives_from_full:
                if split in layout.full:
                    added["full_tiles"] = _add_full_tiles(
                        layout.full[split], split_dir, split, tile, progress, warnings
                    )
                else:
                    warnings.append(f"no full-size folder {_FULL_DIRS[split]}/ for split {split!r}")
            if extra_negatives and split in extra_negatives:
                added["extra"] = _add_extra_negatives(
                    Path(extra_negatives[split]), split_dir, progress, warnings
                )
            report.added_negatives[split] = added
            extra = added["full_tiles"] + added["extra"]
            report.counts[split] = {
                "positives": positives,
                "negatives": found - positives + extra,
                "sum": found + extra,
            }
            line = f"  {split}: {found} images ({positives} with cracks, "
            line += f"{found - positives} crack-free)"
            if added["full_tiles"]:
                line += f" + {added['full_tiles']} crack-free tiles of the full-size images"
            if added["extra"]:
                line += f" + {added['extra']} extra negatives"
            _say(verbose, line)
            expected = (expected_counts or {}).get(split)
            if expected is not None and expected != found:
                warnings.append(
                    f"split {split!r} has {found} images where CRACK500 has {expected}; results "
                    "will not be comparable with the seed run"
                )
        if report.binarised_masks:
            _say(
                verbose,
                f"  {report.binarised_masks} masks held values other than 0 and 255 (JPEG noise) "
                "and were thresholded at 127",
            )
        written = split_counts(staging)
        if written != report.counts:
            raise RuntimeError(f"import wrote {written} but counted {report.counts}")
        report.warnings = [_shown(w, shown_as) for w in warnings]
        for warning in report.warnings:
            _say(verbose, f"WARNING: {warning}")
        record = report.to_dict()
        record["created"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        (staging / "dataset.json").write_text(json.dumps(record, indent=2) + "\n")
        _move_into_place(staging, final, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _say(verbose, f"{name}: imported into {final}")
    return report


def _shown(text: str, shown_as: tuple[str, str] | None) -> str:
    """Replace a temporary extraction folder in ``text`` by ``ARCHIVE:`` for readable messages."""
    if shown_as is None:
        return text
    folder, label = shown_as
    return text.replace(folder + os.sep, f"{label}:").replace(folder, f"{label}:")


def _move_into_place(staging: Path, final: Path, overwrite: bool) -> None:
    _check_destination(final, overwrite)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.replaced-{os.getpid()}")
        os.replace(final, old)
    try:
        os.replace(staging, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def import_folder(
    src_dir: str | os.PathLike,
    dest_root: str | os.PathLike,
    *,
    name: str = "crack500",
    expected_counts: Mapping[str, int] | None = CRACK500_COUNTS,
    overwrite: bool = False,
    negatives_from_full: bool = False,
    tile: tuple[int, int] = CRACK500_TILE,
    extra_negatives: Mapping[str, str | os.PathLike] | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> ImportReport:
    """Import an already-extracted CRACK500 folder; see :func:`import_archive`."""
    src_dir, dest_root = Path(src_dir), Path(dest_root)
    if not src_dir.is_dir():
        raise DatasetError(f"{src_dir}: folder not found")
    dest_root.mkdir(parents=True, exist_ok=True)
    return _import_tree(
        src_dir,
        dest_root,
        name=name,
        expected_counts=expected_counts,
        overwrite=overwrite,
        negatives_from_full=negatives_from_full,
        tile=tile,
        extra_negatives=extra_negatives,
        progress=progress,
        verbose=verbose,
        source=str(src_dir.resolve()),
        source_sha256=None,
    )


def import_archive(
    archive: str | os.PathLike,
    dest_root: str | os.PathLike,
    *,
    name: str = "crack500",
    expected_counts: Mapping[str, int] | None = CRACK500_COUNTS,
    overwrite: bool = False,
    negatives_from_full: bool = False,
    tile: tuple[int, int] = CRACK500_TILE,
    extra_negatives: Mapping[str, str | os.PathLike] | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> ImportReport:
    """Extract a CRACK500 archive and write ``dest_root/name/{train,val,test}/{images,masks}``.

    Args:
        archive: zip or tar(.gz/.bz2/.xz) file; only read, never modified.
        dest_root: folder that receives ``name/`` (e.g. ``data/processed``).
        name: folder name of the import.
        expected_counts: images per split to compare with (a mismatch is a warning); None to skip.
        overwrite: replace an existing ``dest_root/name``.
        negatives_from_full: add the crack-free ``tile``-sized tiles of the full-size images
            (non-overlapping grid from the top-left corner) with all-zero masks, named
            ``X_neg_r{row}_c{col}`` after their top-left pixel.
        tile: ``(height, width)`` of those tiles.
        extra_negatives: ``{split: folder}`` of crack-free images copied in with all-zero masks.
        progress: show progress bars.
        verbose: print the layout, per-split counts and warnings.

    Returns:
        The :class:`ImportReport`, also written as ``dataset.json``.

    Raises:
        DatasetError: unsafe or unreadable archive, unknown layout, an image without its mask, a
            mask of another size, an empty split, or an existing import without ``overwrite``.
    """
    archive, dest_root = Path(archive), Path(dest_root)
    if not archive.is_file():
        raise DatasetError(f"{archive}: archive not found")
    dest_root.mkdir(parents=True, exist_ok=True)
    _check_destination(dest_root / name, overwrite)
    digest = sha256_file(archive)
    with tempfile.TemporaryDirectory(prefix=f".{name}.extract-", dir=dest_root) as tmp:
        shown_as = (tmp, archive.name)
        try:
            extract_archive(archive, tmp)
            return _import_tree(
                Path(tmp),
                dest_root,
                name=name,
                expected_counts=expected_counts,
                overwrite=overwrite,
                negatives_from_full=negatives_from_full,
                tile=tile,
                extra_negatives=extra_negatives,
                progress=progress,
                verbose=verbose,
                source=str(archive.resolve()),
                source_sha256=digest,
                shown_as=shown_as,
            )
        except DatasetError as err:
            raise DatasetError(_shown(str(err), shown_as)) from err


# ---------------------------------------------------------------------------------------------
# Download + import


def _archive_name(url: str) -> str:
    tail = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    suffixes = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
    return tail if tail.lower().endswith(suffixes) else CRACK500.filename


def _store_raw(archive: Path, raw_dir: Path, sha256: str | None, verbose: bool) -> Path:
    """Copy a hand-downloaded archive into ``raw_dir`` (kept as is when already there)."""
    if not archive.is_file():
        raise DatasetError(f"{archive}: archive not found")
    digest = sha256_file(archive)
    if sha256 is not None and digest != sha256.strip().lower():
        raise DatasetError(
            f"{archive}: SHA-256 is {digest}, expected {sha256.strip().lower()}; the file differs "
            "from the pinned archive (incomplete download or another release)"
        )
    if sha256 is None:
        _say(verbose, f"SHA-256 of {archive.name}: {digest} (pin it with --sha256 {digest})")
    if archive.resolve().parent == raw_dir.resolve():
        return archive
    target = raw_dir / archive.name
    if target.exists():
        if sha256_file(target) != digest:
            raise DatasetError(
                f"{target} already exists with other content; raw files are never overwritten: "
                "rename your archive or remove the old one"
            )
        return target
    raw_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(archive, partial)
    os.replace(partial, target)
    return target


def fetch_crack500(
    root: str | os.PathLike | None = None,
    url: str | None = None,
    sha256: str | None = None,
    archive: str | os.PathLike | None = None,
    progress: bool = True,
    overwrite: bool = False,
    negatives_from_full: bool = False,
    tile: tuple[int, int] = CRACK500_TILE,
    verbose: bool = True,
) -> Path:
    """Download (or take) the CRACK500 archive into ``root/raw`` and import it.

    Args:
        root: data folder (default :data:`crackkit.paths.DATA_DIR`); the archive goes to
            ``root/raw/``, the import to ``root/processed/crack500``.
        url: download URL or Google Drive share link; default :data:`CRACK500.url
            <crackkit.data.download.CRACK500>`, which is the authors' Drive *folder* and therefore
            stops with instructions until a file link is pinned.
        sha256: expected archive hash (default: the pinned one, currently unknown, so the
            computed hash is printed for you to pin).
        archive: a hand-downloaded archive; copied into ``root/raw`` unless already there.
        progress: progress bars.
        overwrite: replace an existing import.
        negatives_from_full: add crack-free tiles of the full-size images (see
            :func:`import_archive`).
        tile: (height, width) of those tiles.
        verbose: print layout, counts and warnings.

    Returns:
        The processed folder, ``root/processed/crack500``. If it already holds an import of the
        same archive with the same options and ``overwrite`` is False, it is returned as is.
    """
    if root is None:
        from crackkit.paths import DATA_DIR

        root = DATA_DIR
    root = Path(root)
    raw_dir, processed = root / "raw", root / "processed"
    if archive is not None:
        if url is not None:
            raise ValueError("pass either url or archive, not both")
        raw = _store_raw(Path(archive).expanduser(), raw_dir, sha256, verbose)
    else:
        url = url or CRACK500.url
        raw = download(
            url,
            raw_dir / _archive_name(url),
            sha256=sha256 or CRACK500.sha256,
            progress=progress,
        )
    final = processed / CRACK500.name
    if final.exists() and not overwrite:
        record = _read_record(final)
        same = (
            record.get("source", {}).get("sha256") == sha256_file(raw)
            and record.get("negatives_from_full") == negatives_from_full
            and (not negatives_from_full or record.get("tile") == list(tile))
        )
        if same:
            _say(verbose, f"{final} already holds this import; nothing to do")
            return final
        raise DatasetError(
            f"{final} already exists from another archive or with other options (see its "
            "dataset.json); pass --overwrite to replace it"
        )
    import_archive(
        raw,
        processed,
        name=CRACK500.name,
        overwrite=overwrite,
        negatives_from_full=negatives_from_full,
        tile=tile,
        progress=progress,
        verbose=verbose,
    )
    return final


def _read_record(folder: Path) -> dict:
    try:
        return json.loads((folder / "dataset.json").read_text())
    except (OSError, ValueError):
        return {}


def add_cli_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``crackkit data crack500`` options to ``parser``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--url",
        help="download URL or Google Drive file link (default: the pinned CRACK500 link; see "
        f"{CRACK500_HOMEPAGE})",
    )
    source.add_argument(
        "--archive", type=Path, help="use a hand-downloaded archive instead of downloading"
    )
    parser.add_argument("--sha256", help="expected SHA-256 of the archive (64 hex digits)")
    parser.add_argument(
        "--root", type=Path, default=None, help="data folder holding raw/ and processed/"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing processed/crack500"
    )
    parser.add_argument(
        "--negatives-from-full",
        action="store_true",
        help="add crack-free tiles cut from the full-size images as negatives",
    )
    parser.add_argument(
        "--tile",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=list(CRACK500_TILE),
        help="negative tile size (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def main_from_args(args: argparse.Namespace) -> int:
    """Run :func:`fetch_crack500` from parsed CLI arguments; on failure print why, return 1."""
    try:
        path = fetch_crack500(
            root=args.root,
            url=args.url,
            sha256=args.sha256,
            archive=args.archive,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            negatives_from_full=args.negatives_from_full,
            tile=tuple(args.tile),
        )
    except (DatasetError, DownloadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0
