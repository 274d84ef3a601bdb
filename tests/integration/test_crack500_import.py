"""Importing tiny CRACK500-like archives into the processed layout."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackkit.cli import main as cli_main
from crackkit.data.crack500 import (
    CRACK500_COUNTS,
    add_cli_arguments,
    crack_free_tiles,
    detect_layout,
    fetch_crack500,
    import_archive,
    import_folder,
    main_from_args,
)
from crackkit.data.download import DownloadError
from crackkit.data.folder import DatasetError, read_mask, scan_split

H, W = 24, 40
COUNTS = {"train": 3, "val": 2, "test": 2}
CROP_DIRS = {"train": "traincrop", "val": "valcrop", "test": "testcrop"}
FULL_DIRS = {"train": "traindata", "val": "valdata", "test": "testdata"}
QUIET = {"progress": False, "verbose": False}


def _image(seed: int, shape=(H, W)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _line_mask(index: int, shape=(H, W)) -> np.ndarray:
    """A one-pixel horizontal crack whose row identifies the sample, plus a short vertical one."""
    mask = np.zeros(shape, np.uint8)
    mask[2 + index, :] = 255
    mask[:, 5 + index] = 255
    return mask


def _save(path: Path, array: np.ndarray, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def _make_source(
    root: Path, layout: str, top: str | None = None, mask_format="PNG", doubled: bool = False
) -> Path:
    """Write a tiny data set in ``layout`` under ``root`` (inside ``top`` when given).

    ``doubled`` nests the crops or full-size files one folder deeper, as the authors' archive does
    (``traincrop/traincrop/X.jpg``).
    """
    base = root / top if top else root
    index = 0
    for split, count in COUNTS.items():
        for i in range(count):
            stem = f"{split}_{i}"
            mask_ext = ".png" if mask_format == "PNG" else ".jpg"
            if layout == "crops":
                folder = base / CROP_DIRS[split]
                folder = folder / CROP_DIRS[split] if doubled else folder
                image_path, mask_path = folder / f"{stem}.jpg", folder / f"{stem}.png"
            elif layout == "full":
                folder = base / FULL_DIRS[split]
                folder = folder / FULL_DIRS[split] if doubled else folder
                image_path, mask_path = folder / f"{stem}.jpg", folder / f"{stem}_mask.png"
            else:
                image_path = base / split / "images" / f"{stem}.jpg"
                mask_path = base / split / "masks" / f"{stem}{mask_ext}"
            _save(image_path, _image(index), quality=90)
            mask_kwargs = {"quality": 75} if mask_format == "JPEG" else {}
            _save(mask_path, _line_mask(index), format=mask_format, **mask_kwargs)
            index += 1
    return root


def _pack(src: Path, archive: Path, kind: str) -> Path:
    """Pack every file under ``src`` into a zip or tar.gz with relative member names."""
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for path in files:
                zf.write(path, path.relative_to(src).as_posix())
    else:
        with tarfile.open(archive, "w:gz") as tf:
            for path in files:
                tf.add(path, path.relative_to(src).as_posix())
    return archive


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("top", [None, "CRACK500", "CRACK500/CRACK500"])
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@pytest.mark.parametrize("layout", ["crops", "full", "mirror"])
def test_layouts_import_with_correct_pairs(tmp_path, layout, kind, top):
    """Each layout, packed as zip or tar.gz, under 0-2 extra folders, imports with right pairs."""
    src = _make_source(tmp_path / "src", layout, top)
    archive = _pack(src, tmp_path / f"CRACK500.{kind}", kind)
    before = _sha(archive)
    report = import_archive(archive, tmp_path / "processed", **QUIET)
    dest = tmp_path / "processed" / "crack500"
    assert report.layout == layout and report.dest == dest
    assert report.counts == {
        s: {"positives": n, "negatives": 0, "sum": n} for s, n in COUNTS.items()
    }
    # val_1 is the fifth sample written: its crack row is 2 + 4.
    mask = read_mask(dest / "val" / "masks" / "val_1.png")
    assert np.array_equal(mask, _line_mask(4) > 127)
    source_image = next((src / (top or "")).rglob("val_1.jpg"))
    assert (dest / "val" / "images" / "val_1.jpg").read_bytes() == source_image.read_bytes()
    assert [s.stem for s in scan_split(dest, "train")] == ["train_0", "train_1", "train_2"]
    assert _sha(archive) == before
    record = json.loads((dest / "dataset.json").read_text())
    assert record["source"]["sha256"] == before and record["layout"] == layout
    assert any("CRACK500 has 1896" in w for w in record["warnings"])
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == ["crack500"]


def test_count_mismatch_is_a_warning_not_an_error(tmp_path, capsys):
    """Counts are printed, and a mismatch with CRACK500_COUNTS is only warned about."""
    src = _make_source(tmp_path / "src", "crops")
    report = import_folder(src, tmp_path / "out", progress=False)
    out = capsys.readouterr().out
    assert "train: 3 images (3 with cracks, 0 crack-free)" in out
    assert "WARNING: split 'test' has 2 images where CRACK500 has 1124" in out
    assert len(report.warnings) == 3
    report = import_folder(src, tmp_path / "out2", expected_counts=COUNTS, **QUIET)
    assert report.warnings == [] and CRACK500_COUNTS["train"] == 1896


def test_jpeg_noisy_masks_binarised_and_counted(tmp_path):
    """JPEG-compressed masks are thresholded back to the drawn lines and counted."""
    src = _make_source(tmp_path / "src", "mirror", mask_format="JPEG")
    report = import_folder(src, tmp_path / "out", **QUIET)
    assert report.binarised_masks == sum(COUNTS.values())
    mask = read_mask(tmp_path / "out" / "crack500" / "train" / "masks" / "train_2.png")
    assert np.array_equal(mask, _line_mask(2) > 127)
    clean = import_folder(_make_source(tmp_path / "png", "mirror"), tmp_path / "o2", **QUIET)
    assert clean.binarised_masks == 0


def test_grey_values_thresholded_at_127(tmp_path):
    """A stray 140 becomes crack and a stray 100 background; the mask counts as binarised."""
    src = _make_source(tmp_path / "src", "crops")
    mask = _line_mask(0)
    mask[20, 30], mask[21, 31] = 140, 100
    _save(src / "traincrop" / "train_0.png", mask)
    report = import_folder(src, tmp_path / "out", **QUIET)
    written = read_mask(tmp_path / "out" / "crack500" / "train" / "masks" / "train_0.png")
    assert written[20, 30] and not written[21, 31]
    assert report.binarised_masks == 1


def test_missing_mask_is_named(tmp_path):
    """An image without its mask fails naming the image and the expected mask; nothing is left."""
    src = _make_source(tmp_path / "src", "full")
    (src / "valdata" / "val_1_mask.png").unlink()
    with pytest.raises(DatasetError, match=r"val_1\.jpg \(expected val_1_mask\.png\)"):
        import_folder(src, tmp_path / "out", **QUIET)
    assert list((tmp_path / "out").iterdir()) == []


def test_mis_sized_mask_is_named(tmp_path):
    """A mask of another size fails naming both files and both sizes."""
    src = _make_source(tmp_path / "src", "crops")
    _save(src / "testcrop" / "test_1.png", np.zeros((20, W), np.uint8))
    archive = _pack(src, tmp_path / "a.zip", "zip")
    with pytest.raises(DatasetError) as err:
        import_archive(archive, tmp_path / "out", **QUIET)
    message = str(err.value)
    assert "a.zip:testcrop/test_1.png is 20x40" in message
    assert "a.zip:testcrop/test_1.jpg is 24x40" in message
    assert list((tmp_path / "out").iterdir()) == []


def _zip_with(path: Path, name: str, data: bytes = b"x", mode: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("CRACK500/traincrop/a.txt", b"fine")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        zf.writestr(info, data)
    return path


def _tar_with(folder: Path, name: str) -> Path:
    path = folder / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    return path


def _tar_with_link(folder: Path) -> Path:
    path = folder / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("CRACK500/traincrop/link.png")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: _zip_with(p / "a.zip", "../evil.txt"), "'..'"),
        (lambda p: _zip_with(p / "a.zip", "CRACK500/../../evil.txt"), "'..'"),
        (lambda p: _zip_with(p / "a.zip", "/tmp/evil.txt"), "absolute path"),
        (lambda p: _zip_with(p / "a.zip", "x/link", b"/etc", 0o120777), "symbolic link"),
        (lambda p: _tar_with(p, "../evil.txt"), "'..'"),
        (lambda p: _tar_with(p, "/tmp/evil.txt"), "absolute path"),
        (_tar_with_link, "link"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "zip-symlink",
        "tar-dotdot",
        "tar-absolute",
        "tar-symlink",
    ],
)
def test_unsafe_members_refused(tmp_path, make, reason):
    """Path traversal, absolute paths and links are refused before anything is written."""
    archive = make(tmp_path)
    with pytest.raises(DatasetError, match=re.escape(reason)):
        import_archive(archive, tmp_path / "out", **QUIET)
    assert not (tmp_path / "evil.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_os_clutter_skipped_and_exif_orientation_ignored(tmp_path):
    """__MACOSX/._* entries are skipped; an EXIF rotation tag does not change the image size."""
    src = _make_source(tmp_path / "src", "crops")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees": applied, the image would become 40x24
    Image.fromarray(_image(0)).save(src / "traincrop" / "train_0.jpg", exif=exif)
    (src / "__MACOSX" / "traincrop").mkdir(parents=True)
    (src / "__MACOSX" / "traincrop" / "._train_0.jpg").write_bytes(b"resource fork")
    (src / "traincrop" / "._train_0.png").write_bytes(b"resource fork")
    archive = _pack(src, tmp_path / "a.zip", "zip")
    report = import_archive(archive, tmp_path / "out", expected_counts=COUNTS, **QUIET)
    assert report.warnings == [] and report.counts["train"]["sum"] == 3


def test_not_an_archive_refused(tmp_path):
    """A saved web page is refused as not an archive, with a hint."""
    fake = tmp_path / "CRACK500.zip"
    fake.write_bytes(b"<!DOCTYPE html><html><title>Google Drive</title></html>")
    with pytest.raises(DatasetError, match="not a zip or tar archive.*web page"):
        import_archive(fake, tmp_path / "out", **QUIET)


def test_unrecognised_layout_lists_entries(tmp_path):
    """An unknown layout fails listing what was found and the accepted layouts."""
    _save(tmp_path / "src" / "pics" / "a.jpg", _image(0))
    (tmp_path / "src" / "README.txt").write_text("hi")
    with pytest.raises(DatasetError) as err:
        import_folder(tmp_path / "src", tmp_path / "out", **QUIET)
    message = str(err.value)
    assert "README.txt, pics/" in message
    assert "traincrop/" in message and "traindata/" in message and "images/ and masks/" in message


def test_empty_split_is_an_error(tmp_path):
    """A layout without one of its split folders is refused."""
    src = _make_source(tmp_path / "src", "crops")
    for path in (src / "valcrop").iterdir():
        path.unlink()
    (src / "valcrop").rmdir()
    with pytest.raises(DatasetError, match="split 'val' is empty: no folder valcrop/"):
        import_folder(src, tmp_path / "out", **QUIET)


def test_overwrite_refused_without_flag(tmp_path):
    """A second import needs overwrite=True, which then replaces the first."""
    archive = _pack(_make_source(tmp_path / "src", "crops"), tmp_path / "a.zip", "zip")
    import_archive(archive, tmp_path / "out", **QUIET)
    marker = tmp_path / "out" / "crack500" / "marker"
    marker.write_text("old import")
    with pytest.raises(DatasetError, match="already exists.*--overwrite"):
        import_archive(archive, tmp_path / "out", **QUIET)
    assert marker.exists()
    import_archive(archive, tmp_path / "out", overwrite=True, **QUIET)
    assert not marker.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["crack500"]


def test_crack_free_tiles_grid():
    """Only tiles of the non-overlapping grid whose mask is all zero are returned."""
    mask = np.zeros((25, 41), bool)
    mask[13, 3] = True
    assert crack_free_tiles(mask, (12, 20)) == [(0, 0), (0, 20), (12, 20)]


def test_negatives_from_full_tiles_are_crack_free(tmp_path):
    """Crack-free tiles of the full-size images become negatives of their split."""
    src = _make_source(tmp_path / "src", "crops", top="CRACK500")
    full_masks = {}
    for split, count in COUNTS.items():
        for i in range(count):
            stem = f"{split}_{i}"
            mask = np.zeros((48, 80), np.uint8)
            mask[5 + 7 * i, 10:70] = 255
            full_masks[stem] = mask
            _save(src / "CRACK500" / FULL_DIRS[split] / f"{stem}.jpg", _image(99, (48, 80)))
            _save(src / "CRACK500" / FULL_DIRS[split] / f"{stem}_mask.png", mask)
    archive = _pack(src, tmp_path / "a.tar.gz", "tar.gz")
    report = import_archive(
        archive, tmp_path / "out", negatives_from_full=True, tile=(12, 20), **QUIET
    )
    assert report.layout == "crops"
    dest = tmp_path / "out" / "crack500"
    for split, count in COUNTS.items():
        expected = sum(
            len(crack_free_tiles(full_masks[f"{split}_{i}"] > 0, (12, 20))) for i in range(count)
        )
        assert 0 < expected < count * 16
        assert report.added_negatives[split] == {"full_tiles": expected, "extra": 0}
        assert report.counts[split] == {
            "positives": count,
            "negatives": expected,
            "sum": count + expected,
        }
        tiles = [s for s in scan_split(dest, split) if "_neg_" in s.stem]
        assert len(tiles) == expected
        for sample in tiles:
            assert not sample.positive
            stem, r, c = re.fullmatch(r"(.+)_neg_r(\d+)_c(\d+)", sample.stem).groups()
            r, c = int(r), int(c)
            assert not full_masks[stem][r : r + 12, c : c + 20].any()
            assert Image.open(sample.image).size == (20, 12)
    record = json.loads((dest / "dataset.json").read_text())
    assert record["negatives_from_full"] is True and record["tile"] == [12, 20]


def test_negatives_from_full_needs_full_images(tmp_path):
    """Asking for full-size tiles without traindata/ etc. is refused."""
    src = _make_source(tmp_path / "src", "mirror")
    with pytest.raises(DatasetError, match="negatives_from_full needs the full-size images"):
        import_folder(src, tmp_path / "out", negatives_from_full=True, **QUIET)


def test_extra_negatives_copied_with_zero_masks(tmp_path):
    """Folders of crack-free images join their split with all-zero masks."""
    src = _make_source(tmp_path / "src", "crops")
    for i in range(2):
        _save(tmp_path / "neg" / f"road_{i}.jpg", _image(50 + i, (30, 30)))
    report = import_folder(
        src, tmp_path / "out", extra_negatives={"train": tmp_path / "neg"}, **QUIET
    )
    assert report.counts["train"] == {"positives": 3, "negatives": 2, "sum": 5}
    mask = read_mask(tmp_path / "out" / "crack500" / "train" / "masks" / "road_1.png")
    assert mask.shape == (30, 30) and not mask.any()


def test_fetch_from_hand_downloaded_archive(tmp_path):
    """--archive copies the file into raw/ untouched, imports it, and a rerun is a no-op."""
    archive = _pack(_make_source(tmp_path / "src", "crops"), tmp_path / "CRACK500.zip", "zip")
    root = tmp_path / "data"
    out = fetch_crack500(root=root, archive=archive, **QUIET)
    assert out == root / "processed" / "crack500"
    assert (root / "raw" / "CRACK500.zip").read_bytes() == archive.read_bytes()
    assert fetch_crack500(root=root, archive=archive, **QUIET) == out
    with pytest.raises(DatasetError, match="SHA-256 is"):
        fetch_crack500(root=root, archive=archive, sha256="1" * 64, **QUIET)
    with pytest.raises(DatasetError, match="other options"):
        fetch_crack500(root=root, archive=archive, negatives_from_full=True, **QUIET)


@pytest.fixture
def file_server(tmp_path):
    """A static HTTP server over tmp_path/www on 127.0.0.1, shut down after the test."""
    www = tmp_path / "www"
    www.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_fetch_from_url_via_cli_helpers(tmp_path, file_server, capsys):
    """The CLI helpers download a mirror's tar.gz into raw/ and import it."""
    www, base = file_server
    archive = _pack(
        _make_source(tmp_path / "src", "mirror", "CRACK500"), www / "c5.tar.gz", "tar.gz"
    )
    parser = add_cli_arguments(argparse.ArgumentParser())
    argv = ["--url", f"{base}/c5.tar.gz", "--root", str(tmp_path / "data"), "--quiet"]
    with pytest.raises(DownloadError, match="plain http is not authenticated.*--allow-http"):
        main_from_args(parser.parse_args(argv))
    assert main_from_args(parser.parse_args([*argv, "--allow-http"])) == 0
    raw = tmp_path / "data" / "raw" / "c5.tar.gz"
    assert raw.read_bytes() == archive.read_bytes()
    assert (
        capsys.readouterr().out.strip().endswith(str(tmp_path / "data" / "processed" / "crack500"))
    )
    bad = ["data", "crack500", "--archive", str(tmp_path / "nope.zip"), "--root", str(tmp_path)]
    assert cli_main(bad) == 2
    assert "nope.zip: archive not found" in capsys.readouterr().err


