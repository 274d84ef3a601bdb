"""Mixed supervision: which positive training images keep their pixel masks.

The original code (Božič, Tabernik, Skočaj 2021) trains on ``(sample, is_segmented)`` pairs read
from split files ``split_{TRAIN_NUM}_{NUM_SEGMENTED}``: ``TRAIN_NUM`` positive training images
are used at all, ``NUM_SEGMENTED`` of them with their pixel masks, the others with their
image-level label only; crack-free images are always segmented (their all-zero mask is known).

Here the choice is a seeded draw over the positive training images, in stem order, with a seed of
its own (``segmented_seed``), so a seed sweep varies the initialisation over the same subset, as
the paper's fixed split files do: one permutation; its first ``train_num`` positives are kept; the
first ``num_segmented`` of those (in the permutation's order) that have a mask are segmented. The
sets are nested: the images segmented at ``k`` are segmented at every larger ``k``. A list file
(``segmented_list``) names the choice instead, and a run's record (``segmented.csv``) is reused
as it is when the run resumes.

An image-level positive keeps ``positive=True`` and loses its mask (``mask=None``), so nothing
downstream can read it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from crackkit.config import RunConfig
from crackkit.data.folder import DatasetError, Sample

__all__ = [
    "SEGMENTED_FILE",
    "training_config",
    "Supervision",
    "read_segmented_list",
    "select_supervision",
]

#: The run's record of the choice: columns ``image`` (stem) and ``is_segmented`` (0/1), one row
#: per training image.
SEGMENTED_FILE = "segmented.csv"
LIST_MAX_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Supervision:
    """The training samples of a run, with their supervision.

    Attributes:
        samples: the training samples used, in split order; image-level positives have
            ``mask=None``.
        source: how the choice was made, for the log and the report.
        n_available: positive training images in the data set.
        n_dropped: positives left out (``train_num``, or not in a list).
    """

    samples: list[Sample]
    source: str
    n_available: int
    n_dropped: int = 0

    @property
    def rows(self) -> list[dict[str, Any]]:
        """``segmented.csv``'s rows: every training image's stem and whether it is segmented."""
        return [{"image": s.stem, "is_segmented": int(s.segmented)} for s in self.samples]

    @property
    def n_positive(self) -> int:
        return sum(bool(s.positive) for s in self.samples)

    @property
    def n_segmented(self) -> int:
        """Positive training images with their pixel masks."""
        return sum(bool(s.positive) and s.segmented for s in self.samples)

    @property
    def n_image_level(self) -> int:
        return self.n_positive - self.n_segmented

    @property
    def mixed(self) -> bool:
        """Whether some positive trains from its image-level label only."""
        return self.n_image_level > 0

    def summary(self) -> str:
        """One line for the run's log."""
        negatives = len(self.samples) - self.n_positive
        text = (
            f"{self.n_positive} positive training images: {self.n_segmented} segmented, "
            f"{self.n_image_level} image-level only ({self.source}); {negatives} negatives"
        )
        if self.n_dropped:
            text += f"; {self.n_dropped} of {self.n_available} positives left out"
        return text


def select_supervision(
    samples: Sequence[Sample],
    *,
    num_segmented: int | None = None,
    train_num: int | None = None,
    seed: int = 0,
    listed: str | Path | None = None,
    recorded: str | Path | None = None,
) -> Supervision:
    """Choose the segmented and the used positive training images.

    Args:
        samples: the training split, checked (``positive`` known), in split order.
        num_segmented: positives that keep their masks (None: every positive with a mask).
        train_num: positives used at all (None: all).
        seed: the draw's seed (``segmented_seed``).
        listed: a file naming the choice (:func:`read_segmented_list`); replaces the draw.
        recorded: the run's own ``segmented.csv`` (a resumed run): applied as it is.

    Raises:
        DatasetError: a list or record that does not fit the training split.
    """
    samples = list(samples)
    positives = [i for i, s in enumerate(samples) if s.positive]
    if recorded is not None:
        table, complete = read_segmented_list(recorded)
        if not complete:
            raise DatasetError(f"{recorded}: not a {SEGMENTED_FILE} (header image,is_segmented)")
        return _apply(samples, positives, table, True, f"as recorded in {recorded}", str(recorded))
    if listed:
        table, complete = read_segmented_list(listed)
        return _apply(samples, positives, table, complete, f"listed in {listed}", str(listed))
    if num_segmented is None and train_num is None:
        return Supervision(samples, "all masks", len(positives))
    order = np.random.default_rng(seed).permutation(len(positives))
    kept = order if train_num is None else order[:train_num]
    with_mask = [positives[k] for k in kept if samples[positives[k]].mask is not None]
    segmented = set(with_mask if num_segmented is None else with_mask[:num_segmented])
    used = {positives[k] for k in kept}
    out = [
        s if not s.positive or i in segmented else replace(s, mask=None)
        for i, s in enumerate(samples)
        if not s.positive or i in used
    ]
    parts = []
    if num_segmented is not None:
        parts.append(f"num_segmented {num_segmented}")
    if train_num is not None:
        parts.append(f"train_num {train_num}")
    source = f"{', '.join(parts)}, drawn with segmented_seed {seed}"
    return Supervision(out, source, len(positives), len(positives) - len(used))


