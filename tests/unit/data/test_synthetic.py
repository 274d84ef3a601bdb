"""Tests for crackkit.data.synthetic: the deterministic synthetic crack data set."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import crackkit.data.synthetic as synthetic
from crackkit.data.folder import DatasetError, read_mask, scan_split, split_counts
from crackkit.data.synthetic import (
    SyntheticSpec,
    ensure_synthetic,
    generate_dataset,
    generate_sample,
)

SPEC = SyntheticSpec(height=24, width=40, train=7, val=3, test=5, negative_fraction=0.3, seed=1)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _samples(height: int, width: int, count: int, positive: bool, seed: int = 0):
    for i in range(count):
        yield generate_sample(np.random.default_rng([seed, i]), height, width, positive)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """SPEC generated once for the read-only tests of this module."""
    return generate_dataset(SPEC, tmp_path_factory.mktemp("synthetic"), progress=False)


@pytest.mark.parametrize("positive", [True, False])
def test_sample_is_deterministic_and_well_typed(positive: bool) -> None:
    """The same generator state gives identical arrays of the documented types."""
    first = generate_sample(np.random.default_rng(7), 24, 40, positive)
    again = generate_sample(np.random.default_rng(7), 24, 40, positive)
    other = generate_sample(np.random.default_rng(8), 24, 40, positive)
    image, mask = first
    assert image.dtype == np.uint8 and image.shape == (24, 40, 3)
    assert mask.dtype == bool and mask.shape == (24, 40)
    np.testing.assert_array_equal(image, again[0])
    np.testing.assert_array_equal(mask, again[1])
    assert not np.array_equal(image, other[0])


@pytest.mark.parametrize(("height", "width"), [(8, 8), (24, 40), (48, 80), (40, 24)])
def test_positives_have_a_crack_and_negatives_none(height: int, width: int) -> None:
    """Every positive mask marks some pixels; every negative mask is empty."""
    assert all(mask.any() for _, mask in _samples(height, width, 12, True))
    assert not any(mask.any() for _, mask in _samples(height, width, 12, False))


@pytest.mark.parametrize(("height", "width"), [(24, 40), (64, 96)])
def test_cracks_are_at_most_five_pixels_wide(height: int, width: int) -> None:
    """No mask pixel lies more than 3 px from the background: cracks are 1-5 px wide."""
    for _, mask in _samples(height, width, 25, True, seed=3):
        assert ndimage.distance_transform_edt(mask).max() <= 3.0


@pytest.mark.parametrize(("height", "width"), [(24, 40), (48, 80)])
def test_mask_lies_on_the_dark_crack_pixels(height: int, width: int) -> None:
    """Pixels under the mask are darker than a ring 2-3 px around it."""
    for image, mask in _samples(height, width, 20, True, seed=5):
        grey = image.astype(float).mean(axis=2)
        ring = ndimage.binary_dilation(mask, iterations=3) & ~ndimage.binary_dilation(mask)
        assert grey[mask].mean() < 0.95 * grey[ring].mean()


@pytest.mark.parametrize(
    "change",
    [
        {"height": 25},
        {"width": 41},
        {"train": 8},
        {"val": 4},
        {"test": 6},
        {"negative_fraction": 0.31},
        {"negative_fraction": 0.305},
        {"seed": 2},
    ],
)
def test_name_encodes_every_field(change: dict) -> None:
    """Specs that differ in any field get different folder names."""
    assert SPEC.name == "synthetic-24x40-7-3-5-neg30-s1"
    assert dataclasses.replace(SPEC, **change).name != SPEC.name


@pytest.mark.parametrize(
    "bad",
    [{"height": 4}, {"train": 0}, {"val": -1}, {"negative_fraction": 1.0}, {"seed": -1}],
)
def test_spec_refuses_bad_values(bad: dict) -> None:
    """Sizes, counts, fraction and seed out of range raise ValueError."""
    with pytest.raises(ValueError, match="SyntheticSpec"):
        dataclasses.replace(SPEC, **bad)


def test_dataset_layout_counts_and_metadata(generated: Path) -> None:
    """The folder follows the layout, with exactly round(n * fraction) negatives per split."""
    assert generated.name == SPEC.name
    expected = {
        split: {"positives": n - round(0.3 * n), "negatives": round(0.3 * n), "sum": n}
        for split, n in [("train", 7), ("val", 3), ("test", 5)]
    }
    assert split_counts(generated) == expected
    meta = json.loads((generated / "dataset.json").read_text())
    assert meta["counts"] == expected
    assert meta["params"] == dataclasses.asdict(SPEC)
    assert meta["name"] == SPEC.name and meta["source"] == "synthetic"
    assert sorted(p.name for p in generated.iterdir()) == ["dataset.json", "test", "train", "val"]


def test_negatives_are_shuffled_and_empty(generated: Path) -> None:
    """Negatives sit at random positions in the split and have all-zero masks."""
    samples = scan_split(generated, "train")
    flags = [s.positive for s in samples]
    assert flags.count(False) == 2 and flags != sorted(flags)
    for sample in samples:
        assert read_mask(sample.mask).any() == sample.positive


def test_same_spec_gives_byte_identical_files(generated: Path, tmp_path: Path) -> None:
    """Generating the same spec elsewhere writes the same bytes; another seed does not."""
    again = generate_dataset(SPEC, tmp_path / "a", progress=False)
    assert _digests(again) == _digests(generated)
    other = generate_dataset(dataclasses.replace(SPEC, seed=2), tmp_path / "b", progress=False)
    images = {d for name, d in _digests(generated).items() if "/images/" in name}
    assert images.isdisjoint(_digests(other).values())


def test_splits_are_independent(generated: Path, tmp_path: Path) -> None:
    """Changing the size of one split leaves the files of the others unchanged."""
    bigger_val = generate_dataset(dataclasses.replace(SPEC, val=4), tmp_path, progress=False)
    for split in ("train", "test"):
        assert _digests(bigger_val / split) == _digests(generated / split)


def test_second_call_returns_the_folder_without_rewriting(tmp_path: Path) -> None:
    """A finished data set is returned as is: no file is rewritten."""
    spec = dataclasses.replace(SPEC, train=2, val=0, test=1)
    folder = ensure_synthetic(spec, tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    assert ensure_synthetic(spec, tmp_path) == folder
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == mtimes
    assert not (folder / "val").exists()


def test_interrupted_generation_does_not_count_as_done(tmp_path: Path, monkeypatch) -> None:
    """A crash mid-way leaves no data set folder, and the next call generates it fully."""
    spec = dataclasses.replace(SPEC, train=3, val=0, test=2)
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return write(*args, **kwargs)

    write = synthetic.write_sample
    monkeypatch.setattr(synthetic, "write_sample", failing_write)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(spec, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(synthetic, "write_sample", write)
    folder = generate_dataset(spec, tmp_path, progress=False)
    assert split_counts(folder)["train"]["sum"] == 3


def test_leftover_temporary_folder_is_ignored_and_cleaned(tmp_path: Path) -> None:
    """A killed run's temporary folder is not taken as done, and is removed when its owner died."""
    spec = dataclasses.replace(SPEC, train=2, val=0, test=0)
    code = "import os; print(os.getpid())"
    dead_pid = int(subprocess.run([sys.executable, "-c", code], capture_output=True).stdout)
    partial = tmp_path / f".{spec.name}.partial-{dead_pid}-0000"
    (partial / "train" / "images").mkdir(parents=True)
    owner = {"host": socket.gethostname(), "pid": dead_pid}
    (partial / ".owner.json").write_text(json.dumps(owner))
    (partial / "dataset.json").write_text(json.dumps({"name": spec.name}))
    folder = generate_dataset(spec, tmp_path, progress=False)
    assert split_counts(folder)["train"]["sum"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [spec.name]


def test_foreign_folder_is_refused_and_old_version_replaced(tmp_path: Path, monkeypatch) -> None:
    """A folder we did not write raises; one from an older generator version is rebuilt."""
    spec = dataclasses.replace(SPEC, train=2, val=0, test=0)
    (tmp_path / spec.name).mkdir()
    with pytest.raises(DatasetError, match="not a complete synthetic data set"):
        generate_dataset(spec, tmp_path, progress=False)
    (tmp_path / spec.name).rmdir()
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", 0)
    folder = generate_dataset(spec, tmp_path, progress=False)
    monkeypatch.undo()
    assert generate_dataset(spec, tmp_path, progress=False) == folder
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["generator_version"] == synthetic.GENERATOR_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == [spec.name]
