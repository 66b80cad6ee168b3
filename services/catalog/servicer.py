"""CatalogService: validation, orchestration with inventory, and error mapping.

Storage lives in store.py, field rules in validation.py. Stock belongs to
inventory: writes go through it (created before the product row, so a
product never exists without stock), reads join it in and degrade to stock 0
when inventory cannot answer: catalog reads never fail because of inventory.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from aviary.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from aviary.events.v1 import events_pb2
from aviary.inventory.v1 import inventory_pb2
from services.catalog import validation
from services.catalog.settings import CatalogSettings
from services.catalog.store import SCHEMA, CatalogStore, Event, NewProduct, ProductRecord, SellerDeleted
from services.kit.events.account_deletions import AccountDeletions
from services.kit.events import kafka
from services.kit.peers import clients, media
from services.kit.server import auth, ids, paging, startup
from services.kit.stores import migrations
from services.kit.server.errors import (
    ApiError,
    failed_precondition,
    invalid_argument,
    not_found,
    nothing_to_change,
    peer_error,
    permission_denied,
    unavailable,
)

log = logging.getLogger(__name__)

MAX_BATCH_GET = 200
# Identity's account deletions: one group for all replicas.
ACCOUNTS_GROUP = "catalog-accounts"
# A deleted seller's active products deactivated per page.
DEACTIVATE_PAGE = 100
ROLE_SELLER = "SELLER"


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, settings: CatalogSettings) -> None:
        self.settings = settings
        # Only the outbox relay uses the producer; request paths never touch Kafka.
        self.producer = kafka.Producer(settings.kafka_bootstrap)
        self.store = CatalogStore(settings, self.producer)
        self.ids = ids.IdGenerator(settings.worker_id)
        # Stock is a nice-to-have on reads: a slow inventory must not make
        # product pages slow, so its deadline is short.
        self.stock_timeout = settings.stock_timeout_seconds
        self.account_deletions = AccountDeletions(settings.kafka_bootstrap, ACCOUNTS_GROUP, self._on_account_deleted)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        await startup.retry_until_up(self._migrate, "postgresql")
        await self.store.start()

    async def _migrate(self) -> None:
        await migrations.upgrade_async("catalog", SCHEMA, self.settings.pg_dsn)

    async def stop(self) -> None:
        await self.producer.close()
        await self.store.stop()
        await clients.close_all()

    async def relay(self) -> None:
        """Background job: publishes stored product events to Kafka, forever."""
        await kafka.relay_ensuring_topic(
            self.store.outbox.relay_forever, self.settings.kafka_bootstrap, kafka.CATALOG_TOPIC
        )

    async def consume_account_events(self) -> None:
        """Background job: identity's AccountDeleted -> the seller's products deactivated."""
        await self.account_deletions.run()

    async def _on_account_deleted(self, event: events_pb2.AccountEvent) -> None:
        await self.remove_seller(event.deleted.user_id, event.deleted.role)

    async def remove_seller(self, seller_id: int, role: str) -> None:
        """Takes a deleted seller's products off sale for good: the seller is
        recorded first (no product of theirs is created or reactivated after),
        then each active product is deactivated through the usual update, with
        its ProductUpserted event (search, feed and recommendations drop it;
        cart and checkout refuse it). Idempotent: a redelivery finds no active
        product left."""
        if role == ROLE_SELLER:
            await self.store.mark_seller_deleted(seller_id)
        deactivated = 0
        while True:
            page = await self.store.list_active(seller_id=seller_id, before=None, limit=DEACTIVATE_PAGE)
            for record in page:
                await self.store.update(record.id, _any_record, {"active": False}, self._upserted_event)
            deactivated += len(page)
            if len(page) < DEACTIVATE_PAGE:
                break
        if deactivated:
            log.info("deleted seller's products deactivated", extra={"seller_id": seller_id, "products": deactivated})

    # -- RPCs --------------------------------------------------------------------

    async def GetProduct(self, request, context) -> catalog_pb2.Product:
        product_id = ids.parse_id(request.product_id, "product_id")
        record = await self.store.get(product_id)
        if record is None:
            raise not_found(f"product {product_id} does not exist")
        stock = await self._stock([product_id])
        return to_proto(record, stock.get(product_id, 0))

    async def ListProducts(self, request, context) -> catalog_pb2.ListProductsResponse:
        seller_id = _listed_seller(request.seller_id, context)
        if request.include_inactive:
            _check_own_listing(seller_id, context)
        size = paging.page_size(request.page_size)
        before = paging.int_cursor(request.page_token, "before")
        records = await self.store.list_active(
            seller_id=seller_id, before=before, limit=size + 1, include_inactive=request.include_inactive
        )
        page = records[:size]
        stock = await self._stock([r.id for r in page])
        next_token = paging.encode_token({"before": page[-1].id}) if len(records) > size else ""
        return catalog_pb2.ListProductsResponse(
            products=[to_proto(r, stock.get(r.id, 0)) for r in page], next_page_token=next_token
        )

    async def CreateProduct(self, request, context) -> catalog_pb2.Product:
        seller = auth.caller(context)
        if not seller.is_seller:
            raise permission_denied(
                "only seller accounts can create products; sign up with role SELLER "
                '(POST /v1/accounts with "role": "SELLER")'
            )
        title = validation.check_title(request.title)
        description = validation.check_description(request.description)
        price_minor = validation.check_price(request.price_minor)
        currency = validation.check_currency(request.currency)
        media_ids = validation.check_media_ids(request.media_ids)
        initial_stock = validation.check_initial_stock(request.stock)
        await media.check_own_uploads(media_ids, seller.user_id, self.settings.rpc_timeout_seconds, images_only=True)

        product_id = self.ids.next_id()
        # Stock first (idempotent): if the insert below never happens, what is
        # left is a stock record nobody can reach, never a product without stock.
        level = await self._initialize_stock(product_id, initial_stock)
        try:
            record = await self.store.insert(
                NewProduct(
                    id=product_id,
                    seller_id=seller.user_id,
                    title=title,
                    description=description,
                    price_minor=price_minor,
                    currency=currency,
                    media_ids=tuple(media_ids),
                ),
                self._upserted_event,
            )
        except SellerDeleted:
            raise _seller_deleted() from None
        log.info("product created", extra={"product_id": product_id, "seller_id": seller.user_id})
        return to_proto(record, level.available)

    async def UpdateProduct(self, request, context) -> catalog_pb2.Product:
        caller = auth.caller_id(context)
        product_id = ids.parse_id(request.product_id, "product_id")
        changes = _changes(request)

        def only_the_seller(record: ProductRecord) -> None:
            _require_seller(record, caller, "change")

        try:
            record = await self.store.update(product_id, only_the_seller, changes, self._upserted_event)
        except SellerDeleted:
            raise _seller_deleted() from None
        if record is None:
            raise not_found(f"product {product_id} does not exist")
        log.info("product updated", extra={"product_id": product_id, "fields": sorted(changes)})
        stock = await self._stock([product_id])
        return to_proto(record, stock.get(product_id, 0))

    async def RestockProduct(self, request, context) -> catalog_pb2.Product:
        caller = auth.caller_id(context)
        product_id = ids.parse_id(request.product_id, "product_id")
        quantity = validation.check_restock_quantity(request.quantity)
        key = validation.check_idempotency_key(request.idempotency_key)
        record = await self.store.get(product_id)
        if record is None:
            raise not_found(f"product {product_id} does not exist")
        _require_seller(record, caller, "restock")
        level = await self._add_stock(product_id, quantity, key)
        log.info("product restocked", extra={"product_id": product_id, "quantity": quantity})
        return to_proto(record, level.available)

    async def BatchGetProducts(self, request, context) -> catalog_pb2.BatchGetProductsResponse:
        product_ids = list(dict.fromkeys(ids.parse_ids(request.product_ids, "product_ids", max_items=MAX_BATCH_GET)))
        records = await self.store.get_many(product_ids)
        found = [records[p] for p in product_ids if p in records]
        stock = {} if request.skip_stock else await self._stock([r.id for r in found])
        return catalog_pb2.BatchGetProductsResponse(products=[to_proto(r, stock.get(r.id, 0)) for r in found])

    async def ExportProducts(self, request, context):
        """Every product with its current state, in id order, one keyset page
        per batch (each page is its own short query: no long transaction)."""
        batch_size = _export_batch_size(request.batch_size)
        after, exported = 0, 0
        while True:
            page = await self.store.products_after(after, batch_size)
            if page:
                exported += len(page)
                yield catalog_pb2.ExportProductsResponse(products=[_upserted(r) for r in page])
            if len(page) < batch_size:
                log.info("products exported", extra={"products": exported})
                return
            after = page[-1].id

    # -- inventory ---------------------------------------------------------------

    async def _stock(self, product_ids: list[int]) -> dict[int, int]:
        """Available units by product, from one inventory call; {} when it cannot answer."""
        if not product_ids:
            return {}
        try:
            response = await clients.inventory().BatchGetStock(
                inventory_pb2.BatchGetStockRequest(product_ids=[str(p) for p in product_ids]),
                timeout=self.stock_timeout,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "inventory BatchGetStock failed; products go out with stock 0",
                extra={"code": exc.code().name, "details": exc.details(), "products": len(product_ids)},
            )
            return {}
        return {int(level.product_id): level.available for level in response.levels}

    async def _initialize_stock(self, product_id: int, quantity: int) -> inventory_pb2.StockLevel:
        try:
            return await clients.inventory().InitializeStock(
                inventory_pb2.InitializeStockRequest(product_id=str(product_id), quantity=quantity),
                timeout=self.settings.rpc_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            raise _inventory_error(exc, "create the product") from exc

    async def _add_stock(self, product_id: int, quantity: int, key: str) -> inventory_pb2.StockLevel:
        try:
            return await clients.inventory().AddStock(
                inventory_pb2.AddStockRequest(product_id=str(product_id), quantity=quantity, idempotency_key=key),
                timeout=self.settings.rpc_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                # Inventory names the field (idempotency_key reused with another quantity).
                raise peer_error(exc) from exc
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise failed_precondition(f"product {product_id} has no stock record; it cannot be restocked") from exc
            raise _inventory_error(exc, "restock the product") from exc

    # -- events ------------------------------------------------------------------

    def _upserted_event(self, record: ProductRecord) -> Event:
        event_id = self.ids.next_id()
        occur_time = Timestamp()
        occur_time.FromMilliseconds(ids.timestamp_ms(event_id))
        event = events_pb2.ProductEvent(
            event_id=event_id,
            occur_time=occur_time,
            upserted=_upserted(record),
        )
        # Keyed by product id: one product's events stay in order.
        return Event(event_id, kafka.CATALOG_TOPIC, str(record.id).encode(), event.SerializeToString())


def _export_batch_size(value: int) -> int:
    if value == 0:
        return 500
    if not 1 <= value <= 1000:
        raise invalid_argument("batch_size", f"must be between 1 and 1000, got {value}")
    return value


def _upserted(record: ProductRecord) -> events_pb2.ProductUpserted:
    """The product in the shape of its ProductUpserted event (events and ExportProducts)."""
    return events_pb2.ProductUpserted(
        product_id=record.id,
        seller_id=record.seller_id,
        title=record.title,
        description=record.description,
        price_minor=record.price_minor,
        currency=record.currency,
        media_ids=list(record.media_ids),
        active=record.active,
        created_at=_timestamp(record),
    )


def _changes(request: catalog_pb2.UpdateProductRequest) -> dict:
    """The checked column -> value changes of an UpdateProduct request."""
    changes: dict = {}
    if request.HasField("title"):
        changes["title"] = validation.check_title(request.title)
    if request.HasField("description"):
        changes["description"] = validation.check_description(request.description)
    if request.HasField("price_minor"):
        changes["price_minor"] = validation.check_price(request.price_minor)
    if request.HasField("active"):
        changes["active"] = request.active
    if not changes:
        raise nothing_to_change("title", "description", "price_minor", "active")
    return changes


def _any_record(record: ProductRecord) -> None:
    """The seller check of a change the service makes itself: none."""


def _seller_deleted() -> ApiError:
    return permission_denied("your account was deleted: nothing of yours can be put on sale")


def _require_seller(record: ProductRecord, caller: int, action: str) -> None:
    if record.seller_id != caller:
        raise permission_denied(f"only the product's seller can {action} product {record.id}")


def _inventory_error(exc: grpc.aio.AioRpcError, action: str) -> ApiError:
    log.warning("inventory call failed", extra={"code": exc.code().name, "details": exc.details()})
    return unavailable(f"cannot {action} right now (inventory service: {exc.code().name}); try again")


def _timestamp(record: ProductRecord) -> Timestamp:
    created_at = Timestamp()
    created_at.FromDatetime(record.created_at)
    return created_at


def to_proto(record: ProductRecord, stock: int) -> catalog_pb2.Product:
    return catalog_pb2.Product(
        id=str(record.id),
        seller_id=str(record.seller_id),
        title=record.title,
        description=record.description,
        price_minor=record.price_minor,
        currency=record.currency,
        media_ids=[str(m) for m in record.media_ids],
        stock=stock,
        active=record.active,
        created_at=_timestamp(record),
    )


def _listed_seller(seller_id: str, context) -> int | None:
    """Whose products to list: "me" is the caller (signed in), empty is everyone's."""
    if seller_id == "me":
        return auth.caller_id(context)
    return ids.parse_optional_id(seller_id, "seller_id") or None


def _check_own_listing(seller_id: int | None, context) -> None:
    """Inactive products are shown to their seller only."""
    if seller_id is None:
        raise invalid_argument("include_inactive", 'needs seller_id "me": only a seller sees their inactive products')
    if auth.optional_caller_id(context) != seller_id:
        raise permission_denied(
            'include_inactive: only a seller sees their own inactive products; list yours with seller_id "me"'
        )
