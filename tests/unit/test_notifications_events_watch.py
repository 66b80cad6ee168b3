"""WatchEvents' merging (services/notifications/events_watch.py) with fake
peer streams: every source's events wrapped by kind, the sources' keep-alives
dropped and its own sent, and the first source's ending ending the stream."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from aviary.conversations.v1 import conversations_pb2
from aviary.notifications.v1 import notifications_pb2
from aviary.posts.v1 import posts_pb2
from aviary.timeline.v1 import timeline_pb2
from services.kit.server.auth import StreamDeadline
from services.kit.server.errors import ApiError
from services.notifications import events_watch

LATER = StreamDeadline(expires_at=time.time() + 3600)


class FakeStream:
    """A peer's server stream: headers at once, then what the test feeds it."""

    def __init__(self) -> None:
        self.feed: asyncio.Queue = asyncio.Queue()
        self.cancelled = False

    async def initial_metadata(self):
        return ()

    def cancel(self) -> bool:
        self.cancelled = True
        self.feed.put_nowait(grpc.aio.AioRpcError(grpc.StatusCode.CANCELLED, None, None, "cancelled"))
        return True

    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await self.feed.get()
        if item is StopAsyncIteration:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item


class FakeStub:
    def __init__(self, stream: FakeStream) -> None:
        self.stream = stream
        self.metadata = None

    def WatchHomeTimeline(self, request, metadata=None):
        self.metadata = metadata
        return self.stream

    def WatchConversations(self, request, metadata=None):
        self.metadata = metadata
        return self.stream


@pytest.fixture
def peers(monkeypatch):
    home, messages = FakeStub(FakeStream()), FakeStub(FakeStream())
    monkeypatch.setattr(events_watch.clients, "timeline", lambda: home)
    monkeypatch.setattr(events_watch.clients, "conversations", lambda: messages)
    return home, messages


async def _no_text(notification) -> None:
    notification.text = "filled"


async def _opened(notices: asyncio.Queue) -> events_watch.EventsWatch:
    watch = events_watch.EventsWatch(notices, _no_text)
    await watch.open((("authorization", "Bearer t"),))
    return watch


async def test_each_source_arrives_wrapped_by_kind_and_keep_alives_are_dropped(peers):
    home, messages = peers
    notices: asyncio.Queue = asyncio.Queue()
    watch = await _opened(notices)
    assert home.metadata == messages.metadata == (("authorization", "Bearer t"),)
    try:
        home.stream.feed.put_nowait(timeline_pb2.WatchHomeTimelineResponse())  # its keep-alive
        home.stream.feed.put_nowait(timeline_pb2.WatchHomeTimelineResponse(post=posts_pb2.Post(id="11")))
        event = await watch.next(LATER, 5.0)
        assert event.WhichOneof("event") == "home" and event.home.post.id == "11"

        messages.stream.feed.put_nowait(conversations_pb2.WatchConversationsResponse())
        message = conversations_pb2.Message(id="22", conversation_id="5")
        messages.stream.feed.put_nowait(conversations_pb2.WatchConversationsResponse(message=message))
        event = await watch.next(LATER, 5.0)
        assert event.WhichOneof("event") == "conversations" and event.conversations.message.id == "22"

        notice = notifications_pb2.WatchNotificationsResponse(
            notification=notifications_pb2.Notification(id="33"), replaces_id="30"
        )
        notices.put_nowait(notice.SerializeToString())
        notices.put_nowait(b"\xff not a message")
        event = await watch.next(LATER, 5.0)
        assert event.WhichOneof("event") == "notifications"
        assert event.notifications.notification.id == "33" and event.notifications.replaces_id == "30"
        assert event.notifications.notification.text == "filled"
    finally:
        await watch.close()
    assert home.stream.cancelled and messages.stream.cancelled


async def test_quiet_sends_an_empty_keep_alive(peers):
    watch = await _opened(asyncio.Queue())
    try:
        event = await watch.next(LATER, 0.05)
        assert event.WhichOneof("event") is None
    finally:
        await watch.close()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAUTHENTICATED),
        (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE),
        (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE),
    ],
)
async def test_a_failed_source_ends_the_stream(peers, code, expected):
    home, _ = peers
    watch = await _opened(asyncio.Queue())
    try:
        home.stream.feed.put_nowait(grpc.aio.AioRpcError(code, None, None, "gone"))
        with pytest.raises(ApiError) as caught:
            for _ in range(3):
                await watch.next(LATER, 1.0)
        assert caught.value.code == expected
    finally:
        await watch.close()


async def test_a_source_that_ends_cleanly_ends_the_stream_unavailable(peers):
    _, messages = peers
    watch = await _opened(asyncio.Queue())
    try:
        messages.stream.feed.put_nowait(StopAsyncIteration)
        with pytest.raises(ApiError) as caught:
            await watch.next(LATER, 1.0)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert "conversations" in str(caught.value)
    finally:
        await watch.close()


async def test_an_expired_token_ends_the_stream(peers):
    watch = await _opened(asyncio.Queue())
    try:
        with pytest.raises(ApiError) as caught:
            await watch.next(StreamDeadline(expires_at=time.time() - 1), 1.0)
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await watch.close()