def test_detect_layout_prefers_crops_over_full(tmp_path):
    """With crops and full-size folders side by side, the crops are the splits."""
    _make_source(tmp_path, "crops", "CRACK500")
    _make_source(tmp_path, "full", "CRACK500")
    layout = detect_layout(tmp_path)
    assert layout.name == "crops" and set(layout.full) == {"train", "val", "test"}


def test_one_epoch_run_on_the_imported_set(tmp_path, kit_dirs):
    """An imported CRACK500-like archive trains and evaluates by its name, crack500."""
    from crackkit.config import make_config
    from crackkit.pipeline import evaluate_run, report_run, train_run

    archive = _pack(_make_source(tmp_path / "src", "crops", "CRACK500"), tmp_path / "c.zip", "zip")
    import_archive(archive, kit_dirs["processed"], **QUIET)
    cfg = make_config(
        {
            "dataset": "crack500",
            # The smallest input SegDecNet takes; the 24x40 crops are resized to it.
            "input_height": 64,
            "input_width": 128,
            "epochs": 1,
            "batch_size": 1,
            "amp": "off",
        },
        preset="tiny",
    )
    result = train_run(cfg, kit_dirs["runs"] / "c500", progress=False)
    assert [row["epoch"] for row in result.history] == [1]
    metrics = evaluate_run(result.run_dir, progress=False, n_gallery=2)
    assert metrics["n_images"] == COUNTS["test"] and metrics["n_positive"] == COUNTS["test"]
    assert metrics["decision"]["auc"] is None and metrics["decision"]["notes"]
    assert 0.0 <= metrics["pixel_2px"]["f1"] <= 1.0
    summary = json.loads((result.run_dir / "dataset.json").read_text())["counts"]
    assert summary["train"] == {"positives": 3, "negatives": 0, "sum": 3}
    report = report_run(result.run_dir).read_text()
    assert "| Li et al. | 0.7909 | 0.765 | 0.7778 |" in report


