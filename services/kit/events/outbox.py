"""Transactional outbox on Cassandra.

A service writes its state change and the event describing it in one LOGGED
batch (all or nothing, via the batchlog), so an acknowledged change always has
its event stored. The relay then publishes to Kafka and deletes each outbox row
only after Kafka acknowledged it: events survive a Kafka outage or a crash
(at-least-once; consumers are idempotent). The deletes are gathered for up to
DELETE_INTERVAL and go out one statement per shard; a crash before them only
means the sweep publishes those events again.

Two ways out of the table:
- the fast path: `commit(batch)` hands the committed events to this process's
  relay, which publishes them at once, in commit order, without reading the
  table back;
- the sweep: every few seconds the relay reads rows older than a few seconds
  (left by a crash, by another replica, or by a publish that failed) and
  publishes them. It reads each shard from a moving floor so it does not wade
  through the tombstones of rows already relayed; a full pass from the start
  runs now and then to catch rows written unusually late.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement
from prometheus_client import Counter, Gauge, Histogram

from services.kit.stores import cql
from services.kit import settings, tracing
from services.kit.server.ids import min_id_at
from services.kit.events.kafka import Producer

log = logging.getLogger(__name__)

SHARDS = 8  # outbox partitions; spreads writes and keeps each partition small
SWEEP_LIMIT = 200
PUBLISH_BATCH = 500
# Published events' rows are deleted this often (well under the sweep's
# minimum age, so the sweep never finds them), at most DELETE_BATCH per statement.
DELETE_INTERVAL = 1.0
DELETE_BATCH = 100

OUTBOX_PENDING = Gauge("aviary_outbox_queued", "Committed events waiting for the fast path", ["keyspace"])
OUTBOX_PUBLISHED = Counter("aviary_outbox_published_total", "Events published to Kafka", ["keyspace", "path"])
OUTBOX_DELAY = Histogram(
    "aviary_outbox_publish_delay_seconds",
    "Time from event commit to Kafka ack",
    ["keyspace", "path"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def schema(keyspace: str) -> list[str]:
    # Short gc_grace: a resurrected outbox row only means one duplicate event.
    return [
        f"""CREATE TABLE IF NOT EXISTS {keyspace}.outbox (
            shard int,
            event_id bigint,
            topic text,
            key blob,
            payload blob,
            written_at timestamp,
            PRIMARY KEY (shard, event_id)
        ) WITH CLUSTERING ORDER BY (event_id ASC) AND gc_grace_seconds = 600"""
    ]


@dataclass(frozen=True)
class OutboxEvent:
    event_id: int
    topic: str
    key: bytes
    payload: bytes
    written_at: float  # unix seconds
    # Request id and trace context of the request that wrote it, as Kafka
    # headers: carried by the fast path only (the table does not keep them).
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def shard(self) -> int:
        return self.event_id % SHARDS


@dataclass
class OutboxBatch:
    """A LOGGED batch of state changes plus the events staged beside them."""

    statement: BatchStatement = field(default_factory=lambda: BatchStatement(batch_type=BatchType.LOGGED))
    events: list[OutboxEvent] = field(default_factory=list)

    def add(self, statement: PreparedStatement, parameters: tuple) -> None:
        """A state change, written all or nothing with the batch's events."""
        self.statement.add(statement, parameters)


