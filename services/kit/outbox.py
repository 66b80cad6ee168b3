"""Transactional outbox on Cassandra.

A service writes its state change and the event describing it in one LOGGED
batch (all or nothing, via the batchlog), so an acknowledged change always has
its event stored. The relay publishes stored events to Kafka and deletes each
row only after Kafka acknowledged it: events survive a Kafka outage or a crash
(at-least-once; consumers deduplicate).
"""
from __future__ import annotations

import asyncio
import logging
import time

from cassandra.cluster import Session
from cassandra.query import BatchStatement, PreparedStatement
from prometheus_client import Gauge, Histogram

from services.kit import cql
from services.kit.kafka import Producer

log = logging.getLogger(__name__)

SHARDS = 8  # outbox partitions; spreads writes and keeps each partition small
RELAY_BATCH = 200

OUTBOX_PENDING = Gauge("aviary_outbox_pending", "Events read but not yet published", ["keyspace"])
OUTBOX_AGE = Histogram(
    "aviary_outbox_publish_delay_seconds",
    "Time from event write to Kafka ack",
    ["keyspace"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def schema(keyspace: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {keyspace}.outbox (
            shard int,
            event_id bigint,
            topic text,
            key blob,
            payload blob,
            written_at timestamp,
            PRIMARY KEY (shard, event_id)
        ) WITH CLUSTERING ORDER BY (event_id ASC) AND gc_grace_seconds = 3600"""
    ]


class Outbox:
    def __init__(self, session: Session, keyspace: str, producer: Producer) -> None:
        self.session = session
        self.keyspace = keyspace
        self.producer = producer
        self._wake = asyncio.Event()
        self._insert: PreparedStatement | None = None
        self._select: PreparedStatement | None = None
        self._delete: PreparedStatement | None = None

    async def prepare(self) -> None:
        ks = self.keyspace
        self._insert = await cql.prepare(
            self.session,
            f"INSERT INTO {ks}.outbox (shard, event_id, topic, key, payload, written_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        self._select = await cql.prepare(
            self.session, f"SELECT event_id, topic, key, payload, written_at FROM {ks}.outbox WHERE shard = ? LIMIT {RELAY_BATCH}"
        )
        self._delete = await cql.prepare(self.session, f"DELETE FROM {ks}.outbox WHERE shard = ? AND event_id = ?")

    def add(self, batch: BatchStatement, event_id: int, topic: str, key: bytes, payload: bytes) -> None:
        """Adds the event to the caller's LOGGED batch, next to the state change."""
        assert self._insert is not None, "call prepare() first"
        batch.add(self._insert, (event_id % SHARDS, event_id, topic, key, payload, _now()))

    def notify(self) -> None:
        """Wakes the relay right after a commit, so publishing is not delayed by polling."""
        self._wake.set()

    async def relay_forever(self, idle_seconds: float = 0.5) -> None:
        while True:
            try:
                published = await self.relay_once()
            except Exception:
                log.warning("outbox relay failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            if published == 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=idle_seconds)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()

    async def relay_once(self) -> int:
        """Publishes what is stored now; returns how many events were published."""
        published = 0
        rows_by_shard = await asyncio.gather(*(cql.execute(self.session, self._select, (s,)) for s in range(SHARDS)))
        for shard, rows in enumerate(rows_by_shard):
            if not rows:
                continue
            OUTBOX_PENDING.labels(self.keyspace).set(len(rows))
            # Rows come in event_id order; Kafka keeps per-key order because
            # the producer sends them in that order with one request in flight.
            await self.producer.send_all([(r.topic, r.key, r.payload) for r in rows])
            now = time.time()
            for r in rows:
                if r.written_at is not None:
                    OUTBOX_AGE.labels(self.keyspace).observe(max(0.0, now - r.written_at.timestamp()))
            await asyncio.gather(*(cql.execute(self.session, self._delete, (shard, r.event_id)) for r in rows))
            published += len(rows)
        OUTBOX_PENDING.labels(self.keyspace).set(0)
        return published


def _now():
    import datetime

    return datetime.datetime.now(datetime.timezone.utc)
