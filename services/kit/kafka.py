"""Kafka producer and consumer loop on kafka-python, kept off the event loop.

The consumer commits offsets only after the async handler has finished its
effect, so a crash replays (at-least-once); handlers must be idempotent.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import Gauge, Histogram

log = logging.getLogger(__name__)

# Topic name -> partition count. Keys: author id (posts), follower id (graph),
# post id (engagement).
POSTS_TOPIC = "posts.events.v1"
GRAPH_TOPIC = "graph.events.v1"
ENGAGEMENT_TOPIC = "engagement.events.v1"
# Commerce: product id (catalog), buyer id (orders).
CATALOG_TOPIC = "catalog.events.v1"
ORDERS_TOPIC = "orders.events.v1"
TOPICS = {POSTS_TOPIC: 6, GRAPH_TOPIC: 6, ENGAGEMENT_TOPIC: 6, CATALOG_TOPIC: 6, ORDERS_TOPIC: 6}

LAG_REPORT_SECONDS = 5.0
# How long a stopping loop waits for its consumer to leave the group.
CLOSE_WAIT_SECONDS = 5.0

CONSUMER_LAG = Gauge("aviary_kafka_consumer_lag", "Records behind the log end", ["group", "topic", "partition"])
HANDLE_SECONDS = Histogram("aviary_kafka_handle_seconds", "Time to apply one record", ["group", "topic"])


class Producer:
    """Async facade over KafkaProducer (acks=all, idempotent, ordered per key)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._producer: KafkaProducer | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-producer")

    def _ensure(self) -> KafkaProducer:
        # Created lazily: the constructor fails while Kafka is unreachable, and
        # callers (outbox relays) simply retry later.
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self._bootstrap,
                acks="all",
                linger_ms=2,
                retries=5,
                max_in_flight_requests_per_connection=1,
                request_timeout_ms=10_000,
                max_block_ms=10_000,
            )
        return self._producer

    def _send_all(self, records: list[tuple[str, bytes, bytes]]) -> None:
        producer = self._ensure()
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in records]
        producer.flush(timeout=15)
        for fut in futures:
            fut.get(timeout=0)  # raises if that record failed

    async def send_all(self, records: list[tuple[str, bytes, bytes]]) -> None:
        """Sends every record and waits for all acks; raises if any failed."""
        if records:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._send_all, records)

    async def close(self) -> None:
        if self._producer is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._producer.close, 5)


Handler = Callable[[str, bytes | None, bytes], Awaitable[None]]