class Outbox:
    def __init__(
        self,
        session: Session,
        keyspace: str,
        producer: Producer,
        before_publish: Callable[[list[OutboxEvent]], Awaitable[None]] | None = None,
    ) -> None:
        self.session = session
        self.keyspace = keyspace
        self.producer = producer
        # Runs before every publish of these events (and again if that
        # publish is retried); a failure leaves them unpublished, to retry.
        self.before_publish = before_publish
        self._wake = asyncio.Event()
        self._queue: deque[OutboxEvent] = deque()
        self._floors = [0] * SHARDS
        # Shard -> ids of published events whose rows are still to delete.
        self._published: dict[int, list[int]] = {}
        self._insert: PreparedStatement | None = None
        self._select: PreparedStatement | None = None
        self._delete: PreparedStatement | None = None
        # Rows younger than this belong to a live fast path; the sweep leaves them.
        knobs = settings.current()
        self.sweep_min_age = knobs.outbox_sweep_min_age_seconds
        self.sweep_interval = knobs.outbox_sweep_interval_seconds
        # How late (after its id was minted) a row may still be committed and
        # be found by the floor-based sweep; later rows wait for a full pass.
        self.late_margin = knobs.outbox_late_margin_seconds
        self.full_sweep_interval = knobs.outbox_full_sweep_seconds

    async def prepare(self) -> None:
        ks = self.keyspace
        self._insert = await cql.prepare(
            self.session,
            f"INSERT INTO {ks}.outbox (shard, event_id, topic, key, payload, written_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        self._select = await cql.prepare(
            self.session,
            f"SELECT event_id, topic, key, payload, written_at FROM {ks}.outbox "
            f"WHERE shard = ? AND event_id >= ? AND event_id < ? LIMIT {SWEEP_LIMIT}",
        )
        self._delete = await cql.prepare(self.session, f"DELETE FROM {ks}.outbox WHERE shard = ? AND event_id IN ?")

    # -- writing ----------------------------------------------------------------

    def add(self, batch: OutboxBatch, event_id: int, topic: str, key: bytes, payload: bytes) -> None:
        """Adds the event to the caller's batch, next to the state change.

        Execute that batch with `commit`, so the relay learns of the event."""
        assert self._insert is not None, "call prepare() first"
        now = time.time()
        batch.add(self._insert, (event_id % SHARDS, event_id, topic, key, payload, _utc(now)))
        batch.events.append(OutboxEvent(event_id, topic, key, payload, now, tuple(tracing.outgoing_headers())))

    async def commit(self, batch: OutboxBatch) -> None:
        """Executes the batch; once it is durable, queues its events for publishing."""
        await cql.execute(self.session, batch.statement)
        self._queue.extend(batch.events)
        OUTBOX_PENDING.labels(self.keyspace).set(len(self._queue))
        self._wake.set()

    def notify(self) -> None:
        """Wakes the relay (commit already does; kept for callers that batch work)."""
        self._wake.set()

    # -- relaying -----------------------------------------------------------------

    async def relay_forever(self) -> None:
        next_sweep = 0.0
        next_full_sweep = time.monotonic() + self.full_sweep_interval
        next_delete = time.monotonic() + DELETE_INTERVAL
        while True:
            try:
                await self._drain_queue()
                if time.monotonic() >= next_delete or time.monotonic() >= next_sweep:
                    await self._delete_published()
                    next_delete = time.monotonic() + DELETE_INTERVAL
                if time.monotonic() >= next_sweep:
                    if time.monotonic() >= next_full_sweep:
                        self._floors = [0] * SHARDS
                        next_full_sweep = time.monotonic() + self.full_sweep_interval
                    await self.sweep()
                    next_sweep = time.monotonic() + self.sweep_interval
            except asyncio.CancelledError:
                raise
            except Exception:
                # Kafka or Cassandra is down: nothing is dropped (queued events
                # stay queued, rows stay stored); try again shortly.
                log.warning("outbox relay failed; retrying", extra={"keyspace": self.keyspace}, exc_info=True)
                await asyncio.sleep(1.0)
                continue
            if not self._queue:
                self._wake.clear()
                wake_at = min(next_sweep, next_delete) if self._published else next_sweep
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.05, wake_at - time.monotonic()))
                except asyncio.TimeoutError:
                    pass

    async def _drain_queue(self) -> None:
        while self._queue:
            chunk = [self._queue[i] for i in range(min(PUBLISH_BATCH, len(self._queue)))]
            await self._publish(chunk, "fast")
            for _ in chunk:
                self._queue.popleft()
            OUTBOX_PENDING.labels(self.keyspace).set(len(self._queue))

    async def sweep(self) -> int:
        """Publishes stored events older than sweep_min_age; returns how many."""
        now_ms = int(time.time() * 1000)
        upper = min_id_at(now_ms - int(self.sweep_min_age * 1000))
        published = 0
        for shard in range(SHARDS):
            while True:
                rows = await cql.execute(self.session, self._select, (shard, self._floors[shard], upper))
                if rows:
                    events = [
                        OutboxEvent(
                            r.event_id,
                            r.topic,
                            r.key,
                            r.payload,
                            r.written_at.replace(tzinfo=datetime.timezone.utc).timestamp()
                            if r.written_at
                            else time.time(),
                        )
                        for r in rows
                    ]
                    await self._publish(events, "sweep")
                    published += len(events)
                if len(rows) < SWEEP_LIMIT:
                    break
            # Everything below `upper` is relayed, except rows committed more
            # than late_margin after their id was minted: keep that margin.
            floor = min_id_at(now_ms - int((self.sweep_min_age + self.late_margin) * 1000))
            self._floors[shard] = max(self._floors[shard], floor)
        if published:
            log.info("outbox sweep published leftovers", extra={"keyspace": self.keyspace, "events": published})
        return published

    async def _publish(self, events: list[OutboxEvent], path: str) -> None:
        if self.before_publish is not None:
            await self.before_publish(events)
        # In commit order; the producer keeps one request in flight, so Kafka
        # keeps per-key order for what one relay publishes.
        await self.producer.send_all([(e.topic, e.key, e.payload, e.headers) for e in events])
        now = time.time()
        for e in events:
            OUTBOX_DELAY.labels(self.keyspace, path).observe(max(0.0, now - e.written_at))
        OUTBOX_PUBLISHED.labels(self.keyspace, path).inc(len(events))
        for e in events:
            self._published.setdefault(e.shard, []).append(e.event_id)

    async def _delete_published(self) -> None:
        """Deletes the rows of the events published so far, one statement per
        shard (and DELETE_BATCH ids); those that fail stay for the next round."""
        published, self._published = self._published, {}
        groups = [
            (shard, ids[i : i + DELETE_BATCH])
            for shard, ids in published.items()
            for i in range(0, len(ids), DELETE_BATCH)
        ]
        outcomes = await asyncio.gather(
            *(cql.execute(self.session, self._delete, (shard, ids)) for shard, ids in groups), return_exceptions=True
        )
        failures = [(group, o) for group, o in zip(groups, outcomes) if isinstance(o, BaseException)]
        for (shard, ids), _ in failures:
            self._published.setdefault(shard, []).extend(ids)
        if failures:
            raise failures[0][1]


def _utc(unix_seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix_seconds, datetime.timezone.utc)
