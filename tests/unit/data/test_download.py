"""Downloads against a local HTTP server: resume, checksum, web pages, Drive confirmation."""

from __future__ import annotations

import hashlib
import io
import random
import socket
import threading
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crackkit.data.download import (
    CRACK500,
    CRACK500_DRIVE_FOLDER,
    DownloadError,
    archive_name,
    download,
    google_drive_url,
    normalise_url,
    part_path,
    resolve_google_drive,
    sha256_file,
    store_raw,
)
from crackkit.data.folder import DatasetError


def _zip_of(data: bytes) -> bytes:
    """A zip archive (stored, not compressed) holding ``data`` as one member."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("CRACK500/blob.bin", data)
    return buf.getvalue()


# A whole archive, as every download is: without a pinned hash it must verify as one.
PAYLOAD = _zip_of(random.Random(0).randbytes(300_000))
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
CHUNK = 16_384

WEB_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Log in</body></html>"
DRIVE_PAGE = b"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head>
<body><p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="/drive-download" method="get">
<input type="submit" id="uc-download-link" value="Download anyway"/>
<input type="hidden" name="id" value="FILEID123456">
<input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t">
<input type="hidden" name="uuid" value="u-42">
</form></body></html>"""


class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD under several behaviours chosen by the path."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        server.requests.append((parts.path, query, self.headers.get("Range")))
        if parts.path == "/file.bin":
            self._send_payload(honour_range=True)
        elif parts.path == "/no-range.bin":
            self._send_payload(honour_range=False)
        elif parts.path == "/flaky.bin":
            self._send_payload(honour_range=True, drop=server.drops > 0)
        elif parts.path == "/page":
            self._send(200, WEB_PAGE, "text/html; charset=utf-8")
        elif parts.path == "/page-as-binary":
            self._send(200, WEB_PAGE, "application/octet-stream")
        elif parts.path == "/drive":
            self._send(200, DRIVE_PAGE, "text/html; charset=utf-8")
        elif parts.path == "/drive-download":
            wanted = {"id": "FILEID123456", "export": "download", "confirm": "t", "uuid": "u-42"}
            if query == wanted:
                self._send_payload(honour_range=True)
            else:
                self._send(200, DRIVE_PAGE, "text/html")
        elif parts.path == "/legacy":
            if query.get("confirm") == "TOKEN9":
                self._send_payload(honour_range=True)
            else:
                cookie = "download_warning_13058=TOKEN9; Path=/"
                self._send(200, WEB_PAGE, "text/html", {"Set-Cookie": cookie})
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_payload(self, honour_range: bool, drop: bool = False) -> None:
        start = 0
        requested = self.headers.get("Range")
        if honour_range and requested:
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.end_headers()
        if drop:
            self.server.drops -= 1
            self.wfile.write(body[: self.server.drop_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    """A threaded HTTP server on 127.0.0.1, shut down after the test."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    httpd.drops = 0
    httpd.drop_after = 100_000
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _get(server, url, dest, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("chunk_size", CHUNK)
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("allow_http", True)  # the local test server speaks plain http
    return download(server.base + url, dest, **kwargs)


def test_plain_download_verified(server, tmp_path):
    """A plain download lands at dest with the right hash and no .part left over."""
    dest = tmp_path / "raw" / "archive.zip"
    assert _get(server, "/file.bin", dest, sha256=PAYLOAD_SHA) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not part_path(dest).exists()
    assert server.requests == [("/file.bin", {}, None)]


def test_existing_verified_file_is_not_downloaded_again(server, tmp_path):
    """A dest that already matches the hash is returned without any request."""
    dest = tmp_path / "archive.zip"
    dest.write_bytes(PAYLOAD)
    assert _get(server, "/file.bin", dest, sha256=PAYLOAD_SHA.upper()) == dest
    assert server.requests == []


def test_existing_file_with_other_hash_is_refused(server, tmp_path):
    """A dest with the wrong content is neither trusted nor overwritten."""
    dest = tmp_path / "archive.zip"
    dest.write_bytes(b"old")
    with pytest.raises(DownloadError, match="already exists"):
        _get(server, "/file.bin", dest, sha256=PAYLOAD_SHA)
    assert dest.read_bytes() == b"old"


def test_missing_hash_prints_the_digest(server, tmp_path, caplog):
    """Without a hash the computed SHA-256 is logged as a warning so it can be pinned."""
    with caplog.at_level("WARNING", logger="crackkit"):
        _get(server, "/file.bin", tmp_path / "a.zip", progress=True)
    assert any(PAYLOAD_SHA in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_interrupted_download_resumes_with_range(server, tmp_path):
    """A dropped connection keeps the .part; the next call resumes it with a Range header."""
    server.drops = 1
    dest = tmp_path / "archive.zip"
    with pytest.raises(DownloadError, match=f"interrupted after 100000 of {len(PAYLOAD)} bytes"):
        _get(server, "/flaky.bin", dest, sha256=PAYLOAD_SHA, retries=0)
    assert part_path(dest).stat().st_size == 100_000
    assert not dest.exists()
    _get(server, "/flaky.bin", dest, sha256=PAYLOAD_SHA, retries=0)
    assert server.requests[-1] == ("/flaky.bin", {}, "bytes=100000-")
    assert sha256_file(dest) == PAYLOAD_SHA
    assert not part_path(dest).exists()


def test_interruptions_are_resumed_automatically(server, tmp_path):
    """With retries left, one call resumes twice from where each transfer stopped."""
    server.drops = 2
    server.drop_after = 70_000
    dest = tmp_path / "archive.zip"
    _get(server, "/flaky.bin", dest, sha256=PAYLOAD_SHA, retries=2)
    assert [r[2] for r in server.requests] == [None, "bytes=70000-", "bytes=140000-"]
    assert dest.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    """A 200 answer to a Range request replaces the stale .part instead of appending to it."""
    dest = tmp_path / "archive.zip"
    part_path(dest).write_bytes(b"stale bytes from another file" * 100)
    _get(server, "/no-range.bin", dest, sha256=PAYLOAD_SHA)
    assert server.requests[0][2] == f"bytes={len(b'stale bytes from another file') * 100}-"
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_verified(server, tmp_path):
    """A .part that already holds the whole file (server says 416) is verified and kept."""
    dest = tmp_path / "archive.zip"
    part_path(dest).write_bytes(PAYLOAD)
    _get(server, "/file.bin", dest, sha256=PAYLOAD_SHA)
    assert server.requests == [("/file.bin", {}, f"bytes={len(PAYLOAD)}-")]
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_refused(server, tmp_path):
    """A wrong hash raises with both digests, and neither dest nor .part remains."""
    dest = tmp_path / "archive.zip"
    with pytest.raises(DownloadError) as err:
        _get(server, "/file.bin", dest, sha256="0" * 64)
    message = str(err.value)
    assert "0" * 64 in message and PAYLOAD_SHA in message
    assert "removed" in message and "--archive" in message and "--sha256" in message
    assert not dest.exists() and not part_path(dest).exists()


@pytest.mark.parametrize("route", ["/page", "/page-as-binary"])
def test_web_page_refused(server, tmp_path, route):
    """An HTML answer (by Content-Type or by its first bytes) is refused with advice."""
    dest = tmp_path / "archive.zip"
    with pytest.raises(DownloadError, match="web page") as err:
        _get(server, route, dest)
    assert "--archive PATH" in str(err.value) and "Sign in" in str(err.value)
    assert not dest.exists() and not part_path(dest).exists()


def test_http_error_names_status_and_url(server, tmp_path):
    """An HTTP error status is reported with the code and the URL."""
    with pytest.raises(DownloadError, match=r"HTTP 404 .*/missing\.zip"):
        _get(server, "/missing.zip", tmp_path / "a.zip")


def test_drive_confirmation_form_followed(server, tmp_path):
    """Drive's virus-scan page is parsed and its form submitted to get the file."""
    dest = tmp_path / "CRACK500.zip"
    _get(server, "/drive?id=FILEID123456", dest, sha256=PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD
    paths = [r[0] for r in server.requests]
    assert paths == ["/drive", "/drive-download"]
    assert server.requests[1][1]["uuid"] == "u-42"


def test_resolve_google_drive_returns_the_confirmed_url(server):
    """resolve_google_drive gives the URL behind the confirmation form."""
    url = resolve_google_drive(server.base + "/drive?id=FILEID123456", timeout=5, allow_http=True)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert url.startswith(server.base + "/drive-download?")
    assert query == {"id": "FILEID123456", "export": "download", "confirm": "t", "uuid": "u-42"}


def test_legacy_drive_cookie_flow(server, tmp_path):
    """The old download_warning cookie becomes a confirm= parameter."""
    dest = tmp_path / "a.zip"
    _get(server, "/legacy?id=X", dest, sha256=PAYLOAD_SHA)
    assert server.requests[-1][1] == {"id": "X", "confirm": "TOKEN9"}


def test_google_drive_links_are_normalised():
    """Share links become direct-download URLs; folders are refused with advice."""
    direct = google_drive_url("1AbCdEfGhIjK")
    assert direct == (
        "https://drive.usercontent.google.com/download?id=1AbCdEfGhIjK&export=download&confirm=t"
    )
    assert normalise_url("https://drive.google.com/file/d/1AbCdEfGhIjK/view?usp=sharing") == direct
    assert normalise_url("https://drive.google.com/uc?id=1AbCdEfGhIjK&export=download") == direct
    assert normalise_url("http://127.0.0.1:8000/x.zip") == "http://127.0.0.1:8000/x.zip"
    with pytest.raises(DownloadError, match="--archive PATH"):
        normalise_url(CRACK500_DRIVE_FOLDER)
    assert CRACK500.filename == "CRACK500.zip" and CRACK500.sha256 is None


def test_archive_name_of_github_and_other_urls():
    """GitHub archive links get GitHub's REPO-REF name; others keep an archive-like tail."""
    github = "https://github.com/cuilimeng/CrackForest-dataset/archive/refs/heads/master.zip"
    assert archive_name(github, "x.zip") == "CrackForest-dataset-master.zip"
    assert archive_name("https://github.com/o/r/archive/v1.0.tar.gz", "x") == "r-v1.0.tar.gz"
    assert archive_name("http://127.0.0.1:8/a/b.tar.gz?dl=1", "x.zip") == "b.tar.gz"
    assert archive_name(CRACK500.url, CRACK500.filename) == "CRACK500.zip"


def test_store_raw_copies_checks_and_never_overwrites(tmp_path, capsys):
    """A hand-downloaded archive is copied into raw/ once, verified, and never overwritten."""
    archive = tmp_path / "a.zip"
    archive.write_bytes(PAYLOAD)
    raw = tmp_path / "raw"
    assert store_raw(archive, raw) == raw / "a.zip"
    assert PAYLOAD_SHA in capsys.readouterr().out
    assert (raw / "a.zip").read_bytes() == PAYLOAD and not part_path(raw / "a.zip").exists()
    assert store_raw(archive, raw, PAYLOAD_SHA.upper()) == raw / "a.zip"
    assert store_raw(raw / "a.zip", raw, verbose=False) == raw / "a.zip"
    with pytest.raises(DatasetError, match=f"SHA-256 is {PAYLOAD_SHA}, expected 0{{64}}"):
        store_raw(archive, raw, "0" * 64)
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        store_raw(archive, raw, "abc")
    archive.write_bytes(b"other content")
    with pytest.raises(DatasetError, match="already exists with other content"):
        store_raw(archive, raw, verbose=False)
    assert (raw / "a.zip").read_bytes() == PAYLOAD
    with pytest.raises(DatasetError, match="archive not found"):
        store_raw(tmp_path / "missing.zip", raw)
