"""Import CRACK500 (or a mirror of it) into the processed layout of :mod:`crackkit.data.folder`.

CRACK500 (Zhang et al., ICIP 2016; Yang et al., T-ITS 2019) is shared by its authors from a Google
Drive folder linked at :data:`~crackkit.data.download.CRACK500_HOMEPAGE`. Copies in the wild come in
three layouts, each possibly under one or two extra top folders (``CRACK500/...``):

* ``crops``: ``traincrop/``, ``valcrop/``, ``testcrop/``, each holding ``X.jpg`` and its mask
  ``X.png`` side by side. These 640x360 crops (1896/348/1124) are what the seed run trained on.
* ``full``: ``traindata/``, ``valdata/``, ``testdata/`` with the full-size ``X.jpg`` and
  ``X_mask.png`` side by side.
* ``mirror``: ``{train,val,test}/{images,masks}``, a mask having its image's stem.

The authors' archive doubles the split folders (``traincrop/traincrop/X.jpg``); a folder holding
no images but a sub-folder of its own name is read through that sub-folder, so the doubled and the
single layout import alike.

When crops and full-size images are both present the crops become the splits; the full-size images
only serve ``negatives_from_full``, which cuts crack-free tiles out of them.

Split lists ``train.txt``, ``val.txt``, ``test.txt`` beside the split folders (or in a folder above
them) decide the split membership when present: each line names an image and its mask
(``traincrop/X.jpg traincrop/X.png``, as public loaders read them) or only the image (its mask is
then looked up beside it as the layout names masks). A listed path is resolved relative to the
list's folder, with its first folder doubled or undoubled as the archive has it; a listed file that
cannot be found stops the import naming the list, the line and the path.

Negatives: the seed's run trained with 1,411 crack-free training images whose source its fork does
not state. ``negatives_from_full`` is crackkit's stand-in: crack-free tiles cut from the full-size
images, the train split's negatives capped at ``negatives_count`` (default
:data:`SEED_TRAIN_NEGATIVES`) by a seeded draw. ``dataset.json`` says where the negatives came from
in ``negatives_source``.

The import never touches the archive. It extracts into a temporary folder within bounds
(:func:`crackkit.data.archive.extract_archive`: no absolute paths, ``..``, links, duplicate names,
zip bombs; sizes, free space and every member's CRC checked), pairs and checks every image and
mask (each image decoded once), builds the result in a hidden sibling folder and renames it into
place only when everything succeeded; on any error both temporary folders are removed.
``dest/dataset.json`` records the source archive and its SHA-256, the layout, the counts and any
warnings.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from crackkit import console
from crackkit.data.archive import (
    ArchiveLimits,
    add_limit_arguments,
    extract_archive,
    limits_from_args,
)
from crackkit.data.download import (
    CRACK500,
    CRACK500_HOMEPAGE,
    archive_name,
    download,
    sha256_file,
    store_raw,
)
from crackkit.data.folder import (
    IMAGE_EXTENSIONS,
    SPLITS,
    DatasetError,
    image_size,
    read_image,
    read_mask,
    visible_entries,
    write_sample,
)
from crackkit.data.staging import (
    check_destination,
    finish_import,
    read_record,
    say,
    shown,
    subdirs,
    warn_if_source_changed,
)
from crackkit.deprecation import DeprecatedOption
from crackkit.specs import MAX_IMAGE_PIXELS

__all__ = [
    "CRACK500_COUNTS",
    "CRACK500_TILE",
    "LAYOUTS",
    "SEED_TRAIN_NEGATIVES",
    "SPLIT_LISTS",
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

SEED_TRAIN_NEGATIVES = 1411
"""Training negatives of the seed's run (its log: 'Number of negatives: 1411'); source unstated."""

SPLIT_LISTS: dict[str, str] = {"train": "train.txt", "val": "val.txt", "test": "test.txt"}
"""Split list files read when the archive carries them."""

_SEED_NEGATIVES_NOTE = "the seed fork's 1,411 negatives have no stated source"