class ConsumerLoop:
    """Polls in a thread; applies records in order on the event loop; commits after."""

    def __init__(self, bootstrap: str, group: str, topics: list[str], handler: Handler,
                 *, auto_offset_reset: str = "earliest", parallel_topics: frozenset[str] = frozenset()) -> None:
        self.bootstrap = bootstrap
        self.group = group
        # Where a group with no committed offset starts: "earliest" for work
        # queues (nothing skipped), "latest" for broadcast-style listeners.
        self.auto_offset_reset = auto_offset_reset
        self.topics = topics
        # A polled batch holding only partitions of these topics has its
        # partitions applied side by side (each one's records still in order,
        # so per-key order holds). A batch with any other partition is applied
        # one partition at a time, so those records never overlap anything.
        self.parallel_topics = parallel_topics
        self.handler = handler
        self._stop = threading.Event()
        self._next_lag_report = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        thread_done = loop.create_future()
        # A stop flag of this run's own: after a crash (e.g. a commit refused
        # while Kafka restarts) the server's supervisor calls run() again, and
        # the previous run's flag is set by then (reusing it would end every
        # later run at once); a previous thread still winding down keeps
        # seeing its own, set, flag.
        stop = self._stop = threading.Event()

        def target() -> None:
            try:
                self._poll_forever(loop, stop)
                loop.call_soon_threadsafe(_resolve, thread_done, None)
            except BaseException as exc:  # surfaced to the supervisor
                loop.call_soon_threadsafe(_resolve, thread_done, exc)

        threading.Thread(target=target, name=f"consumer-{self.group}", daemon=True).start()
        try:
            # Shielded: cancelling this run must not cancel the thread's future,
            # which the wait below still needs.
            await asyncio.shield(thread_done)
        finally:
            stop.set()
            if not thread_done.done():
                # On shutdown, give the thread the moment it needs to notice the
                # flag and close its consumer: close() leaves the group, so the
                # other members take over this member's partitions at once. A
                # daemon thread cut off by the process exiting leaves nothing,
                # and the partitions sit unconsumed until the session times out.
                await asyncio.wait({thread_done}, timeout=CLOSE_WAIT_SECONDS)

    def _poll_forever(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        consumer = self._connect(stop)
        try:
            while not stop.is_set():
                batches = consumer.poll(timeout_ms=200, max_records=200)
                if time.monotonic() >= self._next_lag_report:
                    # end_offsets is a broker round trip: report every few seconds, not per
                    # batch; and on idle polls too, or a caught-up consumer keeps its last lag.
                    self._report_lag(consumer)
                    self._next_lag_report = time.monotonic() + LAG_REPORT_SECONDS
                if not batches:
                    continue
                if len(batches) > 1 and all(tp.topic in self.parallel_topics for tp in batches):
                    self._apply_partitions(loop, batches, stop)
                    consumer.commit({tp: OffsetAndMetadata(records[-1].offset + 1, "", -1)
                                     for tp, records in batches.items()})
                    continue
                for tp, records in batches.items():
                    self._apply_partitions(loop, {tp: records}, stop)
                    consumer.commit({tp: OffsetAndMetadata(records[-1].offset + 1, "", -1)})
        finally:
            consumer.close(autocommit=False)

    def _connect(self, stop: threading.Event) -> KafkaConsumer:
        while not stop.is_set():
            try:
                consumer = KafkaConsumer(
                    bootstrap_servers=self.bootstrap,
                    group_id=self.group,
                    enable_auto_commit=False,
                    auto_offset_reset=self.auto_offset_reset,
                    max_poll_interval_ms=600_000,
                    session_timeout_ms=10_000,
                    heartbeat_interval_ms=3_000,
                )
                # Join only once every topic's partitions are known: a member
                # that joins before then is assigned nothing, and was seen to
                # sit in the loop with no partitions while the group stayed empty.
                unknown = [t for t in self.topics if not consumer.partitions_for_topic(t)]
                if unknown:
                    consumer.close(autocommit=False)
                    log.warning("topics have no partition metadata yet; retrying", extra={"topics": unknown})
                    time.sleep(2)
                    continue
                consumer.subscribe(self.topics)
                return consumer
            except Exception:
                log.warning("kafka unreachable; retrying", exc_info=True)
                time.sleep(2)
        raise RuntimeError("stopped")

    def _apply_partitions(self, loop: asyncio.AbstractEventLoop, batches: dict, stop: threading.Event) -> None:
        """Applies each partition's records in order, the partitions side by
        side, on the event loop; returns when all are applied."""
        async def apply_all() -> None:
            await asyncio.gather(*(self._apply_in_order(tp.topic, records, stop)
                                   for tp, records in batches.items()))

        asyncio.run_coroutine_threadsafe(apply_all(), loop).result()

    async def _apply_in_order(self, topic: str, records: list, stop: threading.Event) -> None:
        for record in records:
            await self._apply(topic, record, stop)

    async def _apply(self, topic: str, record, stop: threading.Event) -> None:
        """Applies one record, retrying until it succeeds: never skipped silently."""
        delay = 0.2
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await self.handler(topic, record.key, record.value)
                HANDLE_SECONDS.labels(self.group, topic).observe(time.perf_counter() - started)
                return
            except PoisonRecord as exc:
                log.error("skipping unreadable record", extra={"topic": topic, "offset": record.offset, "why": str(exc)})
                return
            except Exception:
                log.warning("handler failed; retrying", extra={"topic": topic, "offset": record.offset}, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise RuntimeError("stopped before the record was applied")

    def _report_lag(self, consumer: KafkaConsumer) -> None:
        try:
            assigned = consumer.assignment()
            ends = consumer.end_offsets(list(assigned))
            for tp in assigned:
                position = consumer.position(tp)
                CONSUMER_LAG.labels(self.group, tp.topic, tp.partition).set(max(0, ends.get(tp, position) - position))
        except Exception:
            pass


class PoisonRecord(Exception):
    """Raised by a handler for a record that can never be applied (undecodable)."""


def _resolve(fut: asyncio.Future, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)


def ensure_topics(bootstrap: str, topics: dict[str, int] = TOPICS) -> None:
    """Creates missing topics (replication 1 locally). Blocking; for tools."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: fine
    finally:
        admin.close()


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
            log.warning("could not ensure the Kafka topic; the relay keeps retrying",
                        extra={"topic": topic, "error": repr(exc)})

    creating = asyncio.create_task(ensure())
    try:
        await relay()
    finally:
        creating.cancel()


__all__ = ["Producer", "ConsumerLoop", "PoisonRecord", "ensure_topics", "ensure_topics_async", "relay_ensuring_topic", "TopicPartition", "TOPICS", "POSTS_TOPIC", "GRAPH_TOPIC", "ENGAGEMENT_TOPIC"]
