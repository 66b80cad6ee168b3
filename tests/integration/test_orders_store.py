"""The orders store's recovery claim against the devstack's PostgreSQL (the
`orders` schema, migrated by the running orders service).

Checkouts are made under fresh buyer ids with a lease that ran out an hour
ago. The running orders service sweeps every couple of seconds with the same
claim, so a stale saga here may be taken by it or by the test: a claim is
seen as the lease moving, whoever made it. The rows are deleted afterwards."""

from __future__ import annotations

import asyncio
import datetime
import random
import secrets

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2

from services.kit.stores import pg
from services.kit.settings import load
from services.orders.settings import OrdersSettings
from services.kit.server.ids import IdGenerator
from services.orders import model
from services.orders.store import OrdersStore

_ids = IdGenerator(random.randrange(1024))


_LONG_AGO = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


class Checkouts:
    """Makes checkouts in a given state; remembers them for the clean-up."""

    def __init__(self, store: OrdersStore) -> None:
        self.store = store
        self.made: list[int] = []

    async def new(self, state: str, *, cart_cleared: bool) -> int:
        checkout, created = await self.store.start_checkout(
            _ids.next_id(), _ids.next_id(), secrets.token_hex(8), model.checkout_params("pm_card_visa", None)
        )
        assert created
        self.made.append(checkout.id)
        async with self.store.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "UPDATE orders.checkouts SET state = :state, cart_cleared = :cleared, "
                    "lease_until = :lease WHERE id = :id"
                ),
                {"state": state, "cleared": cart_cleared, "lease": _LONG_AGO, "id": checkout.id},
            )
        return checkout.id


@pytest.fixture
async def store():
    engine = pg.engine(load(OrdersSettings), pool_size=2)
    # outbox: only confirm() uses it, and nothing here confirms.
    yield OrdersStore(engine, outbox=None, lease_seconds=-60)
    await engine.dispose()


@pytest.fixture
async def checkouts(store):
    made = Checkouts(store)
    try:
        yield made
    finally:
        async with store.engine.begin() as conn:
            ids = {"ids": made.made}
            await conn.execute(sa.text("DELETE FROM orders.checkout_steps WHERE checkout_id = ANY(:ids)"), ids)
            await conn.execute(sa.text("DELETE FROM orders.checkouts WHERE id = ANY(:ids)"), ids)


async def _one_claim(store: OrdersStore) -> None:
    # One claim is enough: it takes the oldest leases first, and these
    # ran out long before anything the devstack holds.
    await store.claim_stale(500)


async def _still_unclaimed(store: OrdersStore, ids: set[int]) -> set[int]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT id FROM orders.checkouts WHERE id = ANY(:ids) AND lease_until = :lease"),
            {"ids": list(ids), "lease": _LONG_AGO},
        )
        return {r.id for r in rows}


async def test_the_recovery_claim_takes_running_sagas_and_confirmed_ones_with_a_cart_to_clear(store, checkouts):
    running = {
        await checkouts.new(s, cart_cleared=False)
        for s in (model.STARTED, model.RESERVED, model.ORDER_CREATED, model.COMPENSATING)
    }
    confirmed_cart_left = await checkouts.new(model.SUCCEEDED, cart_cleared=False)
    await _one_claim(store)
    assert await _still_unclaimed(store, running | {confirmed_cart_left}) == set()


async def test_the_recovery_claim_leaves_finished_sagas_alone_even_when_a_failed_one_kept_its_cart(store, checkouts):
    # A failed checkout keeps the buyer's cart on purpose; it is still finished.
    finished = {
        await checkouts.new(model.FAILED, cart_cleared=False),
        await checkouts.new(model.FAILED, cart_cleared=True),
        await checkouts.new(model.SUCCEEDED, cart_cleared=True),
    }
    await _one_claim(store)
    await asyncio.sleep(2.5)  # and one pass of the running service's own sweep
    assert await _still_unclaimed(store, finished) == finished


async def test_a_checkout_keeps_its_request_params_and_its_failures_details_until_a_restart(store, checkouts):
    first = model.checkout_params("pm_card_visa", 2700)
    checkout, created = await store.start_checkout(_ids.next_id(), _ids.next_id(), secrets.token_hex(8), first)
    checkouts.made.append(checkout.id)
    assert created and checkout.request_params == first and checkout.expected_total_minor == 2700
    again, created = await store.start_checkout(
        _ids.next_id(), checkout.buyer_id, checkout.idempotency_key, model.checkout_params("pm_card_amex", None)
    )
    assert not created and again.request_params == first  # the key's first parameters stay

    info = error_details_pb2.ErrorInfo(reason="PRICE_CHANGED", metadata={"totalMinor": "2800"})
    failure = model.Failure(grpc.StatusCode.FAILED_PRECONDITION, "price changed", retryable=True, details=(info,))
    failing = await store.begin_compensation(checkout, model.PRICE, failure)
    failed = await store.advance(failing, model.FAILED)
    assert (await store.get_checkout(checkout.id)).failure_details == (info,) == failed.failure_details

    second = model.checkout_params("pm_card_amex", 2800)
    restarted = await store.restart(failed, second)
    assert restarted.attempt == 2 and restarted.payment_method == "pm_card_amex"
    assert restarted.request_params == second and restarted.failure_details == ()
