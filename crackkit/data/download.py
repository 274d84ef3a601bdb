"""Resumable, verified downloads of data-set archives.

Each data set is described by a small :class:`DownloadInfo` record (name, url, file name, SHA-256).
:func:`download` fetches a URL into the raw folder:

* **pooch** (``pooch.retrieve``) does what it covers: the file is built under a temporary name in
  the destination folder, its SHA-256 is checked against the pinned one (``pooch.file_hash``),
  and only a matching file is moved into place; a file that does not match is deleted.
* **kept here**, because pooch lacks it: the transfer itself (:class:`_Transfer`, pooch's
  downloader). It streams into ``DEST.part`` with a progress bar, resumes an interrupted
  ``.part`` with an HTTP ``Range`` request (pooch always starts over), follows Google Drive's
  large-file confirmation page (pooch would save the page), refuses any other web page served
  instead of the archive, and refuses ``http://`` (and a redirect to it) unless the caller
  passes ``allow_http`` (``--allow-http``).

A resumed ``.part`` is verified like a fresh one and deleted when it fails, never reused. Without a
pinned SHA-256 (CRACK500's and CrackForest's default sources cannot be pinned: the first is a Drive
folder, the second an archive GitHub builds on the fly) the file is at least checked to be a whole,
undamaged archive (:func:`crackkit.data.archive.verify_archive`; a ``.part`` that fails is deleted
and the download starts over once), and a loud warning says that nothing was verified and gives
the SHA-256 seen, which the import records in ``dataset.json`` so that a later download can be
compared with it.

Google Drive serves large files behind a "can't scan this file for viruses" page. When a
response is such a page (an HTML ``<form id="download-form">`` with hidden ``id``, ``export``,
``confirm`` and ``uuid`` inputs, or the older ``confirm=`` link or ``download_warning`` cookie), it
is followed automatically. Anything else that comes back as HTML (a login page, a quota notice, a
folder view) is refused: download the file by hand and pass it as ``--archive PATH``, or give a
direct link with ``--url``.

:func:`store_raw` copies a hand-downloaded archive into ``data/raw`` (checking its SHA-256 the same
way) and :func:`archive_name` names a downloaded one; the data-set importers
(:mod:`crackkit.data.crack500`, :mod:`crackkit.data.cfd`) share these helpers and keep their own
:class:`DownloadInfo` records.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path

import pooch
from tqdm.auto import tqdm

from crackkit.data.archive import ArchiveError, verify_archive
from crackkit.data.folder import DatasetError

_log = logging.getLogger(__name__)

__all__ = [
    "ARCHIVE_SUFFIXES",
    "CRACK500",
    "CRACK500_DRIVE_FOLDER",
    "CRACK500_HOMEPAGE",
    "DownloadError",
    "DownloadInfo",
    "archive_name",
    "check_url",
    "download",
    "google_drive_url",
    "normalise_url",
    "part_path",
    "resolve_google_drive",
    "sha256_file",
    "store_raw",
]

USER_AGENT = "crackkit-downloader/0.1 (+python-urllib)"
ARCHIVE_SUFFIXES: tuple[str, ...] = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
"""File endings of the archives the importers extract."""
_HTML_PAGE_LIMIT = 2 << 20
_MAX_CONFIRMATIONS = 3


class DownloadError(RuntimeError):
    """A download failed, was interrupted for good, or produced the wrong file."""


@dataclass(frozen=True)
class DownloadInfo:
    """Where a data-set archive comes from.

    Attributes:
        name: short data-set name, e.g. ``"crack500"``.
        url: direct download URL (or a Google Drive link, see :func:`normalise_url`).
        filename: name of the archive once it lands in ``data/raw``.
        sha256: expected hex digest, or ``None`` while nobody has pinned it.
    """

    name: str
    url: str
    filename: str
    sha256: str | None = None


# The authors (github.com/fyangneil/pavement-crack-detection, README "Google Drive" link) share
# CRACK500 from a Google Drive *folder* that also holds other data sets and results. A folder cannot
# be fetched over plain HTTP, and the id of the CRACK500 file inside it is not recorded here, so the
# default URL is that folder and download() stops with instructions (download by hand, then
# --archive; or copy the file's own share link and pass --url). Once someone knows the file id,
# set CRACK500_DRIVE_FILE_ID and pin the SHA-256 printed by the first successful download.
CRACK500_HOMEPAGE = "https://github.com/fyangneil/pavement-crack-detection"
CRACK500_DRIVE_FOLDER = "https://drive.google.com/drive/folders/1y9SxmmFVh0xdQR-wdchUmnScuWMJ5_O-"
CRACK500_DRIVE_FILE_ID: str | None = None
CRACK500_SHA256: str | None = None


def google_drive_url(file_id: str) -> str:
    """Direct-download URL of a Google Drive file (the form Drive accepts today)."""
    if not re.fullmatch(r"[\w-]{10,}", file_id):
        raise ValueError(f"not a Google Drive file id: {file_id!r}")
    query = urllib.parse.urlencode({"id": file_id, "export": "download", "confirm": "t"})
    return f"https://drive.usercontent.google.com/download?{query}"


CRACK500_URL = (
    google_drive_url(CRACK500_DRIVE_FILE_ID) if CRACK500_DRIVE_FILE_ID else CRACK500_DRIVE_FOLDER
)
CRACK500 = DownloadInfo(
    name="crack500",
    url=CRACK500_URL,
    filename="CRACK500.zip",
    sha256=CRACK500_SHA256,
)

_DRIVE_HOSTS = ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")


def _drive_file_id(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in _DRIVE_HOSTS:
        return None
    match = re.search(r"/file/d/([\w-]+)", parts.path)
    if match:
        return match.group(1)
    if parts.path in ("/uc", "/open", "/download"):
        ids = urllib.parse.parse_qs(parts.query).get("id")
        return ids[0] if ids else None
    return None


def _is_drive_folder(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname in _DRIVE_HOSTS and "/folders/" in parts.path


def normalise_url(url: str) -> str:
    """Turn a Google Drive share link (``/file/d/ID/view``, ``open?id=ID``) into a download URL.

    Other URLs are returned unchanged. A Drive *folder* link is refused with a DownloadError, since
    a folder cannot be downloaded as one file.
    """
    if _is_drive_folder(url):
        raise DownloadError(
            f"{url} is a Google Drive folder, which cannot be downloaded as one file. Open it in a "
            "browser, download the archive by hand and pass --archive PATH, or copy the archive "
            "file's own share link and pass it with --url."
        )
    file_id = _drive_file_id(url)
    if file_id and urllib.parse.urlsplit(url).hostname != "drive.usercontent.google.com":
        return google_drive_url(file_id)
    return url


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest of a file (``pooch.file_hash``)."""
    return pooch.file_hash(str(path), alg="sha256")


