"""Import the CrackForest data set (CFD) into the processed layout of :mod:`crackkit.data.folder`.

CrackForest (Shi, Cui, Qi, Meng, Chen, IEEE T-ITS 2016) is published by its authors as the GitHub
repository :data:`CFD_HOMEPAGE`, possibly under one top folder (GitHub's archive unpacks into
``CrackForest-dataset-master/``):

* ``image/NNN.jpg``: RGB photos of urban road surface, 480x320 (W x H).
* ``groundTruth/NNN.mat``: MATLAB v5 files (001-118), each a 1x1 struct ``groundTruth`` whose field
  ``Segmentation`` (uint8, H x W) labels each pixel: 1 background, 2 crack, 3 background enclosed
  between crack branches, 4 faint crack (see :data:`CFD_LABELS`). Images without a ``.mat`` have no
  ground truth; they are counted and skipped.

Splits (CFD has no official one): test = 073-118 (46 images), as in the literature that defines a
split (Koenig et al., WeaklySupervisedCrackSeg); train/val = the other images with ground truth
(001-072), val drawn once at import time with seed :data:`CFD_VAL_SEED` (about 15 %, 11 of 72) and
written into ``dataset.json`` (``val_images``), so every run of the kit sees the same val images.
Crack = label values {2, 4} by default (the common convention), or {2} only.

The raw source is never modified: a folder is read in place; an archive is copied into
``data/raw`` and extracted into a temporary folder within bounds
(:func:`crackkit.data.archive.extract_archive`: no absolute paths, ``..``, links, duplicate names,
zip bombs; sizes, free space and every member's CRC checked). Every image is decoded once. The
result is built in a hidden sibling folder and renamed into place only when everything succeeded;
on any error both temporary folders are removed.
``ROOT/processed/cfd/dataset.json`` records the source (and its SHA-256 for an archive), the
license and citation, the crack values, the split membership and the counts.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    DownloadInfo,
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
    visible_entries,
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

_log = logging.getLogger(__name__)

__all__ = [
    "CFD",
    "CFD_CITATION",
    "CFD_CRACK_VALUES",
    "CFD_HOMEPAGE",
    "CFD_LABELS",
    "CFD_LICENSE",
    "CFD_TEST_IDS",
    "CFD_VAL_FRACTION",
    "CFD_VAL_SEED",
    "CfdReport",
    "add_cli_arguments",
    "choose_val",
    "fetch_cfd",
    "find_cfd_base",
    "import_cfd",
    "main_from_args",
    "parse_crack_values",
    "read_segmentation",
]

CFD_HOMEPAGE = "https://github.com/cuilimeng/CrackForest-dataset"
CFD_LICENSE = "The dataset is made available for non-commercial research purposes only."
"""The license line of the authors' README, quoted."""
CFD_CITATION = (
    'Y. Shi, L. Cui, Z. Qi, F. Meng, Z. Chen, "Automatic road crack detection using random '
    'structured forests", IEEE Transactions on Intelligent Transportation Systems 17(12), '
    "3434-3445, 2016"
)
# GitHub builds its archives on the fly, so their bytes (and hash) are not guaranteed to stay the
# same; nothing is pinned and the first download prints the SHA-256 to pin with --sha256.
CFD = DownloadInfo(
    name="cfd",
    url=f"{CFD_HOMEPAGE}/archive/refs/heads/master.zip",
    filename="CrackForest-dataset-master.zip",
    sha256=None,
)

CFD_LABELS: dict[int, str] = {
    1: "background",
    2: "crack",
    3: "enclosed background",
    4: "faint crack",
}
"""Values of ``groundTruth.Segmentation``."""
CFD_CRACK_VALUES: tuple[int, ...] = (2, 4)
"""Label values counted as crack by default."""
CFD_TEST_IDS: tuple[int, int] = (73, 118)
"""Inclusive range of image numbers forming the test split (46 images)."""
CFD_VAL_FRACTION = 0.15
CFD_VAL_SEED = 0

_SEARCH_DEPTH = 3
_IMAGE_DIR, _GT_DIR = "image", "groundtruth"


