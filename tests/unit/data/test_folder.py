"""Tests for crackkit.data.folder: the data-set layout, strict readers and the sample writer."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from crackkit.data.folder import (
    MASK_NOISE_TOLERANCE,
    DatasetError,
    Sample,
    mask_noise_fraction,
    read_image,
    read_mask,
    scan_split,
    split_counts,
    write_sample,
)

H, W = 24, 40


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _crack(thickness: int = 3) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[10 : 10 + thickness, 4:36] = True
    return mask


def _save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _mask_values(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, 255, 0).astype(np.uint8)


def _add(root: Path, split: str, stem: str, mask: np.ndarray | None, mask_ext: str = ".png"):
    """Write an image and (unless None) its mask into ``root/split``."""
    image = _save(root / split / "images" / f"{stem}.png", _image(len(stem)))
    if mask is not None:
        _save(root / split / "masks" / f"{stem}{mask_ext}", _mask_values(mask))
    return image


def _truncated(path: Path, fmt: str) -> Path:
    _save(path, _image(), format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_scan_pairs_by_stem_sorts_and_reads_positive(tmp_path: Path) -> None:
    """Samples come sorted by stem, paired with their masks, positive set from mask content."""
    _add(tmp_path, "train", "b", _crack())
    _add(tmp_path, "train", "a", np.zeros((H, W), bool))
    _add(tmp_path, "train", "c", _crack(1))
    samples = scan_split(tmp_path, "train")
    assert [s.stem for s in samples] == ["a", "b", "c"]
    assert [s.positive for s in samples] == [False, True, True]
    assert all(s.mask == tmp_path / "train" / "masks" / f"{s.stem}.png" for s in samples)


def test_scan_without_check_leaves_positive_unknown(tmp_path: Path) -> None:
    """check=False reads no file and leaves positive as None."""
    _add(tmp_path, "test", "a", _crack())
    assert scan_split(tmp_path, "test", check=False) == [
        Sample(tmp_path / "test" / "images" / "a.png", tmp_path / "test" / "masks" / "a.png")
    ]


@pytest.mark.parametrize("ext", [".png", ".PNG", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg"])
def test_mask_extension_variants_are_accepted(tmp_path: Path, ext: str) -> None:
    """A mask may use any common extension, whatever the image's extension."""
    _add(tmp_path, "train", "a", _crack(4), mask_ext=ext)
    (sample,) = scan_split(tmp_path, "train")
    assert sample.mask is not None and sample.mask.suffix == ext and sample.positive


def test_image_without_mask_is_an_error_naming_it(tmp_path: Path) -> None:
    """A missing mask names the image and the negatives_without_mask option."""
    _add(tmp_path, "train", "a", _crack())
    _add(tmp_path, "train", "b", None)
    with pytest.raises(
        DatasetError, match=r"b\.png: image with neither a mask.*negatives_without_mask"
    ):
        scan_split(tmp_path, "train")


def test_negatives_without_mask_are_accepted_on_request(tmp_path: Path) -> None:
    """With negatives_without_mask, a mask-less image is a negative with mask None."""
    _add(tmp_path, "train", "a", _crack())
    _add(tmp_path, "train", "b", None)
    samples = scan_split(tmp_path, "train", negatives_without_mask=True)
    assert [(s.stem, s.mask is None, s.positive) for s in samples] == [
        ("a", False, True),
        ("b", True, False),
    ]


def test_masks_folder_may_be_absent_only_for_negatives_without_mask(tmp_path: Path) -> None:
    """A split without masks/ is refused, unless all its images are declared negatives."""
    _add(tmp_path, "test", "a", None)
    with pytest.raises(DatasetError, match=r"masks: folder not found"):
        scan_split(tmp_path, "test")
    (sample,) = scan_split(tmp_path, "test", negatives_without_mask=True)
    assert sample.mask is None and sample.positive is False


def test_mask_without_image_is_an_error_naming_it(tmp_path: Path) -> None:
    """A mask whose image is missing names the mask file."""
    _add(tmp_path, "train", "a", _crack())
    _save(tmp_path / "train" / "masks" / "ghost.png", _mask_values(_crack()))
    with pytest.raises(DatasetError, match=r"ghost\.png: mask without an image"):
        scan_split(tmp_path, "train")


@pytest.mark.parametrize("folder", ["images", "masks"])
def test_two_files_with_one_stem_are_an_error_naming_both(tmp_path: Path, folder: str) -> None:
    """Two images, or two masks, sharing a stem are refused and both files named."""
    _add(tmp_path, "train", "a", _crack())
    _save(tmp_path / "train" / folder / "a.bmp", _mask_values(_crack()))
    with pytest.raises(DatasetError, match=r"a\.(bmp|png) and .*a\.(bmp|png) share the stem"):
        scan_split(tmp_path, "train")


