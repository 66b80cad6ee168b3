"""Notifications rules on plain data: which event notifies whom, grouping,
deduplication of actors, texts, and the API shape."""

from __future__ import annotations

import pytest

from aviary.events.v1 import events_pb2
from aviary.identity.v1 import identity_pb2
from services.kit.server.ids import EPOCH_MS, WORKER_BITS, SEQUENCE_BITS
from services.kit.events.kafka import ENGAGEMENT_TOPIC, GRAPH_TOPIC, MODERATION_TOPIC, ORDERS_TOPIC, POSTS_TOPIC
from services.notifications import rules
from services.notifications.rules import (
    FOLLOW,
    FOLLOW_SLOT,
    LIKE,
    MAX_LISTED,
    MENTION,
    REPLY,
    REPOST,
    Group,
    Notice,
)


def _id_at(ms: int, seq: int = 0) -> int:
    return ((ms - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)) | seq


NOW_MS = 1_790_000_000_000


# -- events -> plans ------------------------------------------------------------------


def _post_created(**fields) -> bytes:
    event_id = fields.pop("event_id", 77)
    return events_pb2.PostEvent(event_id=event_id, created=events_pb2.PostCreated(**fields)).SerializeToString()


def test_follow_notifies_the_followee_with_the_follower_as_actor():
    value = events_pb2.GraphEvent(
        event_id=5, follow_created=events_pb2.FollowCreated(follower_id=1, followee_id=2)
    ).SerializeToString()
    plan = rules.plan_for(GRAPH_TOPIC, value)
    assert plan.event_id == 5 and plan.source == GRAPH_TOPIC
    assert plan.notices == (Notice(recipient_id=2, actor_id=1, kind=FOLLOW, post_id=0, slot=FOLLOW_SLOT),)


def test_unfollow_and_self_follow_notify_nobody():
    removed = events_pb2.GraphEvent(event_id=5, follow_removed=events_pb2.FollowRemoved(follower_id=1, followee_id=2))
    itself = events_pb2.GraphEvent(event_id=6, follow_created=events_pb2.FollowCreated(follower_id=3, followee_id=3))
    assert rules.plan_for(GRAPH_TOPIC, removed.SerializeToString()).empty
    assert rules.plan_for(GRAPH_TOPIC, itself.SerializeToString()).empty


def test_like_notifies_the_post_author_grouped_per_post():
    value = events_pb2.EngagementEvent(
        event_id=9, like_created=events_pb2.LikeCreated(post_id=100, user_id=1, post_author_id=2)
    ).SerializeToString()
    plan = rules.plan_for(ENGAGEMENT_TOPIC, value)
    assert plan.notices == (Notice(2, 1, LIKE, 100, "like:100"),)
    assert plan.about_posts == (100,)


def test_liking_your_own_post_and_unliking_notify_nobody():
    own = events_pb2.EngagementEvent(
        event_id=9, like_created=events_pb2.LikeCreated(post_id=100, user_id=2, post_author_id=2)
    )
    unlike = events_pb2.EngagementEvent(
        event_id=10, like_removed=events_pb2.LikeRemoved(post_id=100, user_id=1, post_author_id=2)
    )
    assert rules.plan_for(ENGAGEMENT_TOPIC, own.SerializeToString()).empty
    assert rules.plan_for(ENGAGEMENT_TOPIC, unlike.SerializeToString()).empty


def test_reply_notifies_the_parent_author_about_the_reply():
    plan = rules.plan_for(
        POSTS_TOPIC, _post_created(post_id=50, author_id=1, text="yes", reply_to_id=40, reply_to_author_id=2)
    )
    assert plan.notices == (Notice(2, 1, REPLY, 50, "reply:50"),)
    assert plan.about_posts == (50,)


def test_replying_to_yourself_notifies_nobody():
    plan = rules.plan_for(
        POSTS_TOPIC, _post_created(post_id=50, author_id=1, text="and", reply_to_id=40, reply_to_author_id=1)
    )
    assert plan.empty


