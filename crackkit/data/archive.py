"""Extract a zip or tar archive from outside within bounds, verifying every member.

:func:`extract_archive` plans the whole extraction from the archive's directory before it writes
anything, and refuses:

* members that would land outside the extraction folder (absolute paths, ``..``), links, device
  files and pipes, encrypted zip members;
* two members of the same name (also when they differ only in letter case, which would overwrite
  each other on macOS or Windows), and a file whose name is also a folder's (``a`` and ``a/b``);
* a name part longer than the file system takes (255 bytes on most);
* more than :attr:`ArchiveLimits.max_members` members, an unpacked size (declared by the zip's
  directory or the tar's headers, or found by decompressing a compressed tar) above
  :attr:`ArchiveLimits.max_bytes`, or an unpacked size of more than 64 MiB at more than
  :attr:`ArchiveLimits.max_ratio` times the archive's own (a "zip bomb");
* an unpacked size that does not fit the free space of the destination, less
  :attr:`ArchiveLimits.reserve_bytes`, before the disk fills.

It then writes the members, counting the bytes: a member that gives more or fewer bytes than it
declared is refused, the zip CRC-32 of every member is checked (by :mod:`zipfile`, as it reads
it), and a compressed tar (gzip, bzip2, xz) is decompressed to its end first, which checks the
gzip trailer (CRC-32 and length) or the bzip2 and xz checks: a flipped byte or a truncated file
is refused before anything is extracted. A failed write (a full disk, a file too large) stops
with an :class:`OSError` that names the member. The caller extracts into a temporary folder and
removes it on any error (the importers use :class:`tempfile.TemporaryDirectory`).

macOS and Windows clutter (``__MACOSX``, ``._*``, ``.DS_Store``, ``Thumbs.db``) is skipped.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from crackkit.data.folder import IGNORED_NAMES, DatasetError

__all__ = [
    "ARCHIVE_KINDS",
    "ArchiveError",
    "ArchiveLimits",
    "add_limit_arguments",
    "extract_archive",
    "format_size",
    "limits_from_args",
    "parse_size",
    "verify_archive",
]

ARCHIVE_KINDS = ".zip, .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz"
_CHUNK = 1 << 20
_RATIO_FLOOR = 64 << 20
"""Unpacked sizes up to this are never refused for their compression ratio alone."""


class ArchiveError(DatasetError):
    """An archive is unsafe, damaged, or larger than its limits allow."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds of one extraction.

    Attributes:
        max_bytes: largest unpacked size of the archive (and so of any member), in bytes;
            ``crackkit data ... --max-unpacked SIZE`` raises it.
        max_ratio: largest unpacked size per byte of archive, for archives that unpack to more
            than 64 MiB; ``--max-ratio R`` raises it.
        max_members: most members (files and folders).
        reserve_bytes: free space left on the destination's file system after extracting.
    """

    max_bytes: int = 20 << 30
    max_ratio: float = 100.0
    max_members: int = 200_000
    reserve_bytes: int = 256 << 20

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_members", "reserve_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        ratio = self.max_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not ratio >= 1:
            raise ValueError(f"max_ratio must be a finite number >= 1, got {ratio!r}")
        if ratio == float("inf"):
            raise ValueError("max_ratio must be a finite number >= 1, got inf")


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"20G"`` -> bytes: a whole or decimal number with an optional K, M, G or T (powers of
    1024, an optional trailing ``B`` or ``iB``).

    Raises:
        ValueError: not such a size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {text!r}; expected e.g. 500M, 20G or a number of bytes")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def format_size(n: int | float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1 (``"1.5 GiB"``)."""
    for unit in ("T", "G", "M", "K"):
        if n >= _UNITS[unit]:
            return f"{n / _UNITS[unit]:.1f} {unit}iB"
    return f"{int(n)} B"


@dataclass(frozen=True)
class _Member:
    name: str
    parts: tuple[str, ...]
    is_dir: bool
    size: int
    source: zipfile.ZipInfo | tarfile.TarInfo


def _is_junk(parts: tuple[str, ...]) -> bool:
    return any(p.lower() in IGNORED_NAMES for p in parts) or parts[-1].startswith("._")


def _unsafe(archive: Path, name: str, why: str) -> ArchiveError:
    shown = name if len(name) <= 80 else f"{name[:40]}...{name[-20:]} ({len(name)} characters)"
    return ArchiveError(
        f"{archive}: refusing archive member {shown!r} ({why}); accepted: regular files and "
        "folders with relative paths inside the archive, no links, each name once"
    )


