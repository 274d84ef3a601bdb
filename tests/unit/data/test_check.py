"""crackkit data check: every problem of a folder data set at once, errors apart from warnings."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from crackkit.cli import main
from crackkit.data.check import check_folder
from crackkit.data.dataset import load_splits
from crackkit.data.folder import DatasetError, write_sample


def _pair(h: int = 16, w: int = 24, crack: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    if crack:
        mask[h // 2, 2 : w - 2] = True
    return image, mask


def _clean(root, *, val: bool = True):
    """train 3 (2 cracked), val 2 (1), test 2 (1): a data set a run accepts."""
    splits = {"train": [True, True, False], "test": [True, False]}
    if val:
        splits["val"] = [True, False]
    seed = 0
    for split, labels in splits.items():
        for i, crack in enumerate(labels):
            seed += 1
            write_sample(root, split, f"{split}{i}", *_pair(crack=crack, seed=seed), ".png")
    return root


def test_a_clean_folder_passes_with_its_counts(tmp_path):
    report = check_folder(_clean(tmp_path / "ds"), progress=False)
    assert report.ok and report.findings == []
    counts = {k: (s.images, s.positives, s.negatives) for k, s in report.splits.items()}
    assert counts == {"train": (3, 2, 1), "val": (2, 1, 1), "test": (2, 1, 1)}
    assert dict(report.splits["train"].sizes) == {(16, 24): 3}
    load_splits(tmp_path / "ds", progress=False)  # the run agrees


def test_every_error_is_reported_at_once(tmp_path, capsys):
    """Six problems in one folder: six errors, each naming its file; exit status 1."""
    root = _clean(tmp_path / "ds")
    (root / "train" / "masks" / "train0.png").unlink()  # image without a mask
    Image.fromarray(np.zeros((16, 24), np.uint8)).save(root / "train" / "masks" / "ghost.png")
    grey = np.full((16, 24), 128, np.uint8)  # not binary
    Image.fromarray(grey).save(root / "val" / "masks" / "val0.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "test" / "masks" / "test1.png")
    data = (root / "train" / "images" / "train1.png").read_bytes()
    (root / "train" / "images" / "train1.png").write_bytes(data[: len(data) // 2])  # truncated
    (root / "test" / "images" / "notes.txt").write_text("x")  # unsupported file
    report = check_folder(root, progress=False)
    errors = {f.path.name: f.message for f in report.errors}
    assert set(errors) == {
        "train0.png",
        "ghost.png",
        "val0.png",
        "test1.png",
        "train1.png",
        "notes.txt",
    }
    assert "with neither a mask nor a label" in errors["train0.png"]
    assert "without an image" in errors["ghost.png"]
    assert "not binary" in errors["val0.png"]
    assert "8x8" in errors["test1.png"] and "16x24" in errors["test1.png"]
    assert "truncated" in errors["train1.png"] or "corrupt" in errors["train1.png"]
    assert "unsupported extension '.txt'" in errors["notes.txt"]
    assert main(["data", "check", str(root), "-q"]) == 1
    out = capsys.readouterr().out
    assert "6 error(s) that would stop a run" in out
    with pytest.raises(DatasetError):  # the run refuses it as well
        load_splits(root, progress=False)


def test_warnings_alone_exit_0(tmp_path, capsys):
    """No val split, a JPEG mask, two image sizes, a test image also in train: warnings."""
    root = _clean(tmp_path / "ds", val=False)
    write_sample(root, "train", "big", *_pair(32, 48, seed=99), ".png")
    shutil.copy(root / "train" / "images" / "train0.png", root / "test" / "images" / "dup.png")
    shutil.copy(root / "train" / "masks" / "train0.png", root / "test" / "masks" / "dup.png")
    mask = np.asarray(Image.open(root / "test" / "masks" / "test0.png"))
    (root / "test" / "masks" / "test0.png").unlink()
    Image.fromarray(mask).save(root / "test" / "masks" / "test0.jpg", quality=95)
    report = check_folder(root, progress=False)
    assert report.ok, [f.line() for f in report.errors]
    text = "\n".join(f.line() for f in report.warnings)
    assert "no val/ split" in text
    assert "stored as JPEG" in text
    assert "images of 2 sizes" in text
    assert "the same image as" in text and "dup.png" in text
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "train: 4 images, 3 with cracks, 1 crack-free" in out and "0 error(s)" in out
    load_splits(root, progress=False)  # and the run accepts it


def test_label_conflict(tmp_path):
    """The same image bytes labelled crack in one place and crack-free in another."""
    root = _clean(tmp_path / "ds")
    shutil.copy(root / "train" / "images" / "train0.png", root / "train" / "images" / "copy.png")
    Image.fromarray(np.zeros((16, 24), np.uint8)).save(root / "train" / "masks" / "copy.png")
    report = check_folder(root, progress=False)
    (conflict,) = [f for f in report.warnings if "label conflict" in f.message]
    named = {conflict.path.name} | {n for n in ("copy.png", "train0.png") if n in conflict.message}
    assert named == {"copy.png", "train0.png"}
    assert "crack here" in conflict.message or "crack-free here" in conflict.message


def test_training_split_without_cracks_is_an_error(tmp_path):
    root = tmp_path / "ds"
    for i in range(2):
        write_sample(root, "train", f"n{i}", *_pair(crack=False, seed=i), ".png")
        write_sample(root, "test", f"t{i}", *_pair(crack=i == 0, seed=10 + i), ".png")
    report = check_folder(root, progress=False)
    assert [f.message for f in report.errors] == [
        "no training image has crack pixels; training needs masks that mark cracks with 255"
    ]


def test_negatives_without_mask(tmp_path):
    """An image without a mask is an error, or a crack-free image when allowed."""
    root = _clean(tmp_path / "ds")
    (root / "val" / "masks" / "val1.png").unlink()
    assert not check_folder(root, progress=False).ok
    report = check_folder(root, negatives_without_mask=True, progress=False)
    assert report.ok and report.splits["val"].negatives == 1


def test_missing_splits_and_bad_path(tmp_path, capsys):
    """No test/ is an error naming what is there; a path that is no folder is bad input (2)."""
    root = tmp_path / "ds"
    write_sample(root, "train", "a", *_pair(), ".png")
    report = check_folder(root, progress=False)
    assert any("split folder 'test' not found" in f.message for f in report.errors)
    assert main(["data", "check", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_labels_csv_is_checked(tmp_path):
    """Image-level labels count as positives 'by label only'; a label that contradicts its mask
    and a malformed labels.csv are errors naming labels.csv."""
    import numpy as np

    from crackkit.data.check import check_folder
    from crackkit.data.folder import write_sample

    for split in ("train", "val", "test"):
        image = np.full((64, 128, 3), 190, np.uint8)
        mask = np.zeros((64, 128), bool)
        mask[10:12, 5:90] = True
        write_sample(tmp_path, split, "a", image, mask, image_ext=".png")
        write_sample(tmp_path, split, "b", image, np.zeros_like(mask), image_ext=".png")
        (tmp_path / split / "masks" / "b.png").unlink()
        (tmp_path / split / "labels.csv").write_text("image,label\nb,1\n")
    report = check_folder(tmp_path, progress=False)
    assert report.ok and report.splits["train"].image_level == 1
    assert "(1 by label only)" in "\n".join(report.lines())
    (tmp_path / "train" / "labels.csv").write_text("image,label\nb,1\na,0\n")
    report = check_folder(tmp_path, progress=False)
    assert any(
        "'a' is labelled 0 but its mask marks crack pixels" in f.message for f in report.errors
    )
    (tmp_path / "train" / "labels.csv").write_text("image,label\nb,7\n")
    errors = check_folder(tmp_path, progress=False).errors
    assert any(
        f.path == tmp_path / "train" / "labels.csv" and "must be 0 or 1" in f.message
        for f in errors
    )
