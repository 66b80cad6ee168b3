"""PostgreSQL storage of the orders schema: checkout sagas, orders, lines,
delivery history and the outbox. The only code here that talks SQL.

Every saga transition is a conditional UPDATE (`WHERE state = <expected> AND
attempt = <expected>`), so two orchestrators that ever run the same saga (a
recovered one and a slow original) cannot move it backwards or twice; the
steps they call are idempotent, so running one twice is harmless.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
from dataclasses import dataclass, field

import sqlalchemy as sa
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from google.rpc import status_pb2
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit.events.pg_outbox import PgOutbox
from services.kit.stores import pg
from services.orders import model
from services.orders.model import Line

_CHECKOUT_COLUMNS = """id, buyer_id, idempotency_key, payment_method, attempt, state, failed_step,
    failure_code, failure_message, retryable, lines, total_minor, currency, order_id, payment_id,
    cart_cleared, created_at, request_params, failure_details"""


@dataclass(frozen=True)
class Checkout:
    id: int
    buyer_id: int
    idempotency_key: str
    payment_method: str
    attempt: int
    state: str
    failed_step: str | None
    failure_code: str | None
    failure_message: str | None
    retryable: bool
    lines: list[Line]
    total_minor: int | None
    currency: str | None
    order_id: int | None
    payment_id: str | None
    cart_cleared: bool
    created_at: datetime.datetime
    # The parameters the key came with (model.checkout_params).
    request_params: dict
    # google.rpc detail messages of the failure, for the client.
    failure_details: tuple[Message, ...]

    @property
    def terminal(self) -> bool:
        return self.state in model.TERMINAL

    @property
    def expected_total_minor(self) -> int | None:
        return self.request_params.get("expected_total_minor")

    @property
    def reservation_id(self) -> str:
        # One reservation per attempt: an attempt's release leaves a tombstone
        # under its id, so the next attempt needs a fresh one.
        return f"checkout-{self.id}-{self.attempt}"

    @property
    def payment_key(self) -> str:
        return f"checkout-{self.id}-{self.attempt}"


def _checkout(row) -> Checkout:
    m = row._mapping
    lines = m["lines"]
    if isinstance(lines, str):
        lines = json.loads(lines)
    return Checkout(
        id=m["id"],
        buyer_id=m["buyer_id"],
        idempotency_key=m["idempotency_key"],
        payment_method=m["payment_method"],
        attempt=m["attempt"],
        state=m["state"],
        failed_step=m["failed_step"],
        failure_code=m["failure_code"],
        failure_message=m["failure_message"],
        retryable=m["retryable"],
        lines=[Line.from_json(d) for d in (lines or [])],
        total_minor=m["total_minor"],
        currency=m["currency"],
        order_id=m["order_id"],
        payment_id=m["payment_id"],
        cart_cleared=m["cart_cleared"],
        created_at=m["created_at"],
        # Checkouts from before parameters were stored had a payment method only.
        request_params=m["request_params"] or model.checkout_params(m["payment_method"], None),
        failure_details=_unpack_details(m["failure_details"]),
    )


def _pack_details(details: tuple[Message, ...]) -> bytes | None:
    """Detail messages as a serialized google.rpc.Status (details only)."""
    if not details:
        return None
    status = status_pb2.Status()
    for detail in details:
        status.details.add().Pack(detail)
    return status.SerializeToString()


def _unpack_details(blob: bytes | None) -> tuple[Message, ...]:
    if not blob:
        return ()
    found = []
    for packed in status_pb2.Status.FromString(bytes(blob)).details:
        try:
            descriptor = descriptor_pool.Default().FindMessageTypeByName(packed.TypeName())
        except KeyError:  # a type this build no longer knows: the message still says it all
            continue
        message = message_factory.GetMessageClass(descriptor)()
        packed.Unpack(message)
        found.append(message)
    return tuple(found)


@dataclass
class DeliveryRecord:
    status: str
    actor: str
    note: str
    at: datetime.datetime
    # Whose fulfilment moved; None for an entry about the whole order.
    seller_id: int | None = None


@dataclass
class OrderRecord:
    id: int
    checkout_id: int
    buyer_id: int
    idempotency_key: str
    status: str
    total_minor: int
    currency: str
    payment_status: str
    delivery_status: str
    created_at: datetime.datetime
    cancel_state: str | None = None
    cancel_reason: str = ""
    cancel_time: datetime.datetime | None = None
    cancel_lease_until: datetime.datetime | None = None
    lines: list[Line] = field(default_factory=list)
    history: list[DeliveryRecord] = field(default_factory=list)
    # Fulfilment status (a DeliveryStatus name) per seller.
    parts: dict[int, str] = field(default_factory=dict)

    @property
    def sellers(self) -> list[int]:
        """The order's sellers, in order of their first line."""
        return list(dict.fromkeys(line.seller_id for line in self.lines))

    def part_status(self, seller_id: int) -> str:
        # An order written before its fulfilments were (an older replica) moves as one.
        return self.parts.get(seller_id, self.delivery_status)


