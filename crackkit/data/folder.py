"""The on-disk layout of a crack data set, and strict readers and writers for it.

Layout::

    ROOT/
        dataset.json              optional metadata: name, source, generator parameters, counts
        train/images/<stem>.<ext>
        train/masks/<stem>.<ext>
        train/labels.csv          optional image-level labels: header image,label; rows stem,0|1
        val/...                   optional: when absent, the caller splits validation from train
        test/...

Rules:

* Images and masks use one of :data:`IMAGE_EXTENSIONS` (any letter case). Hidden files and the
  usual operating-system clutter (``Thumbs.db``, ``desktop.ini``) are ignored; any other file is
  an error, so that a typo never silently drops a sample.
* A mask has the stem of its image and any accepted extension. Each image has at most one mask and
  each mask an image; stems are unique within a folder.
* Masks are binary: 0 for background, 255 for crack (we write 8-bit PNG). :func:`read_mask` takes
  any value above 127 as crack and tolerates the grey fringe that JPEG compression adds, up to
  :data:`MASK_NOISE_TOLERANCE` of the pixels in the ambiguous band :data:`MASK_AMBIGUOUS_BAND`.
  A mask holding only the values 0 and 1 in a lossless file is refused rather than read as empty.
* A crack-free (negative) image has an all-zero mask, or no mask and the label 0 in the split's
  ``labels.csv``, or, only when the caller passes ``negatives_without_mask=True``, neither.
* A crack image without a mask and with the label 1 in ``labels.csv`` is an image-level positive
  (mixed supervision): it trains the decision only, and counts in the decision metrics only. A
  label must agree with the image's mask where both exist.
* An image holds at most :data:`MAX_IMAGE_PIXELS` pixels unless the caller raises the limit (the
  run parameter ``max_image_pixels``, ``crackkit predict --max-pixels``): the size is read from
  the header and a larger image is refused before its pixels are decoded, since a file of a few
  kilobytes can declare billions of pixels. Pillow's own ceiling (``2 *
  PIL.Image.MAX_IMAGE_PIXELS``, about 179 million pixels) still applies above it.
* Pixels are read as stored: the EXIF orientation tag is ignored, because masks are drawn on the
  stored pixel grid. Truncated or corrupt files raise :class:`DatasetError`; this module relies on
  Pillow's default ``ImageFile.LOAD_TRUNCATED_IMAGES = False`` and never changes it.

Every problem with the input raises :class:`DatasetError`, whose message names the offending file
or folder and says what would be accepted.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from crackkit.specs import MAX_IMAGE_PIXELS

__all__ = [
    "DatasetError",
    "IMAGE_EXTENSIONS",
    "LABELS_FILE",
    "MAX_IMAGE_PIXELS",
    "MASK_AMBIGUOUS_BAND",
    "MASK_NOISE_TOLERANCE",
    "SPLITS",
    "Sample",
    "check_pixels",
    "image_size",
    "mask_noise_fraction",
    "read_image",
    "read_labels",
    "read_mask",
    "scan_split",
    "split_counts",
    "write_sample",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SPLITS: tuple[str, ...] = ("train", "val", "test")

MASK_AMBIGUOUS_BAND: tuple[int, int] = (32, 223)
"""Inclusive range of 8-bit mask values that are neither clearly background nor clearly crack."""

MASK_NOISE_TOLERANCE: float = 0.05
"""Largest fraction of mask pixels allowed in :data:`MASK_AMBIGUOUS_BAND`.