def check_url(url: str, allow_http: bool = False) -> str:
    """``url`` when its scheme is ``https`` (or ``http`` with ``allow_http``).

    Raises:
        DownloadError: another scheme, or ``http`` without ``allow_http``.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "http" and allow_http):
        return url
    if scheme == "http":
        raise DownloadError(
            f"refusing {url}: plain http is not authenticated (anyone on the way can change the "
            "file); use an https:// link, or pass --allow-http (allow_http=True) to accept it"
        )
    raise DownloadError(f"refusing {url}: only https:// (or http:// with --allow-http) downloads")


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follows redirects only to URLs :func:`check_url` accepts."""

    def __init__(self, allow_http: bool) -> None:
        super().__init__()
        self.allow_http = allow_http

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl, self.allow_http)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def part_path(dest: Path) -> Path:
    """The ``.part`` file an unfinished download of ``dest`` is written to."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def _check_sha(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"--sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return value


class _PageParser(HTMLParser):
    """Collects a page's title, its Drive download form and any ``confirm=`` download link."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.form_action: str | None = None
        self.form_fields: dict[str, str] = {}
        self.confirm_link: str | None = None
        self._in_form = False
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "form" and attr.get("id") == "download-form":
            self._in_form = True
            self.form_action = attr.get("action", "")
        elif tag == "input" and self._in_form and attr.get("name"):
            self.form_fields[attr["name"]] = attr.get("value", "")
        elif tag == "a" and "confirm=" in attr.get("href", ""):
            href = attr["href"]
            if self.confirm_link is None and "export=download" in href:
                self.confirm_link = href

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def _confirmation_url(page: bytes, base_url: str, cookies: list[str]) -> str | None:
    """URL that confirms a Google Drive large-file warning page, or None if the page has none."""
    parser = _PageParser()
    parser.feed(page.decode("utf-8", errors="replace"))
    if parser.form_action is not None and parser.form_fields.get("id"):
        action = urllib.parse.urljoin(base_url, parser.form_action or base_url)
        action = action.split("?", 1)[0]
        return f"{action}?{urllib.parse.urlencode(parser.form_fields)}"
    if parser.confirm_link:
        return urllib.parse.urljoin(base_url, parser.confirm_link)
    for cookie in cookies:
        name, _, rest = cookie.partition("=")
        if name.strip().startswith("download_warning"):
            token = rest.split(";", 1)[0]
            parts = urllib.parse.urlsplit(base_url)
            query = dict(urllib.parse.parse_qsl(parts.query))
            query["confirm"] = token
            return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    return None