def _member_parts(archive: Path, name: str) -> tuple[str, ...]:
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        raise _unsafe(archive, name, "absolute path")
    parts = tuple(p for p in PurePosixPath(clean).parts if p not in ("", "."))
    if ".." in parts:
        raise _unsafe(archive, name, "'..' would write outside the extraction folder")
    return parts


def _name_max(dest: Path) -> int:
    try:
        return os.pathconf(dest, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _compression(archive: Path) -> str | None:
    """``"gz"``, ``"bz2"``, ``"xz"`` from the file's first bytes, or None (plain tar or zip)."""
    with open(archive, "rb") as handle:
        head = handle.read(6)
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


_OPENERS = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}
_STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


def _verify_stream(archive: Path, kind: str, limits: ArchiveLimits) -> int:
    """Decompress a compressed tar to its end (checking its trailer); returns the tar's size.

    Raises:
        ArchiveError: a damaged or truncated stream, or more than the limit allows.
    """
    total = 0
    ceiling = limits.max_bytes + (limits.max_members + 2) * 1024  # tar headers and padding
    try:
        with _OPENERS[kind](archive, "rb") as stream:
            while block := stream.read(_CHUNK):
                total += len(block)
                if total > ceiling:
                    raise ArchiveError(
                        f"{archive}: unpacks to more than {format_size(limits.max_bytes)} "
                        f"(max_bytes); a larger limit (--max-unpacked SIZE) extracts it"
                    )
                _check_ratio(archive, total, limits)
    except ArchiveError:
        raise
    except _STREAM_ERRORS as exc:
        raise ArchiveError(
            f"{archive}: the {kind} stream is damaged or truncated ({exc}); nothing was extracted"
        ) from None
    return total


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[_Member]:
    for info in zf.infolist():
        parts = _member_parts(archive, info.filename)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise _unsafe(archive, info.filename, "symbolic link")
        if info.flag_bits & 0x1:
            raise _unsafe(archive, info.filename, "encrypted")
        if parts:
            yield _Member(info.filename, parts, info.is_dir(), info.file_size, info)


def _tar_members(archive: Path, tf: tarfile.TarFile) -> Iterator[_Member]:
    for member in tf.getmembers():
        parts = _member_parts(archive, member.name)
        if member.issym() or member.islnk():
            raise _unsafe(archive, member.name, "link")
        if not (member.isfile() or member.isdir()):
            raise _unsafe(archive, member.name, "device, pipe or other special file")
        if parts:
            yield _Member(member.name, parts, member.isdir(), member.size, member)


def _plan(archive: Path, members: Iterator[_Member], dest: Path, limits: ArchiveLimits):
    """The members to write, checked against each other and the limits; and their total size."""
    name_max = _name_max(dest)
    files: dict[tuple[str, ...], _Member] = {}
    folded: dict[tuple[str, ...], _Member] = {}
    folders: set[tuple[str, ...]] = set()
    plan: list[_Member] = []
    total = count = 0
    for member in members:
        count += 1
        if count > limits.max_members:
            raise ArchiveError(
                f"{archive}: more than {limits.max_members} members (max_members); not extracted"
            )
        long = next((p for p in member.parts if len(p.encode("utf-8")) > name_max), None)
        if long is not None:
            raise _unsafe(
                archive,
                member.name,
                f"a name part of {len(long.encode())} bytes; at most "
                f"{name_max} fit a file name here",
            )
        if _is_junk(member.parts):
            continue
        folders.update(member.parts[:i] for i in range(1, len(member.parts)))
        if member.is_dir:
            folders.add(member.parts)
        else:
            key = tuple(p.lower() for p in member.parts)
            if member.parts in files:
                raise _unsafe(archive, member.name, "a second member of the same name")
            if key in folded:
                raise _unsafe(
                    archive,
                    member.name,
                    f"differs from {folded[key].name!r} only in letter case; one would "
                    "overwrite the other on macOS and Windows",
                )
            files[member.parts] = folded[key] = member
            if member.size > limits.max_bytes:
                raise ArchiveError(
                    f"{archive}: member {member.name!r} declares {format_size(member.size)}, "
                    f"more than {format_size(limits.max_bytes)} (max_bytes); a larger limit "
                    "(--max-unpacked SIZE) extracts it"
                )
            total += member.size
        plan.append(member)
    if not files:
        raise ArchiveError(f"{archive}: the archive holds no files")
    clash = next((m for parts, m in files.items() if parts in folders), None)
    if clash is not None:
        raise _unsafe(archive, clash.name, "a file of the same name as a folder of the archive")
    if total > limits.max_bytes:
        raise ArchiveError(
            f"{archive}: unpacks to {format_size(total)}, more than "
            f"{format_size(limits.max_bytes)} (max_bytes); a larger limit (--max-unpacked SIZE) "
            "extracts it"
        )
    return plan, total