JPEG compression of a 0/255 mask blurs a one- or two-pixel fringe along every edge; on thin cracks
that fringe stays well below 5 % of the image. A soft or grey-level mask (a probability map, a
gradient, an image saved by mistake) has far more ambiguous pixels and is refused.
"""

_PROGRESS_MIN_FILES = 200
#: Entries that archives, file managers and operating systems leave in folders and that no reader
#: of the kit takes (compared in lower case); hidden entries (a leading dot) are skipped as well.
IGNORED_NAMES = frozenset({"__macosx", ".ds_store", "thumbs.db", "desktop.ini"})
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class DatasetError(ValueError):
    """The data set on disk breaks the layout or holds an unreadable or invalid file."""


@dataclass(frozen=True)
class Sample:
    """One image of a split and its mask.

    Attributes:
        image: path of the image file.
        mask: path of the mask file, or None for a negative stored without a mask.
        positive: whether the mask marks any crack pixel; filled by ``scan_split(check=True)``,
            False for a sample without mask, None when not checked.
    """

    image: Path
    mask: Path | None
    positive: bool | None = None

    @property
    def stem(self) -> str:
        return self.image.stem

    @property
    def segmented(self) -> bool:
        """Whether the sample's pixel annotation is known: it has a mask, or it is crack-free
        (an all-zero mask is known). False for a positive with an image-level label only."""
        return self.mask is not None or not self.positive


def is_ignored(path: Path) -> bool:
    """Whether the kit's folder readers skip ``path``: hidden, or in :data:`IGNORED_NAMES`."""
    return path.name.startswith(".") or path.name.lower() in IGNORED_NAMES


def visible_entries(folder: str | Path) -> list[Path]:
    """The entries of ``folder`` that are not :func:`is_ignored`, sorted: the one folder policy
    of data sets, importers and prediction."""
    return [p for p in sorted(Path(folder).iterdir()) if not is_ignored(p)]


def list_image_files(folder: str | Path) -> dict[str, Path]:
    """Map stem -> path for the image files of ``folder``; clutter is skipped, the rest refused.

    Raises:
        DatasetError: a subfolder, an unsupported extension or two files sharing a stem.
    """
    return _list_files(Path(folder))


def _accepted() -> str:
    return ", ".join(IMAGE_EXTENSIONS)


def _list_files(folder: Path) -> dict[str, Path]:
    """Map stem -> file for the image files in ``folder``, refusing clutter and duplicate stems."""
    by_stem: dict[str, Path] = {}
    for path in visible_entries(folder):
        if path.is_dir():
            raise DatasetError(f"{path}: unexpected folder inside {folder}; expected only files")
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DatasetError(
                f"{path}: unsupported file extension {path.suffix!r}; accepted: {_accepted()}"
            )
        if path.stem in by_stem:
            raise DatasetError(
                f"{path} and {by_stem[path.stem]} share the stem {path.stem!r} in {folder}; "
                "keep exactly one file per stem"
            )
        by_stem[path.stem] = path
    return by_stem


def _open(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Sizes are checked against the caller's limit (check_pixels), not Pillow's warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except UnidentifiedImageError as exc:
        raise DatasetError(
            f"{path}: not a readable image; accepted formats: {_accepted()}"
        ) from exc
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"{path}: cannot open image ({exc})") from exc


def _decode(path: Path) -> Image.Image:
    img = _open(path)
    try:
        img.load()
    except _DECODE_ERRORS as exc:
        img.close()
        raise DatasetError(f"{path}: corrupt or truncated image ({exc})") from exc
    return img


def check_pixels(path: str | Path, height: int, width: int, max_pixels: int | None) -> None:
    """Refuse an image of more than ``max_pixels`` pixels (None: no limit).

    Raises:
        DatasetError: naming the file, its size and the parameters that raise the limit.
    """
    if max_pixels is not None and height * width > max_pixels:
        raise DatasetError(
            f"{path}: {width}x{height} is {height * width / 1e6:.1f} megapixels, more than the "
            f"limit of {max_pixels:,} pixels; a larger limit (run parameter max_image_pixels, "
            "crackkit predict --max-pixels) reads it"
        )


def image_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """Return ``(height, width)`` of an image from its header, without decoding the pixels.

    Raises:
        DatasetError: unreadable file, or more than ``max_pixels`` pixels (:func:`check_pixels`).
    """
    path = Path(path)
    with _open(path) as img:
        width, height = img.size
    check_pixels(path, height, width, max_pixels)
    return height, width


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Read an image as stored, without applying its EXIF orientation.

    Args:
        path: image file.
        channels: 3 for RGB, 1 for grayscale.

    Returns:
        ``(H, W, channels)`` uint8 array.

    Raises:
        DatasetError: the file is missing, not an image, corrupt or truncated.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    path = Path(path)
    img = _decode(path)
    with img:
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            img = _to_8bit(img)
        arr = np.asarray(img.convert("RGB" if channels == 3 else "L"))
    return arr if channels == 3 else arr[:, :, None]