def _page_title(page: bytes) -> str:
    parser = _PageParser()
    parser.feed(page.decode("utf-8", errors="replace"))
    return " ".join(parser.title.split())


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<!--"))


def _is_html_response(response: http.client.HTTPResponse, head: bytes) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    return content_type.startswith(("text/html", "application/xhtml")) or _looks_like_html(head)


def _html_error(url: str, page: bytes) -> DownloadError:
    title = _page_title(page)
    titled = f' (page title: "{title}")' if title else ""
    return DownloadError(
        f"{url} returned a web page instead of the archive{titled}. Hosts do this for a "
        "confirmation or warning page (Google Drive's \"can't scan this file for viruses\" page, a "
        "download-quota notice) or a login page. Download the file by hand in a browser and pass "
        "--archive PATH, or pass a direct link with --url."
    )


def _default_opener(allow_http: bool = False) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(CookieJar()), _NoDowngrade(allow_http)
    )


def _open(
    opener: urllib.request.OpenerDirector,
    url: str,
    offset: int,
    timeout: float,
    allow_http: bool = False,
):
    """Open ``url`` (from byte ``offset``); the URL it ends at must pass :func:`check_url` too,
    whatever opener followed the redirects."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    try:
        check_url(response.geturl(), allow_http)
    except DownloadError:
        response.close()
        raise
    return response


def _read_page(response, head: bytes) -> bytes:
    return head + response.read(max(0, _HTML_PAGE_LIMIT - len(head)))


def resolve_google_drive(
    url: str,
    opener: urllib.request.OpenerDirector | None = None,
    *,
    timeout: float = 60,
    allow_http: bool = False,
) -> str:
    """URL that serves the file itself, after following Drive's large-file confirmation pages.

    Opens ``url``; while the answer is an HTML page holding Drive's download form (or the legacy
    ``confirm=`` link or ``download_warning`` cookie), follows it. The trigger is the page content,
    not the host, so mirrors and test servers behave alike.

    Raises:
        DownloadError: the final answer is a web page without such a form, or an HTTP error.
    """
    opener = opener or _default_opener(allow_http)
    url = check_url(normalise_url(url), allow_http)
    for _ in range(_MAX_CONFIRMATIONS + 1):
        try:
            response = _open(opener, url, 0, timeout, allow_http)
        except urllib.error.HTTPError as err:
            err.close()
            raise DownloadError(f"HTTP {err.code} {err.reason} for {url}") from err
        except (urllib.error.URLError, OSError) as err:
            raise DownloadError(f"could not reach {url}: {getattr(err, 'reason', err)}") from err
        with response:
            head = response.read(4096)
            if not _is_html_response(response, head):
                return url
            page = _read_page(response, head)
            cookies = response.headers.get_all("Set-Cookie") or []
        follow = _confirmation_url(page, response.geturl(), cookies)
        if follow is None or follow == url:
            raise _html_error(url, page)
        url = check_url(follow, allow_http)
    raise DownloadError(f"{url}: too many confirmation pages; download by hand and pass --archive")


def _content_range_start(response) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


@contextlib.contextmanager
def _quiet_pooch():
    """pooch logs each download at INFO level; the kit prints its own lines."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass
class _Transfer:
    """pooch's downloader: the HTTP transfer into ``DEST.part`` (resumed with ``Range``, Drive's
    confirmation page followed), then the ``.part`` moved to the file pooch verifies.

    Without a pinned hash the ``.part`` must be a whole archive; when it is not it is deleted and
    the transfer starts over once.
    """

    part: Path
    pinned: bool
    progress: bool
    chunk_size: int
    timeout: float
    retries: int
    opener: urllib.request.OpenerDirector
    allow_http: bool
    restarted: bool = False

    def __call__(self, url: str, output_file: str, pooch_obj: object) -> None:
        del pooch_obj
        while True:
            self._fetch(url)
            if self.pinned:
                break
            try:
                verify_archive(self.part)
                break
            except ArchiveError as exc:
                self.part.unlink(missing_ok=True)
                if self.restarted:
                    raise DownloadError(
                        f"the download from {url} is not a whole archive ({exc}); the partial "
                        f"file {self.part} was deleted"
                    ) from None
                _log.warning(
                    f"{self.part.name} failed verification ({exc}); deleted, "
                    "downloading again from the start"
                )
                self.restarted = True
        os.replace(self.part, output_file)

    def _fetch(self, url: str) -> None:
        part, chunk_size = self.part, self.chunk_size
        interruptions = confirmations = 0
        while True:
            offset = part.stat().st_size if part.exists() else 0
            try:
                response = _open(self.opener, url, offset, self.timeout, self.allow_http)
            except urllib.error.HTTPError as err:
                err.close()
                if err.code == 416 and offset:
                    return  # nothing after ``offset``: the part is complete, or wrong (verified)
                raise DownloadError(f"HTTP {err.code} {err.reason} for {url}") from err
            except DownloadError:
                raise
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                if isinstance(reason, DownloadError):  # a redirect _NoDowngrade refused
                    raise reason from None
                kept = f" (the partial file {part} is kept; run again to resume)" if offset else ""
                raise DownloadError(f"could not reach {url}: {reason}{kept}") from err

            with response:
                status = response.status
                head = response.read(min(chunk_size, 4096))
                if status != 206 and _is_html_response(response, head):
                    page = _read_page(response, head)
                    cookies = response.headers.get_all("Set-Cookie") or []
                    follow = _confirmation_url(page, response.geturl(), cookies)
                    if follow is None or follow == url or confirmations >= _MAX_CONFIRMATIONS:
                        raise _html_error(url, page)
                    confirmations += 1
                    url = check_url(follow, self.allow_http)
                    continue
                if status == 206 and _content_range_start(response) not in (None, offset):
                    # The server resumed from somewhere else: start over rather than guess.
                    part.unlink()
                    continue
                if status != 206:
                    offset = 0
                length = _content_length(response)
                total = offset + length if length is not None else None
                received = 0
                broken = False
                bar = tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=part.name.removesuffix(".part"),
                    disable=not self.progress,
                    leave=False,
                )
                with bar, open(part, "ab" if offset else "wb") as out:
                    block = head
                    try:
                        while block:
                            out.write(block)
                            received += len(block)
                            bar.update(len(block))
                            block = response.read(chunk_size)
                    except (http.client.HTTPException, OSError):
                        broken = True
            if not broken and (length is None or received >= length):
                return
            interruptions += 1
            if interruptions > self.retries:
                raise DownloadError(
                    f"download of {url} was interrupted after {offset + received} of {total} "
                    f"bytes ({interruptions} interruption(s)). The partial file {part} is kept: "
                    "run the same command again to resume."
                )


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    timeout: float = 60,
    retries: int = 3,
    opener: urllib.request.OpenerDirector | None = None,
    allow_http: bool = False,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part`` and checking the SHA-256.

    Args:
        url: file URL; Google Drive share links are turned into download links and the
            large-file confirmation page is followed (see :func:`resolve_google_drive`).
        dest: final path. If it exists and matches ``sha256`` (or no hash is given), nothing is
            downloaded.
        sha256: expected hex digest; when ``None`` the file must be a whole archive, and a loud
            warning gives the digest seen so that it can be pinned.
        progress: show a tqdm progress bar.
        chunk_size: bytes read per step.
        timeout: socket timeout in seconds.
        retries: how many times an interrupted transfer is resumed automatically before giving up
            (the ``.part`` file is kept, so running again resumes too).
        opener: ``urllib`` opener to use (default: one with a cookie jar that follows redirects
            only to URLs :func:`check_url` accepts; whatever the opener, the URL a response
            comes from is checked).
        allow_http: accept ``http://`` URLs and redirects to them.

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: a refused URL, an HTTP error, a web page instead of the file, a checksum
            mismatch or a file that is not a whole archive (the ``.part`` is then deleted), or an
            interruption that outlasted ``retries``.
    """
    dest = Path(dest)
    expected = _check_sha(sha256)
    check_url(url, allow_http)
    if dest.exists():
        if expected is None:
            return dest
        actual = sha256_file(dest)
        if actual == expected:
            return dest
        raise DownloadError(
            f"{dest} already exists but its SHA-256 is {actual}, not {expected}. Files in the raw "
            "folder are never overwritten: delete it to download again, or pass the right --sha256."
        )
    url = normalise_url(url)
    part = part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    transfer = _Transfer(
        part=part,
        pinned=expected is not None,
        progress=progress,
        chunk_size=chunk_size,
        timeout=timeout,
        retries=retries,
        opener=opener or _default_opener(allow_http),
        allow_http=allow_http,
    )
    with _quiet_pooch():
        try:
            pooch.retrieve(
                url,
                known_hash=f"sha256:{expected}" if expected else None,
                fname=dest.name,
                path=dest.parent,
                downloader=transfer,
                progressbar=False,
            )
        except ValueError as exc:
            if expected is None or "hash" not in str(exc):
                raise
            raise DownloadError(
                f"checksum mismatch for {dest.name}: expected SHA-256 {expected}, got "
                f"{_seen_hash(exc)}. The downloaded file (resumed from {part.name} or not) was "
                "removed. Retry the download; if you use a different mirror whose file is known "
                "to differ, pass its hash with --sha256; or download the file by hand and pass "
                "--archive PATH."
            ) from None
    if expected is None:
        actual = sha256_file(dest)
        _log.warning(
            f"nothing was verified: no SHA-256 is pinned for {dest.name}, so its bytes "
            "may differ from the authors' (that it is a whole archive is all that was checked). "
            f"SHA-256 seen: {actual}; the import records it in dataset.json, and --sha256 "
            f"{actual} pins it for the next download."
        )
    return dest


def _seen_hash(exc: Exception) -> str:
    found = re.search(r"but got ([0-9a-f]{64})", str(exc))
    return found.group(1) if found else "another value"


def archive_name(url: str, default: str) -> str:
    """Name of the file an archive downloaded from ``url`` gets in ``data/raw``.

    A GitHub archive link (``github.com/OWNER/REPO/archive/[refs/heads/]REF.zip``) gets GitHub's
    own name ``REPO-REF.zip``; any other URL whose last path part ends like an archive keeps it;
    anything else (a Google Drive link) gets ``default``.
    """
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    if parts.hostname in ("github.com", "www.github.com"):
        match = re.fullmatch(
            r"/[^/]+/([^/]+)/archive/(?:refs/(?:heads|tags)/)?(.+?)(\.zip|\.tar\.gz)", path
        )
        if match:
            repo, ref, ext = match.groups()
            return f"{repo}-{ref.replace('/', '-')}{ext}"
    tail = path.rsplit("/", 1)[-1]
    return tail if tail.lower().endswith(ARCHIVE_SUFFIXES) else default


def store_raw(
    archive: str | os.PathLike,
    raw_dir: str | os.PathLike,
    sha256: str | None = None,
    *,
    verbose: bool = True,
) -> Path:
    """Copy a hand-downloaded archive into ``raw_dir``, checking its SHA-256 first.

    Args:
        archive: the archive; only read.
        raw_dir: the raw folder (``data/raw``); created when missing.
        sha256: expected hex digest; when ``None`` the computed one is printed so it can be pinned.
        verbose: print that digest.

    Returns:
        The archive's path in ``raw_dir`` (``archive`` itself when it already lies there). An
        identical file already in ``raw_dir`` is reused; raw files are never overwritten.

    Raises:
        DatasetError: the archive is missing, its hash differs from ``sha256``, or ``raw_dir``
            already holds another file of the same name.
        ValueError: ``sha256`` is not 64 hexadecimal digits.
    """
    archive, raw_dir = Path(archive), Path(raw_dir)
    expected = _check_sha(sha256)
    if not archive.is_file():
        raise DatasetError(f"{archive}: archive not found")
    digest = sha256_file(archive)
    if expected is not None and digest != expected:
        raise DatasetError(
            f"{archive}: SHA-256 is {digest}, expected {expected}; the file differs from the "
            "pinned archive (incomplete download or another release)"
        )
    if expected is None and verbose:
        _log.info(f"SHA-256 of {archive.name}: {digest} (pin it with --sha256 {digest})")
    if archive.resolve().parent == raw_dir.resolve():
        return archive
    target = raw_dir / archive.name
    if target.exists():
        if sha256_file(target) != digest:
            raise DatasetError(
                f"{target} already exists with other content; raw files are never overwritten: "
                "rename your archive or remove the old one"
            )
        return target
    raw_dir.mkdir(parents=True, exist_ok=True)
    partial = part_path(target)
    shutil.copyfile(archive, partial)
    os.replace(partial, target)
    return target
