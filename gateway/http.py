"""The smallest HTTP/1.1 server the gateway needs, on httptools (llhttp).

Envoy asks the gateway once per public request (ext_authz), so the gateway's
cost per request is paid on every read and write: this protocol parses with
httptools and writes one preformatted response, a fraction of what aiohttp's
request and response objects cost (bench/README.md).

What it does: keep-alive connections; requests answered strictly in order
(a pipelining client gets its answers in the order it asked); bodies kept up
to a limit (larger ones are read and dropped); HTTP/1.0 and `Connection: close` honoured; a request that does
not parse answered 400 and the connection closed. Handlers get a Request and
return a Response; an exception in one is answered 500 and logged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import httptools

log = logging.getLogger(__name__)

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
# Bodies up to this size reach the handler; Envoy forwards at most this much.
MAX_BODY_BYTES = 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    # Lower-cased names; a repeated header keeps its last value.
    headers: dict[str, str]
    # The peer address, for logs and as a last-resort subject.
    remote: str
    query: str = ""
    # The body as sent, or None when it was larger than the server keeps.
    body: bytes | None = b""


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str | None = None

    def encode(self, keep_alive: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}", f"content-length: {len(self.body)}"]
        if self.content_type:
            lines.append(f"content-type: {self.content_type}")
        lines.extend(f"{name}: {value}" for name, value in self.headers.items())
        if not keep_alive:
            lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


Handler = Callable[[Request], Awaitable[Response]]


class _Connection(asyncio.Protocol):
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._remote = ""
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: bytearray | None = bytearray()
        # Answers in request order: each request's task, awaited in turn.
        self._answers: asyncio.Queue = asyncio.Queue()
        self._writer: asyncio.Task | None = None

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport) -> None:
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._remote = peer[0] if peer else ""
        self._writer = asyncio.get_running_loop().create_task(self._write_answers(transport))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            log.info("unparseable request; closing", extra={"error": str(exc)[:200]})
            self._answers.put_nowait((_done(Response(400, body=b"bad request")), False))
            self._answers.put_nowait(None)
            assert self._transport is not None  # data comes only after connection_made
            self._transport.pause_reading()

    def connection_lost(self, exc) -> None:
        if self._writer is not None:
            self._writer.cancel()

    # -- httptools callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = bytearray()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, chunk: bytes) -> None:
        if self._body is not None:
            self._body += chunk
            if len(self._body) > MAX_BODY_BYTES:
                self._body = None

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self._url)
        request = Request(
            self._parser.get_method().decode("latin-1"),
            url.path.decode("latin-1"),
            self._headers,
            self._remote,
            (url.query or b"").decode("latin-1"),
            bytes(self._body) if self._body is not None else None,
        )
        keep_alive = self._parser.should_keep_alive()
        self._answers.put_nowait((asyncio.ensure_future(self._handle(request)), keep_alive))
        if not keep_alive:
            self._answers.put_nowait(None)

    # -- answering ---------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        try:
            return await self._handler(request)
        except Exception:
            log.exception("gateway handler failed", extra={"path": request.path})
            return Response(500, body=b"internal error")

    async def _write_answers(self, transport: asyncio.Transport) -> None:
        while (item := await self._answers.get()) is not None:
            answer, keep_alive = item
            response = await answer
            if transport.is_closing():
                return
            transport.write(response.encode(keep_alive))
        transport.close()


def _done(response: Response) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_result(response)
    return future


async def serve(handler: Handler, host: str, port: int) -> asyncio.AbstractServer:
    """Starts serving `handler` on host:port; returns the server."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Connection(handler), host, port, reuse_address=True)