class BuyerDeleted(Exception):
    """The buyer's account was deleted: no new checkout for them."""


class SellersDeleted(Exception):
    """Priced lines of sellers whose accounts were deleted: no part for them."""

    def __init__(self, sellers: list[int]) -> None:
        super().__init__(", ".join(map(str, sellers)))
        self.sellers = sellers


@functools.lru_cache(maxsize=None)
def _statement(sql: str) -> sa.TextClause:
    """sa.text(sql), made once per distinct statement: making one parses the
    SQL for its parameters, on every call of the saga's steps otherwise. The
    statements are this module's own (values are always bound), so few."""
    return sa.text(sql)


# Per-buyer advisory locks (a key space of their own, hashed from the id).
_BUYER_LOCK_SHARED = sa.text("SELECT pg_advisory_xact_lock_shared(hashtextextended('orders:buyer:' || :buyer, 0))")
_BUYER_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended('orders:buyer:' || :buyer, 0))")
_IS_DELETED_BUYER = sa.text("SELECT 1 FROM orders.deleted_buyers WHERE user_id = :buyer")
_SELLER_LOCK_SHARED = sa.text("SELECT pg_advisory_xact_lock_shared(hashtextextended('orders:seller:' || :seller, 0))")
_SELLER_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended('orders:seller:' || :seller, 0))")

# A fulfilment still to ship, and saga states that will write one when they finish.
_OPEN_PARTS = ("DELIVERY_STATUS_PENDING", "DELIVERY_STATUS_PACKED")
_PRICED_AND_RUNNING = (model.RESERVED, model.ORDER_CREATED)
# What a running saga, stopped because its buyer is gone, compensates: the
# step under way in each state, which may have taken effect (model.compensations).
_STEP_UNDER_WAY = {model.STARTED: model.RESERVE, model.RESERVED: model.AUTHORIZE, model.ORDER_CREATED: model.CAPTURE}


@dataclass(frozen=True)
class CancelJob:
    """What finishing a buyer's cancel needs: its state and the checkout's
    reservation and payment."""

    order_id: int
    buyer_id: int
    state: str
    checkout_id: int
    attempt: int
    payment_id: str | None

    @property
    def reservation_id(self) -> str:
        # The reservation of the checkout attempt that made the order (Checkout.reservation_id).
        return f"checkout-{self.checkout_id}-{self.attempt}"