# ---------------------------------------------------------------------------------------------
# The authors' archive: doubled folders, split lists, negatives cut from the full-size images


def _write_lists(base: Path, lists: dict[str, list[str]]) -> None:
    for split, lines in lists.items():
        (base / f"{split}.txt").write_text("\n".join(lines) + "\n")


def _listed(split: str, indices, folder: str | None = None) -> list[str]:
    folder = folder or CROP_DIRS[split]
    return [f"{folder}/{split}_{i}.jpg {folder}/{split}_{i}.png" for i in indices]


@pytest.mark.parametrize("top", [None, "CRACK500"])
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_doubled_crop_folders_import(tmp_path, kind, top):
    """traincrop/traincrop/X.jpg (the authors' archive) imports like the single layout."""
    src = _make_source(tmp_path / "src", "crops", top, doubled=True)
    archive = _pack(src, tmp_path / f"CRACK500.{kind}", kind)
    report = import_archive(archive, tmp_path / "out", expected_counts=COUNTS, **QUIET)
    assert report.layout == "crops" and report.warnings == [] and report.split_lists == {}
    assert report.counts == {
        s: {"positives": n, "negatives": 0, "sum": n} for s, n in COUNTS.items()
    }
    dest = tmp_path / "out" / "crack500"
    assert np.array_equal(read_mask(dest / "val" / "masks" / "val_1.png"), _line_mask(4) > 127)
    record = json.loads((dest / "dataset.json").read_text())
    assert record["negatives_source"] == (
        "the train split has no negatives; the seed fork's 1,411 negatives have no stated source"
    )


