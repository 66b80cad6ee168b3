"""PostgreSQL storage for stock and reservations (schema `inventory`).

Consistency rests on three rules every transaction here follows:
- units move only through conditional UPDATEs (`... WHERE available >= :q`),
  so a reservation never takes what is not there, whatever interleaves;
- a transaction locks its reservation row first, then stock rows in
  ascending product id, so two transactions never wait on each other in a
  cycle (no deadlocks);
- a reservation's state changes and its units move in the same transaction,
  so units go back exactly once.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.inventory.validation import Line
from services.kit.stores import pg
from services.inventory.settings import InventorySettings

log = logging.getLogger(__name__)

SCHEMA = "inventory"

HELD = "HELD"
COMMITTED = "COMMITTED"
RELEASED = "RELEASED"

REASON_RELEASED = "released"
REASON_EXPIRED = "expired"
REASON_BEFORE_RESERVE = "released before reserve"


@dataclass(frozen=True)
class StockRow:
    product_id: int
    available: int
    reserved: int
    sold: int


@dataclass(frozen=True)
class ReservationRow:
    reservation_id: str
    state: str
    items: list[Line] = field(default_factory=list)
    expire_time: datetime.datetime | None = None
    release_reason: str = ""


class NotStocked(Exception):
    """The product has no stock record."""

    def __init__(self, product_id: int) -> None:
        super().__init__(product_id)
        self.product_id = product_id


class Short(Exception):
    """A line asked for more units than are available; nothing was taken."""

    def __init__(self, product_id: int, available: int, requested: int) -> None:
        super().__init__(product_id, available, requested)
        self.product_id = product_id
        self.available = available
        self.requested = requested


class NoSuchReservation(Exception):
    pass


class NotHeld(Exception):
    """Commit refused: the reservation was released, or expired (and is now released)."""

    def __init__(self, reservation: ReservationRow) -> None:
        super().__init__(reservation.reservation_id)
        self.reservation = reservation


class KeyReused(Exception):
    """An AddStock idempotency key came back with a different quantity."""

    def __init__(self, quantity: int) -> None:
        super().__init__(quantity)
        self.quantity = quantity


@dataclass(frozen=True)
class Reserved:
    reservation: ReservationRow
    # False when the id already existed (a retry, or a tombstone): nothing was taken now.
    created: bool


_STOCK_COLUMNS = "product_id, available, reserved, sold"
_RESERVATION_COLUMNS = "reservation_id, state, items, expire_time, release_reason"

_SQL = {
    "init_stock": f"""INSERT INTO {SCHEMA}.stock (product_id, available) VALUES (:p, :q)
        ON CONFLICT (product_id) DO NOTHING""",
    "get_stock": f"SELECT {_STOCK_COLUMNS} FROM {SCHEMA}.stock WHERE product_id = ANY(:ids)",
    "lock_stock": f"SELECT {_STOCK_COLUMNS} FROM {SCHEMA}.stock WHERE product_id = :p FOR UPDATE",
    "record_addition": f"""INSERT INTO {SCHEMA}.stock_additions (product_id, idempotency_key, quantity)
        VALUES (:p, :key, :q) ON CONFLICT (product_id, idempotency_key) DO NOTHING RETURNING quantity""",
    "prior_addition": f"""SELECT quantity FROM {SCHEMA}.stock_additions
        WHERE product_id = :p AND idempotency_key = :key""",
    "add_units": f"""UPDATE {SCHEMA}.stock SET available = available + :q, updated_at = now()
        WHERE product_id = :p RETURNING {_STOCK_COLUMNS}""",
    "claim_reservation": f"""INSERT INTO {SCHEMA}.reservations (reservation_id, state, items, expire_time)
        VALUES (:id, 'HELD', CAST(:items AS jsonb), now() + :ttl * interval '1 second')
        ON CONFLICT (reservation_id) DO NOTHING RETURNING {_RESERVATION_COLUMNS}""",
    # The one statement that guards against overselling.
    "take_units": f"""UPDATE {SCHEMA}.stock
        SET available = available - :q, reserved = reserved + :q, updated_at = now()
        WHERE product_id = :p AND available >= :q RETURNING available""",
    "available": f"SELECT available FROM {SCHEMA}.stock WHERE product_id = :p",
    "get_reservation": f"SELECT {_RESERVATION_COLUMNS} FROM {SCHEMA}.reservations WHERE reservation_id = :id",
    "lock_reservation": f"""SELECT {_RESERVATION_COLUMNS}, expire_time <= now() AS expired
        FROM {SCHEMA}.reservations WHERE reservation_id = :id FOR UPDATE""",
    "set_state": f"""UPDATE {SCHEMA}.reservations SET state = :state, release_reason = :reason, updated_at = now()
        WHERE reservation_id = ANY(:ids) RETURNING {_RESERVATION_COLUMNS}""",
    "tombstone": f"""INSERT INTO {SCHEMA}.reservations (reservation_id, state, release_reason)
        VALUES (:id, 'RELEASED', :reason) ON CONFLICT (reservation_id) DO NOTHING RETURNING {_RESERVATION_COLUMNS}""",
    # Held units become sold, or go back to available (from held or from sold).
    "sell_held": f"""UPDATE {SCHEMA}.stock SET reserved = reserved - :q, sold = sold + :q, updated_at = now()
        WHERE product_id = :p""",
    "return_held": f"""UPDATE {SCHEMA}.stock SET reserved = reserved - :q, available = available + :q,
        updated_at = now() WHERE product_id = :p""",
    "return_sold": f"""UPDATE {SCHEMA}.stock SET sold = sold - :q, available = available + :q, updated_at = now()
        WHERE product_id = :p""",
    # Replicas share the sweep: each claims rows the others have not locked.
    "claim_expired": f"""SELECT reservation_id, items FROM {SCHEMA}.reservations
        WHERE state = 'HELD' AND expire_time <= now() ORDER BY expire_time LIMIT :n FOR UPDATE SKIP LOCKED""",
}
_STATEMENTS = {name: sa.text(sql) for name, sql in _SQL.items()}


class InventoryStore:
    def __init__(self, settings: InventorySettings) -> None:
        self._settings = settings
        self._engine: AsyncEngine | None = None
        self._autocommit: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "call start() first"
        return self._engine

    @property
    def autocommit(self) -> AsyncEngine:
        """For single reads: no transaction around them (pg.autocommit)."""
        assert self._autocommit is not None, "call start() first"
        return self._autocommit

    async def start(self) -> None:
        # Sized for bursts of checkouts: each reservation holds a connection
        # only for its few statements.
        self._engine = pg.engine(self._settings, pool_size=20)
        self._autocommit = pg.autocommit(self._engine)
        async with self._engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    # -- stock -----------------------------------------------------------------

    async def initialize(self, product_id: int, quantity: int) -> StockRow:
        async with self.engine.begin() as conn:
            await conn.execute(_STATEMENTS["init_stock"], {"p": product_id, "q": quantity})
            row = (await conn.execute(_STATEMENTS["get_stock"], {"ids": [product_id]})).one()
        return _stock(row)

    async def add(self, product_id: int, quantity: int, key: str) -> StockRow:
        """Adds units once per (product, key); raises NotStocked or KeyReused."""
        async with self.engine.begin() as conn:
            # Locking the stock row first serializes additions with the same key.
            locked = (await conn.execute(_STATEMENTS["lock_stock"], {"p": product_id})).first()
            if locked is None:
                raise NotStocked(product_id)
            params = {"p": product_id, "key": key, "q": quantity}
            if (await conn.execute(_STATEMENTS["record_addition"], params)).first() is None:
                prior = (await conn.execute(_STATEMENTS["prior_addition"], params)).scalar_one()
                if prior != quantity:
                    raise KeyReused(prior)
                return _stock(locked)
            row = (await conn.execute(_STATEMENTS["add_units"], params)).one()
        return _stock(row)

    async def get_stock(self, product_ids: list[int]) -> dict[int, StockRow]:
        if not product_ids:
            return {}
        async with self.autocommit.connect() as conn:
            rows = (await conn.execute(_STATEMENTS["get_stock"], {"ids": product_ids})).all()
        return {row.product_id: _stock(row) for row in rows}

    # -- reservations ----------------------------------------------------------

    async def reserve(self, reservation_id: str, lines: list[Line], ttl_seconds: int) -> Reserved:
        """Holds every line or nothing; raises Short or NotStocked (nothing taken)."""
        items = json.dumps([{"product_id": line.product_id, "quantity": line.quantity} for line in lines])
        async with self.engine.begin() as conn:
            # Claiming the id first: a concurrent retry waits on this row's
            # unique index and then finds it taken, so one id reserves once.
            claimed = (
                await conn.execute(
                    _STATEMENTS["claim_reservation"], {"id": reservation_id, "items": items, "ttl": ttl_seconds}
                )
            ).first()
            if claimed is None:
                existing = (await conn.execute(_STATEMENTS["get_reservation"], {"id": reservation_id})).one()
                return Reserved(_reservation(existing), created=False)
            for line in sorted(lines):
                await _take(conn, line)
        return Reserved(_reservation(claimed), created=True)

    async def get(self, reservation_id: str) -> ReservationRow | None:
        async with self.autocommit.connect() as conn:
            row = (await conn.execute(_STATEMENTS["get_reservation"], {"id": reservation_id})).first()
        return None if row is None else _reservation(row)

    async def commit(self, reservation_id: str) -> tuple[ReservationRow, bool]:
        """HELD -> COMMITTED, idempotent: (reservation, whether it was committed now).
        Raises NoSuchReservation, or NotHeld when released or expired; an expired
        one is released on the way."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(_STATEMENTS["lock_reservation"], {"id": reservation_id})).first()
            if row is None:
                raise NoSuchReservation(reservation_id)
            current = _reservation(row)
            if current.state == HELD and not row.expired:
                for line in sorted(current.items):
                    await conn.execute(_STATEMENTS["sell_held"], {"p": line.product_id, "q": line.quantity})
                return await _set_state(conn, reservation_id, COMMITTED, ""), True
            if current.state == HELD:
                # Expired but not swept yet: release now (committed with this
                # transaction), then refuse.
                for line in sorted(current.items):
                    await conn.execute(_STATEMENTS["return_held"], {"p": line.product_id, "q": line.quantity})
                current = await _set_state(conn, reservation_id, RELEASED, REASON_EXPIRED)
        if current.state == COMMITTED:
            return current, False
        raise NotHeld(current)

    async def release(self, reservation_id: str) -> tuple[ReservationRow, bool]:
        """Gives the units of a held or committed reservation back, once.

        Returns (reservation, whether units went back now). An unknown id is
        recorded as a released tombstone."""
        while True:
            async with self.engine.begin() as conn:
                row = (await conn.execute(_STATEMENTS["lock_reservation"], {"id": reservation_id})).first()
                if row is None:
                    tomb = (
                        await conn.execute(
                            _STATEMENTS["tombstone"], {"id": reservation_id, "reason": REASON_BEFORE_RESERVE}
                        )
                    ).first()
                    if tomb is None:
                        continue  # a ReserveStock claimed the id meanwhile: release that
                    return _reservation(tomb), False
                current = _reservation(row)
                if current.state == RELEASED:
                    return current, False
                statement = _STATEMENTS["return_held" if current.state == HELD else "return_sold"]
                for line in sorted(current.items):
                    await conn.execute(statement, {"p": line.product_id, "q": line.quantity})
                return await _set_state(conn, reservation_id, RELEASED, REASON_RELEASED), True

    async def release_expired(self, batch: int) -> int:
        """Releases up to `batch` held reservations past their expiry; returns how many."""
        async with self.engine.begin() as conn:
            rows = (await conn.execute(_STATEMENTS["claim_expired"], {"n": batch})).all()
            if not rows:
                return 0
            # Summed per product and applied in product order, like every
            # other transaction here.
            units: Counter[int] = Counter()
            for row in rows:
                for item in row.items:
                    units[int(item["product_id"])] += int(item["quantity"])
            for product_id in sorted(units):
                await conn.execute(_STATEMENTS["return_held"], {"p": product_id, "q": units[product_id]})
            await conn.execute(
                _STATEMENTS["set_state"],
                {"ids": [row.reservation_id for row in rows], "state": RELEASED, "reason": REASON_EXPIRED},
            )
        return len(rows)


async def _take(conn: AsyncConnection, line: Line) -> None:
    params = {"p": line.product_id, "q": line.quantity}
    if (await conn.execute(_STATEMENTS["take_units"], params)).first() is not None:
        return
    available = (await conn.execute(_STATEMENTS["available"], params)).scalar_one_or_none()
    if available is None:
        raise NotStocked(line.product_id)
    raise Short(line.product_id, available, line.quantity)


async def _set_state(conn: AsyncConnection, reservation_id: str, state: str, reason: str) -> ReservationRow:
    row = (
        await conn.execute(_STATEMENTS["set_state"], {"ids": [reservation_id], "state": state, "reason": reason})
    ).one()
    return _reservation(row)


def _stock(row) -> StockRow:
    return StockRow(product_id=row.product_id, available=row.available, reserved=row.reserved, sold=row.sold)


def _reservation(row) -> ReservationRow:
    return ReservationRow(
        reservation_id=row.reservation_id,
        state=row.state,
        items=[Line(int(item["product_id"]), int(item["quantity"])) for item in row.items],
        expire_time=row.expire_time,
        release_reason=row.release_reason,
    )