def _check_ratio(archive: Path, total: int, limits: ArchiveLimits) -> None:
    packed = max(1, archive.stat().st_size)
    if total > _RATIO_FLOOR and total > limits.max_ratio * packed:
        raise ArchiveError(
            f"{archive}: {format_size(packed)} unpack to {format_size(total)}, "
            f"{total / packed:.0f} times its size (more than max_ratio {limits.max_ratio:g}): a "
            "compression bomb, or an unusual archive; if you trust it, a larger --max-ratio "
            "extracts it"
        )


def _check_space(archive: Path, dest: Path, needed: int, limits: ArchiveLimits) -> None:
    free = shutil.disk_usage(dest).free
    if needed + limits.reserve_bytes > free:
        raise OSError(
            28,
            f"{archive} needs {format_size(needed)} of free space on the file system of "
            f"{dest} (plus {format_size(limits.reserve_bytes)} kept free), which has "
            f"{format_size(free)}; free some space or import into another --root",
        )


def _copy(archive: Path, member: _Member, src: IO[bytes], target: Path) -> None:
    """Write one member, counting its bytes against its declared size."""
    written = 0
    try:
        with open(target, "wb") as out:
            while block := src.read(_CHUNK):
                written += len(block)
                if written > member.size:
                    raise ArchiveError(
                        f"{archive}: member {member.name!r} holds more than the "
                        f"{member.size} bytes it declares; not extracted"
                    )
                out.write(block)
    except (ArchiveError, zipfile.BadZipFile, zlib.error, EOFError, tarfile.TarError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(
            f"{archive}: member {member.name!r} is damaged ({exc}); nothing of the archive is "
            "imported"
        ) from None
    except OSError as exc:
        if exc.filename is None and exc.errno is None:  # a read error inside the archive
            raise ArchiveError(f"{archive}: member {member.name!r} is damaged ({exc})") from None
        raise OSError(
            exc.errno,
            f"cannot extract {member.name!r} from {archive.name}: "
            f"{exc.strerror or exc} (writing {target})",
        ) from None
    if written != member.size:
        raise ArchiveError(
            f"{archive}: member {member.name!r} holds {written} bytes but declares "
            f"{member.size}; the archive is damaged or truncated"
        )


def _make_folder(archive: Path, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot extract {archive.name}: {exc.strerror or exc} (making {folder})"
        ) from None


def extract_archive(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    limits: ArchiveLimits | None = None,
    *,
    copies: int = 1,
) -> int:
    """Extract a zip or tar (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) archive into ``dest``.

    See the module docstring for what is checked, and when.

    Args:
        archive: the archive; only read.
        dest: an existing, empty folder (a temporary one, removed by the caller on error).
        limits: the bounds (default :class:`ArchiveLimits`).
        copies: the free space must hold this many times the unpacked size (2 for an import
            that copies what it extracts), plus ``limits.reserve_bytes``.

    Returns:
        The unpacked size in bytes (the files').

    Raises:
        ArchiveError: not an archive, an unsafe or damaged member, or a limit exceeded (the
            message names the member or the limit and the option that raises it).
        OSError: too little free space (ENOSPC, before extracting), or a failed write naming
            the member.
    """
    archive, dest, limits = Path(archive), Path(dest), limits or ArchiveLimits()
    if not archive.is_file():
        raise ArchiveError(f"{archive}: archive not found")
    if zipfile.is_zipfile(archive):
        return _extract_zip(archive, dest, limits, copies)
    if tarfile.is_tarfile(archive) or _compression(archive) is not None:
        return _extract_tar(archive, dest, limits, copies)
    raise _not_an_archive(archive)


def _not_an_archive(archive: Path) -> ArchiveError:
    with open(archive, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"PK\x03\x04"):
        return ArchiveError(
            f"{archive}: damaged or truncated zip archive (its directory at the end is missing)"
        )
    start = head.lstrip().lower()
    hint = (
        " It is a web page: the host served HTML instead of the file; download it by hand."
        if start.startswith((b"<!doctype html", b"<html"))
        else ""
    )
    return ArchiveError(f"{archive}: not a zip or tar archive; accepted: {ARCHIVE_KINDS}.{hint}")


def _open_zip(archive: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ArchiveError(f"{archive}: damaged zip archive ({exc})") from None


def _extract_zip(archive: Path, dest: Path, limits: ArchiveLimits, copies: int) -> int:
    with _open_zip(archive) as zf:
        plan, total = _plan(archive, _zip_members(archive, zf), dest, limits)
        _check_ratio(archive, total, limits)
        _check_space(archive, dest, copies * total, limits)
        for member in plan:
            target = dest.joinpath(*member.parts)
            if member.is_dir:
                _make_folder(archive, target)
                continue
            _make_folder(archive, target.parent)
            try:
                src = zf.open(member.source)
            except (zipfile.BadZipFile, OSError, NotImplementedError, zlib.error) as exc:
                raise ArchiveError(
                    f"{archive}: member {member.name!r} is damaged or unreadable ({exc})"
                ) from None
            with src:
                _copy(archive, member, src, target)
    return total


def _open_tar(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except (tarfile.TarError, *_STREAM_ERRORS) as exc:
        raise ArchiveError(f"{archive}: damaged or truncated tar archive ({exc})") from None


def _extract_tar(archive: Path, dest: Path, limits: ArchiveLimits, copies: int) -> int:
    kind = _compression(archive)
    unpacked = _verify_stream(archive, kind, limits) if kind else archive.stat().st_size
    with _open_tar(archive) as tf:
        try:
            plan, total = _plan(archive, _tar_members(archive, tf), dest, limits)
        except (tarfile.TarError, *_STREAM_ERRORS) as exc:
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{archive}: damaged or truncated tar archive ({exc})") from None
        _check_ratio(archive, max(total, unpacked), limits)
        _check_space(archive, dest, copies * total, limits)
        for member in plan:
            target = dest.joinpath(*member.parts)
            if member.is_dir:
                _make_folder(archive, target)
                continue
            _make_folder(archive, target.parent)
            src = tf.extractfile(member.source)
            if src is None:
                raise _unsafe(archive, member.name, "not a regular file")
            with src:
                _copy(archive, member, src, target)
    return total


def verify_archive(archive: str | os.PathLike, limits: ArchiveLimits | None = None) -> None:
    """Read a whole archive without writing it: its directory and names as
    :func:`extract_archive` checks them, every zip member's CRC-32, a compressed tar's trailer.

    Raises:
        ArchiveError: what :func:`extract_archive` would refuse, free space aside.
    """
    archive, limits = Path(archive), limits or ArchiveLimits()
    if not archive.is_file():
        raise ArchiveError(f"{archive}: archive not found")
    if zipfile.is_zipfile(archive):
        with _open_zip(archive) as zf:
            plan, total = _plan(archive, _zip_members(archive, zf), archive.parent, limits)
            _check_ratio(archive, total, limits)
            for member in plan:
                if member.is_dir:
                    continue
                try:
                    with zf.open(member.source) as src:
                        read = 0
                        while block := src.read(_CHUNK):
                            read += len(block)
                except (zipfile.BadZipFile, OSError, NotImplementedError, zlib.error) as exc:
                    raise ArchiveError(
                        f"{archive}: member {member.name!r} is damaged ({exc})"
                    ) from None
                if read != member.size:
                    raise ArchiveError(
                        f"{archive}: member {member.name!r} holds {read} bytes but declares "
                        f"{member.size}"
                    )
        return
    kind = _compression(archive)
    if not (kind or tarfile.is_tarfile(archive)):
        raise _not_an_archive(archive)
    unpacked = _verify_stream(archive, kind, limits) if kind else archive.stat().st_size
    with _open_tar(archive) as tf:
        try:
            _, total = _plan(archive, _tar_members(archive, tf), archive.parent, limits)
        except (tarfile.TarError, *_STREAM_ERRORS) as exc:
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{archive}: damaged or truncated tar archive ({exc})") from None
    _check_ratio(archive, max(total, unpacked), limits)


def add_limit_arguments(parser) -> None:
    """The ``--max-unpacked`` and ``--max-ratio`` options of the ``crackkit data`` importers."""
    defaults = ArchiveLimits()
    parser.add_argument(
        "--max-unpacked",
        type=_size_arg,
        default=defaults.max_bytes,
        metavar="SIZE",
        help="refuse an archive that unpacks to more than SIZE, e.g. 500M, 40G (default: "
        f"{format_size(defaults.max_bytes)}); the free space is checked before extracting",
    )
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=defaults.max_ratio,
        metavar="R",
        help="refuse an archive that unpacks to more than 64 MiB at more than R times its own "
        f"size, a compression bomb (default: {defaults.max_ratio:g})",
    )


def limits_from_args(args) -> ArchiveLimits:
    """The :class:`ArchiveLimits` of parsed :func:`add_limit_arguments` options.

    Raises:
        ValueError: a bad limit (named).
    """
    return ArchiveLimits(max_bytes=args.max_unpacked, max_ratio=args.max_ratio)


def _size_arg(text: str) -> int:
    import argparse

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