@pytest.mark.parametrize("doubled", [True, False], ids=["doubled", "single"])
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_split_lists_decide_membership(tmp_path, kind, doubled):
    """train/val/test.txt decide the splits; listed paths resolve whether or not doubled."""
    src = _make_source(tmp_path / "src", "crops", "CRACK500", doubled=doubled)
    base = src / "CRACK500"
    # train_2 moves to val; test lists one image by its path only, one by a doubled path.
    _write_lists(
        base,
        {
            "train": ["# image mask", *_listed("train", [0, 1]), ""],
            "val": _listed("val", [0, 1]) + _listed("train", [2], "traincrop"),
            "test": ["testcrop/test_0.jpg", "testcrop/testcrop/test_1.jpg testcrop/test_1.png"],
        },
    )
    archive = _pack(src, tmp_path / f"CRACK500.{kind}", kind)
    report = import_archive(archive, tmp_path / "out", expected_counts=None, **QUIET)
    assert report.split_lists == {s: f"CRACK500/{s}.txt" for s in COUNTS}
    assert {s: c["sum"] for s, c in report.counts.items()} == {"train": 2, "val": 3, "test": 2}
    dest = tmp_path / "out" / "crack500"
    assert [s.stem for s in scan_split(dest, "val")] == ["train_2", "val_0", "val_1"]
    assert np.array_equal(read_mask(dest / "val" / "masks" / "train_2.png"), _line_mask(2) > 127)
    assert [w for w in report.warnings if "not named in train.txt" in w]
    assert "1 image(s) not named in train.txt were left out" in report.warnings[0]
    record = json.loads((dest / "dataset.json").read_text())
    assert record["split_lists"]["train"] == "CRACK500/train.txt"


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_split_list_naming_a_missing_file_is_an_error(tmp_path, kind):
    """A listed file that is not in the archive stops the import naming list, line and path."""
    src = _make_source(tmp_path / "src", "crops", "CRACK500", doubled=True)
    lists = {s: _listed(s, range(n)) for s, n in COUNTS.items()}
    lists["val"].insert(1, "valcrop/nope.jpg valcrop/nope.png")
    _write_lists(src / "CRACK500", lists)
    archive = _pack(src, tmp_path / f"a.{kind}", kind)
    with pytest.raises(DatasetError) as err:
        import_archive(archive, tmp_path / "out", **QUIET)
    message = str(err.value)
    assert f"a.{kind}:CRACK500/val.txt, line 2: image 'valcrop/nope.jpg' not found" in message
    assert "first folder doubled or not" in message
    assert list((tmp_path / "out").iterdir()) == []