def test_pure_repost_notifies_the_original_author_about_the_original():
    plan = rules.plan_for(
        POSTS_TOPIC, _post_created(post_id=60, author_id=1, text="", repost_of_id=40, repost_of_author_id=2)
    )
    assert plan.notices == (Notice(2, 1, REPOST, 40, "repost:40"),)
    assert set(plan.about_posts) == {60, 40}


def test_quote_post_is_a_quote_notice_about_the_quote_not_a_repost_and_its_mentions_count():
    plan = rules.plan_for(
        POSTS_TOPIC,
        _post_created(
            post_id=60, author_id=1, text="look @Bob", repost_of_id=40, repost_of_author_id=2, mentions=["bob"]
        ),
    )
    assert plan.notices == (Notice(2, 1, rules.QUOTE, 60, "quote:60"),)
    assert set(plan.about_posts) == {60, 40}
    assert plan.mentions.usernames == ("bob",)
    # The quoted author, mentioned too, hears of it once (as the quote).
    assert plan.mentions.notices({"bob": 2}) == []


def test_mentions_are_lower_cased_deduplicated_and_skip_the_replied_to_author():
    plan = rules.plan_for(
        POSTS_TOPIC,
        _post_created(
            post_id=50,
            author_id=1,
            text="x",
            reply_to_id=40,
            reply_to_author_id=2,
            mentions=["Bob", "bob", "carol", "me"],
        ),
    )
    m = plan.mentions
    assert m.usernames == ("bob", "carol", "me")
    notices = m.notices({"bob": 2, "carol": 3, "me": 1})
    # bob got the reply notice already; the author mentioning themself is nobody's news.
    assert notices == [Notice(3, 1, MENTION, 50, "mention:50")]


def test_unknown_mentioned_usernames_are_ignored():
    m = rules.Mentions(actor_id=1, post_id=50, usernames=("ghost", "dora"))
    assert m.notices({"dora": 4}) == [Notice(4, 1, MENTION, 50, "mention:50")]


def test_mentions_per_post_are_capped():
    names = [f"user{i}" for i in range(rules.MAX_MENTIONS + 5)]
    plan = rules.plan_for(POSTS_TOPIC, _post_created(post_id=50, author_id=1, text="x", mentions=names))
    assert len(plan.mentions.usernames) == rules.MAX_MENTIONS


def test_post_deleted_plans_a_withdrawal():
    value = events_pb2.PostEvent(
        event_id=8, deleted=events_pb2.PostDeleted(post_id=60, author_id=1, repost_of_id=40)
    ).SerializeToString()
    plan = rules.plan_for(POSTS_TOPIC, value)
    assert plan.gone == rules.PostGone(60, 1, 40)
    assert plan.notices == () and not plan.empty


@pytest.mark.parametrize(
    "topic, value",
    [
        (POSTS_TOPIC, b"\xff\xff\xff"),
        (
            GRAPH_TOPIC,
            events_pb2.GraphEvent(
                follow_created=events_pb2.FollowCreated(follower_id=1, followee_id=2)
            ).SerializeToString(),
        ),
        ("other.topic", b""),
    ],
    ids=["garbage", "no-event-id", "unknown-topic"],
)
def test_unreadable_records_are_poison(topic, value):
    with pytest.raises(rules.Unreadable):
        rules.plan_for(topic, value)


def test_a_created_post_from_before_the_author_fields_notifies_nobody_about_replies():
    # reply_to_author_id == 0 (an older producer): the parent's author is unknown.
    plan = rules.plan_for(POSTS_TOPIC, _post_created(post_id=50, author_id=1, text="yes", reply_to_id=40))
    assert plan.notices == ()


# -- grouping -------------------------------------------------------------------------------


def _group(actors=(1,), count=None, nid=None, version=1) -> Group:
    nid = nid or _id_at(NOW_MS)
    return Group(
        instance=nid,
        notification_id=nid,
        previous_id=0,
        version=version,
        kind=LIKE,
        post_id=100,
        actor_ids=tuple(actors),
        actor_count=count if count is not None else len(actors),
        activity_ms=NOW_MS,
    )


