"""Transactional outbox on PostgreSQL, for the services that own a schema.

A service inserts the event in the same transaction as the state change it
describes (`add(conn, ...)`), so a committed change always has its event. The
relay deletes a batch of rows (FOR UPDATE SKIP LOCKED), publishes them to
Kafka, and commits the delete only after Kafka acknowledged them: a failure or
a crash before the commit leaves them to be published again (at-least-once;
consumers deduplicate on the event id), and replicas never publish the same
row at the same time.

The table lives in the service's schema; its migration creates it with
`create_table_sql(schema)`.
"""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit.events.kafka import Producer
from services.kit.stores import pg

log = logging.getLogger(__name__)

BATCH = 200
IDLE_POLL_SECONDS = 1.0
ERROR_BACKOFF_SECONDS = 2.0

PUBLISHED = Counter("aviary_pg_outbox_published_total", "Events the PostgreSQL outbox published", ["schema"])
DELAY = Histogram(
    "aviary_pg_outbox_publish_delay_seconds",
    "Time from event commit to Kafka ack",
    ["schema"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def create_table_sql(schema: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS "{schema}".outbox (
        event_id bigint PRIMARY KEY,
        topic text NOT NULL,
        key bytea NOT NULL,
        payload bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )"""


class PgOutbox:
    def __init__(self, engine: AsyncEngine, schema: str, producer: Producer) -> None:
        self._engine = engine
        self._schema = schema
        self._producer = producer
        self._wake = asyncio.Event()
        self._insert = sa.text(
            f'INSERT INTO "{schema}".outbox (event_id, topic, key, payload) VALUES (:event_id, :topic, :key, :payload)'
        )
        # Taken and deleted in one statement, in the transaction that holds
        # the rows until Kafka acknowledged them: a failure rolls the delete back.
        self._take = sa.text(
            f"""DELETE FROM "{schema}".outbox WHERE event_id IN (
                    SELECT event_id FROM "{schema}".outbox ORDER BY event_id LIMIT {BATCH} FOR UPDATE SKIP LOCKED)
                RETURNING event_id, topic, key, payload, extract(epoch FROM clock_timestamp() - created_at) AS age"""
        )
        self._any = sa.text(f'SELECT EXISTS (SELECT 1 FROM "{schema}".outbox)')
        self._autocommit = pg.autocommit(engine)

    async def add(self, conn: AsyncConnection, event_id: int, topic: str, key: bytes, payload: bytes) -> None:
        """Stores an event in the caller's open transaction."""
        await conn.execute(self._insert, {"event_id": event_id, "topic": topic, "key": key, "payload": payload})

    def notify(self) -> None:
        """Call after the transaction that added events committed: relays them now."""
        self._wake.set()

    async def relay_forever(self) -> None:
        expected = True  # whatever a previous run left
        while True:
            try:
                published = await self.relay_once(look_first=not expected)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka or PostgreSQL away: rows stay, try again
                log.warning("outbox relay (%s) failed, retrying: %s", self._schema, exc)
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)
                expected = True
                continue
            expected = published >= BATCH or await self._idle()

    async def _idle(self) -> bool:
        """Waits for notify() or the poll period; True when notified."""
        try:
            await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)
        except asyncio.TimeoutError:
            return False
        finally:
            self._wake.clear()
        return True

    async def relay_once(self, *, look_first: bool = False) -> int:
        """Publishes one batch of stored events; returns how many. With
        `look_first` (a poll nothing announced, most often over an empty
        table), a one-statement look decides whether to open a transaction."""
        if look_first and not await self._pending():
            return 0
        async with self._engine.begin() as conn:
            rows = sorted((await conn.execute(self._take)).all(), key=lambda r: r.event_id)
            if not rows:
                return 0
            await self._producer.send_all([(r.topic, bytes(r.key), bytes(r.payload)) for r in rows])
        PUBLISHED.labels(self._schema).inc(len(rows))
        for r in rows:
            DELAY.labels(self._schema).observe(float(r.age))
        return len(rows)

    async def _pending(self) -> bool:
        async with self._autocommit.connect() as conn:
            return bool((await conn.execute(self._any)).scalar_one())
