"""PostgreSQL storage for products (schema `catalog`): the only code that talks SQL.

Every product change is written together with its ProductEvent in the
outbox, in one transaction: a committed change always has its event.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit.stores import pg
from services.catalog.settings import CatalogSettings
from services.kit.events.kafka import Producer
from services.kit.events.pg_outbox import PgOutbox

log = logging.getLogger(__name__)

SCHEMA = "catalog"

_metadata = sa.MetaData(schema=SCHEMA)
products = sa.Table(
    "products",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("seller_id", sa.BigInteger, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("price_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("media_ids", postgresql.ARRAY(sa.BigInteger), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

_COLUMNS = [
    products.c.id,
    products.c.seller_id,
    products.c.title,
    products.c.description,
    products.c.price_minor,
    products.c.currency,
    products.c.media_ids,
    products.c.active,
    products.c.created_at,
]
# Built once, not per call: building it cost 40% of running it (BatchGetProducts runs twice per checkout).
_BY_IDS = sa.select(*_COLUMNS).where(
    products.c.id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.BigInteger)))
)

# Columns UpdateProduct may change.
UPDATABLE = ("title", "description", "price_minor", "active")


@dataclass(frozen=True)
class ProductRecord:
    id: int
    seller_id: int
    title: str
    description: str
    price_minor: int
    currency: str
    media_ids: tuple[int, ...]
    active: bool
    created_at: datetime.datetime


class SellerDeleted(Exception):
    """The seller's account was deleted: nothing of theirs goes on sale."""


# Per-seller advisory locks (a key space of their own, hashed from the id):
# shared by product writes that put something on sale, exclusive while a
# deleted seller is recorded, so every such write is either refused or
# committed before the seller's products are looked up for deactivation.
_SELLER_LOCK_SHARED = sa.text("SELECT pg_advisory_xact_lock_shared(hashtextextended('catalog:seller:' || :seller, 0))")
_SELLER_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended('catalog:seller:' || :seller, 0))")
_IS_DELETED_SELLER = sa.text(f'SELECT 1 FROM "{SCHEMA}".deleted_sellers WHERE seller_id = :seller')


@dataclass(frozen=True)
class NewProduct:
    id: int
    seller_id: int
    title: str
    description: str
    price_minor: int
    currency: str
    media_ids: tuple[int, ...]


@dataclass(frozen=True)
class Event:
    """A serialized ProductEvent for the outbox."""

    event_id: int
    topic: str
    key: bytes
    payload: bytes