def test_new_group_has_one_actor_and_its_id_is_its_instance():
    g = rules.new_group(Notice(2, 1, LIKE, 100, "like:100"), new_id=42, activity_ms=NOW_MS)
    assert (g.instance, g.notification_id, g.actor_ids, g.actor_count, g.version) == (42, 42, (1,), 1, 1)


def test_a_new_actor_goes_first_and_is_counted_once_moving_the_group_to_a_new_id():
    g = _group(actors=(1,))
    grown = rules.with_actor(g, 7, new_id=g.notification_id + 10, activity_ms=NOW_MS + 5, move=True)
    assert grown.actor_ids == (7, 1) and grown.actor_count == 2
    assert grown.notification_id == g.notification_id + 10 and grown.previous_id == g.notification_id
    assert grown.instance == g.instance and grown.version == g.version + 1
    assert grown.activity_ms == NOW_MS + 5


def test_an_actor_already_listed_is_not_counted_twice():
    g = _group(actors=(3, 1), count=2)
    again = rules.with_actor(g, 1, new_id=g.notification_id, activity_ms=NOW_MS, move=False)
    assert again.actor_ids == (1, 3) and again.actor_count == 2


def test_listed_actors_are_capped_but_the_count_goes_on():
    g = _group(actors=tuple(range(1, MAX_LISTED + 1)), count=MAX_LISTED + 30)
    grown = rules.with_actor(g, 999, new_id=g.notification_id + 1, activity_ms=NOW_MS, move=True)
    assert len(grown.actor_ids) == MAX_LISTED and grown.actor_ids[0] == 999
    assert grown.actor_count == MAX_LISTED + 31


def test_growing_in_place_keeps_the_id():
    g = _group()
    grown = rules.with_actor(g, 7, new_id=g.notification_id, activity_ms=NOW_MS, move=False)
    assert grown.notification_id == g.notification_id and grown.previous_id == g.previous_id


def test_a_group_stays_in_place_only_when_on_top_and_unread():
    g = _group()
    nid = g.notification_id
    assert rules.stays_in_place(g, newest_id=nid, read_mark=0)
    assert not rules.stays_in_place(g, newest_id=nid + 1, read_mark=0), "something newer is above it"
    assert not rules.stays_in_place(g, newest_id=nid, read_mark=nid), "read: must become unread, so it moves"


def test_follows_group_within_the_window_and_start_over_after_it():
    window_ms = 24 * 3600 * 1000
    g = _group(nid=_id_at(NOW_MS))
    assert rules.opens_new_group(FOLLOW_SLOT, None, NOW_MS, window_ms)
    assert not rules.opens_new_group(FOLLOW_SLOT, g, NOW_MS + window_ms - 1, window_ms)
    assert rules.opens_new_group(FOLLOW_SLOT, g, NOW_MS + window_ms, window_ms)
    # Likes group per post for good: no window.
    assert not rules.opens_new_group("like:100", g, NOW_MS + 10 * window_ms, window_ms)


def test_removing_an_actor_shrinks_the_group_in_place():
    g = _group(actors=(3, 2, 1))
    shrunk = rules.without_actor(g, 2)
    assert shrunk.actor_ids == (3, 1) and shrunk.actor_count == 2
    assert shrunk.notification_id == g.notification_id and shrunk.version == g.version + 1


def test_removing_the_last_actor_removes_the_group():
    assert rules.without_actor(_group(actors=(1,)), 1) is None


# -- reading ----------------------------------------------------------------------------------


NAMES = {1: "alice", 2: "bob", 3: "carol", 4: "dave", 5: "erin"}


