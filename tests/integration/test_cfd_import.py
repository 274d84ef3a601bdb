"""Importing tiny CrackForest-like folders and archives into the processed layout."""

from __future__ import annotations

import hashlib
import json
import tarfile
import threading
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from crackkit.cli import main as cli_main
from crackkit.data.cfd import (
    CFD_CITATION,
    CFD_LICENSE,
    choose_val,
    fetch_cfd,
    import_cfd,
    read_segmentation,
)
from crackkit.data.dataset import resolve_dataset
from crackkit.data.download import DownloadError, part_path
from crackkit.data.folder import DatasetError, read_mask, scan_split

H, W = 8, 12
TRAIN_IDS = [f"{i:03d}" for i in range(1, 11)]
TEST_IDS = [f"{i:03d}" for i in range(73, 77)]
NO_GT_IDS = ["119"]
QUIET = {"progress": False, "verbose": False}
TOP = "CrackForest-dataset-master"


def _seg(stem: str) -> np.ndarray:
    """Labels of one image: 1 background, a row of 2, a patch of 3; 075 adds 4; 076 has only 4."""
    number = int(stem)
    seg = np.ones((H, W), np.uint8)
    if stem != "076":
        seg[number % (H - 1), :] = 2
    seg[0:2, W - 2 :] = 3
    if stem in ("005", "075", "076"):
        seg[H - 1, 0:5] = 4
    return seg


def _image(stem: str, shape=(H, W)) -> np.ndarray:
    return np.random.default_rng(int(stem)).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _save_mat(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, content)


def _make_cfd(root: Path, top: str | None = None) -> Path:
    """A tiny CrackForest: images 001-010, 073-076 with ground truth, 119 without."""
    base = root / top if top else root
    (base / "image").mkdir(parents=True)
    for stem in TRAIN_IDS + TEST_IDS + NO_GT_IDS:
        Image.fromarray(_image(stem)).save(base / "image" / f"{stem}.jpg", quality=90)
    for stem in TRAIN_IDS + TEST_IDS:
        seg = _seg(stem)
        boundaries = np.zeros_like(seg)
        _save_mat(
            base / "groundTruth" / f"{stem}.mat",
            {"groundTruth": {"Segmentation": seg, "Boundaries": boundaries}},
        )
    (base / "seg").mkdir()
    (base / "seg" / "001.seg").write_text("format ascii cr\n")
    (base / "image" / "image.rar").write_bytes(b"Rar!")  # the published repository has one
    (base / "README.md").write_text("CrackForest Dataset\n")
    return root


def _pack(src: Path, archive: Path) -> Path:
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if archive.name.endswith(".zip"):
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


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): _sha(p) for p in root.rglob("*") if p.is_file()}


def _stems(dest: Path, split: str) -> list[str]:
    return [s.stem for s in scan_split(dest, split)]


def test_folder_import_counts_splits_and_record(tmp_path):
    """A folder is read in place; splits, masks, counts and the record are right."""
    src = _make_cfd(tmp_path / "src")
    before = _tree_digest(src)
    report = import_cfd(src, tmp_path / "processed", **QUIET)
    dest = tmp_path / "processed" / "cfd"
    assert report.dest == dest and _tree_digest(src) == before
    val = choose_val(TRAIN_IDS)
    assert len(val) == 2 and set(val) < set(TRAIN_IDS)
    assert _stems(dest, "test") == TEST_IDS
    assert _stems(dest, "val") == val
    assert _stems(dest, "train") == sorted(set(TRAIN_IDS) - set(val))
    assert report.counts == {
        "train": {"positives": 8, "negatives": 0, "sum": 8},
        "val": {"positives": 2, "negatives": 0, "sum": 2},
        "test": {"positives": 4, "negatives": 0, "sum": 4},
    }
    mask = read_mask(dest / "test" / "masks" / "075.png")
    assert np.array_equal(mask, np.isin(_seg("075"), (2, 4)))
    assert mask[H - 1, 0:5].all() and not mask[0, W - 1]
    assert (dest / "test" / "images" / "075.jpg").read_bytes() == (
        src / "image" / "075.jpg"
    ).read_bytes()
    record = json.loads((dest / "dataset.json").read_text())
    license_line = "The dataset is made available for non-commercial research purposes only."
    assert record["license"] == CFD_LICENSE == license_line
    assert record["citation"] == CFD_CITATION and "random structured forests" in CFD_CITATION
    assert record["crack_values"] == [2, 4] and record["val_images"] == val
    assert record["skipped_without_ground_truth"] == 1 and record["skipped_images"] == ["119"]
    assert record["source"]["kind"] == "folder" and record["sha256"] is None
    assert record["splits"]["test"] == TEST_IDS
    assert record["files_with_value"] == {"1": 14, "2": 13, "3": 14, "4": 3}
    assert any("image.rar" in w for w in record["warnings"])
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == ["cfd"]


