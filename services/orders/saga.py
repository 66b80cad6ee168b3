"""The checkout saga orchestrator.

reserve stock -> authorize payment -> create order -> capture -> confirm,
each step's outcome persisted (store.advance) before the next begins, each
with its compensation. Three transitions carry the five steps: the result of
a remote step is recorded together with the local write that follows it
(reservation with the priced lines, authorization with the new order,
capture with the confirmation), so a checkout costs four transactions.
A failed step records which step and why, and the saga compensates
everything that may have taken effect, newest first: cancel the order, void
or refund the payment, release the stock. Every call to a peer is idempotent (keys
derived from the checkout id and attempt), so a saga can be re-run from its
last recorded state by anyone: the request that started it, or the recovery
sweep after that orchestrator died.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from google.protobuf import timestamp_pb2
from prometheus_client import Counter, Histogram

from aviary.cart.v1 import cart_pb2
from aviary.catalog.v1 import catalog_pb2
from aviary.events.v1 import events_pb2
from aviary.inventory.v1 import inventory_pb2
from aviary.payments.v1 import payments_pb2
from services.kit.peers import clients
from services.kit.server.ids import IdGenerator
from services.kit.events.kafka import ORDERS_TOPIC
from services.orders import model, pricing
from services.orders.model import Failure, Line
from services.orders.store import Checkout, OrderRecord, OrdersStore, SellersDeleted

log = logging.getLogger(__name__)

STEP_SECONDS = Histogram(
    "aviary_checkout_step_seconds",
    "Time of one saga step or compensation",
    ["step", "outcome"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SAGAS_ENDED = Counter("aviary_checkout_sagas_total", "Sagas that reached a terminal state", ["state", "reason"])
RECOVERED = Counter("aviary_checkout_recovered_total", "Sagas taken over by the recovery sweep")

PS = payments_pb2.PaymentStatus
_RETRYABLE_CODES = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
)


class StepFailed(Exception):
    def __init__(self, step: str, failure: Failure) -> None:
        super().__init__(failure.message)
        self.step = step
        self.failure = failure


class CompensationPending(Exception):
    """A compensation could not run now (a peer is down); the recovery sweep
    finishes it later. The checkout's failure is already recorded."""


def _unavailable(what: str, exc: grpc.aio.AioRpcError) -> Failure:
    return Failure(
        grpc.StatusCode.UNAVAILABLE,
        f"{what} is unavailable right now ({exc.code().name}); nothing was charged, try again later",
        retryable=True,
    )


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