@pytest.mark.parametrize(
    "kind, actors, count, text",
    [
        (LIKE, [1], 1, "alice liked your post"),
        (LIKE, [1, 2], 2, "alice and bob liked your post"),
        (LIKE, [1, 2, 3, 4, 5], 5, "alice and 4 others liked your post"),
        (LIKE, [1, 2], 120, "alice and 119 others liked your post"),
        (FOLLOW, [1], 1, "alice followed you"),
        (FOLLOW, [2, 1], 2, "bob and alice followed you"),
        (REPLY, [1], 1, "alice replied to your post"),
        (MENTION, [1], 1, "alice mentioned you"),
        (REPOST, [1], 1, "alice reposted your post"),
        (REPOST, [3, 1, 2], 3, "carol and 2 others reposted your post"),
    ],
)
def test_texts(kind, actors, count, text):
    assert rules.notice_text(kind, actors, count, NAMES) == text


def test_texts_skip_actors_identity_no_longer_knows():
    assert rules.notice_text(LIKE, [99, 1], 2, NAMES) == "alice and 1 other liked your post"
    assert rules.notice_text(LIKE, [99], 1, NAMES) == "Someone liked your post"


def test_display_name_falls_back_to_username():
    assert rules.display_name(identity_pb2.User(username="alice", display_name="Alice A.")) == "Alice A."
    assert rules.display_name(identity_pb2.User(username="alice")) == "alice"


def test_page_dedupe_keeps_the_newest_row_of_a_group_instance():
    rows = [("like:1", 10, "a"), ("follow", 5, "b"), ("like:1", 10, "c"), ("follow", 6, "d")]
    shown, stale = rules.dedupe_page(rows, key=lambda r: (r[0], r[1]))
    assert [r[2] for r in shown] == ["a", "b", "d"]
    assert [r[2] for r in stale] == ["c"]


def test_notification_proto_shape():
    n = rules.notification_proto(_id_at(NOW_MS), FOLLOW, 0, (2, 1), 2, NOW_MS, read=True, names=NAMES)
    assert n.id == str(_id_at(NOW_MS)) and n.post_id == "" and n.read
    assert list(n.actor_ids) == ["2", "1"] and n.actor_count == 2
    assert n.text == "bob and alice followed you"
    assert n.create_time.ToMilliseconds() == NOW_MS
    like = rules.notification_proto(_id_at(NOW_MS), LIKE, 100, (1,), 1, 0, read=False, names={})
    assert like.post_id == "100" and not like.read and like.text == "Someone liked your post"
    assert like.create_time.ToMilliseconds() == NOW_MS  # from the id when no activity time was stored


def test_live_channels_are_per_recipient_and_hash_tagged():
    assert rules.live_channel(42) == "live:nt:{42}"


# -- orders -------------------------------------------------------------------------------


ORDER_STATUS = rules.ORDER_STATUS


def _order_event(event_id: int = 90, **kind) -> bytes:
    return events_pb2.OrderEvent(event_id=event_id, **kind).SerializeToString()


def _confirmed(order_id=700, buyer_id=5, total_minor=1250, currency="USD") -> bytes:
    return _order_event(
        confirmed=events_pb2.OrderConfirmed(
            order_id=order_id,
            buyer_id=buyer_id,
            total_minor=total_minor,
            currency=currency,
            lines=[events_pb2.OrderLine(product_id=1, seller_id=2, quantity=1, unit_price_minor=total_minor)],
        )
    )


def _delivery(status: str, note: str = "", order_id=700, buyer_id=5, event_id=91) -> bytes:
    return _order_event(
        event_id,
        delivery_changed=events_pb2.DeliveryStatusChanged(
            order_id=order_id, buyer_id=buyer_id, status=status, note=note
        ),
    )


def test_order_confirmed_notifies_the_buyer_with_no_actor_and_the_total():
    plan = rules.plan_for(ORDERS_TOPIC, _confirmed())
    assert plan.source == ORDERS_TOPIC and plan.event_id == 90 and plan.about_posts == ()
    assert plan.notices[0] == Notice(
        recipient_id=5,
        actor_id=0,
        kind=ORDER_STATUS,
        post_id=0,
        slot="order:700:confirmed",
        order_id=700,
        body="Your order 700 is confirmed (USD 12.50)",
    )
    assert plan.notices[0].actorless


