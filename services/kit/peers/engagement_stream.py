"""BatchGetEngagement over one long-lived StreamEngagement call per process.

Timeline, posts and feed ask engagement for counts on every page they serve.
A new gRPC call costs engagement CPU even when it does nothing, a message on
an open stream much less (bench/README.md has the figures). So batches go out as
messages on one bidirectional stream, each with an id, and the answers are
matched back by id as they come (in any order).

Nothing is lost when the stream breaks (engagement restarting, a network
blip): the batches in flight on it are asked again as unary calls, and for a
second after a break every batch is, before a new stream is tried. A stream
is also retired after a few minutes (new batches go to a fresh one, the old
one finishes what it holds), so with several engagement replicas the load
spreads again over time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import grpc

from aviary.engagement.v1 import engagement_pb2
from services.kit.peers import clients
from services.kit import settings

log = logging.getLogger(__name__)

# After a stream breaks, batches go unary for this long before a new stream
# is opened: a down engagement is not hammered with new streams.
REOPEN_AFTER_SECONDS = 1.0


class BatchFailed(Exception):
    """Engagement answered the batch with an error status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class _StreamBroken(Exception):
    """The stream a batch was sent on ended before answering it."""


_CODES = {code.value[0]: code for code in grpc.StatusCode}


class _Stream:
    """One StreamEngagement call and the batches waiting for its answers."""

    def __init__(self, call) -> None:
        self.call = call
        self.opened = time.monotonic()
        self.pending: dict[int, asyncio.Future] = {}
        self.write_lock = asyncio.Lock()  # grpc.aio takes one write at a time
        self.ended = False
        self.reader = asyncio.create_task(self._read())
        self.retiring: asyncio.Task | None = None

    async def ask(self, request_id: int, batch: engagement_pb2.BatchGetEngagementRequest):
        answer = asyncio.get_running_loop().create_future()
        self.pending[request_id] = answer
        try:
            # A caller that stops waiting (its deadline) leaves the write to
            # finish: grpc.aio cancels the whole call with a cancelled write,
            # and every batch on it would be asked again, unary.
            await asyncio.shield(self._write_soon(request_id, batch))
            return await answer
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            # Written to a call that had already ended.
            raise _StreamBroken(repr(exc)) from exc
        finally:
            self.pending.pop(request_id, None)
            if answer.done() and not answer.cancelled():
                # The reader may have failed it while the write was failing: this
                # call raises _StreamBroken either way, and asyncio would log the
                # answer's exception as never retrieved.
                answer.exception()

    def _write_soon(self, request_id: int, batch: engagement_pb2.BatchGetEngagementRequest) -> asyncio.Task:
        write = asyncio.create_task(
            self._write(engagement_pb2.StreamEngagementRequest(request_id=request_id, batch=batch))
        )
        # Retrieved here too, for a write whose caller stopped waiting.
        write.add_done_callback(lambda done: done.cancelled() or done.exception())
        return write

    async def _write(self, request: engagement_pb2.StreamEngagementRequest) -> None:
        async with self.write_lock:
            await self.call.write(request)

    async def retire(self) -> None:
        """No more batches: the server finishes the pending ones, then ends."""
        try:
            async with self.write_lock:
                await self.call.done_writing()
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            pass

    async def _read(self) -> None:
        try:
            async for reply in self.call:
                answer = self.pending.get(reply.request_id)
                if answer is not None and not answer.done():
                    answer.set_result(reply)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                log.warning(
                    "engagement stream broke; asking unary until it reopens",
                    extra={"code": exc.code().name, "details": exc.details()},
                )
        finally:
            self.ended = True
            for answer in self.pending.values():
                if not answer.done():
                    answer.set_exception(_StreamBroken("the stream ended"))

    def cancel(self) -> None:
        self.call.cancel()
        self.reader.cancel()


class EngagementBatches:
    """The process's way to ask BatchGetEngagement: streamed, unary as a fallback."""

    def __init__(self, *, enabled: bool, max_stream_seconds: float) -> None:
        self.enabled = enabled
        self.max_stream_seconds = max_stream_seconds
        self._stream: _Stream | None = None
        self._unary_until = 0.0
        self._ids = itertools.count(1)
        # Retired streams still answering; held so their tasks live on.
        self._retired: set[_Stream] = set()

    async def get(
        self, batch: engagement_pb2.BatchGetEngagementRequest, timeout: float
    ) -> engagement_pb2.BatchGetEngagementResponse:
        """The answer to `batch`. Raises BatchFailed for an error status,
        grpc.aio.AioRpcError when a unary fallback fails, TimeoutError."""
        stream = self._current()
        if stream is None:
            return await clients.engagement().BatchGetEngagement(batch, timeout=timeout)
        try:
            async with asyncio.timeout(timeout):
                reply = await stream.ask(next(self._ids), batch)
        except _StreamBroken:
            self._broke(stream)
            return await clients.engagement().BatchGetEngagement(batch, timeout=timeout)
        if reply.status_code:
            raise BatchFailed(_CODES.get(reply.status_code, grpc.StatusCode.UNKNOWN), reply.status_message)
        return reply.batch

    def _current(self) -> _Stream | None:
        if not self.enabled:
            return None
        stream = self._stream
        if stream is not None and stream.ended:
            self._broke(stream)
            stream = None
        if stream is not None and time.monotonic() - stream.opened > self.max_stream_seconds:
            self._retire(stream)
            stream = None
        if stream is None:
            if time.monotonic() < self._unary_until:
                return None
            stream = self._stream = _Stream(clients.engagement().StreamEngagement())
        return stream

    def _broke(self, stream: _Stream) -> None:
        if self._stream is stream:
            self._stream = None
            self._unary_until = time.monotonic() + REOPEN_AFTER_SECONDS

    def _retire(self, stream: _Stream) -> None:
        self._stream = None
        self._retired.add(stream)
        stream.retiring = asyncio.create_task(stream.retire())
        stream.reader.add_done_callback(lambda _: self._retired.discard(stream))

    def close(self) -> None:
        for stream in [self._stream, *self._retired]:
            if stream is not None:
                stream.cancel()
        self._stream = None
        self._retired.clear()


_batches: EngagementBatches | None = None


def batches() -> EngagementBatches:
    """The process-wide EngagementBatches (created in the running loop)."""
    global _batches
    if _batches is None:
        _batches = EngagementBatches(
            enabled=settings.current().engagement_stream,
            max_stream_seconds=settings.current().engagement_stream_max_seconds,
        )
        clients.on_close(_close)
    return _batches


def _close() -> None:
    global _batches
    if _batches is not None:
        _batches.close()
        _batches = None
