"""Notifications rules for quotes, direct messages, moderation outcomes,
account deletion and the unread count, on plain data."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from aviary.conversations.v1 import conversations_pb2
from aviary.events.v1 import events_pb2
from services.kit.events.kafka import CONVERSATIONS_TOPIC, IDENTITY_TOPIC, MODERATION_TOPIC, POSTS_TOPIC
from services.notifications import rules
from services.notifications.notifier import _live_view
from services.notifications.rules import MESSAGE, QUOTE, Group, Notice

# -- quotes ---------------------------------------------------------------------------


def _quote(**fields) -> bytes:
    return events_pb2.PostEvent(event_id=7, created=events_pb2.PostCreated(**fields)).SerializeToString()


def test_a_quote_notifies_the_quoted_author_once_per_quote():
    plan = rules.plan_for(
        POSTS_TOPIC, _quote(post_id=61, author_id=1, text="hm", repost_of_id=40, repost_of_author_id=2)
    )
    assert plan.notices == (Notice(2, 1, QUOTE, 61, "quote:61"),)
    other = rules.plan_for(
        POSTS_TOPIC, _quote(post_id=62, author_id=3, text="ok", repost_of_id=40, repost_of_author_id=2)
    )
    assert other.notices[0].slot != plan.notices[0].slot


def test_quoting_yourself_notifies_nobody():
    plan = rules.plan_for(
        POSTS_TOPIC, _quote(post_id=61, author_id=2, text="me", repost_of_id=40, repost_of_author_id=2)
    )
    assert plan.notices == ()


def test_a_quote_reads_as_quoted_your_post():
    assert rules.notice_text(QUOTE, [1], 1, {1: "alice"}) == "alice quoted your post"


# -- messages -------------------------------------------------------------------------


def _message_event(event_id: str = "900", sender: str = "1", conversation: str = "55", recipients=("1", "2", "3")):
    event = conversations_pb2.ConversationEvent(
        event_id=event_id,
        message_sent=conversations_pb2.Message(id="901", conversation_id=conversation, sender_id=sender, text="hi"),
        recipient_ids=list(recipients),
    )
    event.message_sent.created_at.FromMilliseconds(1_790_000_000_123)
    return event.SerializeToString()


def test_a_message_notifies_every_recipient_but_the_sender_in_the_conversations_notice():
    plan = rules.plan_for(CONVERSATIONS_TOPIC, _message_event())
    assert plan.event_id == 900 and plan.source == CONVERSATIONS_TOPIC
    assert plan.occur_ms == 1_790_000_000_123
    assert plan.notices == (Notice(2, 1, MESSAGE, 0, "message:55"), Notice(3, 1, MESSAGE, 0, "message:55"))


@pytest.mark.parametrize("event_id", ["", "abc", "0"])
def test_a_message_event_without_a_usable_id_is_unreadable(event_id):
    with pytest.raises(rules.Unreadable):
        rules.plan_for(CONVERSATIONS_TOPIC, _message_event(event_id=event_id))


def test_a_message_event_without_a_sender_or_conversation_notifies_nobody():
    assert rules.plan_for(CONVERSATIONS_TOPIC, _message_event(sender="")).empty
    assert rules.plan_for(CONVERSATIONS_TOPIC, _message_event(conversation="x")).empty
    empty = conversations_pb2.ConversationEvent(event_id="5").SerializeToString()
    assert rules.plan_for(CONVERSATIONS_TOPIC, empty).empty


def test_message_texts_name_the_senders():
    assert rules.notice_text(MESSAGE, [1], 1, {1: "alice"}) == "alice sent you a message"
    assert rules.notice_text(MESSAGE, [1, 2], 2, {1: "alice", 2: "bob"}) == "alice and bob sent you messages"
    assert rules.notice_text(MESSAGE, [1, 2, 3], 3, {1: "alice"}) == "alice and 2 others sent you messages"


def _group(notification_id: int) -> Group:
    return Group(notification_id, notification_id, 0, 1, MESSAGE, 0, (1,), 1, 0)


def test_a_message_group_is_joined_while_unread_and_replaced_once_read():
    slot = rules.message_slot(55)
    assert not rules.opens_new_group(slot, _group(100), 0, 10, read_mark=99)
    assert rules.opens_new_group(slot, _group(100), 0, 10, read_mark=100)
    assert rules.replaces_old_instance(slot) and not rules.replaces_old_instance(rules.FOLLOW_SLOT)
    # Every message moves it up, the same sender's too; a like group grows only by new people.
    assert rules.grows_on_every_event(slot) and not rules.grows_on_every_event(rules.like_slot(1))


def test_the_conversation_comes_from_a_message_slot_only():
    assert rules.conversation_of(rules.message_slot(55)) == 55
    assert rules.conversation_of(rules.like_slot(55)) == 0
    assert rules.conversation_of("message:nope") == 0
    shown = rules.notification_proto(9, MESSAGE, 0, [1], 1, 0, read=False, names={1: "a"}, conversation_id=55)
    assert shown.conversation_id == "55" and shown.post_id == ""


# -- moderation outcomes ----------------------------------------------------------------


def _resolved(decision: str) -> bytes:
    return events_pb2.ModerationEvent(
        event_id=3,
        report_resolved=events_pb2.ReportResolved(report_id=8, reporter_id=4, post_id=5, user_id=6, decision=decision),
    ).SerializeToString()


@pytest.mark.parametrize(
    "decision, words",
    [
        ("DISMISS", "found no rule broken"),
        ("REMOVE_POST", "we removed the post you reported"),
        ("SUSPEND_ACCOUNT", "we suspended the account you reported"),
    ],
)
def test_the_reporter_is_told_the_decision(decision, words):
    (notice,) = rules.plan_for(MODERATION_TOPIC, _resolved(decision)).notices
    assert notice.recipient_id == 4 and notice.slot == "report:8" and notice.actorless
    assert words in notice.body


def test_an_unknown_decision_tells_nobody():
    assert rules.plan_for(MODERATION_TOPIC, _resolved("BANISH")).empty


# -- account deletion -------------------------------------------------------------------


def test_a_deleted_account_is_planned_and_a_suspension_is_not():
    deleted = events_pb2.AccountEvent(event_id=4, deleted=events_pb2.AccountDeleted(user_id=12))
    plan = rules.plan_for(IDENTITY_TOPIC, deleted.SerializeToString())
    assert plan.account_gone == 12 and not plan.empty and plan.source == IDENTITY_TOPIC
    suspended = events_pb2.AccountEvent(event_id=5, suspended=events_pb2.AccountSuspended(user_id=12))
    assert rules.plan_for(IDENTITY_TOPIC, suspended.SerializeToString()).empty


# -- the unread count -----------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    notification_id: int
    slot: str
    instance: int
    actor_ids: tuple[int, ...]
    actor_count: int


def test_the_unread_count_is_what_the_list_shows_unread():
    rows = [
        _Row(10, "like:1", 5, (7, 8), 2),  # 7 hidden: still shown, by 8
        _Row(9, "reply:2", 6, (7,), 1),  # only a hidden actor: not shown
        _Row(8, "order:3:confirmed", 4, (), 0),  # actorless: always shown
        _Row(7, "like:1", 5, (8,), 1),  # a leftover of the moved like group
        _Row(6, "follow", 3, (9,), 1),  # read
    ]
    assert rules.shown_unread_count(rows, read_mark=6, hidden=frozenset({7})) == 2
    assert rules.shown_unread_count(rows, read_mark=6, hidden=frozenset()) == 3
    assert rules.shown_unread_count(rows, read_mark=10, hidden=frozenset()) == 0


def test_a_live_message_notice_carries_its_conversation():
    live = _live_view(_group(100), rules.message_slot(55))
    assert live.conversation_id == "55" and live.kind == MESSAGE and list(live.actor_ids) == ["1"]
    assert _live_view(_group(100), rules.like_slot(55)).conversation_id == ""
