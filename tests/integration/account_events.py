"""Account events as identity publishes them (identity.events.v1), for tests of
the services that consume them, and a test's handle on the gone-accounts set."""

from __future__ import annotations

import asyncio
import secrets
import time

from google.protobuf.timestamp_pb2 import Timestamp

from aviary.events.v1 import events_pb2
from services.kit.events.kafka import IDENTITY_TOPIC, Producer
from services.kit.peers import accounts
from services.kit.settings import load_settings
from tests import redis_clients


def account_deleted(user_id: int | str, username: str = "", role: str = "USER") -> events_pb2.AccountEvent:
    occur = Timestamp()
    occur.GetCurrentTime()
    # Time-ordered like the kit's ids, unique enough for a test run.
    event_id = (int(time.time() * 1000) << 22) | secrets.randbits(22)
    return events_pb2.AccountEvent(
        event_id=event_id,
        occur_time=occur,
        deleted=events_pb2.AccountDeleted(user_id=int(user_id), username=username, role=role),
    )


def publish(event: events_pb2.AccountEvent, key: int | str | None = None) -> None:
    """Sends one AccountEvent, keyed by its user id as identity keys them
    (or by `key`, to put it behind another user's events), and waits for the ack."""
    kind = event.WhichOneof("kind")
    assert kind is not None
    user_id = key if key is not None else getattr(event, kind).user_id

    async def send() -> None:
        producer = Producer(load_settings().kafka_bootstrap)
        try:
            await producer.send_all([(IDENTITY_TOPIC, str(user_id).encode(), event.SerializeToString())])
        finally:
            await producer.close()

    asyncio.run(send())


def mark_gone(user_id: int | str) -> None:
    """What identity does when it suspends or deletes an account."""
    client = redis_clients.from_url(load_settings().redis_url)
    try:
        client.sadd(accounts.GONE_KEY, str(user_id))
    finally:
        client.close()


def mark_back(user_id: int | str) -> None:
    client = redis_clients.from_url(load_settings().redis_url)
    try:
        client.srem(accounts.GONE_KEY, str(user_id))
    finally:
        client.close()


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.2):
    """The predicate's first truthy answer within the timeout; fails the test otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        answer = predicate()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout} s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)
