"""OrdersService: checkout (the saga's front door), orders and delivery."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from google.protobuf import timestamp_pb2
from prometheus_client import Histogram

from aviary.events.v1 import events_pb2
from aviary.orders.v1 import orders_pb2, orders_pb2_grpc
from aviary.payments.v1 import payments_pb2
from services.kit.events.account_deletions import AccountDeletions
from services.kit.peers import clients
from services.kit.server import paging, startup
from services.kit.stores import migrations, pg
from services.kit.stores.cache import TtlCache
from services.kit.server.auth import caller_id
from services.kit.server.errors import (
    ApiError,
    already_exists,
    invalid_argument,
    not_found,
    permission_denied,
    unauthenticated,
    unavailable,
)
from services.kit.server.ids import IdGenerator, parse_id
from services.kit.events.kafka import ORDERS_TOPIC, Producer, relay_ensuring_topic
from services.kit.events.pg_outbox import PgOutbox
from services.orders import model
from services.orders.cancel import Canceller
from services.orders.saga import CompensationPending, Orchestrator, sweep_forever
from services.orders.settings import OrdersSettings
from services.orders.store import BuyerDeleted, Checkout, OrderRecord, OrdersStore

log = logging.getLogger(__name__)

# Identity's account deletions: one group for all replicas.
ACCOUNTS_GROUP = "orders-accounts"
BUYER_DELETED_REASON = "the buyer's account was deleted"
SELLER_DELETED_REASON = "the seller's account was deleted"
ROLE_SELLER = "SELLER"
# How long payments' acceptance of a payment method is taken as read.
ACCEPTED_METHOD_SECONDS = 60.0
# Orders read from PostgreSQL per page of ExportBuyerOrders.
EXPORT_PAGE = 100

CHECKOUT_SECONDS = Histogram(
    "aviary_checkout_seconds",
    "CreateCheckout latency by outcome",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1, 2.5, 5, 10),
)


class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(self, settings: OrdersSettings) -> None:
        self.settings = settings
        self.ids = IdGenerator(settings.worker_id)
        self.producer = Producer(settings.kafka_bootstrap)
        self.engine = pg.engine(settings, pool_size=settings.pg_pool)
        self.outbox = PgOutbox(self.engine, "orders", self.producer)
        # A saga whose orchestrator stops renewing this lease is taken over.
        self.store = OrdersStore(self.engine, self.outbox, settings.lease_seconds)
        self.orchestrator = Orchestrator(
            self.store,
            self.ids,
            rpc_timeout=settings.rpc_timeout_seconds,
            reservation_ttl_seconds=settings.reservation_ttl_seconds,
        )
        self.canceller = Canceller(self.store, rpc_timeout=settings.rpc_timeout_seconds)
        # How long a retry of a key waits for the first request's saga.
        self.same_key_wait = settings.same_key_wait_seconds
        self.recovery_interval = settings.recovery_seconds
        # Methods payments accepted lately: buyers check out with the same few.
        # Only a head start: payments checks the method again when authorizing.
        self._accepted_methods: TtlCache[str, bool] = TtlCache(ACCEPTED_METHOD_SECONDS, max_entries=10_000)
        self.account_deletions = AccountDeletions(settings.kafka_bootstrap, ACCOUNTS_GROUP, self._on_account_deleted)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await startup.retry_until_up(
            lambda: migrations.upgrade_async("orders", "orders", self.settings.pg_dsn), "postgresql"
        )

    async def stop(self) -> None:
        await self.producer.close()
        await clients.close_all()
        await self.engine.dispose()

    async def relay(self) -> None:
        await relay_ensuring_topic(self.outbox.relay_forever, self.settings.kafka_bootstrap, ORDERS_TOPIC)

    async def recover(self) -> None:
        await sweep_forever(
            "checkout", self.store.claim_stale, self.orchestrator.recover, interval=self.recovery_interval, batch=20
        )

    async def recover_cancels(self) -> None:
        await sweep_forever(
            "order cancel",
            self.store.claim_stale_cancels,
            self.canceller.finish,
            interval=self.recovery_interval,
            batch=20,
        )

    # -- checkout --------------------------------------------------------------

    async def CreateCheckout(self, request, context):
        buyer = caller_id(context)
        model.validate_checkout(request.idempotency_key, request.payment_method)
        expected = model.checked_expected_total(
            request.expected_total_minor if request.HasField("expected_total_minor") else None
        )
        params = model.checkout_params(request.payment_method.strip(), expected)
        started = time.perf_counter()
        outcome = "error"
        try:
            await self._check_payment_method(params["payment_method"])
            order = await self._checkout(buyer, request.idempotency_key, params)
            outcome = "confirmed"
            return _order_proto(order)
        except ApiError as err:
            outcome = err.code.name.lower()
            raise
        finally:
            CHECKOUT_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    async def _check_payment_method(self, payment_method: str) -> None:
        """Refuses a method payments would not take, before anything is written or held."""
        if self._accepted_methods.get_many([payment_method])[0]:
            return
        try:
            answer = await clients.payments().CheckPaymentMethod(
                payments_pb2.CheckPaymentMethodRequest(payment_method=payment_method),
                timeout=self.settings.rpc_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            raise unavailable(
                f"the payment service is unavailable right now ({exc.code().name}); nothing was "
                "charged, try again shortly"
            ) from exc
        if not answer.accepted:
            raise invalid_argument("payment_method", answer.problem)
        self._accepted_methods.put_many([(payment_method, True)])

    async def _checkout(self, buyer: int, key: str, params: dict) -> OrderRecord:
        """The confirmed order of this key's checkout, running the saga if no
        request did yet; raises the key's recorded failure otherwise."""
        try:
            checkout, created = await self.store.start_checkout(self.ids.next_id(), buyer, key, params)
        except BuyerDeleted:
            raise unauthenticated("your account was deleted: it cannot check out") from None
        order = None
        if not created and checkout.state == model.FAILED and checkout.retryable:
            # Nothing of the failed attempt was kept: run again, with this request's parameters.
            restarted = await self.store.restart(checkout, params)
            if restarted is not None:
                checkout, created = restarted, True
            else:
                checkout = await self.store.get_checkout(checkout.id)
        if not created:
            _refuse_other_params(checkout, params)
            if not checkout.terminal:
                checkout = await self._wait_for_end(checkout)
        if created:
            checkout, order = await self._drive(checkout)
        self._raise_unless_succeeded(checkout)
        if order is None:
            # A succeeded checkout has written its order.
            assert checkout.order_id is not None
            order = await self.store.get_order(checkout.order_id)
            assert order is not None
        return order

    async def _drive(self, checkout: Checkout) -> tuple[Checkout, OrderRecord | None]:
        # The saga runs in its own task: a client that hangs up mid-checkout
        # must not cancel it between two steps.
        task = asyncio.ensure_future(self.orchestrator.run(checkout))
        try:
            return await asyncio.shield(task)
        except CompensationPending:
            # The failure is recorded; compensation finishes in the background.
            return await self.store.get_checkout(checkout.id), None

    async def _wait_for_end(self, checkout: Checkout) -> Checkout:
        """Another request (or the recovery sweep) runs this key's saga: wait for it."""
        deadline = time.monotonic() + self.same_key_wait
        while not checkout.terminal and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            checkout = await self.store.get_checkout(checkout.id)
        return checkout

    def _raise_unless_succeeded(self, checkout: Checkout) -> None:
        if checkout.state == model.SUCCEEDED:
            return
        if checkout.failure_code:  # FAILED, or COMPENSATING with its answer known
            raise ApiError(
                grpc.StatusCode[checkout.failure_code],
                checkout.failure_message or "checkout failed",
                checkout.failure_details,
            )
        raise ApiError(
            grpc.StatusCode.ABORTED, "a checkout with this idempotency key is still in progress; retry in a moment"
        )

    # -- orders ------------------------------------------------------------------

    async def GetOrder(self, request, context):
        me = caller_id(context)
        order_id = parse_id(request.order_id, "order_id")
        order = await self.store.get_order(order_id)
        if order is None or not _visible_to(order, me):
            # Someone else's order reads exactly like one that does not exist.
            raise not_found(f"order {order_id} not found")
        return _order_view(order, me)

    async def ListOrders(self, request, context):
        me = caller_id(context)
        size = paging.page_size(request.page_size)
        before = paging.int_cursor(request.page_token, "before")
        who = {"seller_id": me} if request.as_seller else {"buyer_id": me}
        orders = await self.store.list_orders(**who, before_id=before, limit=size + 1)
        page, more = orders[:size], len(orders) > size
        return orders_pb2.ListOrdersResponse(
            orders=[_order_view(o, me) for o in page],
            next_page_token=paging.encode_token({"before": page[-1].id}) if more else "",
        )

    # -- delivery ------------------------------------------------------------------

    async def AdvanceDelivery(self, request, context):
        me = caller_id(context)

        def own_part(order: OrderRecord) -> int:
            if me not in order.sellers:
                if order.buyer_id == me:
                    raise permission_denied("only a seller of this order's items can move its delivery along")
                raise not_found(f"order {order.id} not found")
            return me

        return _order_view(await self._advance(request, str(me), own_part), me)

    # -- accounts (identity) ---------------------------------------------------------

    async def CountOpenSales(self, request, context):
        seller = parse_id(request.seller_id, "seller_id")
        count = await self.store.count_open_sales(seller)
        return orders_pb2.CountOpenSalesResponse(open_order_count=min(count, 2**31 - 1))

    async def ExportBuyerOrders(self, request, context):
        """Every order the buyer placed, newest first, as they see them: one
        keyset page of PostgreSQL at a time, never the whole list in memory."""
        buyer = parse_id(request.buyer_id, "buyer_id")
        before = None
        while True:
            page = await self.store.list_orders(buyer_id=buyer, before_id=before, limit=EXPORT_PAGE)
            for order in page:
                yield _order_proto(order)
            if len(page) < EXPORT_PAGE:
                return
            before = page[-1].id

    async def consume_account_events(self) -> None:
        """Background job: identity's AccountDeleted -> a seller's sales stopped,
        the buyer's running checkouts stopped and their orders anonymised."""
        await self.account_deletions.run()

    async def _on_account_deleted(self, event: events_pb2.AccountEvent) -> None:
        user = event.deleted.user_id
        if event.deleted.role == ROLE_SELLER:
            await self._forget_seller(user)
        stopped, anonymised = await self.store.forget_buyer(user, BUYER_DELETED_REASON)
        # Most deleted accounts never bought anything: only what changed is worth a line.
        (log.info if stopped or anonymised else log.debug)(
            "deleted account's orders anonymised",
            extra={"user_id": user, "checkouts_stopped": stopped, "orders_anonymised": anonymised},
        )

    async def _forget_seller(self, seller: int) -> None:
        """No new part for a deleted seller: running checkouts with their
        lines are stopped, and an order confirmed in the moment between
        identity's open-sales count and this (normally none) is cancelled for
        its buyer, refunded and restocked, unless a part of it has shipped."""
        stopped, open_orders = await self.store.forget_seller(seller, SELLER_DELETED_REASON)
        cancelled = 0
        for order_id in open_orders:
            try:
                order = await self.store.request_cancel(
                    order_id,
                    _cancellable,
                    SELLER_DELETED_REASON,
                    lambda order: self._cancelled_event(order, SELLER_DELETED_REASON),
                    actor="system",
                )
            except ApiError:  # another part has shipped: the order stands
                continue
            if order is None or order.status != model.CANCELLED_ORDER:
                continue
            cancelled += 1
            job = await self.store.cancel_job(order_id)
            if job is not None:
                # A peer that cannot answer now leaves it to the cancel sweep.
                await self.canceller.finish(job)
        if stopped or open_orders:
            log.info(
                "deleted seller's sales stopped",
                extra={"seller_id": seller, "checkouts_stopped": stopped, "orders_cancelled": cancelled},
            )

    async def OperatorAdvanceDelivery(self, request, context):
        actor = (request.operator_name or "operator").strip()[:64] or "operator"
        named = parse_id(request.seller_id, "seller_id") if request.seller_id else None

        def named_part(order: OrderRecord) -> int:
            return _operator_part(order, named)

        return _order_proto(await self._advance(request, actor, named_part))

    async def _advance(self, request, actor: str, pick_part) -> OrderRecord:
        order_id = parse_id(request.order_id, "order_id")
        wanted = request.status
        note = model.check_delivery_request(wanted, request.note)

        def pick(order: OrderRecord) -> int:
            seller = pick_part(order)
            model.check_advance(order.status, model.DS.Value(order.part_status(seller)), wanted)
            return seller

        def event_for(order: OrderRecord, seller: int, order_status: str) -> tuple[int, str, bytes, bytes]:
            # Keyed by the buyer, known once the store has read the order.
            event_id = self.ids.next_id()
            event = events_pb2.OrderEvent(
                event_id=event_id,
                occur_time=_now(),
                delivery_changed=events_pb2.DeliveryStatusChanged(
                    order_id=order_id,
                    buyer_id=order.buyer_id,
                    status=order_status,
                    note=note,
                    seller_id=seller,
                    fulfilment_status=model.delivery_name(wanted),
                    fulfilment_count=len(order.sellers),
                ),
            )
            return event_id, ORDERS_TOPIC, str(order.buyer_id).encode(), event.SerializeToString()

        updated = await self.store.advance_delivery(order_id, pick, model.delivery_name(wanted), actor, note, event_for)
        if updated is None:
            raise not_found(f"order {order_id} not found")
        return updated

    # -- cancel --------------------------------------------------------------------

    async def CancelOrder(self, request, context):
        me = caller_id(context)
        order_id = parse_id(request.order_id, "order_id")
        reason = model.check_text("reason", request.reason, model.MAX_REASON)

        def buyer_only(order: OrderRecord) -> None:
            if order.buyer_id != me:
                if me in order.sellers:
                    raise permission_denied("only the buyer can cancel this order")
                raise not_found(f"order {order_id} not found")
            model.check_cancel(order.status, {s: model.DS.Value(order.part_status(s)) for s in order.sellers})

        def event_for(order: OrderRecord) -> tuple[int, str, bytes, bytes]:
            return self._cancelled_event(order, reason)

        order = await self.store.request_cancel(order_id, buyer_only, reason, event_for)
        if order is None:
            raise not_found(f"order {order_id} not found")
        if order.cancel_state in model.CANCEL_UNFINISHED:
            # Its own task: a client hanging up must not stop a step half-way.
            job = await self.store.cancel_job(order_id)
            if job is not None and await asyncio.shield(asyncio.ensure_future(self.canceller.finish(job))):
                order = await self.store.get_order(order_id) or order
        return _order_view(order, me)

    def _cancelled_event(self, order: OrderRecord, reason: str) -> tuple[int, str, bytes, bytes]:
        """The OrderCancelled event of a cancel, for the outbox."""
        event_id = self.ids.next_id()
        event = events_pb2.OrderEvent(
            event_id=event_id,
            occur_time=_now(),
            cancelled=events_pb2.OrderCancelled(
                order_id=order.id,
                buyer_id=order.buyer_id,
                total_minor=order.total_minor,
                currency=order.currency,
                reason=reason,
                lines=model.event_lines(order.lines),
            ),
        )
        return event_id, ORDERS_TOPIC, str(order.buyer_id).encode(), event.SerializeToString()