def test_crack_values_2_only(tmp_path):
    """With crack = {2}, faint strokes (4) are background and 076 becomes crack-free."""
    src = _make_cfd(tmp_path / "src")
    report = import_cfd(src, tmp_path / "out", crack_values="2", **QUIET)
    dest = tmp_path / "out" / "cfd"
    assert report.counts["test"] == {"positives": 3, "negatives": 1, "sum": 4}
    assert not read_mask(dest / "test" / "masks" / "076.png").any()
    mask = read_mask(dest / "test" / "masks" / "075.png")
    assert np.array_equal(mask, _seg("075") == 2) and not mask[H - 1, 0:5].any()
    assert json.loads((dest / "dataset.json").read_text())["crack_values"] == [2]
    both = import_cfd(src, tmp_path / "out2", **QUIET)
    assert both.counts["test"]["positives"] == 4


def test_val_is_seeded_and_deterministic(tmp_path):
    """The same seed gives the same val images on every import; another seed may differ."""
    src = _make_cfd(tmp_path / "src")
    first = import_cfd(src, tmp_path / "a", **QUIET).splits["val"]
    again = import_cfd(src, tmp_path / "b", **QUIET).splits["val"]
    assert first == again == choose_val(TRAIN_IDS, seed=0)
    order = np.random.default_rng(0).permutation(len(TRAIN_IDS))
    assert first == sorted(TRAIN_IDS[i] for i in order[:2])
    other = import_cfd(src, tmp_path / "c", val_seed=3, **QUIET).splits["val"]
    assert other == choose_val(TRAIN_IDS, seed=3)
    # CrackForest's 72 train candidates give 11 val images.
    assert len(choose_val([f"{i:03d}" for i in range(1, 73)])) == 11


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_with_top_folder_copied_to_raw(tmp_path, kind, capsys):
    """An archive goes into raw/ untouched, is extracted to a temp folder and imported."""
    src = _make_cfd(tmp_path / "src", TOP)
    archive = _pack(src, tmp_path / f"{TOP}.{kind}")
    digest = _sha(archive)
    root = tmp_path / "data"
    out = fetch_cfd(root=root, source=archive, **QUIET)
    assert out == root / "processed" / "cfd"
    assert (root / "raw" / archive.name).read_bytes() == archive.read_bytes()
    assert _sha(archive) == digest
    assert sorted(p.name for p in (root / "processed").iterdir()) == ["cfd"]
    record = json.loads((out / "dataset.json").read_text())
    assert record["sha256"] == digest == record["source"]["sha256"]
    assert record["source"]["kind"] == "archive" and record["counts"]["test"]["sum"] == 4
    assert any(f"{archive.name}:{TOP}/image" in w for w in record["warnings"])
    # The same archive with the same options: nothing to do; other options need --overwrite.
    assert fetch_cfd(root=root, source=archive, progress=False) == out
    assert "already holds this import" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="already exists.*--overwrite"):
        fetch_cfd(root=root, source=archive, crack_values=(2,), **QUIET)
    fetch_cfd(root=root, source=archive, crack_values=(2,), overwrite=True, **QUIET)
    assert json.loads((out / "dataset.json").read_text())["crack_values"] == [2]
    with pytest.raises(DatasetError, match="SHA-256 is"):
        fetch_cfd(root=root, source=archive, sha256="1" * 64, overwrite=True, **QUIET)