def test_split_list_errors_name_the_line(tmp_path):
    """A missing listed mask, a derived mask that is absent, duplicates and extra fields fail."""
    src = _make_source(tmp_path / "src", "crops", doubled=True)
    good = {s: _listed(s, range(n)) for s, n in COUNTS.items()}
    cases = [
        (["traincrop/train_0.jpg traincrop/gone.png"], r"train\.txt, line 1: mask 'traincrop/gone"),
        (_listed("train", [0, 0]), r"train\.txt, line 2: .* already listed on line 1"),
        (["traincrop/train_0.jpg a b"], r"train\.txt, line 1: .* has 3 fields"),
        (["# nothing"], r"train\.txt: split list names no files"),
    ]
    for lines, pattern in cases:
        _write_lists(src, {**good, "train": lines})
        with pytest.raises(DatasetError, match=pattern):
            import_folder(src, tmp_path / "out", **QUIET)
    (src / "traincrop" / "traincrop" / "train_1.png").unlink()
    _write_lists(src, {**good, "train": ["traincrop/train_1.jpg"]})
    with pytest.raises(DatasetError, match=r"line 1: no mask for 'traincrop/train_1\.jpg'"):
        import_folder(src, tmp_path / "out", **QUIET)
    assert list((tmp_path / "out").iterdir()) == []