@dataclass
class CfdReport:
    """What an import wrote (the content of ``dataset.json``).

    Attributes:
        name: data-set name, the folder under the processed folder.
        dest: folder holding ``train/``, ``val/``, ``test/`` and ``dataset.json``.
        source: ``{"kind": "folder" | "archive", "path", "url", "sha256"}``.
        crack_values: label values written as crack.
        splits: ``{split: [image stems]}``.
        counts: ``{split: {"positives", "negatives", "sum"}}``.
        skipped_without_ground_truth: stems of the images that have no ``.mat``.
        files_with_value: ``{value: number of .mat files holding it}`` for every label value.
        warnings: ignored files and unusual labels, also printed.
    """

    name: str
    dest: Path
    source: dict
    crack_values: tuple[int, ...]
    splits: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped_without_ground_truth: list[str] = field(default_factory=list)
    files_with_value: dict[int, int] = field(default_factory=dict)
    val_seed: int = CFD_VAL_SEED
    val_fraction: float = CFD_VAL_FRACTION
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready view, the content of ``dataset.json``."""
        lo, hi = CFD_TEST_IDS
        return {
            "name": self.name,
            "title": "CrackForest (CFD)",
            "homepage": CFD_HOMEPAGE,
            "license": CFD_LICENSE,
            "citation": CFD_CITATION,
            "source": self.source,
            "sha256": self.source.get("sha256"),
            "crack_values": list(self.crack_values),
            "labels": {str(k): v for k, v in CFD_LABELS.items()},
            "split_rule": (
                f"test = {lo:03d}-{hi:03d}; val = {len(self.splits.get('val', []))} of the "
                f"{len(self.splits.get('train', [])) + len(self.splits.get('val', []))} other "
                f"images with ground truth, drawn with seed {self.val_seed} "
                f"(fraction {self.val_fraction}); train = the rest"
            ),
            "val_seed": self.val_seed,
            "val_fraction": self.val_fraction,
            "val_images": list(self.splits.get("val", [])),
            "splits": {s: list(v) for s, v in self.splits.items()},
            "counts": self.counts,
            "images_with_ground_truth": sum(len(v) for v in self.splits.values()),
            "skipped_without_ground_truth": len(self.skipped_without_ground_truth),
            "skipped_images": list(self.skipped_without_ground_truth),
            "files_with_value": {str(k): v for k, v in sorted(self.files_with_value.items())},
            "warnings": list(self.warnings),
            "dest": str(self.dest),
        }


# ---------------------------------------------------------------------------------------------
# Reading


def parse_crack_values(text: str | Iterable[int]) -> tuple[int, ...]:
    """``"2,4"`` (or an iterable of ints) -> ``(2, 4)``, checked against :data:`CFD_LABELS`.

    Raises:
        ValueError: empty, not integers, 1 (background) or a value CFD does not use.
    """
    if isinstance(text, str):
        try:
            values = [int(v) for v in text.replace(" ", "").split(",") if v]
        except ValueError:
            raise ValueError(
                f"crack values must be comma-separated integers, got {text!r}"
            ) from None
    else:
        values = [int(v) for v in text]
    allowed = sorted(set(CFD_LABELS) - {1})
    bad = [v for v in values if v not in allowed]
    if not values or bad:
        meaning = ", ".join(f"{v} ({CFD_LABELS[v]})" for v in allowed)
        raise ValueError(
            f"crack values {text!r}: expected a non-empty comma-separated subset of {meaning}; "
            "1 is background"
        )
    return tuple(sorted(set(values)))


def read_segmentation(path: str | os.PathLike) -> np.ndarray:
    """Read ``groundTruth.Segmentation`` of a CrackForest ``.mat`` file.

    Returns:
        ``(H, W)`` uint8 label array (see :data:`CFD_LABELS`).

    Raises:
        DatasetError: not a MATLAB v5 file, no struct ``groundTruth`` with one element and a field
            ``Segmentation``, or a segmentation that is not a 2-D array of small integers.
    """
    import scipy.io

    path = Path(path)
    try:
        content = scipy.io.loadmat(path)
    except NotImplementedError as err:
        raise DatasetError(
            f"{path}: MATLAB v7.3 (HDF5) files are not read; CrackForest ships v5 files ({err})"
        ) from err
    except Exception as err:  # noqa: BLE001 - scipy raises many types for a damaged file
        raise DatasetError(f"{path}: not a readable MATLAB v5 .mat file ({err})") from err
    expected = "expected a 1x1 struct groundTruth with a field Segmentation (CrackForest layout)"
    if "groundTruth" not in content:
        found = sorted(k for k in content if not k.startswith("__")) or ["none"]
        raise DatasetError(
            f"{path}: no variable 'groundTruth' (found: {', '.join(found)}); {expected}"
        )
    truth = content["groundTruth"]
    names = getattr(getattr(truth, "dtype", None), "names", None)
    if not names:
        raise DatasetError(f"{path}: 'groundTruth' is not a struct; {expected}")
    if "Segmentation" not in names:
        raise DatasetError(
            f"{path}: 'groundTruth' has no field 'Segmentation' (fields: {', '.join(names)}); "
            f"{expected}"
        )
    if truth.size != 1:
        raise DatasetError(f"{path}: 'groundTruth' holds {truth.size} annotations; {expected}")
    seg = np.asarray(truth.flat[0]["Segmentation"])
    if seg.dtype == object and seg.size == 1:
        seg = np.asarray(seg.flat[0])
    if seg.ndim != 2 or seg.size == 0 or seg.dtype.kind not in "uif":
        raise DatasetError(
            f"{path}: groundTruth.Segmentation is {seg.dtype} of shape {seg.shape}; expected a 2-D "
            "array of label values (uint8 H x W)"
        )
    if seg.dtype.kind == "f" and not np.array_equal(seg, np.round(seg)):
        raise DatasetError(f"{path}: groundTruth.Segmentation holds non-integer values")
    if seg.min() < 0 or seg.max() > 255:
        raise DatasetError(
            f"{path}: groundTruth.Segmentation values span {seg.min()}..{seg.max()}; expected "
            f"labels {sorted(CFD_LABELS)}"
        )
    return seg.astype(np.uint8)


def find_cfd_base(root: str | os.PathLike) -> Path:
    """Shallowest folder under ``root`` (up to three levels deep) holding ``image/`` and
    ``groundTruth/``.

    Raises:
        DatasetError: none found; the message lists what ``root`` holds.
    """
    root = Path(root)
    level = [root]
    for _ in range(_SEARCH_DEPTH + 1):
        for folder in level:
            children = subdirs(folder)
            if _IMAGE_DIR in children and _GT_DIR in children:
                return folder
        level = [child for folder in level for child in subdirs(folder).values()]
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    shown = ", ".join(entries[:20]) + (
        f" ... ({len(entries) - 20} more)" if len(entries) > 20 else ""
    )
    raise DatasetError(
        f"{root}: no CrackForest layout found (top-level entries: {shown or 'none'}); expected "
        "image/NNN.jpg and groundTruth/NNN.mat, optionally under one or more top folders such as "
        "CrackForest-dataset-master/"
    )


def _files_by_stem(folder: Path, suffixes: Iterable[str], warnings: list[str]) -> dict[str, Path]:
    wanted = {s.lower() for s in suffixes}
    found: dict[str, Path] = {}
    ignored: list[str] = []
    for path in visible_entries(folder):
        if not path.is_file() or path.suffix.lower() not in wanted:
            ignored.append(path.name + ("/" if path.is_dir() else ""))
            continue
        if path.stem in found:
            raise DatasetError(
                f"{path} and {found[path.stem]} share the stem {path.stem!r}; keep one per stem"
            )
        found[path.stem] = path
    if ignored:
        more = f" and {len(ignored) - 5} more" if len(ignored) > 5 else ""
        warnings.append(f"{folder}: ignored {len(ignored)} entries: {', '.join(ignored[:5])}{more}")
    return found


def _number(path: Path) -> int:
    if not path.stem.isdigit():
        raise DatasetError(
            f"{path}: expected a numbered CrackForest file such as 001{path.suffix} (the number "
            "decides the split)"
        )
    return int(path.stem)


def choose_val(
    stems: Sequence[str], seed: int = CFD_VAL_SEED, fraction: float = CFD_VAL_FRACTION
) -> list[str]:
    """The validation stems drawn from the train candidates.

    Args:
        stems: train candidates; their sorted order is what the seed permutes.
        seed: NumPy ``default_rng`` seed.
        fraction: share drawn, rounded, at least 1 (11 of CFD's 72).

    Returns:
        The chosen stems, sorted.

    Raises:
        DatasetError: fewer than two candidates.
    """
    ordered = sorted(stems)
    if len(ordered) < 2:
        raise DatasetError(
            f"only {len(ordered)} train image(s) with ground truth outside the test range: too few "
            "to draw a validation split"
        )
    n_val = min(len(ordered) - 1, max(1, round(fraction * len(ordered))))
    order = np.random.default_rng(seed).permutation(len(ordered))
    return sorted(ordered[i] for i in order[:n_val])


def _ranges(stems: Sequence[str]) -> str:
    """``["001", "002", "003", "201"]`` -> ``"001-003, 201"``."""
    numbers = sorted(int(s) for s in stems if s.isdigit())
    others = sorted(s for s in stems if not s.isdigit())
    spans: list[str] = []
    start = prev = None
    for n in [*numbers, None]:
        if start is not None and (n is None or n != prev + 1):
            spans.append(f"{start:03d}" if start == prev else f"{start:03d}-{prev:03d}")
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return ", ".join(spans + others) or "none"


# ---------------------------------------------------------------------------------------------
# Import


def _write_pair(image: Path, mat: Path, split_dir: Path, crack: tuple[int, ...]) -> np.ndarray:
    """Check one image (decoded once) and its ``.mat``, copy the image and write the 0/255 mask;
    return labels."""
    image_size(image, MAX_IMAGE_PIXELS)
    height, width = read_image(image).shape[:2]
    seg = read_segmentation(mat)
    if seg.shape != (height, width):
        raise DatasetError(
            f"{mat}: groundTruth.Segmentation is {seg.shape[0]}x{seg.shape[1]} (HxW) but its image "
            f"{image} is {height}x{width}; a mask must match its image pixel for pixel"
        )
    (split_dir / "images").mkdir(parents=True, exist_ok=True)
    (split_dir / "masks").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image, split_dir / "images" / f"{image.stem}{image.suffix.lower()}")
    mask = np.where(np.isin(seg, crack), 255, 0).astype(np.uint8)
    Image.fromarray(mask).save(split_dir / "masks" / f"{image.stem}.png", compress_level=1)
    return seg


def _import_tree(
    src_root: Path,
    dest_root: Path,
    *,
    name: str,
    crack_values: tuple[int, ...],
    val_seed: int,
    val_fraction: float,
    overwrite: bool,
    progress: bool,
    verbose: bool,
    source: dict,
    shown_as: tuple[str, str] | None = None,
) -> CfdReport:
    final = dest_root / name
    check_destination(final, overwrite, "another --root")
    warnings: list[str] = []
    base = find_cfd_base(src_root)
    children = subdirs(base)
    say(verbose, shown(f"{name}: CrackForest layout found in {base}", shown_as))
    images = _files_by_stem(children[_IMAGE_DIR], IMAGE_EXTENSIONS, warnings)
    mats = _files_by_stem(children[_GT_DIR], (".mat",), warnings)
    orphans = sorted(set(mats) - set(images))
    if orphans:
        raise DatasetError(
            f"{mats[orphans[0]]}: ground truth without an image {orphans[0]}.jpg in "
            f"{children[_IMAGE_DIR]}"
            + (f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else "")
        )
    skipped = sorted(set(images) - set(mats))
    lo, hi = CFD_TEST_IDS
    test, pool = [], []
    for stem in sorted(mats):
        number = _number(mats[stem])
        (test if lo <= number <= hi else pool).append(stem)
        if not 1 <= number <= hi:
            warnings.append(f"{mats[stem]}: number {number} lies outside CrackForest's 001-{hi}")
    if not test:
        raise DatasetError(
            f"{children[_GT_DIR]}: split 'test' is empty: no ground truth numbered "
            f"{lo:03d}-{hi:03d}"
        )
    val = choose_val(pool, val_seed, val_fraction)
    splits = {"train": sorted(set(pool) - set(val)), "val": val, "test": test}
    report = CfdReport(
        name=name,
        dest=final,
        source=source,
        crack_values=crack_values,
        splits=splits,
        skipped_without_ground_truth=skipped,
        val_seed=val_seed,
        val_fraction=val_fraction,
    )
    say(
        verbose,
        f"  {len(images)} images: {len(mats)} with ground truth = {len(pool)} train/val "
        f"({_ranges(pool)}) + {len(test)} test ({_ranges(test)}); {len(skipped)} without ground "
        f"truth skipped ({_ranges(skipped)})",
    )
    labels = ", ".join(f"{v} ({CFD_LABELS[v]})" for v in crack_values)
    say(verbose, f"  crack = label values {labels}; every other value is background")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.importing-", dir=dest_root))
    try:
        values_seen: dict[int, int] = {}
        total = sum(len(v) for v in splits.values())
        bar = tqdm(total=total, desc=name, unit="img", disable=not progress)
        with bar:
            for split in SPLITS:
                positives = 0
                for stem in splits[split]:
                    seg = _write_pair(images[stem], mats[stem], staging / split, crack_values)
                    present = {int(v) for v in np.unique(seg)}
                    for value in present:
                        values_seen[value] = values_seen.get(value, 0) + 1
                    unknown = sorted(present - set(CFD_LABELS))
                    if unknown:
                        warnings.append(
                            f"{mats[stem]}: label values {unknown} are not CrackForest labels "
                            f"{sorted(CFD_LABELS)}; written as background"
                        )
                    positives += bool(np.isin(seg, crack_values).any())
                    bar.update(1)
                n = len(splits[split])
                report.counts[split] = {
                    "positives": positives,
                    "negatives": n - positives,
                    "sum": n,
                }
        for split in SPLITS:
            c = report.counts[split]
            line = f"  {split}: {c['sum']} images ({c['positives']} with cracks, "
            line += f"{c['negatives']} crack-free)"
            if split == "val":
                line += f"; drawn with seed {val_seed}: {', '.join(splits['val'])}"
            say(verbose, line)
        report.files_with_value = values_seen
        held = ", ".join(
            f"{values_seen[v]} hold {v} ({CFD_LABELS[v]})" for v in (3, 4) if v in values_seen
        )
        if held:
            say(verbose, f"  of the {len(mats)} ground-truth files {held}")
        report.warnings = [shown(w, shown_as) for w in warnings]
        for warning in report.warnings:
            say(verbose, f"WARNING: {warning}")
        say(verbose, f"  license: {CFD_LICENSE}")
        say(verbose, f"  cite: {CFD_CITATION}")
        finish_import(
            staging, final, report.to_dict(), report.counts, overwrite=overwrite, progress=progress
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(verbose, f"{name}: imported into {final}")
    return report


def import_cfd(
    source: str | os.PathLike,
    dest_root: str | os.PathLike,
    *,
    name: str = "cfd",
    crack_values: Iterable[int] | str = CFD_CRACK_VALUES,
    val_seed: int = CFD_VAL_SEED,
    val_fraction: float = CFD_VAL_FRACTION,
    overwrite: bool = False,
    url: str | None = None,
    progress: bool = True,
    verbose: bool = True,
    limits: ArchiveLimits | None = None,
    sha256_pinned: str | None = None,
) -> CfdReport:
    """Import a CrackForest folder or archive into ``dest_root/name/{train,val,test}``.

    Args:
        source: the extracted data set (read in place) or a zip/tar(.gz/.bz2/.xz) archive of it
            (extracted into a temporary folder inside ``dest_root``); never modified.
        dest_root: folder that receives ``name/`` (e.g. ``data/processed``).
        name: folder name of the import.
        crack_values: label values written as crack, e.g. ``(2, 4)`` or ``"2"``.
        val_seed: seed of the validation draw (see :func:`choose_val`).
        val_fraction: share of the train candidates drawn for validation.
        overwrite: replace an existing ``dest_root/name``.
        url: where the archive was downloaded from, recorded in ``dataset.json``.
        sha256_pinned: the SHA-256 the archive was checked against (None: nothing verified),
            recorded beside the SHA-256 seen.
        progress: show a progress bar.
        verbose: print the layout, counts, license and warnings.
        limits: the bounds of an archive's extraction (default
            :class:`~crackkit.data.archive.ArchiveLimits`).

    Returns:
        The :class:`CfdReport`, also written as ``dataset.json``.

    Raises:
        DatasetError: unknown layout, unsafe archive, an unreadable ``.mat`` or image, a
            segmentation whose size differs from its image, no test images, or an existing import
            without ``overwrite``.
    """
    source, dest_root = Path(source).expanduser(), Path(dest_root)
    crack = parse_crack_values(crack_values)
    if not source.exists():
        raise DatasetError(f"{source}: CrackForest source not found (give a folder or an archive)")
    dest_root.mkdir(parents=True, exist_ok=True)
    check_destination(dest_root / name, overwrite)
    options = {
        "name": name,
        "crack_values": crack,
        "val_seed": val_seed,
        "val_fraction": val_fraction,
        "overwrite": overwrite,
        "progress": progress,
        "verbose": verbose,
    }
    if source.is_dir():
        record = {"kind": "folder", "path": str(source.resolve()), "url": url, "sha256": None}
        return _import_tree(source, dest_root, source=record, **options)
    digest = sha256_file(source)
    record = {
        "kind": "archive",
        "path": str(source.resolve()),
        "url": url,
        "sha256": digest,
        "sha256_pinned": sha256_pinned,
    }
    with tempfile.TemporaryDirectory(prefix=f".{name}.extract-", dir=dest_root) as tmp:
        shown_as = (tmp, source.name)
        try:
            extract_archive(source, tmp, limits, copies=2)
            return _import_tree(Path(tmp), dest_root, source=record, shown_as=shown_as, **options)
        except DatasetError as err:
            raise DatasetError(shown(str(err), shown_as)) from err


def fetch_cfd(
    root: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    url: str | None = None,
    sha256: str | None = None,
    *,
    crack_values: Iterable[int] | str = CFD_CRACK_VALUES,
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = True,
    limits: ArchiveLimits | None = None,
    allow_http: bool = False,
) -> Path:
    """Take (or download) CrackForest and import it into ``processed/cfd``.

    Args:
        root: data folder holding ``raw/`` and ``processed/``; default the project's
            (:data:`crackkit.paths.RAW_DIR`, :data:`crackkit.paths.PROCESSED_DIR`).
        source: an extracted CrackForest folder (read in place) or an archive (copied into
            ``raw/``, checked against ``sha256`` when given).
        url: download URL of an archive (default, when neither is given: the GitHub archive of
            :data:`CFD_HOMEPAGE`); resumed and verified like CRACK500's downloads.
        sha256: expected SHA-256 of the archive; when absent the computed one is printed.
        crack_values: label values counted as crack.
        overwrite: replace an existing import.
        progress: progress bars.
        verbose: print layout, counts, license and warnings.
        limits: the bounds of an archive's extraction (see :func:`import_cfd`).
        allow_http: accept an ``http://`` URL (or a redirect to one); refused by default.

    Returns:
        The processed folder. An existing import of the same archive with the same crack values is
        returned as is; any other existing import needs ``overwrite``.

    Raises:
        DatasetError, DownloadError: see :func:`import_cfd` and
            :func:`crackkit.data.download.download`.
        ValueError: both ``source`` and ``url``, ``sha256`` with a folder, or bad crack values.
    """
    from crackkit import paths

    if root is None:
        raw_dir, processed = Path(paths.RAW_DIR), Path(paths.PROCESSED_DIR)
    else:
        raw_dir, processed = Path(root) / "raw", Path(root) / "processed"
    crack = parse_crack_values(crack_values)
    if source is not None and url is not None:
        raise ValueError("pass either --source or --url, not both")
    if source is not None and Path(source).expanduser().is_dir():
        if sha256 is not None:
            raise ValueError("--sha256 checks an archive; --source is a folder")
        archive = None
        src = Path(source).expanduser()
    elif source is not None:
        archive = store_raw(Path(source).expanduser(), raw_dir, sha256, verbose=verbose)
        src = archive
    else:
        url = url or CFD.url
        sha256 = sha256 or CFD.sha256
        archive = download(
            url,
            raw_dir / archive_name(url, CFD.filename),
            sha256=sha256,
            progress=progress,
            allow_http=allow_http,
        )
        src = archive
    final = processed / CFD.name
    if final.exists() and not overwrite and archive is not None:
        record = read_record(final)
        if record.get("sha256") == sha256_file(archive) and record.get("crack_values") == list(
            crack
        ):
            say(verbose, f"{final} already holds this import; nothing to do")
            return final
    if final.exists() and not overwrite:
        raise DatasetError(
            f"{final} already exists (see its dataset.json); pass --overwrite to replace it"
        )
    if archive is not None:
        warn_if_source_changed(final, sha256_file(archive))
    import_cfd(
        src,
        processed,
        name=CFD.name,
        crack_values=crack,
        overwrite=overwrite,
        url=url,
        progress=progress,
        verbose=verbose,
        limits=limits,
        sha256_pinned=sha256.strip().lower() if sha256 and archive is not None else None,
    )
    return final


def _crack_values_arg(text: str) -> tuple[int, ...]:
    try:
        return parse_crack_values(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_cli_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``crackkit data cfd`` options to ``parser``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--source",
        type=Path,
        metavar="DIR_OR_ARCHIVE",
        help="an extracted CrackForest folder (read in place) or an archive of it (copied into "
        "raw/)",
    )
    source.add_argument(
        "--url", help=f"download URL of an archive (default: the GitHub archive of {CFD_HOMEPAGE})"
    )
    parser.add_argument("--sha256", help="expected SHA-256 of the archive (64 hex digits)")
    parser.add_argument(
        "--root", type=Path, default=None, help="data folder holding raw/ and processed/"
    )
    parser.add_argument(
        "--crack-values",
        type=_crack_values_arg,
        default=CFD_CRACK_VALUES,
        metavar="V[,V]",
        help="label values counted as crack: 2 crack, 4 faint crack (default: 2,4)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing processed/cfd (with --tiles: and processed/cfd-tiles-HxW)",
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
    parser.add_argument(
        "--tiles", dest="tiles", type=int, nargs=2, action=DeprecatedOption, new="--tiled-copy H W"
    )
    parser.add_argument(
        "--tiled-copy",
        dest="tiles",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="then also write processed/cfd-tiles-HxW: every image cut into HxW tiles, crack-free "
        "tiles kept as real negatives (see crackkit.data.tiles); an existing processed/cfd is "
        "reused",
    )
    parser.add_argument(
        "--tile-margin",
        type=int,
        default=None,
        metavar="PX",
        help="with --tiled-copy: a crack-free tile needs no crack within PX pixels around it, "
        "else it is dropped (default: 8)",
    )
    return parser


def main_from_args(args: argparse.Namespace) -> int:
    """Run :func:`fetch_cfd` from parsed CLI arguments, then the tiling of ``--tiled-copy`` (which
    reuses an existing import); errors go to ``crackkit``'s handler (:func:`crackkit.cli.main`),
    which prints them in one line."""
    console.configure()
    tiles, margin = getattr(args, "tiles", None), getattr(args, "tile_margin", None)
    path = None
    if tiles is None and margin is not None:
        raise ValueError("--tile-margin needs --tiled-copy H W")
    if tiles is not None:
        from crackkit import paths
        from crackkit.data.tiles import DEFAULT_MARGIN, check_margin, check_tile, write_tiles

        tiles = check_tile(tuple(tiles))
        margin = check_margin(DEFAULT_MARGIN if margin is None else margin)
        root = args.root
        processed = Path(paths.PROCESSED_DIR) if root is None else Path(root) / "processed"
        existing = processed / CFD.name
        if existing.exists() and not args.overwrite:
            held = read_record(existing).get("crack_values")
            if held != list(args.crack_values):
                raise DatasetError(
                    f"{existing} was imported with crack values {held}, not "
                    f"{list(args.crack_values)}; pass --overwrite to import it again"
                )
            _log.info(f"{existing} already exists; reusing it (--overwrite imports it again)")
            path = existing
    if path is None:
        path = fetch_cfd(
            root=args.root,
            source=args.source,
            url=args.url,
            sha256=args.sha256,
            crack_values=args.crack_values,
            overwrite=args.overwrite,
            progress=not args.quiet,
            limits=limits_from_args(args),
            allow_http=args.allow_http,
        )
    print(path)
    if tiles is not None:
        write_tiles(path, tiles, margin=margin, overwrite=args.overwrite, progress=not args.quiet)
    return 0
