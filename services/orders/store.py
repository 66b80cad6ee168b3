"""PostgreSQL storage of the orders schema: checkout sagas, orders, lines,
delivery history and the outbox. The only code here that talks SQL.

Every saga transition is a conditional UPDATE (`WHERE state = <expected> AND
attempt = <expected>`), so two orchestrators that ever run the same saga (a
recovered one and a slow original) cannot move it backwards or twice; the
steps they call are idempotent, so running one twice is harmless.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit.pg_outbox import PgOutbox
from services.orders import model
from services.orders.model import Line

_CHECKOUT_COLUMNS = """id, buyer_id, idempotency_key, payment_method, attempt, state, failed_step,
    failure_code, failure_message, retryable, lines, total_minor, currency, order_id, payment_id,
    cart_cleared, created_at"""


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

    @property
    def terminal(self) -> bool:
        return self.state in model.TERMINAL

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
        id=m["id"], buyer_id=m["buyer_id"], idempotency_key=m["idempotency_key"],
        payment_method=m["payment_method"], attempt=m["attempt"], state=m["state"],
        failed_step=m["failed_step"], failure_code=m["failure_code"],
        failure_message=m["failure_message"], retryable=m["retryable"],
        lines=[Line.from_json(d) for d in (lines or [])], total_minor=m["total_minor"],
        currency=m["currency"], order_id=m["order_id"], payment_id=m["payment_id"],
        cart_cleared=m["cart_cleared"], created_at=m["created_at"],
    )


@dataclass
class DeliveryRecord:
    status: str
    actor: str
    note: str
    at: datetime.datetime


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
    lines: list[Line] = field(default_factory=list)
    history: list[DeliveryRecord] = field(default_factory=list)


class OrdersStore:
    def __init__(self, engine: AsyncEngine, outbox: PgOutbox, lease_seconds: float) -> None:
        self.engine = engine
        self.outbox = outbox
        self._lease = datetime.timedelta(seconds=lease_seconds)

    def _lease_until(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.timezone.utc) + self._lease

    # -- checkouts --------------------------------------------------------------

    async def start_checkout(self, checkout_id: int, buyer_id: int, key: str, payment_method: str
                             ) -> tuple[Checkout, bool]:
        """The checkout for (buyer, key): a new one (True) or the one that exists (False)."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.text(f"""
                WITH created AS (
                    INSERT INTO orders.checkouts (id, buyer_id, idempotency_key, payment_method, state, lease_until)
                    VALUES (:id, :buyer, :key, :pm, :state, :lease)
                    ON CONFLICT (buyer_id, idempotency_key) DO NOTHING
                    RETURNING {_CHECKOUT_COLUMNS}
                ), logged AS (
                    INSERT INTO orders.checkout_steps (checkout_id, attempt, step, outcome)
                    SELECT id, attempt, state, 'ok' FROM created
                )
                SELECT * FROM created"""), {
                "id": checkout_id, "buyer": buyer_id, "key": key, "pm": payment_method,
                "state": model.STARTED, "lease": self._lease_until()})).first()
            if row is not None:
                return _checkout(row), True
            row = (await conn.execute(sa.text(f"""
                SELECT {_CHECKOUT_COLUMNS} FROM orders.checkouts
                WHERE buyer_id = :buyer AND idempotency_key = :key"""), {"buyer": buyer_id, "key": key})).one()
            return _checkout(row), False

    async def restart(self, checkout: Checkout, payment_method: str) -> Checkout | None:
        """Starts a new attempt of a checkout whose failure left nothing behind;
        None when another request restarted it first."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.text(f"""
                UPDATE orders.checkouts SET state = :started, attempt = attempt + 1, payment_method = :pm,
                    failed_step = NULL, failure_code = NULL, failure_message = NULL, retryable = false,
                    lines = NULL, total_minor = NULL, currency = NULL, order_id = NULL, payment_id = NULL,
                    lease_until = :lease, updated_at = now()
                WHERE id = :id AND state = :failed AND retryable AND attempt = :attempt
                RETURNING {_CHECKOUT_COLUMNS}"""), {
                "started": model.STARTED, "pm": payment_method, "lease": self._lease_until(), "id": checkout.id,
                "failed": model.FAILED, "attempt": checkout.attempt})).first()
            if row is None:
                return None
            restarted = _checkout(row)
            await self._log(conn, restarted.id, restarted.attempt, model.STARTED, "ok", "retry of a retryable failure")
            return restarted

    async def get_checkout(self, checkout_id: int) -> Checkout:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.text(
                f"SELECT {_CHECKOUT_COLUMNS} FROM orders.checkouts WHERE id = :id"), {"id": checkout_id})).one()
        return _checkout(row)

    async def advance(self, checkout: Checkout, new_state: str, *, conn: AsyncConnection | None = None,
                      detail: str = "", **columns) -> Checkout | None:
        """Moves the saga from its current state to `new_state`, setting the
        given columns and logging the step, in one statement; None when the
        saga is no longer where `checkout` says."""
        if conn is None:
            async with self.engine.begin() as own:
                return await self.advance(checkout, new_state, conn=own, detail=detail, **columns)
        sets = "".join(f", {name} = :{name}" for name in columns)
        params = {**columns, "new": new_state, "id": checkout.id, "old": checkout.state,
                  "attempt": checkout.attempt, "lease": self._lease_until(), "detail": detail[:1000]}
        if "lines" in params:
            params["lines"] = json.dumps([line.to_json() for line in params["lines"]])
        row = (await conn.execute(sa.text(f"""
            WITH moved AS (
                UPDATE orders.checkouts SET state = :new, lease_until = :lease, updated_at = now(){sets}
                WHERE id = :id AND state = :old AND attempt = :attempt
                RETURNING {_CHECKOUT_COLUMNS}
            ), logged AS (
                INSERT INTO orders.checkout_steps (checkout_id, attempt, step, outcome, detail)
                SELECT id, attempt, state, 'ok', :detail FROM moved
            )
            SELECT * FROM moved"""), params)).first()
        return None if row is None else _checkout(row)

    async def begin_compensation(self, checkout: Checkout, step: str, failure: model.Failure) -> Checkout | None:
        return await self.advance(
            checkout, model.COMPENSATING, detail=f"{step}: {failure.message}", failed_step=step,
            failure_code=failure.code.name, failure_message=failure.message, retryable=failure.retryable)

    async def log_step(self, checkout: Checkout, step: str, outcome: str, detail: str = "") -> None:
        async with self.engine.begin() as conn:
            await self._log(conn, checkout.id, checkout.attempt, step, outcome, detail)

    async def _log(self, conn: AsyncConnection, checkout_id: int, attempt: int, step: str, outcome: str,
                   detail: str = "") -> None:
        await conn.execute(sa.text("""
            INSERT INTO orders.checkout_steps (checkout_id, attempt, step, outcome, detail)
            VALUES (:id, :attempt, :step, :outcome, :detail)"""),
            {"id": checkout_id, "attempt": attempt, "step": step, "outcome": outcome, "detail": detail[:1000]})

    async def mark_cart_cleared(self, checkout_id: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE orders.checkouts SET cart_cleared = true WHERE id = :id"),
                               {"id": checkout_id})

    async def claim_stale(self, limit: int) -> list[Checkout]:
        """Sagas whose orchestrator stopped renewing their lease (it died, or
        a confirmed checkout still has a cart to clear), now leased to us. A
        failed checkout is finished even though its cart stays (on purpose).
        The predicate is the partial index `checkouts_unfinished`'s."""
        async with self.engine.begin() as conn:
            rows = (await conn.execute(sa.text(f"""
                UPDATE orders.checkouts SET lease_until = :lease
                WHERE id IN (
                    SELECT id FROM orders.checkouts
                    WHERE (state NOT IN ('SUCCEEDED', 'FAILED') OR (state = 'SUCCEEDED' AND NOT cart_cleared))
                      AND lease_until < now()
                    ORDER BY lease_until LIMIT :limit FOR UPDATE SKIP LOCKED)
                RETURNING {_CHECKOUT_COLUMNS}"""), {"lease": self._lease_until(), "limit": limit})).all()
        return [_checkout(r) for r in rows]

    # -- orders -----------------------------------------------------------------

    async def create_order(self, checkout: Checkout, order_id: int, payment_id: str, payment_status: str
                           ) -> Checkout | None:
        """Records the authorized payment, inserts the PENDING order and moves
        the saga to ORDER_CREATED, atomically."""
        async with self.engine.begin() as conn:
            moved = await self.advance(checkout, model.ORDER_CREATED, conn=conn, order_id=order_id,
                                       payment_id=payment_id)
            if moved is None:
                return None
            await conn.execute(sa.text("""
                INSERT INTO orders.orders (id, checkout_id, buyer_id, idempotency_key, status, total_minor,
                                           currency, payment_status, delivery_status)
                VALUES (:id, :checkout, :buyer, :key, 'ORDER_STATUS_PENDING', :total, :currency, :pay,
                        'DELIVERY_STATUS_UNSPECIFIED')"""), {
                "id": order_id, "checkout": checkout.id, "buyer": checkout.buyer_id,
                "key": checkout.idempotency_key, "total": checkout.total_minor, "currency": checkout.currency,
                "pay": payment_status})
            await conn.execute(sa.text("""
                INSERT INTO orders.order_items (order_id, line, product_id, seller_id, title, quantity,
                                                unit_price_minor)
                VALUES (:order, :line, :product, :seller, :title, :quantity, :price)"""), [
                {"order": order_id, "line": i, "product": line.product_id, "seller": line.seller_id,
                 "title": line.title, "quantity": line.quantity, "price": line.unit_price_minor}
                for i, line in enumerate(checkout.lines)])
            return moved

    async def confirm(self, checkout: Checkout, cart_cleared: bool, event: tuple[int, str, bytes, bytes]
                      ) -> tuple[Checkout, OrderRecord] | None:
        """Confirms the order, starts its delivery history, queues the
        OrderConfirmed event and ends the saga: one transaction. Returns the
        ended saga and the confirmed order (built from what the statements
        returned, so the caller needs no second read)."""
        async with self.engine.begin() as conn:
            moved = await self.advance(checkout, model.SUCCEEDED, conn=conn, cart_cleared=cart_cleared)
            if moved is None:
                return None
            row = (await conn.execute(sa.text("""
                UPDATE orders.orders SET status = 'ORDER_STATUS_CONFIRMED', payment_status = 'PAYMENT_STATUS_CAPTURED',
                    delivery_status = 'DELIVERY_STATUS_PENDING' WHERE id = :id RETURNING *"""),
                {"id": checkout.order_id})).one()
            at = (await conn.execute(sa.text("""
                INSERT INTO orders.delivery_events (order_id, seq, status, actor, note)
                VALUES (:id, 0, 'DELIVERY_STATUS_PENDING', 'checkout', 'order confirmed') RETURNING at"""),
                {"id": checkout.order_id})).scalar_one()
            await self.outbox.add(conn, *event)
        self.outbox.notify()
        order = OrderRecord(**dict(row._mapping), lines=list(checkout.lines),
                            history=[DeliveryRecord("DELIVERY_STATUS_PENDING", "checkout", "order confirmed", at)])
        return moved, order

    async def set_order_state(self, order_id: int, *, status: str | None = None,
                              payment_status: str | None = None) -> None:
        sets = {k: v for k, v in (("status", status), ("payment_status", payment_status)) if v}
        if not sets:
            return
        async with self.engine.begin() as conn:
            await conn.execute(sa.text(
                f"UPDATE orders.orders SET {', '.join(f'{k} = :{k}' for k in sets)} WHERE id = :id"),
                {**sets, "id": order_id})

    async def get_order(self, order_id: int) -> OrderRecord | None:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT * FROM orders.orders WHERE id = :id"), {"id": order_id})).all()
            orders = await self._with_details(conn, rows)
        return orders[0] if orders else None

    async def list_orders(self, *, buyer_id: int | None = None, seller_id: int | None = None,
                          before_id: int | None, limit: int) -> list[OrderRecord]:
        """Newest first; a buyer's own orders, or the confirmed orders holding a seller's products."""
        params = {"before": before_id or (1 << 63) - 1, "limit": limit}
        if buyer_id is not None:
            query = """SELECT * FROM orders.orders WHERE buyer_id = :who AND id < :before
                       ORDER BY id DESC LIMIT :limit"""
            params["who"] = buyer_id
        else:
            query = """SELECT * FROM orders.orders WHERE id IN (
                           SELECT DISTINCT order_id FROM orders.order_items
                           WHERE seller_id = :who AND order_id < :before)
                       AND status = 'ORDER_STATUS_CONFIRMED'
                       ORDER BY id DESC LIMIT :limit"""
            params["who"] = seller_id
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.text(query), params)).all()
            return await self._with_details(conn, rows)

    async def _with_details(self, conn: AsyncConnection, rows) -> list[OrderRecord]:
        orders = [OrderRecord(**{k: v for k, v in r._mapping.items()}) for r in rows]
        if not orders:
            return []
        by_id = {o.id: o for o in orders}
        ids = list(by_id)
        for r in (await conn.execute(sa.text(
                "SELECT * FROM orders.order_items WHERE order_id = ANY(:ids) ORDER BY order_id, line"),
                {"ids": ids})).all():
            by_id[r.order_id].lines.append(Line(r.product_id, r.seller_id, r.title, r.quantity, r.unit_price_minor))
        for r in (await conn.execute(sa.text(
                "SELECT * FROM orders.delivery_events WHERE order_id = ANY(:ids) ORDER BY order_id, seq"),
                {"ids": ids})).all():
            by_id[r.order_id].history.append(DeliveryRecord(r.status, r.actor, r.note, r.at))
        return orders

    async def advance_delivery(self, order_id: int, check, wanted: str, actor: str, note: str,
                               event_for) -> OrderRecord | None:
        """Locks the order, lets `check(order)` refuse the change, then records
        the new status, its history entry and the event `event_for(order)`
        builds, in one transaction; returns the updated order."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.text("SELECT * FROM orders.orders WHERE id = :id FOR UPDATE"),
                                      {"id": order_id})).first()
            if row is None:
                return None
            current = (await self._with_details(conn, [row]))[0]
            check(current)
            seq = len(current.history)
            await conn.execute(sa.text("UPDATE orders.orders SET delivery_status = :s WHERE id = :id"),
                               {"s": wanted, "id": order_id})
            at = (await conn.execute(sa.text("""
                INSERT INTO orders.delivery_events (order_id, seq, status, actor, note)
                VALUES (:id, :seq, :status, :actor, :note) RETURNING at"""),
                {"id": order_id, "seq": seq, "status": wanted, "actor": actor, "note": note})).scalar_one()
            await self.outbox.add(conn, *event_for(current))
        self.outbox.notify()
        current.delivery_status = wanted
        current.history.append(DeliveryRecord(wanted, actor, note, at))
        return current