def _refuse_other_params(checkout: Checkout, params: dict) -> None:
    """A key answers only the request it was first used with (Stripe's rule)."""
    differing = model.differing_params(checkout.request_params, params)
    if differing:
        raise already_exists(
            f"this idempotency key was first used with a different {' and '.join(differing)}: a retry must "
            "repeat the first request exactly, and a new checkout needs a new key"
        )


def _cancellable(order: OrderRecord) -> None:
    """Refuses (ApiError) unless the order may be cancelled as its buyer could."""
    model.check_cancel(order.status, {s: model.DS.Value(order.part_status(s)) for s in order.sellers})


def _visible_to(order: OrderRecord, user_id: int) -> bool:
    return order.buyer_id == user_id or user_id in order.sellers


def _operator_part(order: OrderRecord, named: int | None) -> int:
    """The fulfilment an operator moves: the one named, or the order's only one."""
    sellers = order.sellers
    if named is not None:
        if named not in sellers:
            raise invalid_argument(
                "seller_id",
                f"order {order.id} has no part from seller {named}; its sellers are {', '.join(map(str, sellers))}",
            )
        return named
    if len(sellers) != 1:
        raise invalid_argument(
            "seller_id", f"is required: order {order.id} has parts from sellers {', '.join(map(str, sellers))}"
        )
    return sellers[0]


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def _ts(value) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def _item(line) -> orders_pb2.OrderItem:
    return orders_pb2.OrderItem(
        product_id=str(line.product_id),
        seller_id=str(line.seller_id),
        title=line.title,
        quantity=line.quantity,
        unit_price_minor=line.unit_price_minor,
    )