def _line(product_id: int, seller_id: int, quantity: int, price: int) -> events_pb2.OrderLine:
    return events_pb2.OrderLine(product_id=product_id, seller_id=seller_id, quantity=quantity, unit_price_minor=price)


TWO_SELLERS = [_line(1, 20, 2, 1000), _line(2, 30, 1, 700), _line(3, 20, 1, 250)]


def test_each_seller_hears_of_a_confirmed_order_counting_only_their_own_lines():
    plan = rules.plan_for(
        ORDERS_TOPIC,
        _order_event(
            confirmed=events_pb2.OrderConfirmed(
                order_id=700, buyer_id=5, total_minor=2950, currency="USD", lines=TWO_SELLERS
            )
        ),
    )
    assert plan.notices[1:] == (
        Notice(20, 0, rules.NEW_ORDER, 0, "sale:700:confirmed", 700, "New order 700: 3 items of yours (USD 22.50)"),
        Notice(30, 0, rules.NEW_ORDER, 0, "sale:700:confirmed", 700, "New order 700: 1 item of yours (USD 7.00)"),
    )


def test_a_cancel_tells_the_buyer_of_the_refund_and_each_seller_not_to_send_their_lines():
    plan = rules.plan_for(
        ORDERS_TOPIC,
        _order_event(
            cancelled=events_pb2.OrderCancelled(
                order_id=700, buyer_id=5, total_minor=2950, currency="USD", lines=TWO_SELLERS, reason="too slow"
            )
        ),
    )
    assert plan.notices == (
        Notice(
            5, 0, ORDER_STATUS, 0, "order:700:cancelled", 700, "Your order 700 is cancelled: USD 29.50 will be refunded"
        ),
        Notice(
            20,
            0,
            rules.ORDER_CANCELLED,
            0,
            "sale:700:cancelled",
            700,
            "Order 700 was cancelled by the buyer: do not send its 3 items of yours (USD 22.50)",
        ),
        Notice(
            30,
            0,
            rules.ORDER_CANCELLED,
            0,
            "sale:700:cancelled",
            700,
            "Order 700 was cancelled by the buyer: do not send its 1 item of yours (USD 7.00)",
        ),
    )
    assert all(n.actorless for n in plan.notices)


def test_one_part_of_a_multi_seller_order_moving_is_a_notice_of_its_own():
    def part(seller_id: int, status: str, count: int, event_id: int) -> Notice:
        return rules.plan_for(
            ORDERS_TOPIC,
            _order_event(
                event_id,
                delivery_changed=events_pb2.DeliveryStatusChanged(
                    order_id=700,
                    buyer_id=5,
                    status="DELIVERY_STATUS_PENDING",
                    fulfilment_status=status,
                    seller_id=seller_id,
                    fulfilment_count=count,
                ),
            ),
        ).notices[0]

    first = part(20, "DELIVERY_STATUS_SHIPPED", 2, 91)
    second = part(30, "DELIVERY_STATUS_SHIPPED", 2, 92)
    assert (first.slot, first.body) == ("order:700:20:shipped", "Part of your order 700 has shipped")
    assert second.slot == "order:700:30:shipped"
    # A single-seller order reads (and dedupes) as before.
    only = part(20, "DELIVERY_STATUS_SHIPPED", 1, 93)
    assert (only.slot, only.body) == ("order:700:shipped", "Your order 700 has shipped")