class Orchestrator:
    def __init__(
        self, store: OrdersStore, ids: IdGenerator, *, rpc_timeout: float, reservation_ttl_seconds: int
    ) -> None:
        self.store = store
        self.ids = ids
        self.timeout = rpc_timeout
        self.reservation_ttl = reservation_ttl_seconds
        self._steps = {
            model.STARTED: self._price_and_reserve,
            model.RESERVED: self._authorize_and_create_order,
            model.ORDER_CREATED: self._capture_and_confirm,
        }
        # Orders confirmed by this process, handed to run()'s caller once.
        self._confirmed: dict[int, OrderRecord] = {}

    # -- driving -------------------------------------------------------------------

    async def run(self, checkout: Checkout) -> tuple[Checkout, OrderRecord | None]:
        """Drives the saga to a terminal state (SUCCEEDED or FAILED); returns
        it with the confirmed order when this call confirmed it. Raises
        CompensationPending when compensation must wait for a peer."""
        while not checkout.terminal:
            moved = await self._one_step(checkout)
            # None: the saga moved under us (another orchestrator); re-read it.
            checkout = moved if moved is not None else await self.store.get_checkout(checkout.id)
        if checkout.state == model.SUCCEEDED and not checkout.cart_cleared:
            if await self._clear_cart(checkout):
                await self.store.mark_cart_cleared(checkout.id)
        return checkout, self._confirmed.pop(checkout.id, None)

    async def _one_step(self, checkout: Checkout) -> Checkout | None:
        step = checkout.state
        started = time.perf_counter()
        outcome = "ok"
        try:
            if step == model.COMPENSATING:
                moved = await self._compensate(checkout)
                if moved is not None:
                    SAGAS_ENDED.labels(model.FAILED, checkout.failure_code or "").inc()
                return moved
            try:
                moved = await self._steps[step](checkout)
            except StepFailed as failed:
                outcome = "failed"
                log.info(
                    "checkout step failed",
                    extra={"checkout_id": checkout.id, "step": failed.step, "reason": failed.failure.message},
                )
                return await self.store.begin_compensation(checkout, failed.step, failed.failure)
            if moved is not None and moved.state == model.SUCCEEDED:
                SAGAS_ENDED.labels(model.SUCCEEDED, "").inc()
            return moved
        except CompensationPending:
            outcome = "pending"
            raise
        finally:
            STEP_SECONDS.labels(step, outcome).observe(time.perf_counter() - started)

    async def recover(self, checkout: Checkout) -> None:
        """Finishes a saga whose orchestrator stopped (the recovery sweep)."""
        RECOVERED.inc()
        log.info("recovering checkout", extra={"checkout_id": checkout.id, "state": checkout.state})
        try:
            await self.run(checkout)
        except CompensationPending as exc:
            log.warning("checkout compensation still pending", extra={"checkout_id": checkout.id, "reason": str(exc)})

    # -- STARTED -> RESERVED -----------------------------------------------------------

    async def _price_and_reserve(self, c: Checkout) -> Checkout | None:
        lines, currency, added_prices = await self._price(c)
        # Before anything is held: the buyer pays only a total they agreed to.
        refused = pricing.refusal(lines, currency, added_prices, c.expected_total_minor)
        if refused is not None:
            raise StepFailed(model.PRICE, refused)
        await self._reserve(c, lines)
        try:
            return await self.store.reserve_priced(c, lines, currency)
        except SellersDeleted as gone:
            # Caught at the move that records the lines: the hold is released.
            products = sorted({line.product_id for line in lines if line.seller_id in gone.sellers})
            raise StepFailed(
                model.RESERVE,
                Failure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"product {', '.join(map(str, products))} is no longer available (its seller's account was "
                    "deleted): remove it from your cart",
                    retryable=True,
                ),
            ) from None

    async def _price(self, c: Checkout) -> tuple[list[Line], str, dict[int, int | None]]:
        """Reads the cart's lines and prices them from the catalog (never from
        the cart); also returns the unit price each line was added at."""
        try:
            cart = await clients.cart().GetUserCart(
                cart_pb2.GetUserCartRequest(user_id=str(c.buyer_id)), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise StepFailed(model.PRICE, _unavailable("the cart service", exc)) from exc
        if not cart.items:
            raise StepFailed(
                model.PRICE,
                Failure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "your cart is empty: add items before checking out",
                    retryable=True,
                ),
            )
        try:
            found = await clients.catalog().BatchGetProducts(
                catalog_pb2.BatchGetProductsRequest(product_ids=[i.product_id for i in cart.items], skip_stock=True),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise StepFailed(model.PRICE, _unavailable("the catalog", exc)) from exc
        products = {p.id: p for p in found.products}
        lines = []
        for item in cart.items:
            product = products.get(item.product_id)
            if product is None or not product.active:
                raise StepFailed(
                    model.PRICE,
                    Failure(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"product {item.product_id} is no longer available: remove it from your cart",
                        retryable=True,
                    ),
                )
            lines.append(
                Line(int(product.id), int(product.seller_id), product.title, item.quantity, product.price_minor)
            )
        currencies = {products[i.product_id].currency for i in cart.items}
        if len(currencies) > 1:
            raise StepFailed(
                model.PRICE,
                Failure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"the cart mixes currencies ({', '.join(sorted(currencies))}): check out one currency at a time",
                    retryable=True,
                ),
            )
        added = {
            int(i.product_id): i.added_unit_price_minor if i.HasField("added_unit_price_minor") else None
            for i in cart.items
        }
        return lines, currencies.pop(), added

    async def _reserve(self, c: Checkout, lines: list[Line]) -> None:
        wanted = {(line.product_id, line.quantity) for line in lines}
        request = inventory_pb2.ReserveStockRequest(
            reservation_id=c.reservation_id,
            ttl_seconds=self.reservation_ttl,
            items=[inventory_pb2.ReservationItem(product_id=str(p), quantity=q) for p, q in sorted(wanted)],
        )
        try:
            reservation = await clients.inventory().ReserveStock(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RETRYABLE_CODES:
                raise StepFailed(model.RESERVE, _unavailable("inventory", exc)) from exc
            # Out of stock (FAILED_PRECONDITION) or a quantity inventory refuses:
            # the key's answer for good.
            raise StepFailed(
                model.RESERVE, Failure(exc.code(), exc.details() or "stock could not be reserved", retryable=False)
            ) from exc
        if reservation.state != inventory_pb2.RESERVATION_STATE_HELD:
            raise StepFailed(
                model.RESERVE,
                Failure(
                    grpc.StatusCode.ABORTED,
                    "the stock hold was released before checkout could use it; try again",
                    retryable=True,
                ),
            )
        # A saga resumed after a crash re-prices the cart; should the cart have
        # changed since the first try reserved, the old hold does not fit.
        if {(int(i.product_id), i.quantity) for i in reservation.items} != wanted:
            raise StepFailed(
                model.RESERVE,
                Failure(grpc.StatusCode.ABORTED, "the cart changed while checking out; try again", retryable=True),
            )

    # -- RESERVED -> ORDER_CREATED -----------------------------------------------------

    async def _authorize_and_create_order(self, c: Checkout) -> Checkout | None:
        payment = await self._authorize(c)
        return await self.store.create_order(c, self.ids.next_id(), payment.id, PS.Name(PS.PAYMENT_STATUS_AUTHORIZED))

    async def _authorize(self, c: Checkout) -> payments_pb2.Payment:
        assert c.total_minor is not None and c.currency is not None, "a RESERVED checkout is priced"
        request = payments_pb2.AuthorizePaymentRequest(
            idempotency_key=c.payment_key,
            buyer_id=str(c.buyer_id),
            amount_minor=c.total_minor,
            currency=c.currency,
            payment_method=c.payment_method,
            reference=f"checkout {c.id}",
        )
        try:
            payment = await clients.payments().AuthorizePayment(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RETRYABLE_CODES:
                raise StepFailed(model.AUTHORIZE, _unavailable("the payment provider", exc)) from exc
            raise StepFailed(
                model.AUTHORIZE,
                Failure(exc.code(), f"payment could not be authorized: {exc.details()}", retryable=False),
            ) from exc
        if payment.status == PS.PAYMENT_STATUS_DECLINED:
            reason = payment.decline_reason or "declined"
            raise StepFailed(
                model.AUTHORIZE,
                Failure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"payment declined ({reason}); nothing was charged",
                    retryable=False,
                ),
            )
        if payment.status != PS.PAYMENT_STATUS_AUTHORIZED:
            raise StepFailed(
                model.AUTHORIZE,
                Failure(
                    grpc.StatusCode.UNAVAILABLE,
                    "the payment provider did not confirm the authorization; nothing was charged, try again later",
                    retryable=True,
                ),
            )
        return payment

    # -- ORDER_CREATED -> SUCCEEDED ------------------------------------------------------

    async def _capture_and_confirm(self, c: Checkout) -> Checkout | None:
        assert c.order_id is not None and c.total_minor is not None and c.currency is not None, (
            "an ORDER_CREATED checkout is priced and has its order"
        )
        await self._capture(c)
        cart_cleared = await self._clear_cart(c)
        event_id = self.ids.next_id()
        event = events_pb2.OrderEvent(
            event_id=event_id,
            occur_time=_now(),
            confirmed=events_pb2.OrderConfirmed(
                order_id=c.order_id,
                buyer_id=c.buyer_id,
                total_minor=c.total_minor,
                currency=c.currency,
                lines=model.event_lines(c.lines),
            ),
        )
        done = await self.store.confirm(
            c, cart_cleared, (event_id, ORDERS_TOPIC, str(c.buyer_id).encode(), event.SerializeToString())
        )
        if done is None:
            return None
        moved, order = done
        self._confirmed[c.id] = order
        return moved

    async def _capture(self, c: Checkout) -> None:
        """Makes the stock hold permanent, then moves the money. Stock first:
        a hold that expired must stop the checkout before anyone is charged."""
        assert c.payment_id is not None, "an ORDER_CREATED checkout has its payment"
        try:
            await clients.inventory().CommitReservation(
                inventory_pb2.CommitReservationRequest(reservation_id=c.reservation_id), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RETRYABLE_CODES:
                raise StepFailed(model.CAPTURE, _unavailable("inventory", exc)) from exc
            raise StepFailed(
                model.CAPTURE,
                Failure(
                    grpc.StatusCode.ABORTED,
                    "the stock hold expired before payment completed; nothing was charged, try again",
                    retryable=True,
                ),
            ) from exc
        try:
            payment = await clients.payments().CapturePayment(
                payments_pb2.CapturePaymentRequest(payment_id=c.payment_id), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RETRYABLE_CODES:
                raise StepFailed(model.CAPTURE, _unavailable("the payment provider", exc)) from exc
            raise StepFailed(
                model.CAPTURE, Failure(exc.code(), f"payment could not be captured: {exc.details()}", retryable=True)
            ) from exc
        if payment.status != PS.PAYMENT_STATUS_CAPTURED:
            raise StepFailed(
                model.CAPTURE,
                Failure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"payment could not be captured ({PS.Name(payment.status)})",
                    retryable=True,
                ),
            )

    async def _clear_cart(self, c: Checkout) -> bool:
        """Takes the bought lines out of the cart (once per checkout). Best
        effort: with the cart service down, the recovery sweep does it later."""
        request = cart_pb2.ClearCheckedOutItemsRequest(
            user_id=str(c.buyer_id),
            checkout_id=str(c.id),
            items=[cart_pb2.CartItem(product_id=str(line.product_id), quantity=line.quantity) for line in c.lines],
        )
        try:
            await clients.cart().ClearCheckedOutItems(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("cart not cleared yet", extra={"checkout_id": c.id, "code": exc.code().name})
            return False
        return True

    # -- compensation --------------------------------------------------------------

    async def _compensate(self, c: Checkout) -> Checkout | None:
        """Undoes, newest first, every step that may have taken effect."""
        undo = {"cancel_order": self._cancel_order, "undo_payment": self._undo_payment, "release": self._release}
        try:
            for action in model.compensations(c.failed_step or model.PRICE):
                await undo[action](c)
        except grpc.aio.AioRpcError as exc:
            await self.store.log_step(c, "compensate", "pending", f"{exc.code().name}: {exc.details()}")
            raise CompensationPending(f"{exc.code().name}: {exc.details()}") from exc
        return await self.store.advance(c, model.FAILED)

    async def _cancel_order(self, c: Checkout) -> None:
        if c.order_id:
            await self.store.set_order_state(c.order_id, status="ORDER_STATUS_CANCELLED")

    async def _release(self, c: Checkout) -> None:
        await clients.inventory().ReleaseReservation(
            inventory_pb2.ReleaseReservationRequest(reservation_id=c.reservation_id), timeout=self.timeout
        )
        await self.store.log_step(c, "release", "ok")

    async def _undo_payment(self, c: Checkout) -> None:
        """Voids an authorization or refunds a capture; nothing when the
        payment never came to exist."""
        payments = clients.payments()
        try:
            payment = await payments.GetPayment(
                payments_pb2.GetPaymentRequest(idempotency_key=c.payment_key), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return
            raise
        if payment.status == PS.PAYMENT_STATUS_CAPTURED:
            payment = await payments.RefundPayment(
                payments_pb2.RefundPaymentRequest(payment_id=payment.id), timeout=self.timeout
            )
        elif payment.status in (PS.PAYMENT_STATUS_AUTHORIZED, PS.PAYMENT_STATUS_PENDING):
            payment = await payments.VoidPayment(
                payments_pb2.VoidPaymentRequest(payment_id=payment.id), timeout=self.timeout
            )
        await self.store.log_step(c, "undo_payment", "ok", PS.Name(payment.status))
        if c.order_id:
            await self.store.set_order_state(c.order_id, payment_status=PS.Name(payment.status))


async def sweep_forever(what: str, claim, finish, *, interval: float, batch: int) -> None:
    """Takes over work whose driver died or whose peer was down (its lease
    ran out) and drives each to the end: on start-up at once, then every
    `interval`; at once again while whole batches come back."""
    while True:
        try:
            stale = await claim(batch)
        except Exception as exc:  # PostgreSQL away: try again later
            log.warning("%s recovery sweep failed", what, extra={"error": str(exc)})
            stale = []
        if stale:
            await asyncio.gather(*(finish(job) for job in stale), return_exceptions=True)
        if len(stale) < batch:
            await asyncio.sleep(interval)
