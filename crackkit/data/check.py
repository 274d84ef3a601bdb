"""Check a folder data set before a run: every problem at once, instead of the first one.

:func:`check_folder` walks ``ROOT/{train,val,test}/{images,masks}`` (the layout of
:mod:`crackkit.data.folder`) and reads every file. It does not stop at a problem: it collects
:class:`Finding` objects, each naming its file, at one of two levels:

* ``error``: the run would stop on it (:func:`crackkit.pipeline.prepare` refuses the data set):
  a missing split or folder, an unsupported file or a subfolder, two files of one stem, an image
  with neither mask nor label (unless negatives without masks are allowed), a malformed
  ``labels.csv`` or a label that contradicts its mask, a mask without an image, an
  unreadable or truncated file, a mask that is not binary or not of its image's size, a training
  split without crack pixels;
* ``warning``: the run goes on, but the result may not be what was meant: no ``val`` split (15 %
  of train is split off), images of several sizes (all are resized to the run's input size), a
  split without crack-free images (its decision figures are trivial), JPEG masks, the same image
  in two splits (a leak between training and test), the same image with two different labels (a
  label conflict).

Rules that look at the whole data set once its files are read are functions in :data:`RULES`
(``rule(scan) -> iterable of Finding``); a rule for another kind of annotation is one more
function appended there.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from crackkit.data.folder import (
    IMAGE_EXTENSIONS,
    LABELS_FILE,
    SPLITS,
    DatasetError,
    image_size,
    read_image,
    read_labels,
    read_mask,
    visible_entries,
)

__all__ = ["Finding", "SplitStats", "FolderScan", "CheckReport", "RULES", "check_folder"]

ERROR = "error"
WARNING = "warning"
#: Splits a run needs; ``val`` is split off ``train`` when absent.
REQUIRED_SPLITS = ("train", "test")


@dataclass(frozen=True)
class Finding:
    """One problem: ``level`` ``"error"`` (a run would stop) or ``"warning"``; ``path`` the file
    or folder it is about (None: the data set as a whole)."""

    level: str
    message: str
    path: Path | None = None

    def line(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        return f"{self.level}: {where}{self.message}"


@dataclass
class SplitStats:
    """What one split holds once read: counts, and the image sizes seen (height, width)."""

    images: int = 0
    positives: int = 0
    negatives: int = 0
    unreadable: int = 0
    image_level: int = 0
    sizes: Counter = field(default_factory=Counter)


@dataclass
class FolderScan:
    """What the walk read, handed to every rule of :data:`RULES`.

    Attributes:
        root: the data set folder.
        splits: per split present, its :class:`SplitStats`.
        labels: per split, image path -> True (crack pixels), False (crack-free) for every
            image whose mask (or missing mask) could be read.
        digests: SHA-256 of every readable image file -> the paths holding those bytes.
    """

    root: Path
    splits: dict[str, SplitStats] = field(default_factory=dict)
    labels: dict[str, dict[Path, bool]] = field(default_factory=dict)
    digests: dict[str, list[Path]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class CheckReport:
    """The result of :func:`check_folder`: counts per split and every finding."""

    root: Path
    splits: dict[str, SplitStats]
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == WARNING]

    @property
    def ok(self) -> bool:
        """No finding would stop a run (warnings allowed)."""
        return not self.errors

    def lines(self) -> list[str]:
        """A readable summary: one line per split, then the findings, then the verdict."""
        out = [f"data set {self.root}"]
        for name, s in self.splits.items():
            sizes = ", ".join(
                f"{h}x{w}" + (f" ({n})" if len(s.sizes) > 1 else "")
                for (h, w), n in s.sizes.most_common(4)
            )
            more = f" and {len(s.sizes) - 4} more sizes" if len(s.sizes) > 4 else ""
            out.append(
                f"  {name}: {s.images} images, {s.positives} with cracks"
                + (f" ({s.image_level} by label only)" if s.image_level else "")
                + f", {s.negatives} crack-free"
                + (f", {s.unreadable} unreadable" if s.unreadable else "")
                + (f"; sizes (HxW) {sizes}{more}" if sizes else "")
            )
        out += [f.line() for f in self.findings]
        verdict = (
            f"{len(self.errors)} error(s) that would stop a run, {len(self.warnings)} warning(s)"
            if self.findings
            else "no problems found"
        )
        out.append(verdict)
        return out


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path, findings: list[Finding]) -> dict[str, Path]:
    """stem -> file of an images/ or masks/ folder; what a run would refuse becomes an error."""
    by_stem: dict[str, Path] = {}
    for path in visible_entries(folder):
        if path.is_dir():
            findings.append(Finding(ERROR, f"a folder inside {folder.name}/; only files", path))
        elif path.suffix.lower() not in IMAGE_EXTENSIONS:
            findings.append(
                Finding(
                    ERROR,
                    f"unsupported extension {path.suffix!r}; accepted: "
                    + ", ".join(IMAGE_EXTENSIONS),
                    path,
                )
            )
        elif path.stem in by_stem:
            findings.append(
                Finding(
                    ERROR, f"shares the stem {path.stem!r} with {by_stem[path.stem].name}", path
                )
            )
        else:
            by_stem[path.stem] = path
    return by_stem


def _check_split(
    scan: FolderScan,
    split: str,
    findings: list[Finding],
    *,
    negatives_without_mask: bool,
    progress: bool,
) -> None:
    split_dir = scan.root / split
    images_dir, masks_dir = split_dir / "images", split_dir / "masks"
    if not images_dir.is_dir():
        findings.append(Finding(ERROR, "folder not found; each split needs images/", images_dir))
        return
    images = _files(images_dir, findings)
    labels_path = split_dir / LABELS_FILE
    declared: dict[str, bool] = {}
    if labels_path.is_file():
        try:
            declared = read_labels(labels_path, images)
        except DatasetError as exc:
            findings.append(Finding(ERROR, _reason(exc, labels_path), labels_path))
    masks: dict[str, Path] = {}
    if masks_dir.is_dir():
        masks = _files(masks_dir, findings)
    elif not negatives_without_mask and not declared:
        findings.append(
            Finding(
                ERROR,
                "folder not found; each split needs masks/ (or negatives_without_mask, when "
                "every image of the split is crack-free)",
                masks_dir,
            )
        )
    for stem in sorted(set(masks) - set(images)):
        findings.append(Finding(ERROR, f"a mask without an image of stem {stem!r}", masks[stem]))
    stats = SplitStats()
    labels: dict[Path, bool] = {}
    if not images:
        findings.append(Finding(ERROR, f"split {split!r} holds no images", images_dir))
    jpeg_masks = 0
    for stem in tqdm(sorted(images), desc=f"checking {split}", disable=not progress):
        image = images[stem]
        stats.images += 1
        try:
            height, width = image_size(image)
            read_image(image)  # a truncated file fails only when decoded
        except DatasetError as exc:
            stats.unreadable += 1
            findings.append(Finding(ERROR, _reason(exc, image), image))
            continue
        stats.sizes[(height, width)] += 1
        scan.digests[_digest(image)].append(image)
        mask_path = masks.get(stem)
        if mask_path is None:
            if stem in declared:  # an image-level label (mixed supervision)
                labels[image] = declared[stem]
                stats.positives += declared[stem]
                stats.image_level += declared[stem]
                stats.negatives += not declared[stem]
                continue
            if not negatives_without_mask:
                findings.append(
                    Finding(
                        ERROR,
                        "an image with neither a mask nor a label; give a crack-free image an "
                        f"all-zero mask, declare image-level labels in {LABELS_FILE}, or allow "
                        "negatives_without_mask",
                        image,
                    )
                )
                continue
            labels[image] = False
            stats.negatives += 1
            continue
        try:
            mask = read_mask(mask_path)
        except DatasetError as exc:
            findings.append(Finding(ERROR, _reason(exc, mask_path), mask_path))
            continue
        if mask.shape != (height, width):
            findings.append(
                Finding(
                    ERROR,
                    f"mask is {mask.shape[0]}x{mask.shape[1]} (HxW), its image "
                    f"{image.name} is {height}x{width}",
                    mask_path,
                )
            )
            continue
        if mask_path.suffix.lower() in (".jpg", ".jpeg"):
            jpeg_masks += 1
        positive = bool(mask.any())
        if stem in declared and declared[stem] != positive:
            findings.append(
                Finding(
                    ERROR,
                    f"{stem!r} is labelled {int(declared[stem])} but its mask "
                    + ("marks crack pixels" if positive else "is empty (crack-free)"),
                    labels_path,
                )
            )
            continue
        labels[image] = positive
        stats.positives += positive
        stats.negatives += not positive
    if jpeg_masks:
        findings.append(
            Finding(
                WARNING,
                f"{jpeg_masks} mask(s) stored as JPEG: compression blurs their edges (tolerated "
                "up to 5 % grey pixels, read as crack above 127); PNG keeps them exact",
                masks_dir,
            )
        )
    scan.splits[split] = stats
    scan.labels[split] = labels


def _reason(exc: DatasetError, path: Path) -> str:
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _rule_splits(scan: FolderScan) -> Iterable[Finding]:
    if "val" not in scan.splits and (scan.root / "train").is_dir():
        yield Finding(
            WARNING,
            "no val/ split: a run draws 15 % of train as its validation split (seeded)",
            scan.root,
        )
    train = scan.splits.get("train")
    if train is not None and train.images and train.positives == 0 and not train.unreadable:
        yield Finding(
            ERROR,
            "no training image has crack pixels; training needs masks that mark cracks with 255",
            scan.root / "train",
        )
    for name, stats in scan.splits.items():
        if stats.images and stats.negatives == 0 and name != "train":
            yield Finding(
                WARNING,
                f"split {name!r} has no crack-free image: its decision figures (AP, decision "
                "F1) say nothing",
                scan.root / name,
            )


def _rule_sizes(scan: FolderScan) -> Iterable[Finding]:
    sizes = Counter()
    for stats in scan.splits.values():
        sizes.update(stats.sizes)
    if len(sizes) > 1:
        (h, w), n = sizes.most_common(1)[0]
        yield Finding(
            WARNING,
            f"images of {len(sizes)} sizes (most common {h}x{w}, {n} images): every image is "
            "resized to the run's input_height x input_width",
            scan.root,
        )


def _rule_duplicates(scan: FolderScan) -> Iterable[Finding]:
    label_of = {path: lab for split in scan.labels.values() for path, lab in split.items()}
    split_of = {path: name for name, split in scan.labels.items() for path in split}
    for paths in scan.digests.values():
        if len(paths) < 2:
            continue
        first, others = paths[0], paths[1:]
        for other in others:
            labels = {label_of.get(first), label_of.get(other)} - {None}
            if len(labels) > 1:
                yield Finding(
                    WARNING,
                    f"label conflict: the same image as {first} but labelled "
                    f"{'crack' if label_of.get(other) else 'crack-free'} here and "
                    f"{'crack' if label_of.get(first) else 'crack-free'} there",
                    other,
                )
            elif split_of.get(first) != split_of.get(other):
                yield Finding(
                    WARNING,
                    f"the same image as {first} (splits {split_of.get(first)} and "
                    f"{split_of.get(other)}): a test image seen in training inflates the scores",
                    other,
                )


#: Rules over the whole scan, run in order after every file was read.
RULES: list[Callable[[FolderScan], Iterable[Finding]]] = [
    _rule_splits,
    _rule_sizes,
    _rule_duplicates,
]


def check_folder(
    root: str | Path, *, negatives_without_mask: bool = False, progress: bool = True
) -> CheckReport:
    """Read every file of a folder data set and report what a run would refuse or misread.

    Args:
        root: the data set folder, with ``train/``, ``test/`` and optionally ``val/``.
        negatives_without_mask: images without a mask file count as crack-free (the run
            parameter of the same name).
        progress: progress bars while reading.

    Returns:
        A :class:`CheckReport`; ``report.ok`` is False when a run would stop on the data set.

    Raises:
        DatasetError: ``root`` is not a folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: data set folder does not exist")
    scan = FolderScan(root.resolve())
    findings: list[Finding] = []
    for split in SPLITS:
        if not (root / split).is_dir():
            if split in REQUIRED_SPLITS:
                present = sorted(p.name for p in visible_entries(root) if p.is_dir())
                findings.append(
                    Finding(
                        ERROR,
                        f"split folder {split!r} not found (folders present: "
                        f"{', '.join(present) or 'none'}); expected train/, test/ and "
                        "optionally val/, each with images/ and masks/",
                        root / split,
                    )
                )
            continue
        _check_split(
            scan,
            split,
            findings,
            negatives_without_mask=negatives_without_mask,
            progress=progress,
        )
    for rule in RULES:
        findings.extend(rule(scan))
    return CheckReport(scan.root, scan.splits, findings)