@pytest.mark.parametrize(
    "status, note, slot, body",
    [
        ("DELIVERY_STATUS_PACKED", "", "order:700:packed", "Your order 700 was packed"),
        (
            "DELIVERY_STATUS_SHIPPED",
            "tracking 1Z999",
            "order:700:shipped",
            "Your order 700 has shipped: tracking 1Z999",
        ),
        (
            "DELIVERY_STATUS_DELIVERED",
            "  left at\nthe door ",
            "order:700:delivered",
            "Your order 700 was delivered: left at the door",
        ),
        ("shipped", "", "order:700:shipped", "Your order 700 has shipped"),
        (
            "DELIVERY_STATUS_OUT_FOR_DELIVERY",
            "",
            "order:700:out_for_delivery",
            "Your order 700 is now out for delivery",
        ),
    ],
)
def test_each_delivery_change_is_its_own_notice_to_the_buyer(status, note, slot, body):
    plan = rules.plan_for(ORDERS_TOPIC, _delivery(status, note))
    assert plan.notices == (Notice(5, 0, ORDER_STATUS, 0, slot, 700, body),)


def test_the_same_order_status_always_lands_in_the_same_slot_and_different_ones_do_not():
    # A re-sent change with another event id is a duplicate of the slot, not a second notice.
    first = rules.plan_for(ORDERS_TOPIC, _delivery("DELIVERY_STATUS_SHIPPED", event_id=91)).notices[0]
    again = rules.plan_for(ORDERS_TOPIC, _delivery("DELIVERY_STATUS_SHIPPED", "late", event_id=95)).notices[0]
    packed = rules.plan_for(ORDERS_TOPIC, _delivery("DELIVERY_STATUS_PACKED", event_id=92)).notices[0]
    confirmed = rules.plan_for(ORDERS_TOPIC, _confirmed()).notices[0]
    other_order = rules.plan_for(ORDERS_TOPIC, _delivery("DELIVERY_STATUS_SHIPPED", order_id=701)).notices[0]
    assert first.slot == again.slot
    assert len({first.slot, packed.slot, confirmed.slot, other_order.slot}) == 4


def test_long_delivery_notes_are_cut():
    plan = rules.plan_for(ORDERS_TOPIC, _delivery("DELIVERY_STATUS_SHIPPED", "x" * 500))
    body = plan.notices[0].body
    assert body.startswith("Your order 700 has shipped: xxx") and body.endswith("\u2026")
    assert len(body) == len("Your order 700 has shipped: ") + rules.MAX_NOTE_CHARS


@pytest.mark.parametrize(
    "value",
    [
        _confirmed(buyer_id=0),
        _confirmed(order_id=0),
        _delivery("DELIVERY_STATUS_SHIPPED", buyer_id=0),
        _delivery(""),
        _delivery("DELIVERY_STATUS_UNSPECIFIED"),
        _order_event(),  # no kind at all (a newer producer's kind this consumer does not know)
    ],
    ids=["no-buyer", "no-order", "delivery-no-buyer", "no-status", "unspecified", "no-kind"],
)
def test_incomplete_order_events_notify_nobody(value):
    assert rules.plan_for(ORDERS_TOPIC, value).empty


def test_order_records_without_event_id_or_undecodable_are_poison():
    no_id = events_pb2.OrderEvent(confirmed=events_pb2.OrderConfirmed(order_id=1, buyer_id=2)).SerializeToString()
    for value in (no_id, b"\xff\xff\xff"):
        with pytest.raises(rules.Unreadable):
            rules.plan_for(ORDERS_TOPIC, value)


@pytest.mark.parametrize(
    "minor, currency, text",
    [
        (1250, "USD", "USD 12.50"),
        (5, "eur", "EUR 0.05"),
        (123456789, "USD", "USD 1,234,567.89"),
        (500, "JPY", "JPY 500"),
        (1234, "KWD", "KWD 1.234"),
        (0, "USD", "USD 0.00"),
    ],
)
def test_money_is_formatted_with_the_currency_exponent(minor, currency, text):
    assert rules.format_money(minor, currency) == text


def test_a_confirmation_without_a_currency_leaves_the_total_out():
    assert rules.confirmed_text(7, 1250, "") == "Your order 7 is confirmed"


