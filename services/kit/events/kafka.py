"""Kafka topics and the producer (librdkafka through confluent-kafka, kept off the event loop).

Consuming: services.kit.events.consumer.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable, NamedTuple, Sequence, Union

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Producer as _Librdkafka
from confluent_kafka.admin import AdminClient, NewTopic

from services.kit import tracing
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)
# What the producer sends: (topic, key, value), or with (name, bytes) headers.
Record = Union[tuple[str, bytes, bytes], tuple[str, bytes, bytes, Sequence[tuple[str, bytes]]]]
# Topic name -> partition count. Keys: author id (posts), follower id (graph),
# post id (engagement).
POSTS_TOPIC = "posts.events.v1"
GRAPH_TOPIC = "graph.events.v1"
ENGAGEMENT_TOPIC = "engagement.events.v1"
# Commerce: product id (catalog), buyer id (orders).
CATALOG_TOPIC = "catalog.events.v1"
ORDERS_TOPIC = "orders.events.v1"
# Direct messages: conversation id.
CONVERSATIONS_TOPIC = "conversations.events.v1"
# Moderation decisions: reporter id.
MODERATION_TOPIC = "moderation.events.v1"
# Account suspensions, reinstatements and deletions: user id.
IDENTITY_TOPIC = "identity.events.v1"
TOPICS = {
    POSTS_TOPIC: 6,
    GRAPH_TOPIC: 6,
    ENGAGEMENT_TOPIC: 6,
    CATALOG_TOPIC: 6,
    ORDERS_TOPIC: 6,
    CONVERSATIONS_TOPIC: 6,
    MODERATION_TOPIC: 3,
    IDENTITY_TOPIC: 6,
}


# librdkafka's own log lines go through the service's structured logs.
LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
# A record not acknowledged within this long has failed (and is no longer
# retried), so a send's outcome is known when its flush returns.
DELIVERY_TIMEOUT_MS = 10_000
FLUSH_TIMEOUT_SECONDS = 15.0


class TopicPartition(NamedTuple):
    """A partition of a topic (equal to kafka-python's, which tools use)."""

    topic: str
    partition: int


class Producer:
    """Async facade over librdkafka's producer (acks=all, idempotent, ordered per key)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._producer: _Librdkafka | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-producer")

    def _ensure(self) -> _Librdkafka:
        if self._producer is None:
            self._producer = _Librdkafka(
                {
                    "bootstrap.servers": self._bootstrap,
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 2,
                    "delivery.timeout.ms": DELIVERY_TIMEOUT_MS,
                },
                logger=LIBRDKAFKA_LOG,
            )
        return self._producer

    def _send_all(self, records: Sequence[Record]) -> None:
        producer = self._ensure()
        spans, failures = [], []

        def delivered(error: KafkaError | None, _message) -> None:  # called inside flush()
            if error is not None:
                failures.append(error)

        try:
            for topic, key, value, *rest in records:
                span, headers = tracing.start_publish(topic, rest[0] if rest else ())
                spans.append(span)
                sent: list[tuple[str, str | bytes | None]] = list(headers)
                producer.produce(topic, key=key, value=value, headers=sent or None, on_delivery=delivered)
            unsent = producer.flush(FLUSH_TIMEOUT_SECONDS)
            if failures or unsent:
                raise KafkaException(failures[0] if failures else KafkaError(KafkaError._MSG_TIMED_OUT))
        except Exception as exc:
            for span in spans:
                tracing.end_publish(span, exc)
            raise
        for span in spans:
            tracing.end_publish(span)

    async def send_all(self, records: Sequence[Record]) -> None:
        """Sends every record and waits for all acks; raises if any failed.

        A record is (topic, key, value) or (topic, key, value, headers)."""
        if records:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._send_all, records)

    async def close(self) -> None:
        if self._producer is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._producer.flush, 5.0)
            self._producer = None


def ensure_topics(bootstrap: str, topics: dict[str, int] = TOPICS) -> None:
    """Creates missing topics (replication 1 locally). Blocking; for tools."""
    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=LIBRDKAFKA_LOG)
    existing = set(admin.list_topics(timeout=15).topics)
    missing = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
    if not missing:
        return
    for future in admin.create_topics(missing, request_timeout=15).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise  # created concurrently by another process: fine, anything else is not


async def ensure_topics_async(bootstrap: str, topics: dict[str, int] = TOPICS) -> None:
    """ensure_topics off the event loop (the admin client blocks)."""
    await asyncio.get_running_loop().run_in_executor(None, ensure_topics, bootstrap, topics)


async def relay_ensuring_topic(relay: Callable[[], Awaitable[None]], bootstrap: str, topic: str) -> None:
    """Runs an outbox relay forever while, side by side, creating its topic
    if missing. Side by side, not first: with Kafka down at start-up, topic
    creation can hang for half a minute, and the relay must keep trying (and
    publish the moment Kafka is back) meanwhile."""

    async def ensure() -> None:
        try:
            await ensure_topics_async(bootstrap, {topic: TOPICS[topic]})
        except Exception as exc:
            log.warning(
                "could not ensure the Kafka topic; the relay keeps retrying",
                extra={"topic": topic, "error": error_text(exc)},
            )

    creating = asyncio.create_task(ensure())
    try:
        await relay()
    finally:
        creating.cancel()


__all__ = [
    "Producer",
    "ensure_topics",
    "ensure_topics_async",
    "relay_ensuring_topic",
    "TopicPartition",
    "TOPICS",
    "POSTS_TOPIC",
    "GRAPH_TOPIC",
    "ENGAGEMENT_TOPIC",
    "CATALOG_TOPIC",
    "ORDERS_TOPIC",
    "CONVERSATIONS_TOPIC",
    "IDENTITY_TOPIC",
]
