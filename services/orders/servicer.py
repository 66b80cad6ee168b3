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
from services.kit import clients, migrations, paging, pg, startup
from services.kit.auth import caller_id
from services.kit.config import Settings, env_float, env_int
from services.kit.errors import ApiError, not_found, permission_denied
from services.kit.ids import IdGenerator, parse_id
from services.kit.kafka import ORDERS_TOPIC, Producer, relay_ensuring_topic
from services.kit.pg_outbox import PgOutbox
from services.orders import model
from services.orders.saga import CompensationPending, Orchestrator, recovery_forever
from services.orders.store import Checkout, OrderRecord, OrdersStore

log = logging.getLogger(__name__)

CHECKOUT_SECONDS = Histogram(
    "aviary_checkout_seconds", "CreateCheckout latency by outcome", ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1, 2.5, 5, 10),
)


class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ids = IdGenerator(settings.worker_id)
        self.producer = Producer(settings.kafka_bootstrap)
        self.engine = pg.engine(settings, pool_size=env_int("AVIARY_ORDERS_PG_POOL", 20))
        self.outbox = PgOutbox(self.engine, "orders", self.producer)
        # A saga whose orchestrator stops renewing this lease is taken over.
        self.store = OrdersStore(self.engine, self.outbox, env_float("AVIARY_ORDERS_LEASE_SECONDS", 10.0))
        self.orchestrator = Orchestrator(
            self.store, self.ids, rpc_timeout=settings.rpc_timeout_seconds,
            reservation_ttl_seconds=env_int("AVIARY_ORDERS_RESERVATION_TTL_SECONDS", 600))
        # How long a retry of a key waits for the first request's saga.
        self.same_key_wait = env_float("AVIARY_ORDERS_SAME_KEY_WAIT_SECONDS", 15.0)
        self.recovery_interval = env_float("AVIARY_ORDERS_RECOVERY_SECONDS", 2.0)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await startup.retry_until_up(lambda: migrations.upgrade_async("orders", "orders"), "postgresql")

    async def stop(self) -> None:
        await self.producer.close()
        await clients.close_all()
        await self.engine.dispose()

    async def relay(self) -> None:
        await relay_ensuring_topic(self.outbox.relay_forever, self.settings.kafka_bootstrap, ORDERS_TOPIC)

    async def recover(self) -> None:
        await recovery_forever(self.orchestrator, self.store, interval=self.recovery_interval, batch=20)

    # -- checkout --------------------------------------------------------------

    async def CreateCheckout(self, request, context):
        buyer = caller_id(context)
        model.validate_checkout(request.idempotency_key, request.payment_method)
        started = time.perf_counter()
        outcome = "error"
        try:
            order = await self._checkout(buyer, request.idempotency_key, request.payment_method.strip())
            outcome = "confirmed"
            return _order_proto(order)
        except ApiError as err:
            outcome = err.code.name.lower()
            raise
        finally:
            CHECKOUT_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    async def _checkout(self, buyer: int, key: str, payment_method: str) -> OrderRecord:
        """The confirmed order of this key's checkout, running the saga if no
        request did yet; raises the key's recorded failure otherwise."""
        checkout, created = await self.store.start_checkout(self.ids.next_id(), buyer, key, payment_method)
        order = None
        if not created:
            if checkout.state == model.FAILED and checkout.retryable:
                restarted = await self.store.restart(checkout, payment_method)
                checkout = restarted or await self._wait_for_end(checkout)
                created = restarted is not None
            elif not checkout.terminal:
                checkout = await self._wait_for_end(checkout)
        if created:
            checkout, order = await self._drive(checkout)
        self._raise_unless_succeeded(checkout)
        return order or await self.store.get_order(checkout.order_id)

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
            raise ApiError(grpc.StatusCode[checkout.failure_code], checkout.failure_message or "checkout failed")
        raise ApiError(grpc.StatusCode.ABORTED,
                       "a checkout with this idempotency key is still in progress; retry in a moment")

    # -- orders ------------------------------------------------------------------

    async def GetOrder(self, request, context):
        me = caller_id(context)
        order_id = parse_id(request.order_id, "order_id")
        order = await self.store.get_order(order_id)
        if order is None or not _visible_to(order, me):
            # Someone else's order reads exactly like one that does not exist.
            raise not_found(f"order {order_id} not found")
        return _order_proto(order)

    async def ListOrders(self, request, context):
        me = caller_id(context)
        size = paging.page_size(request.page_size)
        before = paging.int_cursor(request.page_token, "before")
        who = {"seller_id": me} if request.as_seller else {"buyer_id": me}
        orders = await self.store.list_orders(**who, before_id=before, limit=size + 1)
        page, more = orders[:size], len(orders) > size
        return orders_pb2.ListOrdersResponse(
            orders=[_order_proto(o) for o in page],
            next_page_token=paging.encode_token({"before": page[-1].id}) if more else "")

    async def AdvanceDelivery(self, request, context):
        me = caller_id(context)

        def sellers_only(order: OrderRecord) -> None:
            if order.buyer_id != me and not any(line.seller_id == me for line in order.lines):
                raise not_found(f"order {order.id} not found")
            if not any(line.seller_id == me for line in order.lines):
                raise permission_denied("only a seller of this order's items can move its delivery along")

        return await self._advance(request, str(me), sellers_only)

    async def OperatorAdvanceDelivery(self, request, context):
        actor = (request.operator_name or "operator").strip()[:64] or "operator"
        return await self._advance(request, actor, lambda order: None)

    async def _advance(self, request, actor: str, authorize) -> orders_pb2.Order:
        order_id = parse_id(request.order_id, "order_id")
        wanted, note = request.status, request.note.strip()

        def check(order: OrderRecord) -> None:
            authorize(order)
            model.check_advance(order.status, orders_pb2.DeliveryStatus.Value(order.delivery_status), wanted, note)

        def event_for(order: OrderRecord) -> tuple[int, str, bytes, bytes]:
            # Keyed by the buyer, known once the store has read the order.
            event_id = self.ids.next_id()
            event = events_pb2.OrderEvent(
                event_id=event_id, occur_time=_now(), delivery_changed=events_pb2.DeliveryStatusChanged(
                    order_id=order_id, buyer_id=order.buyer_id, status=model.delivery_name(wanted), note=note))
            return event_id, ORDERS_TOPIC, str(order.buyer_id).encode(), event.SerializeToString()

        updated = await self.store.advance_delivery(order_id, check, model.delivery_name(wanted), actor, note,
                                                    event_for)
        if updated is None:
            raise not_found(f"order {order_id} not found")
        return _order_proto(updated)


def _visible_to(order: OrderRecord, user_id: int) -> bool:
    return order.buyer_id == user_id or any(line.seller_id == user_id for line in order.lines)


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def _ts(value) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def _order_proto(order: OrderRecord) -> orders_pb2.Order:
    return orders_pb2.Order(
        id=str(order.id), buyer_id=str(order.buyer_id), status=order.status,
        items=[orders_pb2.OrderItem(product_id=str(line.product_id), seller_id=str(line.seller_id),
                                    title=line.title, quantity=line.quantity,
                                    unit_price_minor=line.unit_price_minor) for line in order.lines],
        total_minor=order.total_minor, currency=order.currency,
        payment_status=payments_pb2.PaymentStatus.Value(order.payment_status),
        delivery_status=orders_pb2.DeliveryStatus.Value(order.delivery_status),
        delivery_history=[orders_pb2.DeliveryEvent(status=orders_pb2.DeliveryStatus.Value(h.status), time=_ts(h.at),
                                                   actor=h.actor, note=h.note) for h in order.history],
        created_at=_ts(order.created_at), idempotency_key=order.idempotency_key)
