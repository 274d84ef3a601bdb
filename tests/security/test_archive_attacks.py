"""Archives built to hurt: bombs, lying sizes, duplicate and clashing names, damaged members,
truncated streams, over-long names, write errors; and the refusals that already held (traversal,
absolute paths, links, devices). Each is refused with one line naming the archive and the member
or limit, and no extraction or import folder is left behind."""

from __future__ import annotations

import io
import os
import re
import resource
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackkit.cli import main
from crackkit.data import archive as archive_module
from crackkit.data.archive import ArchiveError, ArchiveLimits, extract_archive, parse_size
from crackkit.data.crack500 import import_archive
from crackkit.data.folder import DatasetError

QUIET = {"progress": False, "verbose": False}


def _zip(path: Path, members: list[tuple[str, bytes]], method=zipfile.ZIP_STORED) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names: that is the point
        with zipfile.ZipFile(path, "w", method) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def _tar(path: Path, members: list[tuple[str, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _crack500_members() -> list[tuple[str, bytes]]:
    """A tiny CRACK500 'crops' layout: two images and masks per split."""
    mask = io.BytesIO()
    Image.fromarray(np.zeros((24, 40), np.uint8)).save(mask, "PNG")
    members = []
    for split in ("traincrop", "valcrop", "testcrop"):
        for i in range(2):
            members += [
                (f"{split}/{split}_{i}.jpg", _jpeg(i)),
                (f"{split}/{split}_{i}.png", mask.getvalue()),
            ]
    return members


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _nothing_left(out: Path) -> bool:
    return not out.exists() or list(out.iterdir()) == []


def _refused(archive: Path, out: Path, match: str, **kwargs) -> str:
    with pytest.raises(DatasetError, match=match) as err:
        import_archive(archive, out, **QUIET, **kwargs)
    assert _nothing_left(out), list(out.iterdir())
    return str(err.value)


def test_zip_bomb_refused_by_ratio_before_anything_is_written(tmp_path):
    """80 MiB of zeros packed into about 80 KB: refused from the directory, a limit named."""
    bomb = _zip(tmp_path / "bomb.zip", [("traincrop/a.jpg", bytes(80 << 20))], zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 200_000
    message = _refused(bomb, tmp_path / "out", "times its size")
    assert "--max-ratio" in message and "bomb.zip" in message
    with pytest.raises(ArchiveError, match="more than 1.0 MiB"):
        extract_archive(bomb, tmp_path / "x", ArchiveLimits(max_ratio=10_000, max_bytes=1 << 20))


def test_cli_bomb_exits_2_with_one_line_and_a_limit_that_raises(tmp_path, capsys):
    """crackkit data crack500 --archive BOMB: exit 2, one line; --max-ratio lets it through to
    the next check."""
    bomb = _zip(tmp_path / "bomb.zip", [("traincrop/a.jpg", bytes(70 << 20))], zipfile.ZIP_DEFLATED)
    argv = [
        "data",
        "crack500",
        "--archive",
        str(bomb),
        "--root",
        str(tmp_path / "d"),
        "--quiet",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "times its size" in err[0], err
    assert main([*argv, "--max-ratio", "100000", "--max-unpacked", "10M"]) == 2
    assert "more than 10.0 MiB (max_bytes)" in capsys.readouterr().err
    assert _nothing_left(tmp_path / "d" / "processed")


def test_tar_gz_bomb_stops_while_decompressing(tmp_path):
    """A tar.gz whose stream inflates far beyond its size is refused while it is read."""
    bomb = _tar(tmp_path / "bomb.tar.gz", [("traincrop/a.jpg", bytes(80 << 20))])
    _refused(bomb, tmp_path / "out", "times its size")


def test_declared_size_over_the_limit_and_lying_sizes(tmp_path):
    """A member declaring more than max_bytes is refused; one whose header lies is caught."""
    big = _zip(tmp_path / "big.zip", [("a.bin", os.urandom(3 << 20))])
    with pytest.raises(ArchiveError, match="declares 3.0 MiB, more than 1.0 MiB"):
        extract_archive(big, tmp_path / "x", ArchiveLimits(max_bytes=1 << 20))
    data = os.urandom(50_000)
    liar = bytearray(_zip(tmp_path / "liar.zip", [("a.bin", data)]).read_bytes())
    real = len(data).to_bytes(4, "little")
    fake = (1000).to_bytes(4, "little")
    liar = liar.replace(real, fake)  # uncompressed size in the local and central headers
    (tmp_path / "liar.zip").write_bytes(bytes(liar))
    (tmp_path / "y").mkdir()
    with pytest.raises(ArchiveError, match="a.bin"):
        extract_archive(tmp_path / "liar.zip", tmp_path / "y")


def test_free_space_checked_before_the_disk_fills(tmp_path, monkeypatch, capsys):
    """Too little free space: refused before extracting, exit 1 (not the input's fault), and the
    message says how much is needed."""
    archive = _zip(tmp_path / "c.zip", _crack500_members())
    real = archive_module.shutil.disk_usage

    def tiny(path):
        return real(path)._replace(free=1000)

    monkeypatch.setattr(archive_module.shutil, "disk_usage", tiny)
    argv = ["data", "crack500", "--archive", str(archive), "--root", str(tmp_path / "d")]
    assert main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "of free space" in err[0] and "c.zip needs" in err[0]
    assert _nothing_left(tmp_path / "d" / "processed")


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([("traincrop/a.png", b"1"), ("traincrop/a.png", b"2")], "second member of the same name"),
        ([("traincrop/A.png", b"1"), ("traincrop/a.png", b"2")], "only in letter case"),
        ([("traincrop", b"1"), ("traincrop/a.png", b"2")], "same name as a folder"),
        ([("traincrop/" + "x" * 300 + ".png", b"1")], "name part of 304 bytes"),
    ],
    ids=["duplicate", "case-duplicate", "file-and-folder", "long-name"],
)
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_name_attacks_refused(tmp_path, members, match, kind):
    """Duplicates (the last one would win), a file named like a folder, an over-long name."""
    path = tmp_path / f"a.{kind}"
    archive = _zip(path, members) if kind == "zip" else _tar(path, members)
    _refused(archive, tmp_path / "out", re.escape(match))


def test_damaged_zip_member_refused_by_its_crc(tmp_path):
    """One byte flipped inside a stored member: the CRC-32 check names it."""
    archive = _zip(tmp_path / "c.zip", _crack500_members())
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("valcrop/valcrop_1.jpg")
    start = info.header_offset + 30 + len(info.filename) + 100
    data[start] ^= 0xFF
    archive.write_bytes(bytes(data))
    message = _refused(archive, tmp_path / "out", "valcrop_1.jpg")
    assert "damaged" in message and "CRC" in message


@pytest.mark.parametrize("how", ["flipped byte", "truncated"])
def test_damaged_tar_gz_refused_before_extracting(tmp_path, how):
    """A tar.gz with a byte flipped in its deflate stream, or cut short: the gzip stream (its
    CRC-32 trailer, its end) is checked before any member is written."""
    archive = _tar(tmp_path / "c.tar.gz", _crack500_members())
    data = bytearray(archive.read_bytes())
    if how == "flipped byte":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) - 200]
    archive.write_bytes(bytes(data))
    _refused(archive, tmp_path / "out", "gz stream is damaged or truncated")


def test_truncated_zip_refused(tmp_path):
    """A zip cut short (no central directory) is named as such."""
    archive = _zip(tmp_path / "c.zip", _crack500_members())
    archive.write_bytes(archive.read_bytes()[:-300])
    _refused(archive, tmp_path / "out", "damaged or truncated zip")


def test_a_corrupt_image_in_a_sound_archive_is_decoded_and_named(tmp_path):
    """Every imported image is decoded once: a truncated JPEG inside an intact zip is named."""
    members = _crack500_members()
    members[0] = (members[0][0], members[0][1][:200])
    archive = _zip(tmp_path / "c.zip", members)
    _refused(archive, tmp_path / "out", re.escape("c.zip:traincrop/traincrop_0.jpg"))


def _with_fsize_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_write_error_is_one_line_and_leaves_nothing(tmp_path):
    """A write that fails (EFBIG, a file-size limit) stops with one line naming the member; the
    temporary folders are removed."""
    members = [*_crack500_members(), ("traincrop/big.bin", bytes(300_000))]
    archive = _zip(tmp_path / "c.zip", members, zipfile.ZIP_DEFLATED)
    assert archive.stat().st_size < 100_000
    root = tmp_path / "d"
    cmd = [sys.executable, "-m", "crackkit.cli", "data", "crack500", "--archive", str(archive)]
    proc = subprocess.run(
        [*cmd, "--root", str(root), "--quiet"],
        capture_output=True,
        text=True,
        preexec_fn=_with_fsize_limit(200_000),
        timeout=300,
    )
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(err) == 1 and "File too large" in err[0] and "traincrop/big.bin" in err[0], err
    assert _nothing_left(root / "processed")


def _tar_special(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("traincrop/x")
        if kind == "device":
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
        else:
            info.type, info.linkname = tarfile.SYMTYPE, "../../etc"
        tf.addfile(info)
    return path


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: _zip(p / "a.zip", [("../evil.txt", b"x")]), "'..'"),
        (lambda p: _zip(p / "a.zip", [("/tmp/evil.txt", b"x")]), "absolute path"),
        (lambda p: _zip(p / "a.zip", [("C:/evil.txt", b"x")]), "absolute path"),
        (lambda p: _tar(p / "a.tar.gz", [("a/../../evil.txt", b"x")]), "'..'"),
        (lambda p: _tar_special(p / "a.tar.gz", "symlink"), "link"),
        (lambda p: _tar_special(p / "a.tar.gz", "hardlink"), "link"),
        (lambda p: _tar_special(p / "a.tar.gz", "device"), "device"),
    ],
    ids=["dotdot", "absolute", "drive", "tar-dotdot", "symlink", "hardlink", "device"],
)
def test_what_held_still_holds(tmp_path, make, match):
    """Traversal, absolute paths, links and devices: refused before anything is written."""
    _refused(make(tmp_path), tmp_path / "out", re.escape(match))
    assert not (tmp_path / "evil.txt").exists()


def test_a_sound_archive_still_imports(tmp_path):
    """The bounds let an ordinary archive through, zip and tar.gz alike."""
    for kind in ("zip", "tar.gz"):
        path = tmp_path / f"c.{kind}"
        members = _crack500_members()
        archive = _zip(path, members) if kind == "zip" else _tar(path, members)
        report = import_archive(archive, tmp_path / kind, expected_counts=None, **QUIET)
        assert report.counts["test"]["sum"] == 2


def test_sizes_parse():
    """--max-unpacked takes 500M, 20G, 1.5GiB or bytes; nonsense is refused."""
    assert parse_size("500M") == 500 << 20 and parse_size("1.5GiB") == 3 << 29
    assert parse_size("1024") == 1024
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    with pytest.raises(ValueError, match="max_ratio"):
        ArchiveLimits(max_ratio=float("nan"))