def _history(records) -> list[orders_pb2.DeliveryEvent]:
    return [
        orders_pb2.DeliveryEvent(
            status=orders_pb2.DeliveryStatus.Value(h.status),
            time=_ts(h.at),
            actor=h.actor,
            note=h.note,
            seller_id=str(h.seller_id) if h.seller_id else "",
        )
        for h in records
    ]


def _fulfilment(order: OrderRecord, seller: int) -> orders_pb2.Fulfilment:
    lines = [line for line in order.lines if line.seller_id == seller]
    return orders_pb2.Fulfilment(
        seller_id=str(seller),
        items=[_item(line) for line in lines],
        subtotal_minor=model.total(lines),
        delivery_status=orders_pb2.DeliveryStatus.Value(order.part_status(seller)),
        # A part's history: its own moves and the entries about the whole order.
        delivery_history=_history(h for h in order.history if h.seller_id in (None, seller)),
    )


def _order_view(order: OrderRecord, viewer: int) -> orders_pb2.Order:
    """The buyer sees the whole order; a seller only their own part."""
    return _order_proto(order) if viewer == order.buyer_id else _seller_view(order, viewer)


def _seller_view(order: OrderRecord, seller: int) -> orders_pb2.Order:
    """One seller's part as an order: their lines and subtotal, their part's
    status and history; no other seller's lines or prices, no checkout key."""
    part = _fulfilment(order, seller)
    out = _order_base(order)
    out.items.extend(part.items)
    out.total_minor = part.subtotal_minor
    out.delivery_status = part.delivery_status
    out.delivery_history.extend(part.delivery_history)
    out.fulfilments.append(part)
    return out


