"""The web client's static origin: serves web/dist on loopback for Envoy, in
the devstack and beside Envoy in the Helm chart's edge pod.

    python -m devstack.static_server --root web/dist --port 8082

Files under /assets/ carry a content hash in their names: served with a year
of caching, and 404 when missing (never the app page in place of a script).
Any other path that is not a file gets index.html, so the app's deep links
work. Text files are gzipped once per version and kept in memory. Envoy adds
the security headers (envoy/edge_config.py); the cache headers are set here
too so the origin is right on its own.
"""

from __future__ import annotations

import argparse
import gzip
import mimetypes
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

IMMUTABLE = "public, max-age=31536000, immutable"
COMPRESSIBLE = {".html", ".js", ".css", ".svg", ".json", ".txt", ".map", ".webmanifest"}
# The types a Vite build emits, spelled out so they do not depend on the
# host's /etc/mime.types (slim images have none); the rest from mimetypes.
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/vnd.microsoft.icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".wasm": "application/wasm",
}


@lru_cache(maxsize=256)
def _gzipped(path: Path, version: tuple[int, int]) -> bytes:
    """version (mtime_ns, size) keys the cache, so a rebuilt file is compressed anew."""
    return gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)


def _content_type(path: Path) -> str:
    return TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _file_under(root: Path, url_path: str) -> Path | None:
    """The regular file `url_path` names inside root, or None. Dot segments
    (`..`, and dotfiles such as the build's own stamps) are never served, nor
    a symlink or anything else that resolves outside root."""
    segments = [s for s in url_path.split("/") if s]
    if "\0" in url_path or any(s.startswith(".") for s in segments):
        return None
    candidate = root.joinpath(*segments).resolve()
    if root not in candidate.parents or not candidate.is_file():
        return None
    return candidate


class StaticHandler(BaseHTTPRequestHandler):
    root: Path
    server_version = "aviary-web"
    protocol_version = "HTTP/1.1"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass  # Envoy's access log already records every request.

    def _resolve(self) -> tuple[Path | None, bool]:
        """(file to serve, whether it is a hashed asset)."""
        path = unquote(urlsplit(self.path).path)
        hashed = path.startswith("/assets/")
        found = _file_under(self.root, path)
        if found is not None:
            return found, hashed
        if hashed:
            return None, True
        index = self.root / "index.html"
        return (index if index.is_file() else None), False

    def _serve(self, *, body: bool) -> None:
        path, hashed = self._resolve()
        if path is None:
            self._plain(HTTPStatus.NOT_FOUND if hashed else HTTPStatus.SERVICE_UNAVAILABLE, body)
            return
        try:
            self._serve_file(path, hashed, body=body)
        except FileNotFoundError:  # a new build replaced it between the lookup and the read
            self._plain(HTTPStatus.NOT_FOUND if hashed else HTTPStatus.SERVICE_UNAVAILABLE, body)

    def _serve_file(self, path: Path, hashed: bool, *, body: bool) -> None:
        stat = path.stat()
        etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        headers = {
            "Content-Type": _content_type(path),
            "Cache-Control": IMMUTABLE if hashed else "no-cache",
            "ETag": etag,
            "Vary": "Accept-Encoding",
        }
        if self.headers.get("If-None-Match") == etag:
            self._send(HTTPStatus.NOT_MODIFIED, headers, b"", body=False)
            return
        data = path.read_bytes()
        if path.suffix in COMPRESSIBLE and "gzip" in self.headers.get("Accept-Encoding", ""):
            data = _gzipped(path, (stat.st_mtime_ns, stat.st_size))
            headers["Content-Encoding"] = "gzip"
        self._send(HTTPStatus.OK, headers, data, body=body)

    def _plain(self, status: HTTPStatus, body: bool) -> None:
        text = b"not found\n" if status == HTTPStatus.NOT_FOUND else b"the web client is not built\n"
        self._send(status, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}, text, body=body)

    def _send(self, status: HTTPStatus, headers: dict[str, str], data: bytes, *, body: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if status != HTTPStatus.NOT_MODIFIED:  # a 304 has no body, and no length of one
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


def serve(root: Path, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    handler = type("Handler", (StaticHandler,), {"root": root.resolve()})
    return ThreadingHTTPServer((host, port), handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = serve(args.root, args.port, args.host)
    print(f"serving {args.root} on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
