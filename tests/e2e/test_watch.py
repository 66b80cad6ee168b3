"""GET /v1/timelines/home:watch: new posts pushed live, one JSON object per line."""

from __future__ import annotations

import json
import queue
import threading
import time

import httpx
import pytest

from tests.conftest import FANOUT_THRESHOLD
from tests.e2e.edge import follow, post, sign_up

pytestmark = pytest.mark.e2e


class Watcher:
    """Reads a watch stream on a thread; posts arrive on `self.posts`."""

    def __init__(self, edge_url: str, token: str) -> None:
        self.posts: queue.Queue = queue.Queue()
        self.status: int | None = None
        self._ready = threading.Event()
        self._client = httpx.Client(base_url=edge_url, timeout=httpx.Timeout(10.0, read=None))
        self._thread = threading.Thread(target=self._run, args=(token,), daemon=True)
        self._thread.start()
        # The server sends headers only once it is subscribed, so from here
        # on nothing published can be missed.
        assert self._ready.wait(10), "watch stream did not open"

    def _run(self, token: str) -> None:
        try:
            with self._client.stream(
                "GET", "/v1/timelines/home:watch", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                self.status = r.status_code
                self._ready.set()
                for line in r.iter_lines():
                    if line.strip():
                        event = json.loads(line)
                        if "post" in event:
                            self.posts.put(event["post"])
        except httpx.HTTPError:
            pass
        finally:
            self._ready.set()

    def next_ids(self, count: int, timeout: float) -> list[str]:
        ids, deadline = [], time.monotonic() + timeout
        while len(ids) < count:
            try:
                ids.append(self.posts.get(timeout=max(0.01, deadline - time.monotonic()))["id"])
            except queue.Empty:
                break
        return ids

    def close(self) -> None:
        self._client.close()


@pytest.fixture
def watch(edge_url):
    opened: list[Watcher] = []

    def open_(account) -> Watcher:
        watcher = Watcher(edge_url, account.token)
        opened.append(watcher)
        return watcher

    yield open_
    for watcher in opened:
        watcher.close()


def test_followed_post_is_pushed_live_and_strangers_are_not(http, watch):
    reader, author, stranger = sign_up(http, "w"), sign_up(http, "w"), sign_up(http, "w")
    follow(http, reader, author)
    stream = watch(reader)
    assert stream.status == 200

    ignored = post(http, stranger, "not for you")
    pushed = post(http, author, "live!")
    received = stream.next_ids(1, timeout=3.0)
    assert received == [pushed["id"]], f"expected the followed post live, got {received}"
    assert ignored["id"] not in received


def test_celebrity_and_own_posts_are_pushed_too(http, watch):
    celebrity = sign_up(http, "c")
    fans = [sign_up(http, "f") for _ in range(FANOUT_THRESHOLD + 1)]
    for fan in fans:
        follow(http, fan, celebrity)
    stream = watch(fans[0])

    from_celebrity = post(http, celebrity, "merged at read time, pushed live")
    own = post(http, fans[0], "my own post")
    assert sorted(stream.next_ids(2, timeout=3.0)) == sorted([from_celebrity["id"], own["id"]])


def test_watch_needs_a_token(http):
    r = http.get("/v1/timelines/home:watch")
    assert r.status_code == 401