class CatalogStore:
    def __init__(self, settings: CatalogSettings, producer: Producer) -> None:
        self._settings = settings
        self._producer = producer
        self._engine: AsyncEngine | None = None
        self._autocommit: AsyncEngine | None = None
        self._outbox: PgOutbox | None = None

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "call start() first"
        return self._engine

    @property
    def autocommit(self) -> AsyncEngine:
        """For single reads: no transaction around them (pg.autocommit)."""
        assert self._autocommit is not None, "call start() first"
        return self._autocommit

    @property
    def outbox(self) -> PgOutbox:
        assert self._outbox is not None, "call start() first"
        return self._outbox

    async def start(self) -> None:
        self._engine = pg.engine(self._settings)
        self._autocommit = pg.autocommit(self._engine)
        self._outbox = PgOutbox(self._engine, SCHEMA, self._producer)
        async with self._engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    async def insert(self, product: NewProduct, event_for) -> ProductRecord:
        """Inserts the product and, in the same transaction, the event
        `event_for(record)` builds from the stored row."""
        stmt = (
            sa.insert(products)
            .values(
                id=product.id,
                seller_id=product.seller_id,
                title=product.title,
                description=product.description,
                price_minor=product.price_minor,
                currency=product.currency,
                media_ids=list(product.media_ids),
                active=True,
                created_at=sa.func.now(),
                updated_at=sa.func.now(),
            )
            .returning(*_COLUMNS)
        )
        async with self.engine.begin() as conn:
            await _refuse_deleted_seller(conn, product.seller_id)
            record = _record((await conn.execute(stmt)).one())
            await self._add_event(conn, event_for(record))
        self.outbox.notify()
        return record

    async def update(self, product_id: int, seller_check, changes: dict, event_for) -> ProductRecord | None:
        """Applies `changes` to one product with its event, after `seller_check(record)`
        (which raises to refuse) ran on the locked row; None when there is no such product."""
        async with self.engine.begin() as conn:
            locked = (
                await conn.execute(sa.select(*_COLUMNS).where(products.c.id == product_id).with_for_update())
            ).first()
            if locked is None:
                return None
            seller_check(_record(locked))
            if changes.get("active") is True:
                await _refuse_deleted_seller(conn, locked.seller_id)
            stmt = (
                sa.update(products)
                .where(products.c.id == product_id)
                .values(**changes, updated_at=sa.func.now())
                .returning(*_COLUMNS)
            )
            record = _record((await conn.execute(stmt)).one())
            await self._add_event(conn, event_for(record))
        self.outbox.notify()
        return record

    async def mark_seller_deleted(self, seller_id: int) -> None:
        """Records the seller as deleted (idempotent): from its commit on, no
        product of theirs is created or reactivated."""
        async with self.engine.begin() as conn:
            await conn.execute(_SELLER_LOCK, {"seller": seller_id})
            await conn.execute(
                sa.text(f'INSERT INTO "{SCHEMA}".deleted_sellers (seller_id) VALUES (:seller) ON CONFLICT DO NOTHING'),
                {"seller": seller_id},
            )

    async def get(self, product_id: int) -> ProductRecord | None:
        async with self.autocommit.connect() as conn:
            row = (await conn.execute(sa.select(*_COLUMNS).where(products.c.id == product_id))).first()
        return None if row is None else _record(row)

    async def get_many(self, product_ids: list[int]) -> dict[int, ProductRecord]:
        """One round trip for any number of ids; unknown ids are absent."""
        if not product_ids:
            return {}
        async with self.autocommit.connect() as conn:
            rows = (await conn.execute(_BY_IDS, {"ids": product_ids})).all()
        return {row.id: _record(row) for row in rows}

    async def list_active(
        self, *, seller_id: int | None, before: int | None, limit: int, include_inactive: bool = False
    ) -> list[ProductRecord]:
        """Active products (inactive ones too when asked) newest first (ids are
        time-ordered), below `before` when set."""
        stmt = sa.select(*_COLUMNS)
        if not include_inactive:
            stmt = stmt.where(products.c.active.is_(True))
        if seller_id is not None:
            stmt = stmt.where(products.c.seller_id == seller_id)
        if before is not None:
            stmt = stmt.where(products.c.id < before)
        stmt = stmt.order_by(products.c.id.desc()).limit(limit)
        async with self.autocommit.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_record(row) for row in rows]

    async def products_after(self, after: int, limit: int) -> list[ProductRecord]:
        """Up to `limit` products (inactive ones included) with ids above
        `after`, in id order: one keyset page of a full export."""
        stmt = sa.select(*_COLUMNS).where(products.c.id > after).order_by(products.c.id).limit(limit)
        async with self.autocommit.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_record(row) for row in rows]

    async def _add_event(self, conn: AsyncConnection, event: Event) -> None:
        await self.outbox.add(conn, event.event_id, event.topic, event.key, event.payload)


async def _refuse_deleted_seller(conn: AsyncConnection, seller_id: int) -> None:
    await conn.execute(_SELLER_LOCK_SHARED, {"seller": seller_id})
    if (await conn.execute(_IS_DELETED_SELLER, {"seller": seller_id})).first() is not None:
        raise SellerDeleted(seller_id)


def _record(row) -> ProductRecord:
    return ProductRecord(
        id=row.id,
        seller_id=row.seller_id,
        title=row.title,
        description=row.description,
        price_minor=row.price_minor,
        currency=row.currency,
        media_ids=tuple(row.media_ids or ()),
        active=row.active,
        created_at=row.created_at,
    )
