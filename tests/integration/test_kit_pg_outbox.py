"""The kit's PostgreSQL outbox against the devstack's PostgreSQL. The
producer here is a stand-in that records or refuses what it is given: what
is under test is the outbox's transaction (Kafka delivery itself is covered
end to end by the services' event tests)."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from services.kit.events import pg_outbox
from services.kit.settings import load
from services.orders.settings import OrdersSettings


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.refuse = False

    async def send_all(self, records) -> None:
        if self.refuse:
            raise RuntimeError("kafka is away")
        self.sent.extend(records)


@pytest.fixture
async def outbox():
    engine = create_async_engine(load(OrdersSettings).pg_dsn, pool_size=2, max_overflow=0)
    schema = f"outbox_test_{secrets.token_hex(4)}"
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        await conn.execute(sa.text(pg_outbox.create_table_sql(schema)))
    producer = RecordingProducer()
    yield engine, schema, producer, pg_outbox.PgOutbox(engine, schema, producer)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    await engine.dispose()


async def _add(engine, box, event_ids) -> None:
    async with engine.begin() as conn:
        for event_id in event_ids:
            await box.add(conn, event_id, "topic", str(event_id).encode(), b"payload")


async def _left(engine, schema) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.text(f'SELECT event_id FROM "{schema}".outbox ORDER BY 1'))).scalars())


async def test_events_are_published_in_id_order_and_then_gone(outbox):
    engine, schema, producer, box = outbox
    await _add(engine, box, [3, 1, 2])
    assert await box.relay_once() == 3
    assert [key for _, key, _ in producer.sent] == [b"1", b"2", b"3"]
    assert await _left(engine, schema) == []


async def test_events_stay_when_publishing_fails(outbox):
    engine, schema, producer, box = outbox
    await _add(engine, box, [5, 6])
    producer.refuse = True
    with pytest.raises(RuntimeError):
        await box.relay_once()
    assert await _left(engine, schema) == [5, 6]
    producer.refuse = False
    assert await box.relay_once() == 2
    assert await _left(engine, schema) == []


async def test_a_look_first_publishes_what_is_there_and_nothing_when_empty(outbox):
    engine, schema, producer, box = outbox
    assert await box.relay_once(look_first=True) == 0
    await _add(engine, box, [9])
    assert await box.relay_once(look_first=True) == 1
    assert producer.sent == [("topic", b"9", b"payload")]
