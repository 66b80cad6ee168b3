"""The mixed home feed when recommendations are slow or down: posts alone, on
time. It pauses and stops the devstack's recommendations service, so it runs
alone (marked serial); the rest of the feed's tests are test_feed.py's."""

from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.edge import follow, home_ids, sign_up, wait_until
from tests.e2e.fanout_support import devstack, signal_service
from tests.e2e.feed_support import feed_page, item_key, open_shop, reader_of

pytestmark = pytest.mark.serial


@pytest.fixture(scope="module")
def shop(http):
    return open_shop(http)


def test_posts_alone_and_on_time_when_recommendations_are_slow_or_down(http, shop):
    author = sign_up(http, "fo")
    slow_reader, ids = reader_of(http, author, posts=6)
    down_reader = sign_up(http, "fr")
    home_ids(http, down_reader)
    follow(http, down_reader, author)
    assert wait_until(lambda: set(ids) <= set(home_ids(http, down_reader)), timeout=15)

    signal_service("recommendations", signal.SIGSTOP)  # hangs: calls time out
    try:
        started = time.monotonic()
        body = feed_page(http, slow_reader, size=20)
        elapsed = time.monotonic() - started
    finally:
        signal_service("recommendations", signal.SIGCONT)
    assert [item_key(i)[0] for i in body["items"]] == ["post"] * 6
    # The signals deadline is 150 ms; the peers' own deadline is 5 s.
    assert elapsed < 2.0, f"the feed waited {elapsed:.2f} s for a hung recommendations service"

    devstack("down", "recommendations")
    try:
        body = feed_page(http, down_reader, size=20)
        assert [item_key(i)[0] for i in body["items"]] == ["post"] * 6
    finally:
        devstack("up", "recommendations")