_CROP_DIRS = {"train": "traincrop", "val": "valcrop", "test": "testcrop"}
_FULL_DIRS = {"train": "traindata", "val": "valdata", "test": "testdata"}
LAYOUTS: dict[str, str] = {
    "crops": "traincrop/, valcrop/, testcrop/ holding X.jpg with its mask X.png",
    "full": "traindata/, valdata/, testdata/ holding X.jpg with its mask X_mask.png",
    "mirror": "train/, val/, test/ each holding images/ and masks/ (mask named like its image)",
}
_SEARCH_DEPTH = 3
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
        source_sha256: SHA-256 of the archive seen (None for a folder).
        source_url: where the archive was downloaded from (None: a file given by hand).
        sha256_pinned: the SHA-256 it was checked against (None: nothing was verified).
        negatives_from_full: whether full-size tiles were added, and ``tile`` their (H, W).
        negatives_count: cap on the train split's negatives when tiles are added (None: no cap).
        negatives_seed: seed of the draw that picks the train tiles under that cap.
        tiles_available: ``{split: n}`` crack-free tiles found before the cap.
        split_lists: ``{split: list file}`` of the split lists honoured (empty: folders only).
        negatives_source: one sentence saying where the negatives came from.
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
    source_url: str | None = None
    sha256_pinned: str | None = None
    negatives_from_full: bool = False
    tile: tuple[int, int] | None = None
    negatives_count: int | None = None
    negatives_seed: int | None = None
    tiles_available: dict[str, int] = field(default_factory=dict)
    split_lists: dict[str, str] = field(default_factory=dict)
    negatives_source: str = ""

    def to_dict(self) -> dict:
        """JSON-ready view, the content of ``dataset.json``."""
        return {
            "name": self.name,
            "source": {
                "path": self.source,
                "sha256": self.source_sha256,
                "url": self.source_url,
                "sha256_pinned": self.sha256_pinned,
            },
            "layout": self.layout,
            "counts": self.counts,
            "added_negatives": self.added_negatives,
            "binarised_masks": self.binarised_masks,
            "negatives_from_full": self.negatives_from_full,
            "tile": list(self.tile) if self.tile else None,
            "negatives_count": self.negatives_count,
            "negatives_seed": self.negatives_seed,
            "tiles_available": self.tiles_available,
            "negatives_source": self.negatives_source,
            "split_lists": self.split_lists,
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
    lists: dict[str, Path] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Layout detection and pairing


def _find_base(root: Path, names: Mapping[str, str], accept: Callable[[Path], bool]) -> Path | None:
    """Shallowest folder under ``root`` with a sub-folder named like a value of ``names``."""
    level = [root]
    for _ in range(_SEARCH_DEPTH + 1):
        for folder in level:
            children = subdirs(folder)
            if any(n in children and accept(children[n]) for n in names.values()):
                return folder
        level = [child for folder in level for child in subdirs(folder).values()]
    return None


def _has_images(folder: Path) -> bool:
    return any(
        p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _IMAGE_EXTS
        for p in folder.iterdir()
    )


def _undouble(folder: Path) -> Path:
    """The folder that holds the files: ``traincrop/traincrop/`` when ``traincrop/`` has none."""
    for _ in range(_SEARCH_DEPTH):
        inner = subdirs(folder).get(folder.name.lower())
        if inner is None or _has_images(folder):
            return folder
        folder = inner
    return folder


def _split_folders(base: Path, names: Mapping[str, str]) -> dict[str, Path]:
    children = subdirs(base)
    return {split: _undouble(children[n]) for split, n in names.items() if n in children}


def _find_lists(root: Path, base: Path) -> dict[str, Path]:
    """Split lists in ``base`` or, failing that, in the nearest folder above it within ``root``."""
    folder = base
    while True:
        files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
        lists = {s: files[n] for s, n in SPLIT_LISTS.items() if n in files}
        if lists or folder == root or root not in folder.parents:
            return lists
        folder = folder.parent


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
        splits = _split_folders(crops, _CROP_DIRS)
        return _Layout("crops", crops, splits, full_dirs, _find_lists(root, crops))
    if mirror:
        splits = _split_folders(mirror, {s: s for s in SPLITS})
        return _Layout("mirror", mirror, splits, full_dirs, _find_lists(root, mirror))
    if full:
        return _Layout("full", full, full_dirs, full_dirs, _find_lists(root, full))
    raise DatasetError(
        f"{root}: no CRACK500 layout recognised; top-level entries: {_describe(root)}. Accepted "
        "layouts (optionally under one or more extra folders such as CRACK500/): "
        + "; ".join(f"{name}: {text}" for name, text in LAYOUTS.items())
    )


def _describe(root: Path) -> str:
    entries = visible_entries(root)
    names = [p.name + ("/" if p.is_dir() else "") for p in entries[:20]]
    if len(entries) > 20:
        names.append(f"... ({len(entries) - 20} more)")
    if len(entries) == 1 and entries[0].is_dir():
        inner = [p.name + ("/" if p.is_dir() else "") for p in sorted(entries[0].iterdir())[:20]]
        names = [f"{names[0]} (holding {', '.join(inner) or 'nothing'})"]
    return ", ".join(names) or "none"


def _image_files(folder: Path, warnings: list[str]) -> list[Path]:
    files, ignored = [], []
    for path in visible_entries(folder):
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


def _listed_candidates(list_dir: Path, token: str) -> list[Path]:
    """Where a path named in a split list may lie: as written, or with its first folder doubled
    (``traincrop/x.jpg`` -> ``traincrop/traincrop/x.jpg``), or with leading folders dropped (an
    absolute path from the list author's machine, or a doubled folder the archive does not have)."""
    parts = [p for p in PurePosixPath(token.replace("\\", "/")).parts if p not in ("", ".", "/")]
    candidates: list[Path] = []
    for start in range(len(parts)):
        sub = parts[start:]
        if ".." in sub:
            continue
        options = [list_dir.joinpath(*sub)]
        if len(sub) >= 2:
            options.append(list_dir.joinpath(sub[0], *sub))
        candidates.extend(c for c in options if c not in candidates)
    return candidates


def _resolve_listed(list_path: Path, lineno: int, token: str, what: str) -> Path:
    candidates = _listed_candidates(list_path.parent, token)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = f"looked for {candidates[0]}" if candidates else "not a relative file path"
    if len(candidates) > 1:
        looked += f" and {len(candidates) - 1} other place(s), its first folder doubled or not"
    raise DatasetError(f"{list_path}, line {lineno}: {what} {token!r} not found ({looked})")


def _mask_candidates(image: Path, layout_name: str) -> list[Path]:
    stem = image.stem
    if layout_name == "full":
        return [image.with_name(f"{stem}_mask{ext}") for ext in IMAGE_EXTENSIONS]
    if layout_name == "mirror":
        return [image.parent.parent / "masks" / f"{stem}{ext}" for ext in IMAGE_EXTENSIONS]
    return [image.with_suffix(ext) for ext in IMAGE_EXTENSIONS if ext not in (".jpg", ".jpeg")]


def _pairs_from_list(list_path: Path, layout_name: str) -> list[_Pair]:
    """Pairs named by a split list: ``IMAGE MASK`` or ``IMAGE`` per line, ``#`` comments."""
    try:
        lines = list_path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{list_path}: cannot read split list ({err})") from err
    pairs: list[_Pair] = []
    seen: dict[Path, int] = {}
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        if len(tokens) > 2:
            raise DatasetError(
                f"{list_path}, line {lineno}: {line!r} has {len(tokens)} fields; expected "
                "'IMAGE MASK' or 'IMAGE' (paths without spaces)"
            )
        image = _resolve_listed(list_path, lineno, tokens[0], "image")
        if len(tokens) == 2:
            mask = _resolve_listed(list_path, lineno, tokens[1], "mask")
        else:
            options = _mask_candidates(image, layout_name)
            mask = next((m for m in options if m.is_file()), None)
            if mask is None:
                raise DatasetError(
                    f"{list_path}, line {lineno}: no mask for {tokens[0]!r} (expected "
                    f"{options[0]}); give it as a second field"
                )
        if mask == image:
            raise DatasetError(f"{list_path}, line {lineno}: image and mask are the same file")
        key = image.resolve()
        if key in seen:
            raise DatasetError(
                f"{list_path}, line {lineno}: {tokens[0]!r} is already listed on line {seen[key]}"
            )
        seen[key] = lineno
        pairs.append(_Pair(image, mask))
    if not pairs:
        raise DatasetError(f"{list_path}: split list names no files")
    return pairs


def _unlisted_images(folder: Path, pairs: list[_Pair], layout_name: str) -> list[Path]:
    """Images of a split folder that its list leaves out (crops and full layouts)."""
    if layout_name == "mirror":
        folder = folder / "images"
        if not folder.is_dir():
            return []
    listed = {p.image.resolve() for p in pairs}
    return [
        path
        for path in visible_entries(folder)
        if path.is_file()
        and (
            path.suffix.lower() in _IMAGE_EXTS
            if layout_name == "mirror"
            else path.suffix.lower() in (".jpg", ".jpeg") and not path.stem.endswith("_mask")
        )
        and path.resolve() not in listed
    ]


def _layout_pairs(layout: _Layout, warnings: list[str]) -> dict[str, list[_Pair]]:
    pairs = {}
    names = {"crops": _CROP_DIRS, "full": _FULL_DIRS, "mirror": {s: s for s in SPLITS}}
    for split in SPLITS:
        folder = layout.splits.get(split)
        listed = layout.lists.get(split)
        if listed is not None:
            found = _pairs_from_list(listed, layout.name)
            left_out = _unlisted_images(folder, found, layout.name) if folder else []
            if left_out:
                warnings.append(
                    f"{folder}: {len(left_out)} image(s) not named in {listed.name} were left "
                    f"out of split {split!r}, e.g. {left_out[0].name}"
                )
            pairs[split] = found
            continue
        if folder is None:
            raise DatasetError(
                f"{layout.base}: split {split!r} is empty: no folder "
                f"{names[layout.name][split]}/ found (layout {layout.name!r}: "
                f"{LAYOUTS[layout.name]})"
                + (f" and no {SPLIT_LISTS[split]}" if layout.lists else "")
            )
        if layout.lists:
            others = ", ".join(sorted(p.name for p in layout.lists.values()))
            warnings.append(
                f"no {SPLIT_LISTS[split]} beside {others}: split {split!r} is read from {folder}"
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
    """Validate a pair (the image decoded once); return the binary mask and whether it held
    grey values."""
    image_size(pair.image, MAX_IMAGE_PIXELS)
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
    limit: int | None = None,
    seed: int = 0,
) -> tuple[int, int]:
    """Write crack-free tiles of the full-size images of ``full_dir`` as negatives of ``split``.

    Args:
        limit: write at most this many tiles, drawn without replacement with ``seed`` from all
            crack-free tiles (in stem, then row-major order); None writes them all.

    Returns:
        ``(written, available)``: tiles written and crack-free tiles found.
    """
    pairs = _pairs_side_by_side(full_dir, "_mask", warnings)
    plan: list[tuple[_Pair, int, int]] = []
    for pair in tqdm(pairs, desc=f"{split} crack-free tiles", unit="img", disable=not progress):
        mask = read_mask(pair.mask, shape=image_size(pair.image))
        plan.extend((pair, r, c) for r, c in crack_free_tiles(mask, tile))
    chosen = plan
    if limit is not None and len(plan) > limit:
        keep = np.random.default_rng(seed).choice(len(plan), size=limit, replace=False)
        chosen = [plan[i] for i in sorted(keep)]
    current: _Pair | None = None
    image = np.zeros((0, 0, 3), np.uint8)
    bar = tqdm(chosen, desc=f"{split} negative tiles", unit="tile", disable=not progress)
    for pair, r, c in bar:
        if pair is not current:
            current, image = pair, read_image(pair.image)
        stem = f"{pair.stem}_neg_r{r}_c{c}"
        if _files_with_stem(split_dir / "images", stem):
            raise DatasetError(f"{pair.image}: tile stem {stem!r} is already taken")
        crop = image[r : r + tile[0], c : c + tile[1]]
        # JPEG like the crops, so compression artefacts never tell negatives from positives.
        write_sample(split_dir.parent, split, stem, crop, np.zeros(crop.shape[:2], bool))
    return len(chosen), len(plan)


def _negatives_source(report: ImportReport, own: int, extra_dir: str | None) -> str:
    """One sentence on where the train split's negatives came from, for ``dataset.json``."""
    added = report.added_negatives.get("train", {})
    tiles, extra = added.get("full_tiles", 0), added.get("extra", 0)
    parts = []
    if own:
        parts.append(f"{own} crack-free image{'s' if own != 1 else ''} of the archive itself")
    if report.negatives_from_full:
        h, w = report.tile or CRACK500_TILE
        text = (
            f"{tiles} crack-free {h}x{w} tiles cut from the full-size {_FULL_DIRS['train']}/ "
            "images by crackkit (--negatives-from-full"
        )
        available = report.tiles_available.get("train", tiles)
        if report.negatives_count is not None and available > tiles:
            text += (
                f"; drawn with seed {report.negatives_seed} from the {available} found, to cap the "
                f"train negatives at --negatives-count {report.negatives_count}"
            )
        parts.append(text + ")")
    if extra:
        parts.append(f"{extra} images copied from {extra_dir} (extra_negatives)")
    if not parts:
        return f"the train split has no negatives; {_SEED_NEGATIVES_NOTE}"
    head = "; ".join(parts) if len(parts) > 1 else parts[0]
    tail = "" if report.negatives_from_full else " (no --negatives-from-full)"
    return f"train negatives: {head}{tail}; {_SEED_NEGATIVES_NOTE}"


def _add_extra_negatives(folder: Path, split_dir: Path, progress: bool, warnings: list[str]) -> int:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: extra-negatives folder not found")
    files = _image_files(folder, warnings)
    for path in tqdm(files, desc=f"{split_dir.name} extra negatives", disable=not progress):
        image_size(path, MAX_IMAGE_PIXELS)
        height, width = read_image(path).shape[:2]
        _copy_image(path, split_dir, path.stem)
        _write_mask(split_dir / "masks" / f"{path.stem}.png", np.zeros((height, width), bool))
    return len(files)


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
    negatives_count: int | None = SEED_TRAIN_NEGATIVES,
    negatives_seed: int = 0,
    source_url: str | None = None,
    sha256_pinned: str | None = None,
) -> ImportReport:
    final = dest_root / name
    check_destination(final, overwrite, "another name or folder")
    unknown = sorted(set(extra_negatives or {}) - set(SPLITS))
    if unknown:
        raise ValueError(f"extra_negatives has unknown splits {unknown}; valid: {list(SPLITS)}")
    if negatives_from_full and (len(tile) != 2 or min(tile) <= 0):
        raise ValueError(f"tile must be a positive (height, width), got {tile!r}")
    if negatives_count is not None and negatives_count < 0:
        raise ValueError(f"negatives_count must be >= 0 or None, got {negatives_count!r}")
    warnings: list[str] = []
    layout = detect_layout(src_root)
    say(verbose, shown(f"{name}: layout {layout.name!r} found in {layout.base}", shown_as))
    for split, listed in layout.lists.items():
        say(verbose, shown(f"  {split}: membership from the split list {listed}", shown_as))
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
        source_url=source_url,
        sha256_pinned=sha256_pinned,
        negatives_from_full=negatives_from_full,
        tile=tuple(tile) if negatives_from_full else None,
        negatives_count=negatives_count if negatives_from_full else None,
        negatives_seed=negatives_seed if negatives_from_full else None,
        split_lists={
            split: path.relative_to(src_root).as_posix() for split, path in layout.lists.items()
        },
    )
    own_train_negatives = 0
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
            if split == "train":
                own_train_negatives = found - positives
            added = {"full_tiles": 0, "extra": 0}
            if extra_negatives and split in extra_negatives:
                added["extra"] = _add_extra_negatives(
                    Path(extra_negatives[split]), split_dir, progress, warnings
                )
            if negatives_from_full:
                if split in layout.full:
                    limit = None
                    before = found - positives + added["extra"]
                    if split == "train" and negatives_count is not None:
                        limit = max(0, negatives_count - before)
                        if before > negatives_count:
                            warnings.append(
                                f"split 'train' already holds {before} negatives, more than "
                                f"--negatives-count {negatives_count}; no tiles were added"
                            )
                    added["full_tiles"], available = _add_full_tiles(
                        layout.full[split],
                        split_dir,
                        split,
                        tile,
                        progress,
                        warnings,
                        limit=limit,
                        seed=negatives_seed,
                    )
                    report.tiles_available[split] = available
                    if limit is not None and available < limit:
                        warnings.append(
                            f"only {available} crack-free tiles found for split 'train': it has "
                            f"{before + available} negatives, fewer than --negatives-count "
                            f"{negatives_count}"
                        )
                else:
                    warnings.append(f"no full-size folder {_FULL_DIRS[split]}/ for split {split!r}")
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
                if added["full_tiles"] < report.tiles_available.get(split, 0):
                    line += f" (of {report.tiles_available[split]} found)"
            if added["extra"]:
                line += f" + {added['extra']} extra negatives"
            say(verbose, line)
            expected = (expected_counts or {}).get(split)
            if expected is not None and expected != found:
                warnings.append(
                    f"split {split!r} has {found} images where CRACK500 has {expected}; results "
                    "will not be comparable with the seed run"
                )
        if report.binarised_masks:
            say(
                verbose,
                f"  {report.binarised_masks} masks held values other than 0 and 255 (JPEG noise) "
                "and were thresholded at 127",
            )
        extra_dir = str((extra_negatives or {}).get("train")) if extra_negatives else None
        report.negatives_source = _negatives_source(report, own_train_negatives, extra_dir)
        say(verbose, f"  negatives: {report.negatives_source}")
        report.warnings = [shown(w, shown_as) for w in warnings]
        for warning in report.warnings:
            say(verbose, f"WARNING: {warning}")
        finish_import(
            staging, final, report.to_dict(), report.counts, overwrite=overwrite, progress=progress
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(verbose, f"{name}: imported into {final}")
    return report


def import_folder(
    src_dir: str | os.PathLike,
    dest_root: str | os.PathLike,
    *,
    name: str = "crack500",
    expected_counts: Mapping[str, int] | None = CRACK500_COUNTS,
    overwrite: bool = False,
    negatives_from_full: bool = False,
    tile: tuple[int, int] = CRACK500_TILE,
    negatives_count: int | None = SEED_TRAIN_NEGATIVES,
    negatives_seed: int = 0,
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
        negatives_count=negatives_count,
        negatives_seed=negatives_seed,
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
    negatives_count: int | None = SEED_TRAIN_NEGATIVES,
    negatives_seed: int = 0,
    extra_negatives: Mapping[str, str | os.PathLike] | None = None,
    progress: bool = True,
    verbose: bool = True,
    limits: ArchiveLimits | None = None,
    url: str | None = None,
    sha256_pinned: str | None = None,
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
        negatives_count: with ``negatives_from_full``, cap the train split's negatives (its own
            crack-free images, extra negatives and tiles) at this many by drawing the tiles
            without replacement with ``negatives_seed``; None adds every crack-free tile. The
            val and test splits always get every tile. Default: the seed run's 1411.
        negatives_seed: seed of that draw.
        extra_negatives: ``{split: folder}`` of crack-free images copied in with all-zero masks.
        progress: show progress bars.
        verbose: print the layout, per-split counts and warnings.
        limits: the bounds of the extraction (default
            :class:`~crackkit.data.archive.ArchiveLimits`).
        url, sha256_pinned: where the archive was downloaded from and the SHA-256 it was
            checked against, recorded in ``dataset.json`` beside the SHA-256 seen.

    Returns:
        The :class:`ImportReport`, also written as ``dataset.json``.

    Raises:
        DatasetError: unsafe or unreadable archive, unknown layout, an image without its mask, a
            mask of another size, an empty split, a split list naming a file that is not there, or
            an existing import without ``overwrite``.
    """
    archive, dest_root = Path(archive), Path(dest_root)
    if not archive.is_file():
        raise DatasetError(f"{archive}: archive not found")
    dest_root.mkdir(parents=True, exist_ok=True)
    check_destination(dest_root / name, overwrite)
    digest = sha256_file(archive)
    with tempfile.TemporaryDirectory(prefix=f".{name}.extract-", dir=dest_root) as tmp:
        shown_as = (tmp, archive.name)
        try:
            extract_archive(archive, tmp, limits, copies=2)
            return _import_tree(
                Path(tmp),
                dest_root,
                name=name,
                expected_counts=expected_counts,
                overwrite=overwrite,
                negatives_from_full=negatives_from_full,
                tile=tile,
                negatives_count=negatives_count,
                negatives_seed=negatives_seed,
                extra_negatives=extra_negatives,
                progress=progress,
                verbose=verbose,
                source=str(archive.resolve()),
                source_sha256=digest,
                shown_as=shown_as,
                source_url=url,
                sha256_pinned=sha256_pinned,
            )
        except DatasetError as err:
            raise DatasetError(shown(str(err), shown_as)) from err


# ---------------------------------------------------------------------------------------------
# Download + import


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
    negatives_count: int | None = SEED_TRAIN_NEGATIVES,
    limits: ArchiveLimits | None = None,
    allow_http: bool = False,
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
        negatives_count: cap on the train split's negatives with ``negatives_from_full`` (see
            :func:`import_archive`); None for no cap.
        limits: the bounds of the extraction (see :func:`import_archive`).
        allow_http: accept an ``http://`` URL (or a redirect to one); refused by default.

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
        raw = store_raw(Path(archive).expanduser(), raw_dir, sha256, verbose=verbose)
        pinned = sha256
    else:
        url = url or CRACK500.url
        pinned = sha256 or CRACK500.sha256
        raw = download(
            url,
            raw_dir / archive_name(url, CRACK500.filename),
            sha256=pinned,
            progress=progress,
            allow_http=allow_http,
        )
    final = processed / CRACK500.name
    if final.exists() and not overwrite:
        record = read_record(final)
        same = (
            record.get("source", {}).get("sha256") == sha256_file(raw)
            and record.get("negatives_from_full") == negatives_from_full
            and (
                not negatives_from_full
                or (
                    record.get("tile") == list(tile)
                    and record.get("negatives_count") == negatives_count
                )
            )
        )
        if same:
            say(verbose, f"{final} already holds this import; nothing to do")
            return final
        raise DatasetError(
            f"{final} already exists from another archive or with other options (see its "
            "dataset.json); pass --overwrite to replace it"
        )
    warn_if_source_changed(final, sha256_file(raw))
    import_archive(
        raw,
        processed,
        name=CRACK500.name,
        overwrite=overwrite,
        negatives_from_full=negatives_from_full,
        tile=tile,
        negatives_count=negatives_count,
        progress=progress,
        verbose=verbose,
        limits=limits,
        url=url,
        sha256_pinned=pinned.strip().lower() if pinned else None,
    )
    return final


def add_cli_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``crackkit data crack500`` options to ``parser``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--url",
        help="download URL of the archive, or a Google Drive file link; CRACK500 has no "
        "download link of its own (its authors share a Drive folder, linked from "
        f"{CRACK500_HOMEPAGE}): download the archive by hand and give --archive",
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
        "--negative-tile",
        dest="tile",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=list(CRACK500_TILE),
        help="size of the crack-free tiles --negatives-from-full cuts (default: %(default)s)",
    )
    parser.add_argument(
        "--tile", dest="tile", type=int, nargs=2, action=DeprecatedOption, new="--negative-tile H W"
    )
    parser.add_argument(
        "--negatives-count",
        type=_count_or_all,
        default=SEED_TRAIN_NEGATIVES,
        metavar="N",
        help="with --negatives-from-full, cap the train split's negatives at N (tiles drawn with "
        "seed 0), or 'all' for every crack-free tile (default: %(default)s, the seed run's count)",
    )
    parser.add_argument(
        "--allow-http",
        action="store_true",
        help="accept an http:// URL or a redirect to one (refused by default: nothing "
        "authenticates the server)",
    )
    add_limit_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--no-progress", dest="quiet", action=DeprecatedOption, nargs=0, const=True, new="--quiet"
    )
    return parser


def _count_or_all(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count >= 0 or 'all', got {text!r}")
    return value


def main_from_args(args: argparse.Namespace) -> int:
    """Run :func:`fetch_crack500` from parsed CLI arguments; errors go to ``crackkit``'s handler
    (:func:`crackkit.cli.main`), which prints them in one line."""
    console.configure()
    path = fetch_crack500(
        root=args.root,
        url=args.url,
        sha256=args.sha256,
        archive=args.archive,
        progress=not args.quiet,
        overwrite=args.overwrite,
        negatives_from_full=args.negatives_from_full,
        tile=tuple(args.tile),
        negatives_count=args.negatives_count,
        limits=limits_from_args(args),
        allow_http=args.allow_http,
    )
    print(path)
    return 0
