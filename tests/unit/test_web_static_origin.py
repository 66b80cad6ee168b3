"""The static origin (devstack/static_server.py) as production runs it (the
Helm chart's `web` container): only regular files under its root, the right
content types, no listings, HEAD like GET. Requests go through http.client so
paths reach the server exactly as written (no client-side normalising)."""

from __future__ import annotations

import http.client
import threading
from pathlib import Path

import pytest

from devstack.static_server import serve

INDEX = b"<!doctype html><title>app</title>"
FILES = {
    "assets/index-abc123.js": b"console.log('app');" * 50,
    "assets/index-abc123.css": b"body{margin:0}",
    "assets/logo-abc123.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    "assets/font-abc123.woff2": b"wOF2",
    "assets/data-abc123.json": b"{}",
    "assets/blob-abc123.bin": b"\x00\x01",
    "assets/.hidden.js": b"hidden",
    "manifest.webmanifest": b"{}",
    ".aviary-build": b"build stamp",
}
SECRET = b"outside the root"


def _start(root: Path):
    server = serve(root, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    base = tmp_path_factory.mktemp("site")
    root = base / "dist"
    for name, data in {"index.html": INDEX, **FILES}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (base / "secret.txt").write_bytes(SECRET)
    (root / "linked.txt").symlink_to(base / "secret.txt")
    (root / "assets" / "linked-abc123.js").symlink_to(base / "secret.txt")
    server = _start(root)
    yield server.server_address[1]
    server.shutdown()


def _request(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path, content_type",
    [
        ("/assets/index-abc123.js", "text/javascript; charset=utf-8"),
        ("/assets/index-abc123.css", "text/css; charset=utf-8"),
        ("/assets/logo-abc123.svg", "image/svg+xml"),
        ("/assets/font-abc123.woff2", "font/woff2"),
        ("/assets/data-abc123.json", "application/json"),
        ("/assets/blob-abc123.bin", "application/octet-stream"),
        ("/manifest.webmanifest", "application/manifest+json"),
        ("/", "text/html; charset=utf-8"),
    ],
)
def test_each_file_has_its_content_type(port, path, content_type):
    status, headers, _ = _request(port, path)
    assert status == 200
    assert headers["content-type"] == content_type


@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_head_answers_like_get_without_the_body(port, encoding):
    headers = {"accept-encoding": encoding}
    get_status, get_headers, get_body = _request(port, "/assets/index-abc123.js", headers=headers)
    head_status, head_headers, head_body = _request(port, "/assets/index-abc123.js", "HEAD", headers)
    assert (get_status, head_status) == (200, 200)
    assert head_body == b"" and len(get_body) > 0
    assert head_headers["content-length"] == get_headers["content-length"] == str(len(get_body))
    for key in ("content-type", "cache-control", "etag"):
        assert head_headers[key] == get_headers[key]
    assert head_headers.get("content-encoding") == get_headers.get("content-encoding")


@pytest.mark.parametrize("path", ["/assets/", "/assets//", "/assets/%2e%2e/assets/"])
def test_a_directory_is_never_listed(port, path):
    status, _, body = _request(port, path)
    assert status == 404
    assert b"index-abc123" not in body


@pytest.mark.parametrize(
    "path",
    [
        "/assets/../../secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/linked-abc123.js",  # a symlink out of the root
        "/assets/.hidden.js",
        "/assets/index-abc123.js%00.png",
    ],
)
def test_an_asset_path_outside_the_roots_files_is_404(port, path):
    status, _, body = _request(port, path)
    assert status == 404
    assert SECRET not in body and b"hidden" not in body


@pytest.mark.parametrize(
    "path",
    ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/linked.txt", "/.aviary-build", "/a%00b"],
)
def test_a_page_path_outside_the_roots_files_is_the_app(port, path):
    status, headers, body = _request(port, path)
    assert status == 200
    assert body == INDEX
    assert headers["cache-control"] == "no-cache"


def test_an_unchanged_file_is_304_without_a_body_length(port):
    _, headers, _ = _request(port, "/assets/index-abc123.css")
    status, again, body = _request(port, "/assets/index-abc123.css", headers={"if-none-match": headers["etag"]})
    assert status == 304 and body == b""
    assert "content-length" not in again


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head_are_served(port, method):
    status, _, body = _request(port, "/", method)
    assert status == 501
    assert INDEX not in body


def test_without_a_build_the_app_is_503_and_assets_404(tmp_path):
    server = _start(tmp_path / "missing")
    try:
        assert _request(server.server_address[1], "/home")[0] == 503
        assert _request(server.server_address[1], "/assets/index-abc123.js")[0] == 404
    finally:
        server.shutdown()