def test_an_order_notice_opens_a_group_with_nobody_in_it():
    notice = rules.plan_for(ORDERS_TOPIC, _confirmed()).notices[0]
    g = rules.new_group(notice, new_id=42, activity_ms=NOW_MS)
    assert (g.actor_ids, g.actor_count, g.order_id, g.post_id, g.kind) == ((), 0, 700, 0, ORDER_STATUS)
    assert g.body == "Your order 700 is confirmed (USD 12.50)"
    # Order slots are not follow slots: a later notice never opens a second group.
    assert not rules.opens_new_group(notice.slot, g, NOW_MS + 365 * 24 * 3600 * 1000, 1000)


def test_an_order_notice_reads_as_its_body_with_no_actors_and_no_names_needed():
    body = "Your order 700 has shipped"
    n = rules.notification_proto(
        _id_at(NOW_MS), ORDER_STATUS, 0, (), 0, NOW_MS, read=False, names={}, order_id=700, body=body
    )
    assert n.text == body and n.order_id == "700" and n.post_id == "" and list(n.actor_ids) == []
    assert n.actor_count == 0 and n.kind == ORDER_STATUS
    assert rules.names_needed(()) == []
    # Even with no body stored, zero actors still give a sentence rather than failing.
    assert rules.notice_text(ORDER_STATUS, (), 0, {})
    assert rules.notice_text(LIKE, (), 0, {}) == "Someone liked your post"


def test_other_kinds_have_no_order_id():
    like = rules.notification_proto(_id_at(NOW_MS), LIKE, 100, (1,), 1, NOW_MS, read=False, names=NAMES)
    assert like.order_id == "" and like.text == "alice liked your post"


def _resolved(decision: str, report_id: int = 7, reporter_id: int = 11) -> bytes:
    event = events_pb2.ModerationEvent(
        event_id=99,
        report_resolved=events_pb2.ReportResolved(
            report_id=report_id, reporter_id=reporter_id, user_id=12, decision=decision
        ),
    )
    return event.SerializeToString()


def test_a_decision_on_a_report_tells_its_reporter_once():
    plan = rules.plan_for(MODERATION_TOPIC, _resolved("DISMISS"))
    (notice,) = plan.notices
    assert (notice.recipient_id, notice.actor_id, notice.kind) == (11, 0, rules.REPORT_RESOLVED)
    assert notice.slot == "report:7" and notice.actorless and "no rule broken" in notice.body


def test_an_unknown_decision_or_a_report_without_reporter_tells_nobody():
    assert rules.plan_for(MODERATION_TOPIC, _resolved("SOMETHING_NEW")).empty
    assert rules.plan_for(MODERATION_TOPIC, _resolved("DISMISS", reporter_id=0)).empty


def test_only_plans_of_actorless_notices_go_without_a_processed_marker():
    assert not rules.plan_for(ORDERS_TOPIC, _confirmed()).needs_marker
    sellers = events_pb2.OrderConfirmed(order_id=700, buyer_id=5, total_minor=2950, currency="USD", lines=TWO_SELLERS)
    assert len(rules.plan_for(ORDERS_TOPIC, _order_event(confirmed=sellers)).notices) == 3
    assert not rules.plan_for(ORDERS_TOPIC, _order_event(confirmed=sellers)).needs_marker
    follow = events_pb2.GraphEvent(event_id=4, follow_created=events_pb2.FollowCreated(follower_id=1, followee_id=2))
    assert rules.plan_for(GRAPH_TOPIC, follow.SerializeToString()).needs_marker
    # A post's plan may hold only mentions (resolved later): it keeps its marker.
    mentioning = _post_created(post_id=10, author_id=1, text="hi", mentions=["someone"])
    assert rules.plan_for(POSTS_TOPIC, mentioning).notices == ()
    assert rules.plan_for(POSTS_TOPIC, mentioning).needs_marker
    # So does a withdrawal, and an account's removal.
    gone = rules.Plan(POSTS_TOPIC, 7, gone=rules.PostGone(post_id=10, author_id=1))
    assert gone.needs_marker and rules.Plan(POSTS_TOPIC, 8, account_gone=3).needs_marker