def _to_8bit(img: Image.Image) -> Image.Image:
    """Bring a 16-bit, 32-bit or float single-channel image to 8 bits.

    Values already within 0..255 are kept; larger ones are scaled from the 16-bit range (or from
    the maximum, beyond it); float images within 0..1 are scaled from 1.
    """
    arr = np.asarray(img, dtype=np.float64)
    peak = float(arr.max()) if arr.size else 0.0
    if img.mode == "F" and peak <= 1.0:
        top = 1.0
    elif peak <= 255.0:
        top = 255.0
    else:
        top = max(65535.0, peak)
    scaled = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)


def mask_noise_fraction(arr: np.ndarray) -> float:
    """Fraction of values in :data:`MASK_AMBIGUOUS_BAND`.

    Args:
        arr: ``(H, W)`` uint8 mask values.
    """
    lo, hi = MASK_AMBIGUOUS_BAND
    if arr.size == 0:
        return 0.0
    return float(np.count_nonzero((arr >= lo) & (arr <= hi))) / arr.size


def _mask_values(path: Path) -> np.ndarray:
    """Decode a mask to ``(H, W)`` uint8; colour masks take the maximum over the channels."""
    img = _decode(path)
    with img:
        if img.mode in ("1", "L"):
            return np.asarray(img.convert("L"))
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            return np.asarray(_to_8bit(img))
        if img.mode == "LA":
            return np.asarray(img.getchannel("L"))
        return np.asarray(img.convert("RGB")).max(axis=2)


def read_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a binary crack mask.

    Args:
        path: mask file (0 background, 255 crack; JPEG fringes tolerated).
        shape: expected ``(H, W)``; a mask of another size is refused.

    Returns:
        ``(H, W)`` bool array, True where the value is above 127.

    Raises:
        DatasetError: unreadable file, wrong size, or a mask that is not binary beyond JPEG noise.
    """
    path = Path(path)
    values = _mask_values(path)
    if shape is not None and tuple(values.shape) != tuple(shape):
        raise DatasetError(
            f"{path}: mask is {values.shape[0]}x{values.shape[1]} (HxW), expected "
            f"{shape[0]}x{shape[1]}"
        )
    fraction = mask_noise_fraction(values)
    if fraction > MASK_NOISE_TOLERANCE:
        lo, hi = MASK_AMBIGUOUS_BAND
        raise DatasetError(
            f"{path}: mask is not binary: {fraction:.1%} of its pixels lie between {lo} and {hi} "
            f"(at most {MASK_NOISE_TOLERANCE:.0%} accepted); expected 0 for background and 255 "
            "for crack"
        )
    top = int(values.max()) if values.size else 0
    if top == 1 and path.suffix.lower() not in (".jpg", ".jpeg"):
        raise DatasetError(
            f"{path}: mask holds only the values 0 and 1; expected 0 for background and 255 for "
            "crack (multiply it by 255)"
        )
    return values > 127


def _split_dir(root: Path, split: str) -> Path:
    if not root.is_dir():
        raise DatasetError(f"{root}: data set folder does not exist")
    split_dir = root / split
    if not split_dir.is_dir():
        present = sorted(p.name for p in visible_entries(root) if p.is_dir())
        raise DatasetError(
            f"{split_dir}: split folder {split!r} not found; folders present in {root}: "
            f"{present or 'none'}; expected {'/'.join(SPLITS)} with images/ and masks/ inside"
        )
    return split_dir


LABELS_FILE = "labels.csv"
"""Image-level labels of a split, ``<split>/labels.csv``: header ``image,label``, then one row per
labelled image: its stem and 1 (crack) or 0 (crack-free)."""

LABELS_MAX_BYTES = 64 * 2**20


def read_labels(path: str | Path, stems: Iterable[str] | None = None) -> dict[str, bool]:
    """Read a split's :data:`LABELS_FILE`.

    Args:
        path: the CSV file.
        stems: the stems of the split's images; a row naming another stem is refused.

    Returns:
        stem -> True for a crack image, False for a crack-free one, in file order.

    Raises:
        DatasetError: not a readable CSV with the header ``image,label``, a label other than 0
            or 1, a stem listed twice or without an image; the message names the file and row.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > LABELS_MAX_BYTES:
            raise DatasetError(
                f"{path}: {size} bytes, larger than the {LABELS_MAX_BYTES // 2**20} MB a label "
                "file may have"
            )
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    rows = list(csv.reader(text.splitlines()))
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if header != ["image", "label"]:
        raise DatasetError(
            f"{path}: the first line must be the header 'image,label', got {','.join(header)!r}"
        )
    known = None if stems is None else set(stems)
    labels: dict[str, bool] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{path}, line {line}"
        if len(row) != 2:
            raise DatasetError(f"{where}: expected 2 columns (image,label), got {len(row)}")
        stem, value = row[0].strip(), row[1].strip()
        if value not in ("0", "1"):
            raise DatasetError(f"{where}: label {value!r} of {stem!r} must be 0 or 1")
        if stem in labels:
            raise DatasetError(f"{where}: {stem!r} is listed twice")
        if known is not None and stem not in known:
            hint = ""
            if Path(stem).stem in known:
                hint = f" (write the stem {Path(stem).stem!r}, without the extension)"
            raise DatasetError(f"{where}: no image of stem {stem!r} in the split{hint}")
        labels[stem] = value == "1"
    return labels


