"""WatchEvents: the caller's three live streams on one connection.

A browser holds few connections per origin, so a tab opens this one stream
instead of three. Each source stays with its owner: the home timeline's new
posts come from timeline's WatchHomeTimeline and new messages from
conversations' WatchConversations, both called with the caller's own token
(they hydrate, filter and deduplicate as they do for their own streams);
notifications come from this service's own live channel. Every event is sent
on as its source sent it, wrapped in the oneof that names the source. The
sources' keep-alives are dropped; the merged stream sends its own.

The merged stream ends when the first source ends: with the source's error
(UNAUTHENTICATED once the token expired, so the client reconnects with a
fresh one) or UNAVAILABLE when a source was lost, since a stream missing
one kind of event would look healthy while showing nothing of that kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from aviary.conversations.v1 import conversations_pb2
from aviary.notifications.v1 import notifications_pb2
from aviary.timeline.v1 import timeline_pb2
from services.kit.peers import clients
from services.kit.server.auth import StreamDeadline
from services.kit.server.errors import ApiError, unauthenticated, unavailable

log = logging.getLogger(__name__)

# Events buffered for a slow client before the oldest are dropped (as the hub does).
MERGED_QUEUE = 512


@dataclass(frozen=True)
class SourceEnded:
    """A source stopped: why, for the merged stream's own ending."""

    source: str
    error: ApiError


class EventsWatch:
    """One open WatchEvents stream: its sources feeding one queue."""

    def __init__(self, notices: asyncio.Queue, fill_text: Callable[[notifications_pb2.Notification], Awaitable[None]]):
        self._notices = notices  # raw messages of this caller's notifications channel
        self._fill_text = fill_text
        self._merged: asyncio.Queue = asyncio.Queue(maxsize=MERGED_QUEUE)
        self._tasks: list[asyncio.Task] = []
        self._calls: list = []
        self._ended: SourceEnded | None = None

    async def open(self, auth: tuple[tuple[str, str], ...]) -> None:
        """Starts the peers' streams and returns once both have sent their
        headers: they are subscribed, so nothing published later is missed."""
        home = clients.timeline().WatchHomeTimeline(timeline_pb2.WatchHomeTimelineRequest(), metadata=auth)
        messages = clients.conversations().WatchConversations(
            conversations_pb2.WatchConversationsRequest(), metadata=auth
        )
        self._calls = [home, messages]
        self._tasks = [
            asyncio.create_task(self._pump("home timeline", home, _home_event)),
            asyncio.create_task(self._pump("conversations", messages, _message_event)),
            asyncio.create_task(self._pump_notices()),
        ]
        try:
            await asyncio.gather(home.initial_metadata(), messages.initial_metadata())
        except grpc.aio.AioRpcError as exc:
            raise _ending("home timeline or conversations", exc) from exc

    async def next(self, deadline: StreamDeadline, heartbeat_seconds: float) -> notifications_pb2.WatchEventsResponse:
        """The next event, or an empty one (keep-alive) after `heartbeat_seconds`
        of quiet; raises the first source's ending, or UNAUTHENTICATED at the deadline."""
        if self._ended is None:
            item = await deadline.next_message(self._merged, heartbeat_seconds)
            if item is None:
                return notifications_pb2.WatchEventsResponse()
            if not isinstance(item, SourceEnded):
                return item
        ended = self._ended
        assert ended is not None, "a SourceEnded is queued only after it is recorded"
        log.info("events watch ended by a source", extra={"source": ended.source, "code": ended.error.code.name})
        raise ended.error

    async def close(self) -> None:
        for call in self._calls:
            call.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _pump(self, source: str, call, wrap: Callable) -> None:
        try:
            async for response in call:
                event = wrap(response)
                if event is not None:
                    self._offer(event)
            self._end(SourceEnded(source, unavailable(f"the live {source} stream ended; reconnect")))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self._end(SourceEnded(source, _ending(source, exc)))

    def _end(self, ended: SourceEnded) -> None:
        """The first source to end ends the merged stream, even past queued events
        (the client reconnects and reads its lists again)."""
        if self._ended is None:
            self._ended = ended
            self._offer(ended)

    async def _pump_notices(self) -> None:
        while True:
            raw = await self._notices.get()
            notice = notifications_pb2.WatchNotificationsResponse()
            try:
                notice.ParseFromString(raw)
            except DecodeError:
                continue
            if notice.HasField("notification"):
                await self._fill_text(notice.notification)
            self._offer(notifications_pb2.WatchEventsResponse(notifications=notice))

    def _offer(self, item) -> None:
        """Never blocks a source: a client that fell behind loses its oldest events."""
        if self._merged.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._merged.get_nowait()
        self._merged.put_nowait(item)


def _home_event(response: timeline_pb2.WatchHomeTimelineResponse) -> notifications_pb2.WatchEventsResponse | None:
    """A home post wrapped; None for the source's keep-alive."""
    if not response.HasField("post"):
        return None
    return notifications_pb2.WatchEventsResponse(home=response)


def _message_event(
    response: conversations_pb2.WatchConversationsResponse,
) -> notifications_pb2.WatchEventsResponse | None:
    """A new message wrapped; None for the source's keep-alive."""
    if not response.HasField("message"):
        return None
    return notifications_pb2.WatchEventsResponse(conversations=response)


def _ending(source: str, exc: grpc.aio.AioRpcError) -> ApiError:
    """How the merged stream ends when a source failed: an expired or refused
    token as such (the client logs in or refreshes), anything else UNAVAILABLE."""
    if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
        return unauthenticated(exc.details() or "access token has expired; reconnect with a fresh token")
    log.warning("events watch lost a source", extra={"source": source, "code": exc.code().name})
    return unavailable(f"the live {source} stream is unavailable ({exc.code().name}); reconnect")