def test_unknown_files_are_refused_and_hidden_files_ignored(tmp_path: Path) -> None:
    """Hidden files are skipped; a file with an unsupported extension is named."""
    _add(tmp_path, "train", "a", _crack())
    (tmp_path / "train" / "images" / ".DS_Store").write_bytes(b"\0")
    assert len(scan_split(tmp_path, "train")) == 1
    (tmp_path / "train" / "images" / "notes.txt").write_text("hi")
    with pytest.raises(DatasetError, match=r"notes\.txt: unsupported file extension.*\.png"):
        scan_split(tmp_path, "train")


def test_empty_split_is_an_error(tmp_path: Path) -> None:
    """A split whose images/ folder holds nothing is refused."""
    (tmp_path / "val" / "images").mkdir(parents=True)
    (tmp_path / "val" / "masks").mkdir()
    with pytest.raises(DatasetError, match=r"images: split 'val' holds no images"):
        scan_split(tmp_path, "val")


def test_missing_split_folder_lists_the_folders_present(tmp_path: Path) -> None:
    """A missing split names it and lists the folders that do exist."""
    _add(tmp_path, "train", "a", _crack())
    (tmp_path / "Test").mkdir()
    with pytest.raises(DatasetError, match=r"'test' not found.*\['Test', 'train'\]"):
        scan_split(tmp_path, "test")


def test_mask_size_mismatch_names_both_files_and_sizes(tmp_path: Path) -> None:
    """A mask of another size than its image names both files and both sizes."""
    _add(tmp_path, "train", "a", None)
    _save(tmp_path / "train" / "masks" / "a.png", np.zeros((H, W + 1), np.uint8))
    pattern = rf"masks/a\.png: mask is {H}x{W + 1} .*images/a\.png is {H}x{W}"
    with pytest.raises(DatasetError, match=pattern):
        scan_split(tmp_path, "train")


