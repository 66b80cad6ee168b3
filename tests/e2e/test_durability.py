"""An acknowledged post reaches followers even when Kafka or the fanout worker
is down at the time: the outbox keeps the event, the consumer resumes from its
committed offset. These tests stop and restart real components."""

from __future__ import annotations

import pytest

from tests.e2e.edge import follow, home_ids, post, sign_up, wait_until
from tests.e2e.fanout_support import assert_consumer_groups_rejoin, devstack

pytestmark = [pytest.mark.e2e, pytest.mark.serial]


@pytest.fixture
def restart_after():
    """Whatever a test stops is started again, even when the test fails."""
    stopped: list[str] = []
    yield stopped
    if stopped:
        devstack("up", *stopped)
    # Kafka being back is not the consumers being back: they rejoin their
    # groups some seconds later. Later tests expect live consumers.
    assert_consumer_groups_rejoin(timeout=90.0)


@pytest.mark.parametrize("component", ["kafka", "fanout"])
def test_post_acknowledged_while_component_is_down_still_arrives(http, restart_after, component):
    author, reader = sign_up(http, "d"), sign_up(http, "d")
    follow(http, reader, author)
    warm = post(http, author, "before the outage")
    assert wait_until(lambda: warm["id"] in home_ids(http, reader), timeout=5.0)

    restart_after.append(component)
    devstack("down", component)
    created = post(http, author, f"while {component} is down")  # acknowledged: durable
    assert created["id"] not in home_ids(http, reader)

    devstack("up", component)
    restart_after.clear()
    assert wait_until(lambda: created["id"] in home_ids(http, reader), timeout=60.0, interval=0.25), (
        f"post acknowledged while {component} was down never reached the follower"
    )
    # Delivered once: the timeline holds it exactly once.
    assert home_ids(http, reader).count(created["id"]) == 1
