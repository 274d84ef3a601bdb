"""One folder policy: data sets, importers and prediction skip the same clutter."""

from __future__ import annotations

import numpy as np
from PIL import Image

from crackkit.apply import list_images
from crackkit.data.folder import list_image_files
from crackkit.data.staging import subdirs

# What archives, file managers and operating systems leave behind (as data, not from the code).
CLUTTER_FILES = ("Thumbs.db", "desktop.ini", ".DS_Store", ".hidden.png", "._a.png")
CLUTTER_DIRS = ("__MACOSX", ".git")


def _folder(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    for name in CLUTTER_FILES:
        (folder / name).write_bytes(b"x")
    for name in CLUTTER_DIRS:
        (folder / name).mkdir()
    return folder


def test_every_folder_reader_skips_the_same_clutter(tmp_path):
    folder = _folder(tmp_path)
    assert list(list_image_files(folder)) == ["a"]
    images, skipped = list_images(folder)
    assert [p.name for p in images] == ["a.png"] and skipped == []
    (folder / "train").mkdir()
    assert list(subdirs(folder)) == ["train"]
