"""The kit's PostgreSQL pool against the devstack's PostgreSQL: a connection
idle long enough is pinged before use and replaced when dead; one used a
moment ago is trusted, and a statement failing on it replaces the pool."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from services.kit.settings import load
from services.kit.stores import pg
from services.orders.settings import OrdersSettings

IDLE_SECONDS = 0.3


@pytest.fixture
async def engine():
    made = create_async_engine(load(OrdersSettings).pg_dsn, pool_size=1, max_overflow=0, pool_timeout=5)
    pg.ping_idle_connections(made, IDLE_SECONDS)
    pings = []
    dialect = made.sync_engine.dialect
    real_ping = dialect.do_ping

    def counted_ping(dbapi_connection):
        pings.append(1)
        return real_ping(dbapi_connection)

    dialect.do_ping = counted_ping
    yield made, pings
    await made.dispose()


async def _backend(engine) -> int:
    async with engine.begin() as conn:
        return (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()


async def _terminate(pid: int) -> None:
    other = create_async_engine(load(OrdersSettings).pg_dsn, pool_size=1)
    try:
        async with other.begin() as conn:
            assert (await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()
    finally:
        await other.dispose()
    await asyncio.sleep(0.1)  # the backend is gone before the next use


async def test_a_connection_just_used_is_not_pinged(engine):
    engine, pings = engine
    first = await _backend(engine)
    assert await _backend(engine) == first
    assert await _backend(engine) == first
    assert pings == []


async def test_an_idle_connection_is_pinged_once_before_use(engine):
    engine, pings = engine
    first = await _backend(engine)
    await asyncio.sleep(IDLE_SECONDS + 0.1)
    assert await _backend(engine) == first
    assert len(pings) == 1
    assert await _backend(engine) == first
    assert len(pings) == 1


async def test_a_dead_idle_connection_is_replaced_before_the_caller_sees_it(engine):
    engine, pings = engine
    first = await _backend(engine)
    await _terminate(first)
    await asyncio.sleep(IDLE_SECONDS)
    second = await _backend(engine)
    assert second != first
    assert len(pings) == 1


async def test_a_statement_on_a_connection_that_died_while_trusted_fails_once(engine):
    engine, pings = engine
    first = await _backend(engine)
    await _terminate(first)
    # Used again within the idle window: not pinged, so this statement meets
    # the dead connection; the pool then replaces it for the next one.
    with pytest.raises(sa.exc.DBAPIError) as raised:
        await _backend(engine)
    assert raised.value.connection_invalidated
    assert await _backend(engine) not in (first, None)
    assert pings == []


_IN_ITS_OWN_TRANSACTION = sa.text("SELECT pg_sleep(0.01), transaction_timestamp() = statement_timestamp()")


async def test_autocommit_runs_each_statement_as_its_own_transaction(engine):
    """No BEGIN around the statements; and the connection (the pool's only
    one) is transactional again for the next user."""
    engine, _ = engine
    async with pg.autocommit(engine).connect() as conn:
        backend = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        assert (await conn.execute(_IN_ITS_OWN_TRANSACTION)).one()[1] is True
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one() == backend
        assert (await conn.execute(_IN_ITS_OWN_TRANSACTION)).one()[1] is False


async def test_the_kit_pool_reuses_the_connection_used_last():
    made = pg.engine(load(OrdersSettings), pool_size=3)
    try:

        async def held() -> int:
            async with made.begin() as conn:
                pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
                await asyncio.sleep(0.05)
                return pid

        opened = set(await asyncio.gather(held(), held(), held()))
        assert len(opened) == 3
        # One at a time now: the same connection every time, the other two left idle.
        after = [await _backend(made) for _ in range(6)]
        assert len(set(after)) == 1 and after[0] in opened
    finally:
        await made.dispose()