def scan_split(
    root: str | Path,
    split: str,
    *,
    negatives_without_mask: bool = False,
    check: bool = True,
    progress: bool = True,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
) -> list[Sample]:
    """List the samples of one split, pairing images and masks by stem.

    A split may declare image-level labels in ``<split>/labels.csv`` (:func:`read_labels`): an
    image labelled 1 without a mask is an image-level positive (``mask=None``,
    ``positive=True``), one labelled 0 without a mask is crack-free. A label must agree with the
    image's mask when it has one.

    Args:
        root: data set folder holding ``train/``, ``val/``, ``test/``.
        split: name of the split folder.
        negatives_without_mask: accept images that have neither mask file nor label as
            negatives.
        check: read every image header and mask, check sizes and binarity, fill ``positive``.
        progress: a progress bar while checking a split of more than 200 files.
        max_pixels: with ``check``, refuse an image of more pixels (None: no limit).

    Returns:
        Samples sorted by stem.

    Raises:
        DatasetError: see the module docstring for the rules.
    """
    root = Path(root)
    split_dir = _split_dir(root, split)
    images_dir, masks_dir = split_dir / "images", split_dir / "masks"
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: folder not found; each split needs images/ and masks/")
    images = _list_files(images_dir)
    if not images:
        raise DatasetError(f"{images_dir}: split {split!r} holds no images ({_accepted()})")
    labels_path = split_dir / LABELS_FILE
    labels = read_labels(labels_path, images) if labels_path.is_file() else {}
    if masks_dir.is_dir():
        masks = _list_files(masks_dir)
    elif negatives_without_mask or labels:
        masks = {}
    else:
        raise DatasetError(
            f"{masks_dir}: folder not found; each split needs images/ and masks/ (or image-level "
            f"labels in {labels_path}, or pass negatives_without_mask=True (crackkit run -p "
            "negatives_without_mask True) when every image of the split is crack-free)"
        )
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise DatasetError(
            f"{masks[orphans[0]]}: mask without an image of stem {orphans[0]!r} in {images_dir}"
            + (f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else "")
        )
    missing = sorted(set(images) - set(masks) - set(labels))
    if missing and not negatives_without_mask:
        raise DatasetError(
            f"{images[missing[0]]}: image with neither a mask in {masks_dir} nor a label in "
            f"{labels_path}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; give crack-free images an all-zero mask, declare image-level labels in "
            f"{LABELS_FILE} (header image,label; 1 crack, 0 crack-free), or let images without a "
            "mask count as crack-free with negatives_without_mask=True "
            "(crackkit run -p negatives_without_mask True)"
        )
    samples = [
        Sample(images[stem], masks.get(stem), _initial_label(stem, masks, labels))
        for stem in sorted(images)
    ]
    if check:
        samples = [
            _checked(s, labels.get(s.stem), labels_path, max_pixels)
            for s in tqdm(
                samples,
                desc=f"checking {split}",
                unit="img",
                disable=not progress or len(samples) + len(masks) <= _PROGRESS_MIN_FILES,
            )
        ]
    return samples


