"""Profile change announcements over the devstack's real Redis pub/sub."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as redis

from services.kit.peers import profiles

from services.kit.stores import redis_client
from services.kit.settings import load_settings
from tests import redis_clients


@pytest.fixture
async def client():
    c = redis_client.client(load_settings())
    yield c
    await c.aclose()


class Heard:
    def __init__(self) -> None:
        self.changed: list[int] = []
        self.gaps = 0
        self.subscribed = asyncio.Event()

    def on_change(self, user_id: int) -> None:
        self.changed.append(user_id)

    def on_gap(self) -> None:
        self.gaps += 1
        self.subscribed.set()


async def _until(predicate, timeout: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_every_listener_hears_each_announcement_and_a_gap_when_it_subscribes(client):
    first, second = Heard(), Heard()
    tasks = [asyncio.create_task(profiles.follow(client, h.on_change, h.on_gap)) for h in (first, second)]
    try:
        await asyncio.wait_for(asyncio.gather(first.subscribed.wait(), second.subscribed.wait()), 5)
        user = random.randrange(1, 2**62)
        await profiles.announce(client, user)
        assert await _until(lambda: user in first.changed and user in second.changed)
        assert first.gaps == second.gaps == 1
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _connection_ids(client: redis.Redis, name: str) -> list[int]:
    listed = (await client.execute_command("CLIENT", "LIST", "TYPE", "pubsub")).decode()
    fields = (dict(kv.split("=", 1) for kv in line.split() if "=" in kv) for line in listed.splitlines())
    return [int(f["id"]) for f in fields if f.get("name") == name]


async def test_a_listener_that_lost_its_connection_reports_a_gap_and_hears_later_announcements(client):
    # The listener's connections carry a name of their own, so only they are
    # killed (the services' own subscriptions on this Redis are left alone).
    name = f"profiles-test-{random.randrange(10**9)}"
    listener = redis_clients.async_from_url(load_settings().redis_url, client_name=name)
    heard = Heard()
    task = asyncio.create_task(profiles.follow(listener, heard.on_change, heard.on_gap, retry_seconds=0.1))
    try:
        await asyncio.wait_for(heard.subscribed.wait(), 5)
        [connection] = await _connection_ids(client, name)
        await client.execute_command("CLIENT", "KILL", "ID", connection)  # as a Redis restart would
        assert await _until(lambda: heard.gaps >= 2), "no resubscription after the connection was killed"
        user = random.randrange(1, 2**62)
        await profiles.announce(client, user)
        assert await _until(lambda: user in heard.changed)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await listener.aclose()


async def test_an_unreadable_announcement_is_skipped(client):
    heard = Heard()
    task = asyncio.create_task(profiles.follow(client, heard.on_change, heard.on_gap))
    try:
        await asyncio.wait_for(heard.subscribed.wait(), 5)
        await client.publish(profiles.CHANNEL, b"not-a-number")
        user = random.randrange(1, 2**62)
        await profiles.announce(client, user)
        assert await _until(lambda: user in heard.changed)
        assert heard.changed == [user]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_announcement_to_an_unreachable_redis_is_logged_not_raised(caplog):
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    try:
        await profiles.announce(dead, 42)
    finally:
        await dead.aclose()
    assert "profile change not announced" in caplog.text
