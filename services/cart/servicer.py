"""CartService: each user's cart in Redis, priced from the catalog when shown.

Public methods act on the caller's own cart only: the user is the verified
token's subject, never a request field. GetUserCart and ClearCheckedOutItems
are internal (no HTTP route, so Envoy cannot reach them) for the checkout.
"""

from __future__ import annotations

import functools
import logging
import time

from prometheus_client import Counter

from aviary.cart.v1 import cart_pb2, cart_pb2_grpc
from aviary.catalog.v1 import catalog_pb2
from aviary.events.v1 import events_pb2
from services.cart.catalog import CatalogReader
from services.cart.settings import CartSettings
from services.cart.model import (
    MAX_LINE_QUANTITY,
    CartState,
    checked_checkout_id,
    checked_quantity,
    line_full_problem,
    priced_cart,
    raw_cart,
)
from services.cart.store import CartStore
from services.kit.events.account_deletions import AccountDeletions
from services.kit.peers import accounts
from services.kit.server import startup
from services.kit.stores import redis_client
from services.kit.server.auth import caller_id
from services.kit.server.errors import (
    ApiError,
    failed_precondition,
    invalid_argument,
    not_found,
    permission_denied,
    unavailable,
)
from services.kit.server.ids import parse_id

log = logging.getLogger(__name__)

OPERATIONS = Counter("aviary_cart_operations_total", "Cart operations, by method and outcome", ["op", "result"])
_REDIS_DOWN = redis_client.UNREACHABLE
# A checkout buys at most what a cart can hold; a little slack for merged lines.
MAX_CHECKED_OUT_ITEMS = 200
# Identity's account deletions: one group for all replicas.
ACCOUNTS_GROUP = "cart-accounts"