def test_default_root_is_the_project_data_folder(tmp_path, kit_dirs):
    """Without --root the archive lands in paths.RAW_DIR and the import where `run` finds it."""
    archive = _pack(_make_cfd(tmp_path / "src", TOP), tmp_path / f"{TOP}.zip")
    out = fetch_cfd(source=archive, **QUIET)
    assert out == kit_dirs["processed"] / "cfd"
    assert (kit_dirs["data"] / "raw" / archive.name).is_file()
    assert resolve_dataset(types.SimpleNamespace(dataset="cfd")) == out


def test_unknown_name_hints_at_the_cfd_command(tmp_path):
    """A missing cfd import says how to get it."""
    with pytest.raises(DatasetError, match="crackkit data cfd"):
        resolve_dataset(types.SimpleNamespace(dataset="cfd"), processed_dir=tmp_path)


def test_overwrite_refused_without_flag(tmp_path):
    """A second import into the same folder needs overwrite=True, which then replaces it."""
    src = _make_cfd(tmp_path / "src")
    import_cfd(src, tmp_path / "out", **QUIET)
    marker = tmp_path / "out" / "cfd" / "marker"
    marker.write_text("old import")
    with pytest.raises(DatasetError, match="already exists.*--overwrite"):
        import_cfd(src, tmp_path / "out", **QUIET)
    assert marker.exists()
    import_cfd(src, tmp_path / "out", overwrite=True, **QUIET)
    assert not marker.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cfd"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"other": np.ones((H, W), np.uint8)}, r"no variable 'groundTruth' \(found: other\)"),
        (
            {"groundTruth": {"Boundaries": np.zeros((H, W), np.uint8)}},
            r"'groundTruth' has no field 'Segmentation' \(fields: Boundaries\)",
        ),
        ({"groundTruth": np.ones((H, W), np.uint8)}, r"'groundTruth' is not a struct"),
    ],
    ids=["no-groundTruth", "no-Segmentation", "not-a-struct"],
)
def test_bad_mat_named(tmp_path, content, message):
    """A .mat without groundTruth.Segmentation fails naming the file; nothing is written."""
    src = _make_cfd(tmp_path / "src")
    bad = src / "groundTruth" / "074.mat"
    _save_mat(bad, content)
    with pytest.raises(DatasetError, match=message) as err:
        import_cfd(src, tmp_path / "out", **QUIET)
    assert str(bad) in str(err.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_bad_mat_in_archive_named_by_archive_path(tmp_path):
    """Inside an archive the error names ARCHIVE:member, not the temporary folder."""
    src = _make_cfd(tmp_path / "src", TOP)
    (src / TOP / "groundTruth" / "003.mat").write_bytes(b"not a mat file at all")
    archive = _pack(src, tmp_path / "cfd.tar.gz")
    with pytest.raises(DatasetError, match=rf"cfd\.tar\.gz:{TOP}/groundTruth/003\.mat: not a"):
        import_cfd(archive, tmp_path / "out", **QUIET)
    assert list((tmp_path / "out").iterdir()) == []


def test_size_mismatch_named(tmp_path):
    """A segmentation of another size than its image fails naming both files and sizes."""
    src = _make_cfd(tmp_path / "src")
    _save_mat(
        src / "groundTruth" / "002.mat",
        {"groundTruth": {"Segmentation": np.ones((W, H), np.uint8), "Boundaries": 0}},
    )
    with pytest.raises(DatasetError) as err:
        import_cfd(src, tmp_path / "out", **QUIET)
    message = str(err.value)
    assert f"{src / 'groundTruth' / '002.mat'}: groundTruth.Segmentation is 12x8" in message
    assert f"{src / 'image' / '002.jpg'} is 8x12" in message
    assert list((tmp_path / "out").iterdir()) == []


def test_ground_truth_without_image_and_unknown_layout(tmp_path):
    """A .mat without its image, and a folder without image/ + groundTruth/, are refused."""
    src = _make_cfd(tmp_path / "src")
    (src / "image" / "004.jpg").unlink()
    with pytest.raises(DatasetError, match=r"004\.mat: ground truth without an image 004\.jpg"):
        import_cfd(src, tmp_path / "out", **QUIET)
    (tmp_path / "other" / "pics").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no CrackForest layout found .*pics/"):
        import_cfd(tmp_path / "other", tmp_path / "out", **QUIET)
    with pytest.raises(DatasetError, match="source not found"):
        import_cfd(tmp_path / "nowhere", tmp_path / "out", **QUIET)


def test_read_segmentation_returns_uint8_labels(tmp_path):
    """Segmentation stored as double is read back as uint8 labels."""
    path = tmp_path / "x.mat"
    seg = _seg("075").astype(np.float64)
    _save_mat(path, {"groundTruth": {"Segmentation": seg, "Boundaries": seg * 0}})
    out = read_segmentation(path)
    assert out.dtype == np.uint8 and np.array_equal(out, _seg("075"))
    _save_mat(path, {"groundTruth": {"Segmentation": seg + 0.5}})
    with pytest.raises(DatasetError, match="non-integer"):
        read_segmentation(path)


def test_cli_imports_a_folder(tmp_path, capsys):
    """`crackkit data cfd --source DIR --root ROOT --crack-values 2` imports and prints the path."""
    src = _make_cfd(tmp_path / "src")
    root = tmp_path / "data"
    argv = ["data", "cfd", "--source", str(src), "--root", str(root), "--quiet"]
    assert cli_main([*argv, "--crack-values", "2"]) == 0
    out = capsys.readouterr().out
    assert "15 images: 14 with ground truth = 10 train/val (001-010) + 4 test (073-076)" in out
    assert "1 without ground truth skipped (119)" in out
    assert f"license: {CFD_LICENSE}" in out
    assert out.strip().endswith(str(root / "processed" / "cfd"))
    assert not (root / "raw").exists()  # a folder source is read in place, not copied
    assert cli_main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main([*argv, "--sha256", "0" * 64]) == 2
    assert "--sha256 checks an archive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main([*argv, "--crack-values", "1,2"])
    assert "1 is background" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Downloads from a local server that honours Range requests


class _RangeHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = self.server.www / self.path.split("?", 1)[0].lstrip("/")
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        start = 0
        requested = self.headers.get("Range")
        if requested:
            start = int(requested.removeprefix("bytes=").split("-")[0])
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def range_server(tmp_path):
    """A static HTTP server with Range support over tmp_path/www on 127.0.0.1."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    httpd.www = tmp_path / "www"
    httpd.www.mkdir()
    httpd.requests = []
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_download_resumes_and_verifies(tmp_path, range_server):
    """--url resumes a .part with a Range request, checks the SHA-256, then imports."""
    server, base = range_server
    archive = _pack(_make_cfd(tmp_path / "src", TOP), server.www / f"{TOP}.zip")
    data, digest = archive.read_bytes(), _sha(archive)
    root = tmp_path / "data"
    raw = root / "raw" / archive.name
    raw.parent.mkdir(parents=True)
    part_path(raw).write_bytes(data[: len(data) // 2])
    out = fetch_cfd(
        root=root, url=f"{base}/{archive.name}", sha256=digest, allow_http=True, **QUIET
    )
    assert server.requests == [(f"/{archive.name}", f"bytes={len(data) // 2}-")]
    assert raw.read_bytes() == data and not part_path(raw).exists()
    record = json.loads((out / "dataset.json").read_text())
    assert record["sha256"] == digest and record["source"]["url"] == f"{base}/{archive.name}"
    assert record["source"]["sha256_pinned"] == digest
    assert record["counts"]["val"]["sum"] == 2


def test_download_with_wrong_sha_refused(tmp_path, range_server, capsys):
    """A checksum mismatch removes the partial file and imports nothing."""
    server, base = range_server
    archive = _pack(_make_cfd(tmp_path / "src", TOP), server.www / "cfd.tar.gz")
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_cfd(
            root=root, url=f"{base}/{archive.name}", sha256="0" * 64, allow_http=True, **QUIET
        )
    assert list((root / "raw").iterdir()) == []
    assert not (root / "processed" / "cfd").exists()
    argv = ["data", "cfd", "--url", f"{base}/{archive.name}", "--root", str(root), "--allow-http"]
    assert cli_main([*argv, "--sha256", "0" * 64, "--quiet"]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert cli_main([*argv, "--quiet"]) == 0  # no hash given: the digest is printed
    err = capsys.readouterr().err
    assert "nothing was verified" in err and _sha(archive) in err
    record = json.loads((root / "processed" / "cfd" / "dataset.json").read_text())
    assert record["sha256"] == _sha(archive) and record["source"]["sha256_pinned"] is None
