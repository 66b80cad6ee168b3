"""InventoryService: validation, error mapping and the expiry sweeper.

Storage (and every consistency rule) lives in store.py.
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter

from aviary.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from services.inventory import validation
from services.inventory.store import (
    COMMITTED,
    HELD,
    REASON_BEFORE_RESERVE,
    REASON_EXPIRED,
    RELEASED,
    SCHEMA,
    InventoryStore,
    KeyReused,
    NoSuchReservation,
    NotHeld,
    NotStocked,
    ReservationRow,
    Short,
    StockRow,
)
from services.inventory.settings import InventorySettings
from services.kit.server import startup
from services.kit.stores import migrations
from services.kit.server.errors import failed_precondition, invalid_argument, not_found
from services.kit.server.ids import parse_id, parse_ids
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

# Outcomes: held, short, not_stocked, replayed (a retry or tombstone answered),
# committed, commit_refused, released, expired (swept or found at commit).
# Retries that change nothing (a second commit or release) are not counted.
RESERVATIONS = Counter("aviary_inventory_reservations_total", "Reservation outcomes", ["outcome"])

SWEEP_BATCH = 200

_STATES = {
    HELD: inventory_pb2.RESERVATION_STATE_HELD,
    COMMITTED: inventory_pb2.RESERVATION_STATE_COMMITTED,
    RELEASED: inventory_pb2.RESERVATION_STATE_RELEASED,
}


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, settings: InventorySettings) -> None:
        self.settings = settings
        self.store = InventoryStore(settings)
        self.default_ttl = settings.reservation_ttl_seconds
        self.sweep_seconds = settings.sweep_seconds

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        await startup.retry_until_up(self._migrate, "postgresql")
        await self.store.start()

    async def _migrate(self) -> None:
        await migrations.upgrade_async("inventory", SCHEMA, self.settings.pg_dsn)

    async def stop(self) -> None:
        await self.store.stop()

    async def sweep_expired(self) -> None:
        """Background job: releases held reservations past their expiry, forever."""
        while True:
            try:
                while (released := await self.store.release_expired(SWEEP_BATCH)) > 0:
                    RESERVATIONS.labels("expired").inc(released)
                    log.info("expired reservations released", extra={"count": released})
                    if released < SWEEP_BATCH:
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL away: the next round retries
                log.warning("reservation sweep failed", extra={"error": error_text(exc)})
            await asyncio.sleep(self.sweep_seconds)

    # -- stock -------------------------------------------------------------------

    async def InitializeStock(self, request, context):
        product_id = parse_id(request.product_id, "product_id")
        quantity = validation.initial_quantity(request.quantity)
        return _level(await self.store.initialize(product_id, quantity))

    async def AddStock(self, request, context):
        product_id = parse_id(request.product_id, "product_id")
        quantity = validation.added_quantity(request.quantity)
        key = validation.check_key(request.idempotency_key, "idempotency_key")
        try:
            level = await self.store.add(product_id, quantity, key)
        except NotStocked:
            raise not_found(f"product {product_id} has no stock record") from None
        except KeyReused as exc:
            raise invalid_argument(
                "idempotency_key",
                f"was already used to add {exc.quantity} units to product {product_id}; use a new key",
            ) from None
        log.info("stock added", extra={"product_id": product_id, "quantity": quantity})
        return _level(level)

    async def BatchGetStock(self, request, context):
        product_ids = list(
            dict.fromkeys(parse_ids(request.product_ids, "product_ids", max_items=validation.MAX_BATCH_GET))
        )
        found = await self.store.get_stock(product_ids)
        return inventory_pb2.BatchGetStockResponse(levels=[_level(found[p]) for p in product_ids if p in found])

    # -- reservations --------------------------------------------------------------

    async def ReserveStock(self, request, context):
        reservation_id = validation.check_key(request.reservation_id, "reservation_id")
        lines = validation.check_lines(request.items)
        ttl = validation.ttl_seconds(request.ttl_seconds, self.default_ttl)
        line_of = {line.product_id: i for i, line in enumerate(lines)}
        try:
            reserved = await self.store.reserve(reservation_id, lines, ttl)
        except Short as exc:
            RESERVATIONS.labels("short").inc()
            raise failed_precondition(
                f"items[{line_of[exc.product_id]}]: product {exc.product_id} has only {exc.available} left, "
                f"{exc.requested} requested"
            ) from None
        except NotStocked as exc:
            RESERVATIONS.labels("not_stocked").inc()
            raise failed_precondition(
                f"items[{line_of[exc.product_id]}]: product {exc.product_id} is not stocked"
            ) from None
        RESERVATIONS.labels("held" if reserved.created else "replayed").inc()
        if reserved.created:
            log.info("stock reserved", extra={"reservation_id": reservation_id, "lines": len(lines), "ttl": ttl})
        return _reservation(reserved.reservation)

    async def CommitReservation(self, request, context):
        reservation_id = validation.check_key(request.reservation_id, "reservation_id")
        try:
            committed, now = await self.store.commit(reservation_id)
        except NoSuchReservation:
            raise not_found(f"reservation {reservation_id} does not exist") from None
        except NotHeld as exc:
            reason = exc.reservation.release_reason
            RESERVATIONS.labels("expired" if reason == REASON_EXPIRED else "commit_refused").inc()
            raise failed_precondition(
                f"reservation {reservation_id} cannot be committed: {_why_released(reason)}"
            ) from None
        if now:
            RESERVATIONS.labels("committed").inc()
            log.info("reservation committed", extra={"reservation_id": reservation_id})
        return _reservation(committed)

    async def ReleaseReservation(self, request, context):
        reservation_id = validation.check_key(request.reservation_id, "reservation_id")
        released, returned_units = await self.store.release(reservation_id)
        if returned_units:
            RESERVATIONS.labels("released").inc()
            log.info("reservation released", extra={"reservation_id": reservation_id})
        return _reservation(released)

    async def GetReservation(self, request, context):
        reservation_id = validation.check_key(request.reservation_id, "reservation_id")
        found = await self.store.get(reservation_id)
        if found is None:
            raise not_found(f"reservation {reservation_id} does not exist")
        return _reservation(found)


def _why_released(reason: str) -> str:
    if reason == REASON_EXPIRED:
        return "it expired before the commit; reserve again"
    if reason == REASON_BEFORE_RESERVE:
        return "it was released before it was reserved"
    return "it was released"


def _level(row: StockRow) -> inventory_pb2.StockLevel:
    return inventory_pb2.StockLevel(
        product_id=str(row.product_id), available=row.available, reserved=row.reserved, sold=row.sold
    )


def _reservation(row: ReservationRow) -> inventory_pb2.Reservation:
    message = inventory_pb2.Reservation(
        reservation_id=row.reservation_id,
        items=[inventory_pb2.ReservationItem(product_id=str(i.product_id), quantity=i.quantity) for i in row.items],
        state=_STATES[row.state],
        release_reason=row.release_reason,
    )
    if row.expire_time is not None:
        expire = Timestamp()
        expire.FromDatetime(row.expire_time)
        message.expire_time.CopyFrom(expire)
    return message
