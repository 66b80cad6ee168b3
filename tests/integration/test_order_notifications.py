"""Order notifications against the real stack: OrderEvent records produced
with the kit's Producer into the real `orders.events.v1` topic (the topic the
orders service publishes to, keyed by buyer id like it), consumed by the
running notifications service, read back over gRPC as the buyer (a real
signed-up account) and, once, over HTTP through Envoy.

Records of one buyer share a key, so they land on one partition and are
applied in order: once a later sentinel's notice is visible, every earlier
record was applied too, which is how "nothing more happened" is checked.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import grpc
import httpx
import pytest

from aviary.events.v1 import events_pb2
from aviary.notifications.v1 import notifications_pb2
from services.kit.settings import load_settings
from services.kit.server.ids import IdGenerator
from services.kit.events.kafka import ORDERS_TOPIC, ensure_topics
from tests.conftest import EDGE_URL
from tests.integration.notifications_support import NotificationsHarness
from tests.integration.support import User

NT = notifications_pb2
ORDER = NT.NOTIFICATION_KIND_ORDER_STATUS
DEADLINE = 15.0

# Worker ids no service process uses (the devstack numbers services from 1),
# apart from those of tests/integration/test_notifications.py (1000..1019, 1021, 1022).
_ids = IdGenerator(900 + os.getpid() % 20)


Buyer = User


class Stack(NotificationsHarness):
    deadline = DEADLINE

    def __init__(self) -> None:
        super().__init__()
        # The devstack creates the topics when services start; make sure anyway.
        ensure_topics(self.settings.kafka_bootstrap, {ORDERS_TOPIC: 6})

    def sign_up(self, prefix: str = "ob", display_name: str = "") -> Buyer:
        return super().sign_up(prefix, display_name)

    # -- events ----------------------------------------------------------------

    @staticmethod
    def confirmed(buyer: Buyer, order_id: int, total_minor: int = 1250, currency: str = "USD") -> bytes:
        event = events_pb2.OrderEvent(
            event_id=_ids.next_id(),
            confirmed=events_pb2.OrderConfirmed(
                order_id=order_id,
                buyer_id=buyer.id,
                total_minor=total_minor,
                currency=currency,
                lines=[
                    events_pb2.OrderLine(
                        product_id=_ids.next_id(), seller_id=_ids.next_id(), quantity=1, unit_price_minor=total_minor
                    )
                ],
            ),
        )
        event.occur_time.GetCurrentTime()
        return event.SerializeToString()

    @staticmethod
    def delivery(buyer: Buyer, order_id: int, status: str, note: str = "") -> bytes:
        event = events_pb2.OrderEvent(
            event_id=_ids.next_id(),
            delivery_changed=events_pb2.DeliveryStatusChanged(
                order_id=order_id,
                buyer_id=buyer.id,
                status=status,
                note=note,
            ),
        )
        event.occur_time.GetCurrentTime()
        return event.SerializeToString()

    def produce(self, buyer: Buyer, *payloads: bytes) -> None:
        """Order records keyed by buyer id (decimal bytes), as the orders service keys them."""
        self.send(ORDERS_TOPIC, str(buyer.id).encode(), payloads)


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    yield s
    s.close()


def has_text(text: str):
    return lambda ns: any(n.text == text for n in ns)


def shown(ns) -> list[tuple[int, str, str, list[str], int]]:
    return [(n.kind, n.order_id, n.text, list(n.actor_ids), n.actor_count) for n in ns]


# -- through the real consumer ---------------------------------------------------------


def test_confirmation_and_a_delivery_change_notify_the_buyer_once_each(stack):
    buyer, bystander = stack.sign_up(), stack.sign_up()
    order_id = _ids.next_id()
    shipped = stack.delivery(buyer, order_id, "DELIVERY_STATUS_SHIPPED", "tracking 1Z999")
    stack.produce(buyer, stack.confirmed(buyer, order_id, 1250, "USD"), shipped)
    stack.produce(buyer, shipped)  # at-least-once: the same event (same event id) again
    # Sentinel: same key, same partition, applied after the duplicate.
    stack.produce(buyer, stack.delivery(buyer, order_id, "DELIVERY_STATUS_DELIVERED"))

    page = stack.wait_inbox(buyer, has_text(f"Your order {order_id} was delivered"))
    o = str(order_id)
    assert shown(page.notifications) == [
        (ORDER, o, f"Your order {order_id} was delivered", [], 0),
        (ORDER, o, f"Your order {order_id} has shipped: tracking 1Z999", [], 0),
        (ORDER, o, f"Your order {order_id} is confirmed (USD 12.50)", [], 0),
    ]
    assert all(n.post_id == "" and not n.read and n.create_time.seconds > 0 for n in page.notifications)
    assert len({n.id for n in page.notifications}) == 3
    assert page.unread_count == 3
    assert stack.mark_read(buyer) == 3 and stack.inbox(buyer).unread_count == 0
    assert list(stack.inbox(bystander).notifications) == [], "only the buyer is told"


def test_a_status_sent_again_under_a_new_event_id_is_still_one_notice(stack):
    buyer = stack.sign_up()
    order_id = _ids.next_id()
    stack.produce(
        buyer,
        stack.delivery(buyer, order_id, "DELIVERY_STATUS_PACKED"),
        stack.delivery(buyer, order_id, "DELIVERY_STATUS_PACKED", "packed again?"),
        stack.confirmed(buyer, sentinel := _ids.next_id()),
    )
    page = stack.wait_inbox(buyer, lambda ns: any(n.order_id == str(sentinel) for n in ns))
    assert [n.text for n in page.notifications if n.order_id == str(order_id)] == [f"Your order {order_id} was packed"]
    assert len(page.notifications) == 2


def test_unusable_order_records_are_skipped_and_the_next_ones_still_apply(stack):
    buyer = stack.sign_up()
    order_id = _ids.next_id()
    no_order = events_pb2.OrderEvent(
        event_id=_ids.next_id(), confirmed=events_pb2.OrderConfirmed(buyer_id=buyer.id, total_minor=100, currency="USD")
    ).SerializeToString()
    no_status = stack.delivery(buyer, order_id, "")
    stack.produce(buyer, b"\xff\xfe not a protobuf", no_order, no_status, stack.confirmed(buyer, order_id, 500, "JPY"))
    page = stack.wait_inbox(buyer, lambda ns: len(ns) >= 1)
    assert shown(page.notifications) == [(ORDER, str(order_id), f"Your order {order_id} is confirmed (JPY 500)", [], 0)]


def test_order_notices_are_pushed_live_with_their_text(stack):
    buyer = stack.sign_up()
    order_id = _ids.next_id()
    call = stack.notifications.WatchNotifications(NT.WatchNotificationsRequest(), metadata=buyer.auth, timeout=30)
    call.initial_metadata()  # the server sends headers once it is subscribed
    received: list = []

    def read() -> None:
        try:
            for event in call:
                if event.HasField("notification"):
                    received.append(event)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stack.produce(buyer, stack.confirmed(buyer, order_id, 4999, "EUR"))
        deadline = time.monotonic() + DEADLINE
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received, "the order confirmation was not pushed"
        live = received[0]
        n = live.notification
        assert (n.kind, n.order_id, n.text) == (ORDER, str(order_id), f"Your order {order_id} is confirmed (EUR 49.99)")
        assert list(n.actor_ids) == [] and n.actor_count == 0 and live.replaces_id == ""
        # The pushed notice is the one the list shows.
        [listed] = stack.inbox(buyer).notifications
        assert listed.id == n.id and listed.text == n.text
    finally:
        call.cancel()
        reader.join(timeout=5)


def test_order_notices_read_over_http_through_envoy(stack):
    buyer = stack.sign_up()
    order_id = _ids.next_id()
    stack.produce(
        buyer, stack.confirmed(buyer, order_id, 1250, "USD"), stack.delivery(buyer, order_id, "DELIVERY_STATUS_SHIPPED")
    )
    stack.wait_inbox(buyer, lambda ns: len(ns) == 2)
    with httpx.Client(base_url=EDGE_URL, timeout=10.0) as http:
        try:
            r = http.get("/v1/notifications", headers={"Authorization": f"Bearer {buyer.token}"})
        except httpx.ConnectError:
            pytest.fail(f"Envoy is not reachable at {EDGE_URL}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unreadCount"] == 2
    shipped, confirmed = body["notifications"]
    assert shipped["kind"] == "NOTIFICATION_KIND_ORDER_STATUS" and shipped["orderId"] == str(order_id)
    assert shipped["text"] == f"Your order {order_id} has shipped"
    assert confirmed["text"] == f"Your order {order_id} is confirmed (USD 12.50)"
    # No actor (the edge prints default values; tolerate either JSON mapping).
    assert shipped.get("actorIds", []) == [] and shipped.get("actorCount", 0) == 0
    assert shipped.get("postId", "") == "" and shipped["read"] is False


# -- the consumer's own guarantees for order notices, on the real Cassandra -------------
# Two Notifier instances stand for two replicas of the service.


async def _notifier_pair():
    from services.kit.stores import redis_client
    from services.notifications.notifier import Notifier
    from services.notifications.store import NotificationStore

    settings = load_settings()
    out = []
    for worker in (1020, 1023):
        store = NotificationStore(settings, retention_seconds=3600)
        await store.start()
        out.append(
            Notifier(
                store,
                redis_client.client(settings),
                IdGenerator(worker),
                follow_window_seconds=3600,
                rpc_timeout=5.0,
                username_cache_seconds=60,
            )
        )
    return out


async def _close(notifiers) -> None:
    for n in notifiers:
        await n.store.stop()
        await n.live.aclose()


def _order_notice(recipient: int, order_id: int, status: str = "shipped"):
    from services.notifications import rules

    body = rules.delivery_text(order_id, status, "")
    return rules.Notice(recipient, 0, rules.ORDER_STATUS, 0, rules.order_slot(order_id, status), order_id, body)


async def test_concurrent_replicas_make_one_order_notice():
    from services.notifications import rules

    a, b = await _notifier_pair()
    try:
        recipient, order_id = _ids.next_id(), _ids.next_id()
        notice = _order_notice(recipient, order_id)
        # The same status, delivered under three event ids, each applied by both replicas at once.
        plans = [rules.Plan(ORDERS_TOPIC, _ids.next_id()) for _ in range(3)]
        outcomes = await asyncio.gather(*(n.notify(notice, plan) for plan in plans for n in (a, b)))
        assert sorted(outcomes) == ["created"] + ["duplicate"] * 5

        rows = await a.store.page(recipient, None, 10)
        assert [(r.order_id, r.body, r.actor_ids, r.actor_count) for r in rows] == [
            (order_id, f"Your order {order_id} has shipped", (), 0)
        ]
    finally:
        await _close((a, b))


async def test_an_order_notice_replayed_after_a_crash_before_the_inbox_write_is_finished():
    from services.notifications import rules

    a, _ = await _notifier_pair()
    try:
        recipient, order_id = _ids.next_id(), _ids.next_id()
        notice = _order_notice(recipient, order_id, "delivered")
        plan = rules.Plan(ORDERS_TOPIC, _ids.next_id())
        # The first attempt claimed the slot and died before the inbox row.
        state = await a.store.read_slot(recipient, notice.slot, 0)
        group = rules.new_group(notice, a.ids.next_id(), int(time.time() * 1000))
        assert await a.store.add_actor(recipient, notice.slot, 0, plan.event_id, state, group)
        assert await a.store.page(recipient, None, 10) == []
        # Kafka redelivers the uncommitted record.
        assert await a.notify(notice, plan) == "duplicate"
        rows = await a.store.page(recipient, None, 10)
        assert [(r.notification_id, r.order_id, r.body) for r in rows] == [
            (group.notification_id, order_id, f"Your order {order_id} was delivered")
        ]
    finally:
        await _close((a, _))


async def test_an_order_event_handled_twice_makes_one_notice_without_a_processed_marker():
    a, _ = await _notifier_pair()
    try:
        buyer, order_id = _ids.next_id(), _ids.next_id()
        event = events_pb2.OrderEvent(
            event_id=_ids.next_id(),
            confirmed=events_pb2.OrderConfirmed(order_id=order_id, buyer_id=buyer, total_minor=990, currency="EUR"),
        )
        record = event.SerializeToString()
        # Kafka redelivers a record whose commit was lost.
        await a.handle(ORDERS_TOPIC, str(buyer).encode(), record)
        await a.handle(ORDERS_TOPIC, str(buyer).encode(), record)
        rows = await a.store.page(buyer, None, 10)
        assert [(r.order_id, r.body) for r in rows] == [(order_id, f"Your order {order_id} is confirmed (EUR 9.90)")]
        # The slot's compare-and-set told the replay apart: no marker was written for it.
        assert not await a.store.processed(ORDERS_TOPIC, event.event_id)
    finally:
        await _close((a, _))