def _add_full_size(base: Path, doubled: bool = True) -> dict[str, np.ndarray]:
    """Full-size 48x80 images (one crack row each) beside the crops; returns their masks."""
    masks = {}
    for split, count in COUNTS.items():
        folder = base / FULL_DIRS[split]
        folder = folder / FULL_DIRS[split] if doubled else folder
        for i in range(count):
            stem = f"{split}_{i}"
            mask = np.zeros((48, 80), np.uint8)
            mask[5 + 7 * i, 10:70] = 255
            masks[stem] = mask
            _save(folder / f"{stem}.jpg", _image(99, (48, 80)))
            _save(folder / f"{stem}_mask.png", mask)
    return masks


def _tile_stems(dest: Path, split: str) -> list[str]:
    return [s.stem for s in scan_split(dest, split) if "_neg_" in s.stem]


def test_negatives_count_caps_train_tiles_deterministically(tmp_path):
    """The train tiles are capped by a seeded draw; val/test keep all; the record says so."""
    src = _make_source(tmp_path / "src", "crops", "CRACK500", doubled=True)
    masks = _add_full_size(src / "CRACK500")
    _write_lists(src / "CRACK500", {s: _listed(s, range(n)) for s, n in COUNTS.items()})
    archive = _pack(src, tmp_path / "CRACK500.zip", "zip")
    available = {
        split: sum(len(crack_free_tiles(masks[f"{split}_{i}"] > 0, (12, 20))) for i in range(n))
        for split, n in COUNTS.items()
    }
    assert available["train"] > 5
    kwargs = {"negatives_from_full": True, "tile": (12, 20), "expected_counts": COUNTS, **QUIET}
    report = import_archive(archive, tmp_path / "a", negatives_count=5, **kwargs)
    assert report.added_negatives["train"] == {"full_tiles": 5, "extra": 0}
    assert report.tiles_available == available
    for split in ("val", "test"):
        assert report.added_negatives[split]["full_tiles"] == available[split]
    assert report.counts["train"] == {"positives": 3, "negatives": 5, "sum": 8}
    first = _tile_stems(tmp_path / "a" / "crack500", "train")
    again = import_archive(archive, tmp_path / "b", negatives_count=5, **kwargs)
    assert _tile_stems(tmp_path / "b" / "crack500", "train") == first and len(first) == 5
    other = import_archive(archive, tmp_path / "c", negatives_count=5, negatives_seed=1, **kwargs)
    assert _tile_stems(tmp_path / "c" / "crack500", "train") != first
    assert again.negatives_source == report.negatives_source != other.negatives_source
    record = json.loads((tmp_path / "a" / "crack500" / "dataset.json").read_text())
    assert record["negatives_count"] == 5 and record["negatives_seed"] == 0
    assert record["negatives_source"] == (
        "train negatives: 5 crack-free 12x20 tiles cut from the full-size traindata/ images by "
        f"crackkit (--negatives-from-full; drawn with seed 0 from the {available['train']} found, "
        "to cap the train negatives at --negatives-count 5); the seed fork's 1,411 negatives have "
        "no stated source"
    )
    # Under the default cap (1411) every one of the few tiles is kept, and a warning says so.
    full = import_archive(archive, tmp_path / "d", **kwargs)
    assert full.added_negatives["train"]["full_tiles"] == available["train"]
    assert full.negatives_count == 1411
    assert any("fewer than --negatives-count 1411" in w for w in full.warnings)
    uncapped = import_archive(archive, tmp_path / "e", negatives_count=None, **kwargs)
    assert uncapped.warnings == [] and uncapped.negatives_count is None


def test_negatives_count_counts_the_archives_own_negatives(tmp_path):
    """Crack-free crops count towards the cap: only the difference is drawn from the tiles."""
    src = _make_source(tmp_path / "src", "crops", doubled=True)
    _save(src / "traincrop" / "traincrop" / "train_0.png", np.zeros((H, W), np.uint8))
    _add_full_size(src, doubled=False)
    report = import_folder(
        src, tmp_path / "out", negatives_from_full=True, tile=(12, 20), negatives_count=4, **QUIET
    )
    assert report.counts["train"] == {"positives": 2, "negatives": 4, "sum": 6}
    assert report.added_negatives["train"]["full_tiles"] == 3
    assert report.negatives_source.startswith(
        "train negatives: 1 crack-free image of the archive itself; 3 crack-free 12x20 tiles"
    )


def test_negatives_count_cli_option(tmp_path):
    """--negatives-count takes a count or 'all' and defaults to the seed run's 1411."""
    parser = add_cli_arguments(argparse.ArgumentParser())
    assert parser.parse_args([]).negatives_count == 1411
    assert parser.parse_args(["--negatives-count", "all"]).negatives_count is None
    assert parser.parse_args(["--negatives-count", "0"]).negatives_count == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["--negatives-count", "-3"])