def _apply(
    samples: list[Sample],
    positives: list[int],
    table: dict[str, bool],
    complete: bool,
    source: str,
    name: str,
) -> Supervision:
    """Segment the positives ``table`` marks True; every negative stays. With ``complete`` the
    table lists every positive used (others are left out), else the others are image-level."""
    stray = sorted(set(table) - {s.stem for s in samples})
    if stray:
        raise DatasetError(
            f"{name}: {stray[0]!r} is not an image of the training split"
            + (f" (and {len(stray) - 1} more)" if len(stray) > 1 else "")
        )
    out = []
    for s in samples:
        if not s.positive:
            out.append(s)
            continue
        if s.stem not in table and complete:
            continue
        segmented = table.get(s.stem, False)
        if segmented and s.mask is None:
            raise DatasetError(
                f"{name}: {s.stem!r} is listed as segmented but has no mask in the training split"
            )
        out.append(s if segmented else replace(s, mask=None))
    n_used = sum(bool(s.positive) for s in out)
    return Supervision(out, source, len(positives), len(positives) - n_used)


def _table(rows: Sequence[dict[str, Any]], name: str) -> dict[str, bool]:
    table: dict[str, bool] = {}
    for line, row in enumerate(rows, start=2):
        stem, value = str(row.get("image", "")).strip(), str(row.get("is_segmented", "")).strip()
        if not stem or value not in ("0", "1", "True", "False"):
            raise DatasetError(
                f"{name}, line {line}: expected an image stem and is_segmented 0 or 1, got "
                f"{row.get('image')!r}, {row.get('is_segmented')!r}"
            )
        flag = value in ("1", "True")
        # A crack-free image sharing a positive's stem is always segmented: a 0 decides.
        table[stem] = flag and table.get(stem, True) is not False
    return table


def read_segmented_list(path: str | Path) -> tuple[dict[str, bool], bool]:
    """Read a ``segmented_list`` file.

    Two forms: a CSV with the header ``image,is_segmented`` (a run's ``segmented.csv``: the
    positives it lists are used, segmented or not as it says, the others left out, as the run
    that wrote it did), or plain text with one stem per line (those positives are segmented, every
    other positive is used with its image-level label).

    Returns:
        ``(table, complete)``: stem -> segmented; ``complete`` for the CSV form (positives it
        does not list are left out), False for a plain list (they are image-level).

    Raises:
        DatasetError: unreadable, too large, or malformed; the message names the file and line.
    """
    path = Path(path).expanduser()
    try:
        size = path.stat().st_size
        if size > LIST_MAX_BYTES:
            raise DatasetError(f"{path}: {size} bytes, larger than a list of images can be")
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except OSError as exc:
        raise DatasetError(f"segmented_list {path}: cannot read ({exc.strerror or exc})") from None
    lines = [ln.strip() for ln in text.splitlines()]
    first = next((ln for ln in lines if ln), "")
    if first.replace(" ", "").lower() == "image,is_segmented":
        rows = list(csv.DictReader([ln for ln in lines if ln]))
        return _table([{k.strip(): v for k, v in r.items() if k} for r in rows], str(path)), True
    table: dict[str, bool] = {}
    for line, stem in enumerate(lines, start=1):
        if not stem or stem.startswith("#"):
            continue
        if "," in stem:
            raise DatasetError(
                f"{path}, line {line}: a plain list holds one image stem per line; a CSV needs "
                "the header image,is_segmented"
            )
        if stem in table:
            raise DatasetError(f"{path}, line {line}: {stem!r} is listed twice")
        table[stem] = True
    if not table:
        raise DatasetError(f"{path}: lists no image")
    return table, False


def training_config(cfg: RunConfig, n_segmented_positive: int) -> RunConfig:
    """The switches training runs with: ``cfg``, or, with ``no_mask_switches`` and no segmented
    positive, ``cfg`` with dynamic balancing and gradient-flow adjustment off.

    Without a segmented positive nothing trains the segmentation on cracks: under dynamic
    balancing the decision loss, the only signal, starts at weight 0, and with gradient-flow
    adjustment it never reaches the network's features. Measured on 64x128 random-walk cracks
    (64 training images, half crack-free, 6 epochs; docs/mixed_supervision.md): test decision AP
    0.55 with both on, 0.49 with dynamic balancing off (the published N_0 runs), 0.57 with the
    adjustment off, 0.93 with both off (full supervision: 0.85).
    """
    if not cfg.no_mask_switches or n_segmented_positive > 0:
        return cfg
    if not (cfg.dyn_balanced_loss or cfg.gradient_adjustment):
        return cfg
    return cfg.replace(dyn_balanced_loss=False, gradient_adjustment=False)