@pytest.mark.parametrize(("fmt", "ext"), [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_image_raises_naming_the_file(tmp_path: Path, fmt: str, ext: str) -> None:
    """A file cut in half raises DatasetError instead of being padded silently."""
    path = _truncated(tmp_path / f"cut{ext}", fmt)
    with pytest.raises(DatasetError, match=rf"cut\{ext}: corrupt or truncated"):
        read_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_mask_raises_naming_the_file(tmp_path: Path) -> None:
    """A truncated mask is refused by read_mask and by scan_split."""
    _add(tmp_path, "train", "a", None)
    _truncated(tmp_path / "train" / "masks" / "a.png", "PNG")
    with pytest.raises(DatasetError, match=r"masks/a\.png: corrupt or truncated"):
        scan_split(tmp_path, "train")


@pytest.mark.parametrize("where", ["read_image", "read_mask", "scan_split"])
def test_non_image_bytes_raise_naming_the_file(tmp_path: Path, where: str) -> None:
    """A file that is not an image at all is named, by every reader."""
    path = tmp_path / "train" / "images" / "junk.jpg"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"<html>not found</html>")
    _save(tmp_path / "train" / "masks" / "junk.png", np.zeros((H, W), np.uint8))
    readers = {
        "read_image": lambda: read_image(path),
        "read_mask": lambda: read_mask(path),
        "scan_split": lambda: scan_split(tmp_path, "train"),
    }
    with pytest.raises(DatasetError, match=r"junk\.jpg: not a readable image"):
        readers[where]()


def test_gradient_mask_is_refused_with_its_fraction(tmp_path: Path) -> None:
    """A grey-level mask (a gradient) is not binary: the error gives the file and the fraction."""
    gradient = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
    path = _save(tmp_path / "grad.png", gradient)
    expected = mask_noise_fraction(gradient)
    assert expected > MASK_NOISE_TOLERANCE
    with pytest.raises(DatasetError, match=rf"grad\.png: mask is not binary: {expected:.1%}"):
        read_mask(path)


def test_jpeg_noisy_mask_is_accepted_and_binarised(tmp_path: Path) -> None:
    """A 0/255 mask saved as a lossy JPEG reads back as the original mask."""
    yy, xx = np.mgrid[0:H, 0:W]
    mask = np.abs(yy - 0.45 * xx - 3) < 2.5  # a diagonal crack: JPEG rings along its edges
    path = _save(tmp_path / "m.jpg", _mask_values(mask), quality=50)
    with Image.open(path) as stored:
        values = np.asarray(stored)
    assert 0 < mask_noise_fraction(values) <= MASK_NOISE_TOLERANCE
    np.testing.assert_array_equal(read_mask(path), mask)


@pytest.mark.parametrize("mode", ["L", "RGB", "1", "I;16"])
def test_mask_modes_binarise_above_127(tmp_path: Path, mode: str) -> None:
    """Grey, colour (maximum over channels), 1-bit and 16-bit masks binarise the same way."""
    mask = _crack()
    values = _mask_values(mask)
    if mode == "RGB":
        values = np.stack([values, np.zeros_like(values), np.zeros_like(values)], axis=2)
    path = tmp_path / "m.png"
    if mode == "I;16":
        Image.fromarray(values.astype(np.uint16) * 257).save(path)
    else:
        Image.fromarray(values).convert(mode).save(path)
    with Image.open(path) as stored:
        assert stored.mode == mode
    result = read_mask(path)
    assert result.dtype == bool and result.shape == (H, W)
    np.testing.assert_array_equal(result, mask)


def test_zero_one_mask_is_refused(tmp_path: Path) -> None:
    """A lossless mask holding only 0 and 1 is refused instead of reading as empty."""
    path = _save(tmp_path / "m.png", _crack().astype(np.uint8))
    with pytest.raises(DatasetError, match=r"m\.png: mask holds only the values 0 and 1"):
        read_mask(path)


def test_read_mask_checks_the_expected_shape(tmp_path: Path) -> None:
    """read_mask(shape=...) names the file, the size found and the size expected."""
    path = _save(tmp_path / "m.png", _mask_values(_crack()))
    assert read_mask(path, shape=(H, W)).shape == (H, W)
    with pytest.raises(DatasetError, match=rf"m\.png: mask is {H}x{W} \(HxW\), expected 10x20"):
        read_mask(path, shape=(10, 20))


@pytest.mark.parametrize("channels", [1, 3])
def test_read_image_returns_uint8_hwc(tmp_path: Path, channels: int) -> None:
    """read_image gives (H, W, channels) uint8, equal to the stored RGB pixels."""
    image = _image()
    path = _save(tmp_path / "a.png", image)
    result = read_image(path, channels)
    assert result.dtype == np.uint8 and result.shape == (H, W, channels)
    if channels == 3:
        np.testing.assert_array_equal(result, image)


def test_exif_orientation_is_ignored(tmp_path: Path) -> None:
    """A JPEG tagged Orientation=6 is read as stored, not rotated."""
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(tmp_path / "rot.jpg", _image(), exif=exif.tobytes(), quality=95)
    with Image.open(path) as img:
        assert img.getexif().get(0x0112) == 6
        assert ImageOps.exif_transpose(img).size == (H, W)  # a viewer would show it rotated
    assert read_image(path).shape == (H, W, 3)


def test_split_counts_on_a_hand_built_folder(tmp_path: Path) -> None:
    """Counts positives and negatives of the splits present only."""
    for stem, mask in [("a", _crack()), ("b", _crack(1)), ("c", np.zeros((H, W), bool))]:
        _add(tmp_path, "train", stem, mask)
    _add(tmp_path, "test", "d", _crack())
    _add(tmp_path, "test", "e", None)
    assert split_counts(tmp_path, negatives_without_mask=True) == {
        "train": {"positives": 2, "negatives": 1, "sum": 3},
        "test": {"positives": 1, "negatives": 1, "sum": 2},
    }


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_write_sample_round_trips_through_the_readers(tmp_path: Path, ext: str) -> None:
    """write_sample makes the layout; the readers return the image and the 0/255 mask."""
    image = np.repeat(np.linspace(0, 255, W, dtype=np.uint8)[None, :, None], H, axis=0)
    image = np.repeat(image, 3, axis=2) // np.array([1, 2, 3], dtype=np.uint8)
    mask = _crack()
    image_path, mask_path = write_sample(tmp_path, "train", "s1", image, mask, image_ext=ext)
    assert image_path == tmp_path / "train" / "images" / f"s1{ext}"
    assert mask_path == tmp_path / "train" / "masks" / "s1.png"
    with Image.open(mask_path) as stored:
        assert set(np.unique(np.asarray(stored))) == {0, 255}
    np.testing.assert_array_equal(read_mask(mask_path), mask)
    restored = read_image(image_path)
    if ext == ".png":
        np.testing.assert_array_equal(restored, image)
    else:
        assert np.abs(restored.astype(int) - image).max() <= 4
    (sample,) = scan_split(tmp_path, "train")
    assert sample.positive


def test_write_sample_refuses_a_second_file_for_a_stem(tmp_path: Path) -> None:
    """Writing a stem again under another extension would duplicate it, and is refused."""
    write_sample(tmp_path, "train", "s1", _image(), _crack(), image_ext=".png")
    with pytest.raises(DatasetError, match=re.escape("s1.png: already holds stem 's1'")):
        write_sample(tmp_path, "train", "s1", _image(), _crack(), image_ext=".jpg")


def test_a_large_split_shows_a_bar_only_when_progress_is_on(tmp_path: Path, capsys) -> None:
    """Checking more than 200 files shows a bar; ``progress=False`` (an importer's
    ``--no-progress``, a quiet run) keeps it silent, through ``split_counts`` as well."""
    for i in range(101):
        _add(tmp_path, "train", f"s{i:03d}", _crack() if i % 2 else np.zeros((H, W), bool))
    capsys.readouterr()
    split_counts(tmp_path, ("train",), progress=False)
    scan_split(tmp_path, "train", progress=False)
    assert capsys.readouterr().err == ""
    counts = split_counts(tmp_path, ("train",))
    assert "checking train" in capsys.readouterr().err
    assert counts == {"train": {"positives": 50, "negatives": 51, "sum": 101}}
