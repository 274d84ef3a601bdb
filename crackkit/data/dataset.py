"""Data sets for training and evaluation: resolve a data set name, read splits, serve samples.

Images stay on disk, compressed; each sample is decoded when it is served (in DataLoader workers
when ``num_workers > 0``) and handed over as ``uint8``, so nothing is preloaded as float32.
Augmentation draws its randomness from ``(seed, epoch, index)``, so a sample's augmentation does not
depend on worker count or on whether the run was resumed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from crackkit import paths
from crackkit.config import RunConfig
from crackkit.data.augment import Draw, apply_draw, draw_augmentation
from crackkit.data.folder import (
    DatasetError,
    Sample,
    image_size,
    list_image_files,
    read_image,
    read_mask,
    scan_split,
)
from crackkit.data.synthetic import SyntheticSpec, ensure_synthetic
from crackkit.data.weights import dilate_mask, distance_weights
from crackkit.specs import MAX_IMAGE_PIXELS

__all__ = [
    "CrackDataset",
    "SPLITS",
    "resolve_dataset",
    "load_splits",
    "synthetic_spec",
    "split_summary",
    "RECORD_FIELDS",
    "dataset_record",
]

SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.15


def synthetic_spec(cfg: RunConfig) -> SyntheticSpec:
    return SyntheticSpec(
        height=cfg.input_height,
        width=cfg.input_width,
        train=cfg.synthetic_train,
        val=cfg.synthetic_val,
        test=cfg.synthetic_test,
        negative_fraction=cfg.synthetic_negative_fraction,
        seed=cfg.seed,
    )


def resolve_dataset(
    cfg: RunConfig, processed_dir: Path | None = None, progress: bool = True
) -> Path:
    """Return the folder of ``cfg.dataset``, generating the synthetic set when needed.

    ``cfg.dataset`` is ``"synthetic"``, the name of a prepared set under ``data/processed`` (such as
    ``crack500``) or a path to a folder with ``{train,val,test}/{images,masks}``.

    Raises:
        DatasetError: the name is neither a prepared set nor an existing folder.
    """
    processed_dir = Path(paths.PROCESSED_DIR if processed_dir is None else processed_dir)
    name = cfg.dataset
    if name == "synthetic":
        return ensure_synthetic(synthetic_spec(cfg), Path(processed_dir))
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        return as_path.resolve()
    prepared = Path(processed_dir) / name
    if prepared.is_dir():
        return prepared
    available = sorted(p.name for p in Path(processed_dir).glob("*") if p.is_dir())
    hints = {
        "crack500": " Get CRACK500 with `crackkit data crack500`.",
        "cfd": " Get CrackForest with `crackkit data cfd --source DIR_OR_ARCHIVE` (or without "
        "--source to download the authors' GitHub archive).",
    }
    hint = hints.get(name, "")
    raise DatasetError(
        f"data set {name!r} not found: it is not a folder and not prepared under {processed_dir} "
        f"(prepared: {', '.join(available) or 'none'}). Use 'synthetic', a prepared name or a "
        f"path to a folder with train/, val/, test/ each holding images/ and masks/.{hint}"
    )


def load_splits(
    root: Path,
    seed: int = 0,
    *,
    negatives_without_mask: bool = False,
    negatives_dir: str | Path | None = None,
    check: bool = True,
    progress: bool = True,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
) -> dict[str, list[Sample]]:
    """Scan train/val/test; when ``val`` is absent, split it from train (seeded, 15%).

    ``negatives_dir`` adds crack-free images: ``negatives_dir/<split>/`` holds image files only,
    each served with an all-zero mask. An image of more than ``max_pixels`` pixels is refused.
    """
    root = Path(root)
    splits: dict[str, list[Sample]] = {}
    for split in SPLITS:
        if split == "val" and not (root / "val").is_dir():
            continue
        splits[split] = scan_split(
            root,
            split,
            negatives_without_mask=negatives_without_mask,
            check=check,
            progress=progress,
            max_pixels=max_pixels,
        )
    if negatives_dir:
        _add_negatives(splits, Path(negatives_dir).expanduser(), max_pixels)
    if "val" not in splits:
        train = splits["train"]
        if len(train) < 2:
            raise DatasetError(f"{root}/train has {len(train)} image(s): too few to split off val")
        order = np.random.default_rng(seed).permutation(len(train))
        n_val = max(1, round(VAL_FRACTION * len(train)))
        splits["val"] = [train[i] for i in sorted(order[:n_val])]
        splits["train"] = [train[i] for i in sorted(order[n_val:])]
    return {s: splits[s] for s in SPLITS}


def _add_negatives(
    splits: dict[str, list[Sample]], folder: Path, max_pixels: int | None = MAX_IMAGE_PIXELS
) -> None:
    if not folder.is_dir():
        raise DatasetError(
            f"negatives_dir {folder}: folder not found; it should hold train/, val/ and/or test/ "
            "folders of crack-free images"
        )
    found = [s for s in SPLITS if (folder / s).is_dir()]
    if not found:
        raise DatasetError(
            f"negatives_dir {folder}: no train/, val/ or test/ folder inside; put the crack-free "
            "images of each split in such a folder"
        )
    for split in found:
        if split not in splits:
            raise DatasetError(
                f"negatives_dir {folder / split}: the data set has no {split!r} split to add to"
            )
        for path in sorted(list_image_files(folder / split).values()):
            image_size(path, max_pixels)
            splits[split].append(Sample(image=path, mask=None, positive=False))


def split_summary(splits: dict[str, list[Sample]]) -> dict[str, dict[str, int]]:
    """Positives, negatives and sum per split (and overall); ``image_level`` as well, the
    positives without a pixel mask, where a split has any."""
    out: dict[str, dict[str, int]] = {}
    for name, samples in splits.items():
        pos = sum(bool(s.positive) for s in samples)
        out[name] = {"positives": pos, "negatives": len(samples) - pos, "sum": len(samples)}
        weak = sum(not s.segmented for s in samples)
        if weak:
            out[name]["image_level"] = weak
    keys = ["positives", "negatives", "sum"]
    if any("image_level" in v for v in out.values()):
        keys.append("image_level")
    out["sum"] = {k: sum(v.get(k, 0) for v in out.values()) for k in keys}
    return out


#: Notes of a data set's own ``dataset.json`` (written by its importer or generator) that the
#: record of :func:`dataset_record` carries over, when present.
RECORD_FIELDS = (
    "license",
    "citation",
    "url",
    "negatives_source",
    "layout",
    "source",
    "notes",
)


def dataset_record(
    root: str | Path, counts: dict[str, dict[str, int]], *, name: str | None = None
) -> dict[str, Any]:
    """The one schema of ``dataset.json``, as a run (and a cross-data-set evaluation) records it.

    ``{"name", "root", "counts", ...}``: ``name`` is the data set's own (its ``dataset.json``'s,
    else its folder's), ``counts`` the positives, negatives and sum per split as
    :func:`split_summary` counts them, and then the :data:`RECORD_FIELDS` of the data set's own
    ``dataset.json`` that it has (license, citation, where the negatives came from...). An
    importer's ``dataset.json`` has the same ``name`` and ``counts`` keys, and more of its own.
    """
    own = _read_record(Path(root) / "dataset.json")
    record: dict[str, Any] = {
        "name": name or own.get("name") or Path(root).name,
        "root": str(root),
        "counts": counts,
    }
    record.update({k: own[k] for k in RECORD_FIELDS if own.get(k) not in (None, "", [], {})})
    return record


def _read_record(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


class CrackDataset(Dataset):
    """Samples as tensors: ``image`` uint8 (C, H, W), ``mask`` float (1, H, W) in {0, 1},
    ``weight`` float (1, H, W) when weighted loss is on, ``label`` float (), ``index`` int, and
    ``segmented`` float () (1: the mask is known) when some positive has an image-level label
    only (mixed supervision; its ``mask`` is all zero and must not be used).

    Training samples (``train=True``) get the configured mask dilation, random crop
    (:meth:`crop_window`; ``label`` is then whether the crop holds a crack pixel), augmentation
    (:mod:`crackkit.data.augment`) and loss weights; evaluation samples keep the annotation as
    drawn, but for ``dilate_mode="original"`` (every mask dilated at its native size) and
    ``augmentation_mode="fork-2022-02"``, which augments validation samples too (``augment=True``;
    their items then carry ``flip``, the net geometric transform, so the evaluation can undo it).

    Images are served in ``cfg.channel_order`` (``bgr``: channels reversed, as OpenCV reads them).

    Images whose size differs from ``(cfg.input_height, cfg.input_width)`` are resized (masks by
    nearest neighbour after a max-preserving step, so thin cracks survive downscaling).
    """

    def __init__(
        self, samples: list[Sample], cfg: RunConfig, *, train: bool, augment: bool | None = None
    ) -> None:
        if not samples:
            raise DatasetError("empty split: no images to serve")
        self.samples = list(samples)
        self.cfg = cfg
        self.train = train
        self.augment = bool((train if augment is None else augment) and cfg.augmentation)
        self.epoch = 0
        self.labels = [bool(s.positive) for s in self.samples]
        self.segmented = [s.segmented for s in self.samples]
        self.mixed = not all(self.segmented)
        if train and self.mixed and cfg.train_crop_height:
            raise DatasetError(
                f"train_crop_height/train_crop_width ({cfg.train_crop_height}x"
                f"{cfg.train_crop_width}) need every positive training image segmented: a crop of "
                "an image-level positive may miss its crack, so its label would be wrong. Set "
                "both to 0, or num_segmented to 'all' (with no image-level labels)"
            )

    @property
    def n_segmented_positive(self) -> int:
        """Positive samples whose pixel masks are known."""
        return sum(lab and seg for lab, seg in zip(self.labels, self.segmented, strict=True))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def augmentation(self, index: int) -> Draw | None:
        """Sample ``index``'s augmentation this epoch, or None (:mod:`crackkit.data.augment`)."""
        if not self.augment:
            return None
        rng = np.random.default_rng([self.cfg.seed, self.epoch, index])
        return draw_augmentation(
            self.cfg.augmentation_mode,
            rng,
            positive=self.labels[index],
            validation=not self.train,
        )

    def crop_window(self, index: int) -> tuple[int, int, int, int] | None:
        """``(top, left, height, width)`` of sample ``index``'s training crop this epoch (drawn
        uniformly from ``(seed, epoch, index)``), or None: no crop configured, or not training."""
        h, w = self.cfg.train_crop_height, self.cfg.train_crop_width
        if not (self.train and h and w):
            return None
        rng = np.random.default_rng([self.cfg.seed, self.epoch, index, 1])
        top = int(rng.integers(0, self.cfg.input_height - h + 1))
        left = int(rng.integers(0, self.cfg.input_width - w + 1))
        return top, left, h, w

    def read(self, index: int, *, as_fed: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Image uint8 (H, W, C) in the configured channel order and mask bool (H, W), at the
        configured input size (masks dilated at native size for ``dilate_mode="original"``).

        ``as_fed=False`` gives the data as annotated, for pictures: RGB, masks undilated."""
        sample = self.samples[index]
        image = read_image(sample.image, self.cfg.input_channels)
        if as_fed and self.cfg.channel_order == "bgr" and image.shape[-1] == 3:
            image = image[..., ::-1]
        if sample.mask is None:
            mask = np.zeros(image.shape[:2], dtype=bool)
        else:
            mask = read_mask(sample.mask, shape=image.shape[:2])
            if as_fed and self.cfg.dilate_mode == "original":
                mask = dilate_mask(mask, self.cfg.dilate)
        size = (self.cfg.input_height, self.cfg.input_width)
        if image.shape[:2] != size:
            image, mask = _resize(image, mask, size)
        return image, mask

    def crack_fraction(self) -> float:
        """The fraction of crack pixels in the masks as training sees them (input size, dilated
        as configured, not augmented), over every segmented sample (an image-level positive's
        mask is unknown): the prior of :func:`crackkit.model.init_segmentation_prior`."""
        crack = total = 0
        for i in range(len(self)):
            if not self.segmented[i]:
                continue
            _, mask = self.read(i)
            if self._dilates:
                mask = dilate_mask(mask, self.cfg.dilate)
            crack += int(mask.sum())
            total += mask.size
        return crack / max(total, 1)

    @property
    def _dilates(self) -> bool:
        """Training masks dilated at the input size (crackkit's ``dilate_mode``)."""
        return self.train and self.cfg.dilate > 1 and self.cfg.dilate_mode == "train"

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, mask = self.read(index)
        if self._dilates:
            mask = dilate_mask(mask, self.cfg.dilate)
        label = float(self.labels[index])
        window = self.crop_window(index)
        if window is not None:
            top, left, h, w = window
            image = image[top : top + h, left : left + w]
            mask = mask[top : top + h, left : left + w]
            label = float(mask.any())
        aug = self.augmentation(index)
        if aug is not None:
            image, mask = apply_draw(aug, image, mask)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None],
            "label": torch.tensor(label),
            "index": torch.tensor(index),
        }
        if self.mixed:
            item["segmented"] = torch.tensor(float(self.segmented[index]))
        if self.augment and not self.train:
            item["flip"] = torch.tensor(aug.flip if aug is not None else 0)
        if self.cfg.weighted_seg_loss:
            w = distance_weights(
                mask,
                self.cfg.weighted_seg_loss_p,
                self.cfg.weighted_seg_loss_max,
                scope=self.cfg.weighted_seg_loss_dmax,
            )
            item["weight"] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))[None]
        return item


def _resize(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
    image = np.asarray(pil.resize((w, h), Image.BILINEAR))
    if image.ndim == 2:
        image = image[..., None]
    m = Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.BOX)
    return image, np.asarray(m) > 0