def _order_proto(order: OrderRecord) -> orders_pb2.Order:
    """The whole order, as its buyer (and operators) see it."""
    fulfilments = [_fulfilment(order, seller) for seller in order.sellers]
    out = _order_base(order)
    out.items.extend(_item(line) for line in order.lines)
    out.total_minor = order.total_minor
    out.delivery_status = (
        model.order_delivery_status([f.delivery_status for f in fulfilments])
        if fulfilments
        else orders_pb2.DeliveryStatus.Value(order.delivery_status)
    )
    out.delivery_history.extend(_history(order.history))
    out.fulfilments.extend(fulfilments)
    out.idempotency_key = order.idempotency_key
    return out


def _order_base(order: OrderRecord) -> orders_pb2.Order:
    """What every viewer of an order sees."""
    out = orders_pb2.Order(
        id=str(order.id),
        # 0: the buyer deleted their account (store.forget_buyer).
        buyer_id=str(order.buyer_id) if order.buyer_id else "",
        buyer_deleted=not order.buyer_id,
        status=orders_pb2.OrderStatus.Value(order.status),
        currency=order.currency,
        payment_status=payments_pb2.PaymentStatus.Value(order.payment_status),
        created_at=_ts(order.created_at),
        cancel_reason=order.cancel_reason,
    )
    if order.cancel_time is not None:
        out.cancel_time.CopyFrom(_ts(order.cancel_time))
    return out