class OrdersStore:
    def __init__(self, engine: AsyncEngine, outbox: PgOutbox, lease_seconds: float) -> None:
        self.engine = engine
        # Reads, and writes of one statement: no BEGIN/COMMIT round trips.
        self.autocommit = pg.autocommit(engine)
        self.outbox = outbox
        self._lease = datetime.timedelta(seconds=lease_seconds)

    def _lease_until(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.timezone.utc) + self._lease

    # -- checkouts --------------------------------------------------------------

    async def start_checkout(self, checkout_id: int, buyer_id: int, key: str, params: dict) -> tuple[Checkout, bool]:
        """The checkout for (buyer, key): a new one (True) or the one that exists
        (False). Raises BuyerDeleted once the buyer's account deletion was applied."""
        async with self.engine.begin() as conn:
            # Shared: checkouts of one buyer do not wait for each other, only
            # for forget_buyer, so every checkout is either refused here or
            # committed before forget_buyer looks for the buyer's checkouts.
            await conn.execute(_BUYER_LOCK_SHARED, {"buyer": buyer_id})
            if (await conn.execute(_IS_DELETED_BUYER, {"buyer": buyer_id})).first() is not None:
                raise BuyerDeleted(buyer_id)
            row = (
                await conn.execute(
                    _statement(f"""
                WITH created AS (
                    INSERT INTO orders.checkouts (id, buyer_id, idempotency_key, payment_method, request_params,
                                                  state, lease_until)
                    VALUES (:id, :buyer, :key, :pm, :params, :state, :lease)
                    ON CONFLICT (buyer_id, idempotency_key) DO NOTHING
                    RETURNING {_CHECKOUT_COLUMNS}
                ), logged AS (
                    INSERT INTO orders.checkout_steps (checkout_id, attempt, step, outcome)
                    SELECT id, attempt, state, 'ok' FROM created
                )
                SELECT * FROM created"""),
                    {
                        "id": checkout_id,
                        "buyer": buyer_id,
                        "key": key,
                        "pm": params["payment_method"],
                        "params": json.dumps(params),
                        "state": model.STARTED,
                        "lease": self._lease_until(),
                    },
                )
            ).first()
            if row is not None:
                return _checkout(row), True
            row = (
                await conn.execute(
                    _statement(f"""
                SELECT {_CHECKOUT_COLUMNS} FROM orders.checkouts
                WHERE buyer_id = :buyer AND idempotency_key = :key"""),
                    {"buyer": buyer_id, "key": key},
                )
            ).one()
            return _checkout(row), False

    async def restart(self, checkout: Checkout, params: dict) -> Checkout | None:
        """Starts a new attempt, with these parameters, of a checkout whose
        failure left nothing behind; None when another request restarted it first."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    _statement(f"""
                UPDATE orders.checkouts SET state = :started, attempt = attempt + 1, payment_method = :pm,
                    request_params = :params, failed_step = NULL, failure_code = NULL, failure_message = NULL,
                    failure_details = NULL, retryable = false,
                    lines = NULL, total_minor = NULL, currency = NULL, order_id = NULL, payment_id = NULL,
                    lease_until = :lease, updated_at = now()
                WHERE id = :id AND state = :failed AND retryable AND attempt = :attempt
                RETURNING {_CHECKOUT_COLUMNS}"""),
                    {
                        "started": model.STARTED,
                        "pm": params["payment_method"],
                        "params": json.dumps(params),
                        "lease": self._lease_until(),
                        "id": checkout.id,
                        "failed": model.FAILED,
                        "attempt": checkout.attempt,
                    },
                )
            ).first()
            if row is None:
                return None
            restarted = _checkout(row)
            await self._log(conn, restarted.id, restarted.attempt, model.STARTED, "ok", "retry of a retryable failure")
            return restarted

    async def get_checkout(self, checkout_id: int) -> Checkout:
        async with self.autocommit.connect() as conn:
            row = (
                await conn.execute(
                    _statement(f"SELECT {_CHECKOUT_COLUMNS} FROM orders.checkouts WHERE id = :id"), {"id": checkout_id}
                )
            ).one()
        return _checkout(row)

    async def advance(
        self, checkout: Checkout, new_state: str, *, conn: AsyncConnection | None = None, detail: str = "", **columns
    ) -> Checkout | None:
        """Moves the saga from its current state to `new_state`, setting the
        given columns and logging the step, in one statement; None when the
        saga is no longer where `checkout` says."""
        if conn is None:
            async with self.autocommit.connect() as own:
                return await self.advance(checkout, new_state, conn=own, detail=detail, **columns)
        sets = "".join(f", {name} = :{name}" for name in columns)
        params = {
            **columns,
            "new": new_state,
            "id": checkout.id,
            "old": checkout.state,
            "attempt": checkout.attempt,
            "lease": self._lease_until(),
            "detail": detail[:1000],
        }
        if "lines" in params:
            params["lines"] = json.dumps([line.to_json() for line in params["lines"]])
        row = (
            await conn.execute(
                _statement(f"""
            WITH moved AS (
                UPDATE orders.checkouts SET state = :new, lease_until = :lease, updated_at = now(){sets}
                WHERE id = :id AND state = :old AND attempt = :attempt
                RETURNING {_CHECKOUT_COLUMNS}
            ), logged AS (
                INSERT INTO orders.checkout_steps (checkout_id, attempt, step, outcome, detail)
                SELECT id, attempt, state, 'ok', :detail FROM moved
            )
            SELECT * FROM moved"""),
                params,
            )
        ).first()
        return None if row is None else _checkout(row)

    async def reserve_priced(self, checkout: Checkout, lines: list[Line], currency: str) -> Checkout | None:
        """STARTED -> RESERVED with the priced lines, unless a seller of them
        is deleted (SellersDeleted): their lock, taken shared, makes the move
        either refused or committed before forget_seller looks for it."""
        async with self.engine.begin() as conn:
            sellers = sorted({line.seller_id for line in lines})
            for seller in sellers:
                await conn.execute(_SELLER_LOCK_SHARED, {"seller": seller})
            gone = (
                (
                    await conn.execute(
                        _statement("SELECT seller_id FROM orders.deleted_sellers WHERE seller_id = ANY(:sellers)"),
                        {"sellers": sellers},
                    )
                )
                .scalars()
                .all()
            )
            if gone:
                raise SellersDeleted(sorted(gone))
            return await self.advance(
                checkout, model.RESERVED, conn=conn, lines=lines, total_minor=model.total(lines), currency=currency
            )

    async def begin_compensation(self, checkout: Checkout, step: str, failure: model.Failure) -> Checkout | None:
        return await self.advance(
            checkout,
            model.COMPENSATING,
            detail=f"{step}: {failure.message}",
            failed_step=step,
            failure_code=failure.code.name,
            failure_message=failure.message,
            retryable=failure.retryable,
            failure_details=_pack_details(failure.details),
        )

    async def log_step(self, checkout: Checkout, step: str, outcome: str, detail: str = "") -> None:
        async with self.autocommit.connect() as conn:
            await self._log(conn, checkout.id, checkout.attempt, step, outcome, detail)

    async def _log(
        self, conn: AsyncConnection, checkout_id: int, attempt: int, step: str, outcome: str, detail: str = ""
    ) -> None:
        await conn.execute(
            _statement("""
            INSERT INTO orders.checkout_steps (checkout_id, attempt, step, outcome, detail)
            VALUES (:id, :attempt, :step, :outcome, :detail)"""),
            {"id": checkout_id, "attempt": attempt, "step": step, "outcome": outcome, "detail": detail[:1000]},
        )

    async def mark_cart_cleared(self, checkout_id: int) -> None:
        async with self.autocommit.connect() as conn:
            await conn.execute(
                _statement("UPDATE orders.checkouts SET cart_cleared = true WHERE id = :id"), {"id": checkout_id}
            )

    async def claim_stale(self, limit: int) -> list[Checkout]:
        """Sagas whose orchestrator stopped renewing their lease (it died, or
        a confirmed checkout still has a cart to clear), now leased to us. A
        failed checkout is finished even though its cart stays (on purpose).
        The predicate is the partial index `checkouts_unfinished`'s."""
        async with self.autocommit.connect() as conn:
            rows = (
                await conn.execute(
                    _statement(f"""
                UPDATE orders.checkouts SET lease_until = :lease
                WHERE id IN (
                    SELECT id FROM orders.checkouts
                    WHERE (state NOT IN ('SUCCEEDED', 'FAILED') OR (state = 'SUCCEEDED' AND NOT cart_cleared))
                      AND lease_until < now()
                    ORDER BY lease_until LIMIT :limit FOR UPDATE SKIP LOCKED)
                RETURNING {_CHECKOUT_COLUMNS}"""),
                    {"lease": self._lease_until(), "limit": limit},
                )
            ).all()
        return [_checkout(r) for r in rows]

    # -- orders -----------------------------------------------------------------

    async def create_order(
        self, checkout: Checkout, order_id: int, payment_id: str, payment_status: str
    ) -> Checkout | None:
        """Records the authorized payment, inserts the PENDING order and moves
        the saga to ORDER_CREATED, atomically."""
        async with self.engine.begin() as conn:
            moved = await self.advance(
                checkout, model.ORDER_CREATED, conn=conn, order_id=order_id, payment_id=payment_id
            )
            if moved is None:
                return None
            await conn.execute(
                _statement("""
                INSERT INTO orders.orders (id, checkout_id, buyer_id, idempotency_key, status, total_minor,
                                           currency, payment_status, delivery_status)
                VALUES (:id, :checkout, :buyer, :key, 'ORDER_STATUS_PENDING', :total, :currency, :pay,
                        'DELIVERY_STATUS_UNSPECIFIED')"""),
                {
                    "id": order_id,
                    "checkout": checkout.id,
                    "buyer": checkout.buyer_id,
                    "key": checkout.idempotency_key,
                    "total": checkout.total_minor,
                    "currency": checkout.currency,
                    "pay": payment_status,
                },
            )
            await conn.execute(
                _statement("""
                INSERT INTO orders.order_items (order_id, line, product_id, seller_id, title, quantity,
                                                unit_price_minor)
                VALUES (:order, :line, :product, :seller, :title, :quantity, :price)"""),
                [
                    {
                        "order": order_id,
                        "line": i,
                        "product": line.product_id,
                        "seller": line.seller_id,
                        "title": line.title,
                        "quantity": line.quantity,
                        "price": line.unit_price_minor,
                    }
                    for i, line in enumerate(checkout.lines)
                ],
            )
            return moved

    async def confirm(
        self, checkout: Checkout, cart_cleared: bool, event: tuple[int, str, bytes, bytes]
    ) -> tuple[Checkout, OrderRecord] | None:
        """Confirms the order, starts its delivery history, queues the
        OrderConfirmed event and ends the saga: one transaction. Returns the
        ended saga and the confirmed order (built from what the statements
        returned, so the caller needs no second read)."""
        async with self.engine.begin() as conn:
            moved = await self.advance(checkout, model.SUCCEEDED, conn=conn, cart_cleared=cart_cleared)
            if moved is None:
                return None
            row = (
                await conn.execute(
                    _statement("""
                UPDATE orders.orders SET status = 'ORDER_STATUS_CONFIRMED', payment_status = 'PAYMENT_STATUS_CAPTURED',
                    delivery_status = 'DELIVERY_STATUS_PENDING' WHERE id = :id RETURNING *"""),
                    {"id": checkout.order_id},
                )
            ).one()
            at = (
                await conn.execute(
                    _statement("""
                INSERT INTO orders.delivery_events (order_id, seq, status, actor, note)
                VALUES (:id, 0, 'DELIVERY_STATUS_PENDING', 'checkout', 'order confirmed') RETURNING at"""),
                    {"id": checkout.order_id},
                )
            ).scalar_one()
            sellers = list(dict.fromkeys(line.seller_id for line in checkout.lines))
            await conn.execute(
                _statement("""
                INSERT INTO orders.fulfilments (order_id, seller_id, delivery_status)
                VALUES (:id, :seller, 'DELIVERY_STATUS_PENDING') ON CONFLICT DO NOTHING"""),
                [{"id": checkout.order_id, "seller": seller} for seller in sellers],
            )
            await self.outbox.add(conn, *event)
        self.outbox.notify()
        order = OrderRecord(
            **dict(row._mapping),
            lines=list(checkout.lines),
            history=[DeliveryRecord("DELIVERY_STATUS_PENDING", "checkout", "order confirmed", at)],
            parts=dict.fromkeys(sellers, "DELIVERY_STATUS_PENDING"),
        )
        return moved, order

    async def set_order_state(
        self, order_id: int, *, status: str | None = None, payment_status: str | None = None
    ) -> None:
        sets = {k: v for k, v in (("status", status), ("payment_status", payment_status)) if v}
        if not sets:
            return
        async with self.autocommit.connect() as conn:
            await conn.execute(
                _statement(f"UPDATE orders.orders SET {', '.join(f'{k} = :{k}' for k in sets)} WHERE id = :id"),
                {**sets, "id": order_id},
            )

    async def get_order(self, order_id: int) -> OrderRecord | None:
        async with self.autocommit.connect() as conn:
            rows = (
                await conn.execute(_statement("SELECT * FROM orders.orders WHERE id = :id"), {"id": order_id})
            ).all()
            orders = await self._with_details(conn, rows)
        return orders[0] if orders else None

    async def list_orders(
        self, *, buyer_id: int | None = None, seller_id: int | None = None, before_id: int | None, limit: int
    ) -> list[OrderRecord]:
        """Newest first; a buyer's own orders, or the confirmed (or buyer-cancelled)
        orders holding a seller's products."""
        params: dict[str, int | None] = {"before": before_id or (1 << 63) - 1, "limit": limit}
        if buyer_id is not None:
            query = """SELECT * FROM orders.orders WHERE buyer_id = :who AND id < :before
                       ORDER BY id DESC LIMIT :limit"""
            params["who"] = buyer_id
        else:
            query = """SELECT * FROM orders.orders WHERE id IN (
                           SELECT DISTINCT order_id FROM orders.order_items
                           WHERE seller_id = :who AND order_id < :before)
                       AND (status = 'ORDER_STATUS_CONFIRMED' OR cancel_state IS NOT NULL)
                       ORDER BY id DESC LIMIT :limit"""
            params["who"] = seller_id
        async with self.autocommit.connect() as conn:
            rows = (await conn.execute(_statement(query), params)).all()
            return await self._with_details(conn, rows)

    async def count_open_sales(self, seller_id: int) -> int:
        """Orders with a part of this seller still to ship (PENDING or PACKED,
        in a confirmed order), plus running checkouts already priced with a
        line of theirs (RESERVED or ORDER_CREATED: each writes such a part when
        it succeeds). One statement, so a checkout confirming meanwhile is
        counted once, on one side or the other."""
        query = _statement("""
            SELECT count(*) FROM (
                SELECT f.order_id FROM orders.fulfilments f JOIN orders.orders o ON o.id = f.order_id
                WHERE f.seller_id = :seller AND f.delivery_status = ANY(:open_parts)
                  AND o.status = 'ORDER_STATUS_CONFIRMED'
                UNION
                SELECT c.id FROM orders.checkouts c
                WHERE (c.state NOT IN ('SUCCEEDED', 'FAILED') OR (c.state = 'SUCCEEDED' AND NOT c.cart_cleared))
                  AND c.state = ANY(:running) AND c.lines @> CAST(:line AS jsonb)
            ) open""")
        params = {
            "seller": seller_id,
            "open_parts": list(_OPEN_PARTS),
            "running": list(_PRICED_AND_RUNNING),
            "line": json.dumps([{"seller_id": seller_id}]),
        }
        async with self.autocommit.connect() as conn:
            return int((await conn.execute(query, params)).scalar_one())

    async def forget_buyer(self, buyer_id: int, reason: str) -> tuple[int, int]:
        """Applies a buyer's account deletion; returns (checkouts stopped,
        orders anonymised). First the buyer is recorded as deleted (no new
        checkout from then on); then, in one transaction, their running
        checkouts move to COMPENSATING (the step under way is undone, as for
        any failure: the orchestrator driving it, or the recovery sweep once
        its lease runs out, finishes it), and their orders and checkouts lose
        what ties them to the person: buyer_id becomes 0, idempotency keys go.
        The orders stay for the sellers' books. Idempotent: a rerun finds
        nothing left to change."""
        async with self.engine.begin() as conn:
            # Waits for checkouts being started by this buyer to commit.
            await conn.execute(_BUYER_LOCK, {"buyer": buyer_id})
            await conn.execute(
                _statement("INSERT INTO orders.deleted_buyers (user_id) VALUES (:buyer) ON CONFLICT DO NOTHING"),
                {"buyer": buyer_id},
            )
        async with self.engine.begin() as conn:
            stopped = (
                await conn.execute(
                    _statement("""
                UPDATE orders.checkouts SET state = :compensating, failed_step = CASE state
                        WHEN :started THEN :reserve WHEN :reserved THEN :authorize ELSE :capture END,
                    failure_code = 'FAILED_PRECONDITION', failure_message = :reason, retryable = false,
                    updated_at = now()
                WHERE buyer_id = :buyer AND state IN (:started, :reserved, :order_created)
                RETURNING id, attempt, failed_step"""),
                    {
                        "compensating": model.COMPENSATING,
                        "started": model.STARTED,
                        "reserved": model.RESERVED,
                        "order_created": model.ORDER_CREATED,
                        "reserve": _STEP_UNDER_WAY[model.STARTED],
                        "authorize": _STEP_UNDER_WAY[model.RESERVED],
                        "capture": _STEP_UNDER_WAY[model.ORDER_CREATED],
                        "reason": reason,
                        "buyer": buyer_id,
                    },
                )
            ).all()
            for row in stopped:
                await self._log(conn, row.id, row.attempt, model.COMPENSATING, "ok", f"{row.failed_step}: {reason}")
            anonymised = (
                await conn.execute(
                    _statement("UPDATE orders.orders SET buyer_id = 0, idempotency_key = '' WHERE buyer_id = :buyer"),
                    {"buyer": buyer_id},
                )
            ).rowcount
            # The key column must stay unique per (buyer, key): each gets one of its own.
            await conn.execute(
                _statement("""
                UPDATE orders.checkouts SET buyer_id = 0, idempotency_key = 'deleted-' || id, cart_cleared = true,
                    updated_at = now()
                WHERE buyer_id = :buyer"""),
                {"buyer": buyer_id},
            )
        return len(stopped), anonymised

    async def forget_seller(self, seller_id: int, reason: str) -> tuple[int, list[int]]:
        """Applies a seller's account deletion; returns (checkouts stopped,
        confirmed orders still holding an open part of theirs). The seller is
        recorded first (no checkout reserves their lines from then on); then
        running checkouts priced with their lines move to COMPENSATING, as in
        forget_buyer. Identity refuses to delete a seller with open sales, so
        the orders returned are only those confirmed in the moment between its
        count and this; the caller cancels them. Idempotent."""
        async with self.engine.begin() as conn:
            await conn.execute(_SELLER_LOCK, {"seller": seller_id})
            await conn.execute(
                _statement("INSERT INTO orders.deleted_sellers (seller_id) VALUES (:seller) ON CONFLICT DO NOTHING"),
                {"seller": seller_id},
            )
        async with self.engine.begin() as conn:
            stopped = (
                await conn.execute(
                    _statement("""
                UPDATE orders.checkouts SET state = :compensating,
                    failed_step = CASE state WHEN :reserved THEN :authorize ELSE :capture END,
                    failure_code = 'FAILED_PRECONDITION', failure_message = :reason, retryable = true,
                    updated_at = now()
                WHERE (state NOT IN ('SUCCEEDED', 'FAILED') OR (state = 'SUCCEEDED' AND NOT cart_cleared))
                  AND state IN (:reserved, :order_created) AND lines @> CAST(:line AS jsonb)
                RETURNING id, attempt, failed_step"""),
                    {
                        "compensating": model.COMPENSATING,
                        "reserved": model.RESERVED,
                        "order_created": model.ORDER_CREATED,
                        "authorize": _STEP_UNDER_WAY[model.RESERVED],
                        "capture": _STEP_UNDER_WAY[model.ORDER_CREATED],
                        "reason": reason,
                        "line": json.dumps([{"seller_id": seller_id}]),
                    },
                )
            ).all()
            for row in stopped:
                await self._log(conn, row.id, row.attempt, model.COMPENSATING, "ok", f"{row.failed_step}: {reason}")
        async with self.autocommit.connect() as conn:
            open_orders = (
                (
                    await conn.execute(
                        _statement("""
                SELECT f.order_id FROM orders.fulfilments f JOIN orders.orders o ON o.id = f.order_id
                WHERE f.seller_id = :seller AND f.delivery_status = ANY(:open_parts)
                  AND o.status = 'ORDER_STATUS_CONFIRMED'
                ORDER BY f.order_id"""),
                        {"seller": seller_id, "open_parts": list(_OPEN_PARTS)},
                    )
                )
                .scalars()
                .all()
            )
        return len(stopped), list(open_orders)

    async def _with_details(self, conn: AsyncConnection, rows) -> list[OrderRecord]:
        orders = [OrderRecord(**{k: v for k, v in r._mapping.items()}) for r in rows]
        if not orders:
            return []
        by_id = {o.id: o for o in orders}
        ids = list(by_id)
        for r in (
            await conn.execute(
                _statement("SELECT * FROM orders.order_items WHERE order_id = ANY(:ids) ORDER BY order_id, line"),
                {"ids": ids},
            )
        ).all():
            by_id[r.order_id].lines.append(Line(r.product_id, r.seller_id, r.title, r.quantity, r.unit_price_minor))
        for r in (
            await conn.execute(
                _statement("SELECT * FROM orders.delivery_events WHERE order_id = ANY(:ids) ORDER BY order_id, seq"),
                {"ids": ids},
            )
        ).all():
            by_id[r.order_id].history.append(DeliveryRecord(r.status, r.actor, r.note, r.at, r.seller_id))
        for r in (
            await conn.execute(_statement("SELECT * FROM orders.fulfilments WHERE order_id = ANY(:ids)"), {"ids": ids})
        ).all():
            by_id[r.order_id].parts[r.seller_id] = r.delivery_status
        return orders

    async def advance_delivery(
        self, order_id: int, pick, wanted: str, actor: str, note: str, event_for
    ) -> OrderRecord | None:
        """Locks the order, lets `pick(order)` refuse the change or name the
        seller whose part moves, then records the part's new status, the
        order's derived one, the history entry and the event
        `event_for(order, seller, order_status)` builds, in one transaction;
        returns the updated order."""
        async with self.engine.begin() as conn:
            current = await self._locked_order(conn, order_id)
            if current is None:
                return None
            seller = pick(current)
            current.parts = {s: current.part_status(s) for s in current.sellers} | {seller: wanted}
            derived = model.delivery_name(
                model.order_delivery_status([model.DS.Value(status) for status in current.parts.values()])
            )
            await conn.execute(
                _statement("""
                INSERT INTO orders.fulfilments (order_id, seller_id, delivery_status) VALUES (:id, :seller, :s)
                ON CONFLICT (order_id, seller_id) DO UPDATE SET delivery_status = EXCLUDED.delivery_status"""),
                {"id": order_id, "seller": seller, "s": wanted},
            )
            await conn.execute(
                _statement("UPDATE orders.orders SET delivery_status = :s WHERE id = :id"),
                {"s": derived, "id": order_id},
            )
            at = await self._add_history(conn, current, wanted, actor, note, seller)
            await self.outbox.add(conn, *event_for(current, seller, derived))
        self.outbox.notify()
        current.delivery_status = derived
        current.history.append(DeliveryRecord(wanted, actor, note, at, seller))
        return current

    async def _locked_order(self, conn: AsyncConnection, order_id: int) -> OrderRecord | None:
        row = (
            await conn.execute(_statement("SELECT * FROM orders.orders WHERE id = :id FOR UPDATE"), {"id": order_id})
        ).first()
        return None if row is None else (await self._with_details(conn, [row]))[0]

    async def _add_history(
        self, conn: AsyncConnection, order: OrderRecord, status: str, actor: str, note: str, seller: int | None
    ) -> datetime.datetime:
        return (
            await conn.execute(
                _statement("""
            INSERT INTO orders.delivery_events (order_id, seq, status, actor, note, seller_id)
            VALUES (:id, :seq, :status, :actor, :note, :seller) RETURNING at"""),
                {
                    "id": order.id,
                    "seq": len(order.history),
                    "status": status,
                    "actor": actor,
                    "note": note,
                    "seller": seller,
                },
            )
        ).scalar_one()

    # -- the buyer's cancel ---------------------------------------------------------

    async def request_cancel(
        self, order_id: int, check, reason: str, event_for, actor: str = "buyer"
    ) -> OrderRecord | None:
        """Locks the order and lets `check(order)` refuse; a cancel not yet
        requested is then recorded with its consequences in one transaction:
        status CANCELLED, every part CANCELLED, a history entry, the event
        `event_for(order)` builds, and the REQUESTED state the restock and
        refund start from. Returns the order (as it was, when already cancelled)."""
        async with self.engine.begin() as conn:
            current = await self._locked_order(conn, order_id)
            if current is None:
                return None
            check(current)
            if current.status == model.CANCELLED_ORDER:
                return current
            cancelled = model.delivery_name(model.CANCELLED)
            row = (
                await conn.execute(
                    _statement("""
                UPDATE orders.orders SET status = :status, delivery_status = :cancelled, cancel_state = :state,
                    cancel_reason = :reason, cancel_time = now(), cancel_lease_until = :lease
                WHERE id = :id RETURNING *"""),
                    {
                        "status": model.CANCELLED_ORDER,
                        "cancelled": cancelled,
                        "state": model.CANCEL_REQUESTED,
                        "reason": reason,
                        "lease": self._lease_until(),
                        "id": order_id,
                    },
                )
            ).one()
            await conn.execute(
                _statement("""
                INSERT INTO orders.fulfilments (order_id, seller_id, delivery_status) VALUES (:id, :seller, :s)
                ON CONFLICT (order_id, seller_id) DO UPDATE SET delivery_status = EXCLUDED.delivery_status"""),
                [{"id": order_id, "seller": seller, "s": cancelled} for seller in current.sellers],
            )
            at = await self._add_history(conn, current, cancelled, actor, reason, None)
            await self.outbox.add(conn, *event_for(current))
        self.outbox.notify()
        updated = OrderRecord(
            **dict(row._mapping),
            lines=current.lines,
            history=[*current.history, DeliveryRecord(cancelled, actor, reason, at)],
            parts=dict.fromkeys(current.sellers, cancelled),
        )
        return updated

    async def cancel_job(self, order_id: int) -> CancelJob | None:
        async with self.autocommit.connect() as conn:
            row = (await conn.execute(_statement(f"{_CANCEL_JOBS} WHERE o.id = :id"), {"id": order_id})).first()
        return None if row is None else _cancel_job(row)

    async def move_cancel(
        self, job: CancelJob, new_state: str, *, detail: str = "", payment_status: str | None = None
    ) -> CancelJob | None:
        """Moves a cancel from its current state to `new_state` (renewing its
        lease), logged among its checkout's steps; None when it was no longer
        where `job` says."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    _statement("""
                UPDATE orders.orders SET cancel_state = :new, cancel_lease_until = :lease,
                    payment_status = COALESCE(:pay, payment_status)
                WHERE id = :id AND cancel_state = :old RETURNING id"""),
                    {
                        "new": new_state,
                        "lease": self._lease_until(),
                        "pay": payment_status,
                        "id": job.order_id,
                        "old": job.state,
                    },
                )
            ).first()
            if row is None:
                return None
            await self._log(conn, job.checkout_id, job.attempt, f"cancel_{new_state.lower()}", "ok", detail)
        return dataclasses.replace(job, state=new_state)

    async def claim_stale_cancels(self, limit: int) -> list[CancelJob]:
        """Cancels whose driver stopped renewing their lease (it died, or a
        peer was down), now leased to us. The predicate is the partial index
        `orders_cancels_unfinished`'s."""
        async with self.autocommit.connect() as conn:
            ids = (
                (
                    await conn.execute(
                        _statement("""
                UPDATE orders.orders SET cancel_lease_until = :lease
                WHERE id IN (
                    SELECT id FROM orders.orders
                    WHERE cancel_state IN ('REQUESTED', 'RESTOCKED') AND cancel_lease_until < now()
                    ORDER BY cancel_lease_until LIMIT :limit FOR UPDATE SKIP LOCKED)
                RETURNING id"""),
                        {"lease": self._lease_until(), "limit": limit},
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            rows = (await conn.execute(_statement(f"{_CANCEL_JOBS} WHERE o.id = ANY(:ids)"), {"ids": list(ids)})).all()
        return [_cancel_job(r) for r in rows]


_CANCEL_JOBS = """SELECT o.id, o.buyer_id, o.cancel_state, c.id AS checkout_id, c.attempt, c.payment_id
    FROM orders.orders o JOIN orders.checkouts c ON c.id = o.checkout_id"""


def _cancel_job(row) -> CancelJob:
    return CancelJob(
        order_id=row.id,
        buyer_id=row.buyer_id,
        state=row.cancel_state,
        checkout_id=row.checkout_id,
        attempt=row.attempt,
        payment_id=row.payment_id,
    )
