"""Downloads against local servers on 127.0.0.1: plain http refused unless asked for, a redirect
from https to http refused, a damaged ``.part`` deleted instead of reused, an unpinned archive's
SHA-256 recorded and compared."""

from __future__ import annotations

import io
import json
import random
import shutil
import ssl
import subprocess
import threading
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crackkit.data.download import DownloadError, download, part_path, sha256_file
from crackkit.data.staging import warn_if_source_changed


def _zip_of(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("set/blob.bin", data)
    return buf.getvalue()


PAYLOAD = _zip_of(random.Random(1).randbytes(200_000))


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        path = urllib.parse.urlsplit(self.path).path
        server.requests.append((path, self.headers.get("Range")))
        if path == "/a.zip":
            self._payload(PAYLOAD)
        elif path == "/not-an-archive.zip":
            self._payload(b"\0" * 50_000)
        elif path == "/to-http.zip":
            self.send_response(302)
            self.send_header("Location", server.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def _payload(self, body: bytes) -> None:
        start = 0
        requested = self.headers.get("Range")
        if requested:
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        self.wfile.write(body[start:])


def _serve(context: ssl.SSLContext | None = None):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    httpd.redirect_to = ""
    scheme = "http"
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    httpd.base = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02})
    thread.daemon = True
    thread.start()
    return httpd, thread


@pytest.fixture
def server():
    httpd, thread = _serve()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    """An https server on 127.0.0.1 with a self-signed certificate the client is told to trust."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd, thread = _serve(context)
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _get(base: str, route: str, dest: Path, **kwargs):
    return download(base + route, dest, progress=False, chunk_size=8192, timeout=10, **kwargs)


def test_plain_http_refused_unless_asked(server, tmp_path):
    """http:// is refused before any request; allow_http (--allow-http) accepts it."""
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError, match="plain http is not authenticated.*--allow-http"):
        _get(server.base, "/a.zip", dest)
    assert server.requests == [] and not dest.exists()
    assert _get(server.base, "/a.zip", dest, allow_http=True).read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="only https://"):
        download("ftp://127.0.0.1/a.zip", tmp_path / "b.zip")


def test_redirect_from_https_to_http_refused(tls_server, server, tmp_path):
    """An https source that redirects to http is refused (the http side is never asked); with
    allow_http it is followed. The https side itself is accepted as is."""
    assert _get(tls_server.base, "/a.zip", tmp_path / "ok.zip").read_bytes() == PAYLOAD
    tls_server.redirect_to = server.base + "/a.zip"
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError, match=f"refusing {server.base}/a.zip: plain http"):
        _get(tls_server.base, "/to-http.zip", dest)
    assert server.requests == [] and not dest.exists() and not part_path(dest).exists()
    assert _get(tls_server.base, "/to-http.zip", dest, allow_http=True).read_bytes() == PAYLOAD


def test_damaged_part_without_a_hash_is_deleted_not_reused(server, tmp_path, capsys):
    """A .part whose first half is zeros resumes into a file that is no archive: it is deleted
    and the download starts over, ending with the right bytes."""
    dest = tmp_path / "raw" / "a.zip"
    dest.parent.mkdir()
    part_path(dest).write_bytes(b"\0" * (len(PAYLOAD) // 2))
    _get(server.base, "/a.zip", dest, allow_http=True)
    assert dest.read_bytes() == PAYLOAD and not part_path(dest).exists()
    assert [r[1] for r in server.requests] == [f"bytes={len(PAYLOAD) // 2}-", None]
    err = capsys.readouterr().err
    assert "failed verification" in err and "nothing was verified" in err
    assert sha256_file(dest) in err


def test_part_of_zeros_answered_416_is_not_moved_into_raw(server, tmp_path):
    """A full-length .part of zeros that the server answers with 416 is verified, deleted and
    downloaded afresh, never moved into raw/ as the archive."""
    dest = tmp_path / "a.zip"
    part_path(dest).write_bytes(b"\0" * len(PAYLOAD))
    _get(server.base, "/a.zip", dest, allow_http=True)
    assert dest.read_bytes() == PAYLOAD
    assert [r[1] for r in server.requests] == [f"bytes={len(PAYLOAD)}-", None]


def test_a_source_that_is_no_archive_is_refused_and_deleted(server, tmp_path):
    """Twice not an archive: refused, and neither the file nor its .part is kept."""
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError, match="is not a whole archive"):
        _get(server.base, "/not-an-archive.zip", dest, allow_http=True)
    assert not dest.exists() and not part_path(dest).exists()


def test_a_changed_source_is_reported(tmp_path, capsys):
    """The SHA-256 an import recorded is compared with the next archive's."""
    final = tmp_path / "cfd"
    final.mkdir()
    (final / "dataset.json").write_text(json.dumps({"source": {"sha256": "a" * 64}}))
    warn_if_source_changed(final, "a" * 64)
    assert capsys.readouterr().err == ""
    warn_if_source_changed(final, "b" * 64)
    err = capsys.readouterr().err
    assert "a" * 64 in err and "b" * 64 in err and "changed" in err
