"""GET /v1/events:watch: the caller's new home posts, notifications and
messages on one stream, one JSON object per line, each under its kind."""

from __future__ import annotations

import json
import queue
import threading
import time

import httpx
import pytest

from services.kit.server.auth import TokenIssuer
from tests.e2e.edge import follow, post, sign_up

pytestmark = pytest.mark.e2e

DEADLINE = 5.0


class EventsWatcher:
    """Reads the combined stream on a thread; events arrive on `self.events`."""

    def __init__(self, edge_url: str, token: str) -> None:
        self.events: queue.Queue = queue.Queue()
        self.status: int | None = None
        self.body = ""
        self._ready = threading.Event()
        self._client = httpx.Client(base_url=edge_url, timeout=httpx.Timeout(10.0, read=None))
        self._thread = threading.Thread(target=self._run, args=(token,), daemon=True)
        self._thread.start()
        # Headers come once every source is subscribed: nothing published later is missed.
        assert self._ready.wait(10), "events stream did not open"

    def _run(self, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            with self._client.stream("GET", "/v1/events:watch", headers=headers) as r:
                self.status = r.status_code
                self._ready.set()
                if r.status_code != 200:
                    self.body = r.read().decode()
                    return
                for line in r.iter_lines():
                    if line.strip():
                        self.events.put(json.loads(line))
        except httpx.HTTPError:
            pass
        finally:
            self._ready.set()

    def next_of(self, kind: str, timeout: float = DEADLINE) -> dict | None:
        """The next event of one kind (others are skipped), or None."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if kind in event:
                return event[kind]

    def close(self) -> None:
        self._client.close()


@pytest.fixture
def watch(edge_url):
    opened: list[EventsWatcher] = []

    def open_(token: str) -> EventsWatcher:
        watcher = EventsWatcher(edge_url, token)
        opened.append(watcher)
        return watcher

    yield open_
    for watcher in opened:
        watcher.close()


def test_home_posts_notifications_and_messages_share_one_stream(http, watch):
    reader, author = sign_up(http, "ew"), sign_up(http, "ew")
    follow(http, reader, author)
    own = post(http, reader, "like me")
    stream = watch(reader.token)
    assert stream.status == 200

    theirs = post(http, author, "fresh from the author")
    home = stream.next_of("home")
    assert home is not None and home["post"]["id"] == theirs["id"]
    assert home["post"]["text"] == "fresh from the author"

    r = http.post(f"/v1/posts/{own['id']}:like", headers=author.auth)
    assert r.status_code == 200, r.text
    notice = stream.next_of("notifications")
    assert notice is not None
    assert notice["notification"]["postId"] == own["id"] and author.id in notice["notification"]["actorIds"]
    assert notice["notification"]["text"]

    r = http.post("/v1/conversations", json={"participantIds": [reader.id]}, headers=author.auth)
    assert r.status_code == 200, r.text
    cid = r.json()["id"]
    body = {"text": "psst", "clientMessageId": f"ew-{cid}"}
    r = http.post(f"/v1/conversations/{cid}/messages", json=body, headers=author.auth)
    assert r.status_code == 200, r.text
    message = stream.next_of("conversations")
    assert message is not None
    assert message["message"]["conversationId"] == cid and message["message"]["text"] == "psst"


def test_other_peoples_events_stay_off_the_stream(http, watch):
    reader, stranger, friend = sign_up(http, "ew"), sign_up(http, "ew"), sign_up(http, "ew")
    follow(http, reader, friend)
    stream = watch(reader.token)
    post(http, stranger, "not for the reader")
    mine = post(http, friend, "for the reader")
    home = stream.next_of("home")
    assert home is not None and home["post"]["id"] == mine["id"]
    # The stranger's post never came before it or after it.
    assert stream.next_of("home", timeout=1.0) is None


def test_the_stream_needs_a_token(http, watch):
    stream = watch("")
    assert stream.status == 401, stream.body
    stream = watch("not-a-token")
    assert stream.status == 401, stream.body


def test_the_stream_ends_when_its_access_token_expires(http, watch):
    account = sign_up(http, "ew")
    lifetime = 3
    # Minted with the devstack's signing key, as identity would, but short-lived.
    token, expires_at = TokenIssuer.from_settings(ttl_seconds=lifetime).issue(int(account.id), account.username)
    stream = watch(token)
    assert stream.status == 200
    stream._thread.join(lifetime + 10)
    assert not stream._thread.is_alive(), "the stream outlived its token"
    # The expiry is whole seconds from a truncated `now`: compare with it, not with the lifetime.
    assert time.time() >= expires_at - 0.1, "the stream ended before its token expired"
    # Until then only keep-alives came: no event of any kind.
    kinds = {
        kind
        for event in list(stream.events.queue)
        for kind in event
        if kind in ("home", "notifications", "conversations")
    }
    assert not kinds