def _initial_label(stem: str, masks: dict[str, Path], labels: dict[str, bool]) -> bool | None:
    """A sample's ``positive`` before its mask is read: its label, False for an image with
    neither mask nor label (a negative without mask), None when the mask decides."""
    if stem in labels:
        return labels[stem]
    return None if stem in masks else False


def _checked(
    sample: Sample,
    label: bool | None = None,
    labels_path: Path | None = None,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
) -> Sample:
    height, width = image_size(sample.image, max_pixels)
    if sample.mask is None:
        return replace(sample, positive=bool(label))
    image_size(sample.mask, max_pixels)
    mask = read_mask(sample.mask)
    if mask.shape != (height, width):
        raise DatasetError(
            f"{sample.mask}: mask is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image "
            f"{sample.image} is {height}x{width}; a mask must match its image pixel for pixel"
        )
    positive = bool(mask.any())
    if label is not None and label != positive:
        raise DatasetError(
            f"{labels_path}: {sample.stem!r} is labelled {int(label)} but its mask {sample.mask} "
            + ("marks crack pixels" if positive else "is empty (crack-free)")
            + "; correct the label or the mask"
        )
    return replace(sample, positive=positive)


def split_counts(
    root: str | Path,
    splits: Sequence[str] = SPLITS,
    negatives_without_mask: bool = False,
    *,
    progress: bool = True,
) -> dict[str, dict[str, int]]:
    """Count positives and negatives in each existing split (reads every mask; ``progress`` as
    in :func:`scan_split`).

    Returns:
        ``{split: {"positives": int, "negatives": int, "sum": int}}`` for the splits present.
    """
    root = Path(root)
    counts: dict[str, dict[str, int]] = {}
    for split in splits:
        if not (root / split).is_dir():
            continue
        samples = scan_split(
            root, split, negatives_without_mask=negatives_without_mask, progress=progress
        )
        positives = sum(bool(s.positive) for s in samples)
        counts[split] = {
            "positives": positives,
            "negatives": len(samples) - positives,
            "sum": len(samples),
        }
    return counts


def write_sample(
    root: str | Path,
    split: str,
    stem: str,
    image: np.ndarray,
    mask: np.ndarray,
    image_ext: str = ".jpg",
) -> tuple[Path, Path]:
    """Write one image and its mask into the layout, creating folders as needed.

    Args:
        root: data set folder.
        split: split name, e.g. ``"train"``.
        stem: file stem shared by image and mask.
        image: ``(H, W, 3)`` or ``(H, W)`` uint8.
        mask: ``(H, W)`` bool, True on crack pixels; written as a 0/255 PNG.
        image_ext: ``".jpg"`` (quality 95) or ``".png"``.

    Returns:
        Paths of the image and the mask written.
    """
    ext = image_ext.lower()
    if ext not in (".jpg", ".jpeg", ".png"):
        raise ValueError(f"image_ext must be '.jpg', '.jpeg' or '.png', got {image_ext!r}")
    if not stem or Path(stem).name != stem or stem.startswith("."):
        raise ValueError(f"stem must be a plain file stem, got {stem!r}")
    image = np.asarray(image)
    mask = np.asarray(mask)
    if (
        image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] != 3)
    ):
        raise ValueError(
            f"image must be uint8 (H, W, 3) or (H, W), got {image.dtype} {image.shape}"
        )
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape[:2]}")
    root = Path(root)
    images_dir, masks_dir = root / split / "images", root / split / "masks"
    image_path, mask_path = images_dir / f"{stem}{ext}", masks_dir / f"{stem}.png"
    _refuse_other_extensions(image_path)
    _refuse_other_extensions(mask_path)
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    pil = Image.fromarray(image)
    if ext == ".png":
        pil.save(image_path, format="PNG", compress_level=1)
    else:
        pil.save(image_path, format="JPEG", quality=95)
    Image.fromarray(np.where(mask.astype(bool), 255, 0).astype(np.uint8)).save(
        mask_path, format="PNG", compress_level=1
    )
    return image_path, mask_path


def _refuse_other_extensions(path: Path) -> None:
    others: Iterable[Path] = (path.with_suffix(ext) for ext in IMAGE_EXTENSIONS)
    for other in others:
        if other != path and other.exists():
            raise DatasetError(
                f"{other}: already holds stem {path.stem!r}; writing {path.name} would give the "
                "stem two files"
            )