def counted(op: str):
    """Counts every call of the wrapped RPC by outcome, and turns an
    unreachable Redis into UNAVAILABLE rather than INTERNAL."""

    def wrap(method):
        @functools.wraps(method)
        async def call(self, request, context):
            try:
                response = await method(self, request, context)
            except ApiError as err:
                OPERATIONS.labels(op, err.code.name).inc()
                raise
            except _REDIS_DOWN as exc:
                OPERATIONS.labels(op, "UNAVAILABLE").inc()
                log.warning("redis unreachable", extra={"op": op, "error": str(exc)[:300]})
                raise unavailable("the cart store is not answering right now; try again shortly") from exc
            OPERATIONS.labels(op, "OK").inc()
            return response

        return call

    return wrap


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class CartServicer(cart_pb2_grpc.CartServiceServicer):
    def __init__(self, settings: CartSettings) -> None:
        self.settings = settings
        self.ttl_seconds = settings.ttl_seconds
        self.max_lines = settings.max_lines
        self.checkout_marker_ttl_seconds = settings.checkout_marker_ttl_seconds
        self.catalog = CatalogReader(settings.catalog_timeout_seconds)
        self._store: CartStore | None = None
        self._gone: accounts.GoneAccounts | None = None
        self.account_deletions = AccountDeletions(settings.kafka_bootstrap, ACCOUNTS_GROUP, self._on_account_deleted)

    @property
    def store(self) -> CartStore:
        assert self._store is not None, "call start() first"
        return self._store

    async def start(self) -> None:
        self._store = CartStore(
            self.settings,
            ttl_seconds=self.ttl_seconds,
            max_lines=self.max_lines,
            max_line_quantity=MAX_LINE_QUANTITY,
            checkout_marker_ttl_seconds=self.checkout_marker_ttl_seconds,
        )
        # Suspended and deleted accounts put nothing in a cart.
        self._gone = accounts.GoneAccounts(self._store.client)
        # Backends may still be starting next to us; serve only once Redis answers.
        await startup.retry_until_up(self.store.ping, "redis")
        log.info("cart store ready", extra={"ttl_seconds": self.ttl_seconds, "max_lines": self.max_lines})

    async def stop(self) -> None:
        if self._store is not None:
            await self._store.close()

    async def consume_account_events(self) -> None:
        """Background job: identity's AccountDeleted -> the user's cart deleted."""
        await self.account_deletions.run()

    async def _on_account_deleted(self, event: events_pb2.AccountEvent) -> None:
        # Idempotent: a redelivery finds no cart.
        existed = await self.store.delete(event.deleted.user_id)
        log.info("deleted account's cart removed", extra={"user_id": event.deleted.user_id, "existed": existed})

    # -- public: the caller's own cart -------------------------------------------------

    @counted("get")
    async def GetCart(self, request: cart_pb2.GetCartRequest, context) -> cart_pb2.Cart:
        user_id = caller_id(context)
        state = await self.store.read(user_id)
        return await self._priced(user_id, state, {})

    @counted("add")
    async def AddCartItem(self, request: cart_pb2.AddCartItemRequest, context) -> cart_pb2.Cart:
        user_id = caller_id(context)
        product_id = parse_id(request.product_id, "product_id")
        quantity = checked_quantity(request.quantity)
        assert self._gone is not None, "start() runs first"
        if await self._gone.contains(user_id):
            raise permission_denied("your account is suspended or deleted: it cannot add to a cart")
        # One catalog call checks the new product and prices the lines already
        # there; it happens before anything is written.
        current = await self.store.read(user_id)
        products = await self.catalog.products(
            [product_id, *current.product_ids], purpose="check the product with the catalog"
        )
        product = _purchasable(products, product_id)
        result = await self.store.add(user_id, product_id, quantity, product.currency, product.price_minor)
        if result.status == "currency":
            raise failed_precondition(
                f"product {product_id} is priced in {product.currency}, but your cart holds {result.detail} "
                f"items; a cart holds one currency, so check out or remove those first"
            )
        if result.status == "line_full":
            raise invalid_argument("quantity", line_full_problem(int(result.detail)))
        if result.status == "too_many":
            raise failed_precondition(
                f"your cart already holds {result.detail} different products, the most it can; "
                f"remove one before adding another"
            )
        log.info(
            "cart item added",
            extra={
                "user_id": user_id,
                "product_id": product_id,
                "quantity": quantity,
                "line_quantity": result.state.quantity_of(product_id),
                "lines": len(result.state.lines),
            },
        )
        return await self._priced(user_id, result.state, products)

    @counted("update")
    async def UpdateCartItem(self, request: cart_pb2.UpdateCartItemRequest, context) -> cart_pb2.Cart:
        user_id = caller_id(context)
        product_id = parse_id(request.product_id, "product_id")
        quantity = checked_quantity(request.quantity)
        products = await self._prices_before_change(user_id)
        result = await self.store.update(user_id, product_id, quantity)
        if result.status == "missing":
            raise not_found(f"product {product_id} is not in your cart")
        log.info("cart item updated", extra={"user_id": user_id, "product_id": product_id, "quantity": quantity})
        return await self._priced(user_id, result.state, products)

    @counted("remove")
    async def RemoveCartItem(self, request: cart_pb2.RemoveCartItemRequest, context) -> cart_pb2.Cart:
        user_id = caller_id(context)
        product_id = parse_id(request.product_id, "product_id")
        products = await self._prices_before_change(user_id)
        result = await self.store.remove(user_id, product_id)
        log.info(
            "cart item removed",
            extra={"user_id": user_id, "product_id": product_id, "was_in_cart": result.status == "ok"},
        )
        return await self._priced(user_id, result.state, products)

    # -- internal: for the checkout ------------------------------------------------------

    @counted("get_user_cart")
    async def GetUserCart(self, request: cart_pb2.GetUserCartRequest, context) -> cart_pb2.Cart:
        user_id = parse_id(request.user_id, "user_id")
        state = await self.store.read(user_id)
        return raw_cart(user_id, state, _now_ms())

    @counted("clear_checked_out")
    async def ClearCheckedOutItems(self, request: cart_pb2.ClearCheckedOutItemsRequest, context) -> cart_pb2.Cart:
        user_id = parse_id(request.user_id, "user_id")
        checkout_id = checked_checkout_id(request.checkout_id)
        bought = _checked_bought(request.items)
        result = await self.store.clear_checked_out(user_id, checkout_id, bought)
        log.info(
            "checked-out items cleared",
            extra={
                "user_id": user_id,
                "checkout_id": checkout_id,
                "items": len(bought),
                "repeat": result.status == "repeat",
                "lines_left": len(result.state.lines),
            },
        )
        return raw_cart(user_id, result.state, _now_ms())

    # -- helpers --------------------------------------------------------------------------

    async def _prices_before_change(self, user_id: int) -> dict[int, catalog_pb2.Product]:
        """Current prices of the cart's lines, read BEFORE a change is written,
        so a catalog outage fails the call with nothing changed."""
        current = await self.store.read(user_id)
        return await self.catalog.products(current.product_ids, purpose="read current prices from the catalog")

    async def _priced(self, user_id: int, state: CartState, known: dict[int, catalog_pb2.Product]) -> cart_pb2.Cart:
        """The cart priced from the catalog; only lines not in `known` (none,
        unless another request added some meanwhile) cost a catalog call."""
        missing = [p for p in state.product_ids if p not in known]
        if missing:
            known = {**known, **await self.catalog.products(missing, purpose="read current prices from the catalog")}
        return priced_cart(user_id, state, known, _now_ms())


def _purchasable(products: dict[int, catalog_pb2.Product], product_id: int) -> catalog_pb2.Product:
    product = products.get(product_id)
    if product is None:
        raise not_found(f"product {product_id} not found")
    if not product.active:
        raise failed_precondition(f"product {product_id} is not for sale (the seller deactivated it)")
    return product


def _checked_bought(items) -> list[tuple[int, int]]:
    if not items:
        raise invalid_argument("items", "is required: the lines the checkout bought")
    if len(items) > MAX_CHECKED_OUT_ITEMS:
        raise invalid_argument("items", f"at most {MAX_CHECKED_OUT_ITEMS} lines, got {len(items)}")
    return [
        (parse_id(item.product_id, f"items[{i}].product_id"), checked_quantity(item.quantity, f"items[{i}].quantity"))
        for i, item in enumerate(items)
    ]
