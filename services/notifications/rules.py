"""What notifies whom, how notices group, and how they read: pure functions on
plain data (no backend), so the rules are unit-tested on their own.

A notice (one actor doing one thing that concerns one recipient) lands in a
slot per recipient (`like:<post>`, `follow`, `order:<order>:<status>`, ...);
a group is the state of one slot: its actors, their count and the id of the
notification that shows it. Order notices have no actor (actor 0), so their
slot is never joined: the first notice for an order status is the only one.
The whole vocabulary and every slot: services/notifications/README.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, TypeAlias

from google.protobuf.message import DecodeError

from aviary.conversations.v1 import conversations_pb2
from aviary.events.v1 import events_pb2
from aviary.notifications.v1 import notifications_pb2
from services.kit.server.ids import timestamp_ms
from services.kit.events.kafka import (
    CONVERSATIONS_TOPIC,
    ENGAGEMENT_TOPIC,
    GRAPH_TOPIC,
    IDENTITY_TOPIC,
    MODERATION_TOPIC,
    ORDERS_TOPIC,
    POSTS_TOPIC,
)

# A NotificationKind value (an int at run time).
Kind: TypeAlias = notifications_pb2.NotificationKind.ValueType
FOLLOW = notifications_pb2.NOTIFICATION_KIND_FOLLOW
LIKE = notifications_pb2.NOTIFICATION_KIND_LIKE
REPOST = notifications_pb2.NOTIFICATION_KIND_REPOST
REPLY = notifications_pb2.NOTIFICATION_KIND_REPLY
MENTION = notifications_pb2.NOTIFICATION_KIND_MENTION
ORDER_STATUS = notifications_pb2.NOTIFICATION_KIND_ORDER_STATUS
NEW_ORDER = notifications_pb2.NOTIFICATION_KIND_NEW_ORDER
ORDER_CANCELLED = notifications_pb2.NOTIFICATION_KIND_ORDER_CANCELLED
REPORT_RESOLVED = notifications_pb2.NOTIFICATION_KIND_REPORT_RESOLVED
QUOTE = notifications_pb2.NOTIFICATION_KIND_QUOTE
MESSAGE = notifications_pb2.NOTIFICATION_KIND_MESSAGE

# Actors listed on one notification, most recent first; actor_count has the total.
MAX_LISTED = 50
# Mentions notified per post; the rest of a long @-list is ignored.
MAX_MENTIONS = 20
# A delivery note longer than this is cut in the text (the order keeps it whole).
MAX_NOTE_CHARS = 200

FOLLOW_SLOT = "follow"

_VERBS = {
    FOLLOW: "followed you",
    LIKE: "liked your post",
    REPOST: "reposted your post",
    REPLY: "replied to your post",
    MENTION: "mentioned you",
    QUOTE: "quoted your post",
    MESSAGE: "sent you a message",
}
# The verb when a notice names more than one actor, where it differs.
_PLURAL_VERBS = {
    MESSAGE: "sent you messages",
}


def like_slot(post_id: int) -> str:
    return f"like:{post_id}"


def repost_slot(original_id: int) -> str:
    return f"repost:{original_id}"


def reply_slot(reply_id: int) -> str:
    return f"reply:{reply_id}"


def mention_slot(post_id: int) -> str:
    return f"mention:{post_id}"


def quote_slot(quote_id: int) -> str:
    """One notice per quote (each has text of its own to read), like replies."""
    return f"quote:{quote_id}"


def is_quote_slot(slot: str) -> bool:
    return slot.startswith("quote:")


MESSAGE_SLOT_PREFIX = "message:"


def message_slot(conversation_id: int) -> str:
    """One notice per conversation, grouping the senders of its new messages."""
    return f"{MESSAGE_SLOT_PREFIX}{conversation_id}"


def is_message_slot(slot: str) -> bool:
    return slot.startswith(MESSAGE_SLOT_PREFIX)


def conversation_of(slot: str) -> int:
    """The conversation a message slot is about; 0 for any other slot."""
    if not is_message_slot(slot):
        return 0
    try:
        return int(slot.removeprefix(MESSAGE_SLOT_PREFIX))
    except ValueError:
        return 0


def order_slot(order_id: int, status: str, seller_id: int = 0) -> str:
    """`status`: "confirmed", "cancelled", or a delivery status as
    `delivery_status_key` spells it; `seller_id` for one part of a
    multi-seller order."""
    return f"order:{order_id}:{seller_id}:{status}" if seller_id else f"order:{order_id}:{status}"


def sale_slot(order_id: int, status: str) -> str:
    """A seller's notice about an order with their products: "confirmed" or "cancelled"."""
    return f"sale:{order_id}:{status}"


def live_channel(recipient_id: int) -> str:
    """Redis pub/sub channel of one recipient's live notices (hash-tagged for Cluster)."""
    return f"live:nt:{{{recipient_id}}}"


# -- events -> plans -------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """`actor` did `kind` (about `post_id`, 0 for follows); `recipient` hears of it.

    Order notices have actor 0 (nobody), the order in `order_id` and their
    finished sentence in `body`."""

    recipient_id: int
    actor_id: int
    kind: Kind
    post_id: int
    slot: str
    order_id: int = 0
    body: str = ""

    @property
    def actorless(self) -> bool:
        """Made once per slot, never grown (order notices)."""
        return self.actor_id == 0


@dataclass(frozen=True)
class Mentions:
    """Usernames to resolve to ids; each known one (not skipped) gets a MENTION."""

    actor_id: int
    post_id: int
    usernames: tuple[str, ...]
    # Users told already by another notice of the same post (the replied-to author).
    skip_ids: frozenset[int] = frozenset()

    def notices(self, ids_by_username: dict[str, int]) -> list[Notice]:
        out, seen = [], set()
        for name in self.usernames:
            user_id = ids_by_username.get(name)
            if not user_id or user_id in seen or user_id == self.actor_id or user_id in self.skip_ids:
                continue
            seen.add(user_id)
            out.append(Notice(user_id, self.actor_id, MENTION, self.post_id, mention_slot(self.post_id)))
        return out


@dataclass(frozen=True)
class PostGone:
    """A deleted post: everything about it goes; a deleted repost leaves its original's group."""

    post_id: int
    author_id: int
    repost_of_id: int = 0


@dataclass(frozen=True)
class Plan:
    """What one event asks for. Notices about a deleted post are dropped."""

    source: str
    event_id: int
    occur_ms: int = 0
    notices: tuple[Notice, ...] = ()
    mentions: Mentions | None = None
    gone: PostGone | None = None
    # Posts the notices are about: if any was deleted, the notices are not made.
    about_posts: tuple[int, ...] = ()
    # A deleted account: every notice it acted in, and its own inbox, go.
    account_gone: int = 0

    @property
    def empty(self) -> bool:
        return not self.notices and self.mentions is None and self.gone is None and not self.account_gone

    @property
    def needs_marker(self) -> bool:
        """Whether a replay is known by the event's processed marker. Not when
        the plan is only actorless notices (an order's, a report decision's):
        each claims its slot with a compare-and-set, so a replay finds the
        slot taken and only finishes its inbox row."""
        only_actorless = all(n.actorless for n in self.notices)
        return not only_actorless or self.mentions is not None or self.gone is not None or bool(self.account_gone)


class Unreadable(ValueError):
    """A record that can never be applied (undecodable, no event id)."""


def plan_for(topic: str, value: bytes) -> Plan:
    """Decodes one record of the consumed topics into what it asks for."""
    try:
        if topic == POSTS_TOPIC:
            return _post_plan(_parse(events_pb2.PostEvent, value))
        if topic == GRAPH_TOPIC:
            return _graph_plan(_parse(events_pb2.GraphEvent, value))
        if topic == ENGAGEMENT_TOPIC:
            return _engagement_plan(_parse(events_pb2.EngagementEvent, value))
        if topic == ORDERS_TOPIC:
            return _order_plan(_parse(events_pb2.OrderEvent, value))
        if topic == MODERATION_TOPIC:
            return _moderation_plan(_parse(events_pb2.ModerationEvent, value))
        if topic == IDENTITY_TOPIC:
            return _account_plan(_parse(events_pb2.AccountEvent, value))
        if topic == CONVERSATIONS_TOPIC:
            return _conversation_plan(_parse_conversation_event(value))
    except DecodeError as exc:
        raise Unreadable(f"undecodable {topic} record: {exc}") from exc
    raise Unreadable(f"unexpected topic {topic}")


def _parse(cls, value: bytes):
    event = cls()
    event.ParseFromString(value or b"")
    if event.event_id <= 0:
        raise Unreadable(f"{cls.__name__} without event_id")
    return event


def _parse_conversation_event(value: bytes) -> conversations_pb2.ConversationEvent:
    """Its event id is a decimal string (the API's id format), unlike the events topics'."""
    event = conversations_pb2.ConversationEvent()
    event.ParseFromString(value or b"")
    if not event.event_id.isdigit() or int(event.event_id) <= 0:
        raise Unreadable("ConversationEvent without a numeric event_id")
    return event


def _occur_ms(event) -> int:
    if event.HasField("occur_time"):
        return event.occur_time.seconds * 1000 + event.occur_time.nanos // 1_000_000
    return 0


def _post_plan(event: events_pb2.PostEvent) -> Plan:
    base = Plan(POSTS_TOPIC, event.event_id, _occur_ms(event))
    kind = event.WhichOneof("kind")
    if kind == "deleted":
        d = event.deleted
        if d.post_id <= 0:
            return base
        return replace(base, gone=PostGone(d.post_id, d.author_id, d.repost_of_id))
    if kind != "created":
        return base
    c = event.created
    if c.post_id <= 0 or c.author_id <= 0:
        return base
    notices: list[Notice] = []
    about = [c.post_id]
    told: set[int] = set()
    if c.reply_to_id and c.reply_to_author_id > 0 and c.reply_to_author_id != c.author_id:
        notices.append(Notice(c.reply_to_author_id, c.author_id, REPLY, c.post_id, reply_slot(c.post_id)))
        told.add(c.reply_to_author_id)
    if c.repost_of_id and not c.text and c.repost_of_author_id > 0 and c.repost_of_author_id != c.author_id:
        notices.append(Notice(c.repost_of_author_id, c.author_id, REPOST, c.repost_of_id, repost_slot(c.repost_of_id)))
        about.append(c.repost_of_id)
    if c.repost_of_id and c.text and c.repost_of_author_id > 0 and c.repost_of_author_id != c.author_id:
        # A quote: about the quote (deleting it withdraws the notice), and
        # not made when the quoted post is gone already.
        if c.repost_of_author_id not in told:
            notices.append(Notice(c.repost_of_author_id, c.author_id, QUOTE, c.post_id, quote_slot(c.post_id)))
            told.add(c.repost_of_author_id)
        about.append(c.repost_of_id)
    usernames = tuple(dict.fromkeys(m.lower() for m in c.mentions if m))[:MAX_MENTIONS]
    mentions = Mentions(c.author_id, c.post_id, usernames, frozenset(told)) if usernames else None
    return replace(base, notices=tuple(notices), mentions=mentions, about_posts=tuple(about))


def _graph_plan(event: events_pb2.GraphEvent) -> Plan:
    base = Plan(GRAPH_TOPIC, event.event_id, _occur_ms(event))
    if event.WhichOneof("kind") != "follow_created":
        return base  # an unfollow leaves the notice as it was
    f = event.follow_created
    if f.follower_id <= 0 or f.followee_id <= 0 or f.follower_id == f.followee_id:
        return base
    return replace(base, notices=(Notice(f.followee_id, f.follower_id, FOLLOW, 0, FOLLOW_SLOT),))


def _engagement_plan(event: events_pb2.EngagementEvent) -> Plan:
    base = Plan(ENGAGEMENT_TOPIC, event.event_id, _occur_ms(event))
    if event.WhichOneof("kind") != "like_created":
        return base  # an unlike leaves the notice as it was
    like = event.like_created
    if like.post_id <= 0 or like.user_id <= 0 or like.post_author_id <= 0 or like.user_id == like.post_author_id:
        return base
    notice = Notice(like.post_author_id, like.user_id, LIKE, like.post_id, like_slot(like.post_id))
    return replace(base, notices=(notice,), about_posts=(like.post_id,))


def report_slot(report_id: int) -> str:
    """A reporter's notice about one report's outcome: made once."""
    return f"report:{report_id}"


# What a reporter is told, by decision.
REPORT_OUTCOMES = {
    "DISMISS": "The moderators reviewed your report and found no rule broken. Thank you for reporting.",
    "REMOVE_POST": "Thank you for reporting: we removed the post you reported.",
    "SUSPEND_ACCOUNT": "Thank you for reporting: we suspended the account you reported.",
}


def _moderation_plan(event: events_pb2.ModerationEvent) -> Plan:
    """A decision on a report: one actorless notice to its reporter."""
    base = Plan(MODERATION_TOPIC, event.event_id, _occur_ms(event))
    if event.WhichOneof("kind") != "report_resolved":
        return base
    r = event.report_resolved
    body = REPORT_OUTCOMES.get(r.decision)
    if r.report_id <= 0 or r.reporter_id <= 0 or body is None:
        return base
    return replace(base, notices=(Notice(r.reporter_id, 0, REPORT_RESOLVED, 0, report_slot(r.report_id), 0, body),))


def _account_plan(event: events_pb2.AccountEvent) -> Plan:
    """A deleted account: withdrawn everywhere it acted, its inbox gone.
    Suspensions change nothing stored (gone accounts are hidden at read)."""
    base = Plan(IDENTITY_TOPIC, event.event_id, _occur_ms(event))
    if event.WhichOneof("kind") != "deleted" or event.deleted.user_id <= 0:
        return base
    return replace(base, account_gone=event.deleted.user_id)


def _conversation_plan(event: conversations_pb2.ConversationEvent) -> Plan:
    """A message: one notice to each recipient but the sender, in their
    notice for the conversation."""
    base = Plan(CONVERSATIONS_TOPIC, int(event.event_id))
    if not event.HasField("message_sent"):
        return base
    m = event.message_sent
    if m.HasField("created_at"):
        base = replace(base, occur_ms=m.created_at.seconds * 1000 + m.created_at.nanos // 1_000_000)
    sender, conversation = _int_or_zero(m.sender_id), _int_or_zero(m.conversation_id)
    if sender <= 0 or conversation <= 0:
        return base
    recipients = dict.fromkeys(r for r in map(_int_or_zero, event.recipient_ids) if r > 0 and r != sender)
    slot = message_slot(conversation)
    return replace(base, notices=tuple(Notice(r, sender, MESSAGE, 0, slot) for r in recipients))


def _int_or_zero(value: str) -> int:
    return int(value) if value.isdigit() else 0


def _order_plan(event: events_pb2.OrderEvent) -> Plan:
    """Confirmation, cancellation and each delivery change: one notice to the
    buyer each; confirmation and cancellation one to each seller too, about
    their own lines only."""
    base = Plan(ORDERS_TOPIC, event.event_id, _occur_ms(event))
    kind = event.WhichOneof("kind")
    if kind == "confirmed":
        c = event.confirmed
        if c.order_id <= 0 or c.buyer_id <= 0:
            return base
        body = confirmed_text(c.order_id, c.total_minor, c.currency)
        notice = Notice(c.buyer_id, 0, ORDER_STATUS, 0, order_slot(c.order_id, "confirmed"), c.order_id, body)
        return replace(base, notices=(notice, *_seller_notices(c.order_id, c.lines, c.currency, "confirmed")))
    if kind == "cancelled":
        x = event.cancelled
        if x.order_id <= 0 or x.buyer_id <= 0:
            return base
        body = cancelled_text(x.order_id, x.total_minor, x.currency)
        notice = Notice(x.buyer_id, 0, ORDER_STATUS, 0, order_slot(x.order_id, "cancelled"), x.order_id, body)
        return replace(base, notices=(notice, *_seller_notices(x.order_id, x.lines, x.currency, "cancelled")))
    if kind == "delivery_changed":
        d = event.delivery_changed
        # Events from before fulfilments carry only the order's status.
        status = delivery_status_key(d.fulfilment_status or d.status)
        if d.order_id <= 0 or d.buyer_id <= 0 or not status:
            return base
        one_of_many = d.seller_id > 0 and d.fulfilment_count > 1
        body = delivery_text(d.order_id, status, d.note, part=one_of_many)
        slot = order_slot(d.order_id, status, d.seller_id if one_of_many else 0)
        notice = Notice(d.buyer_id, 0, ORDER_STATUS, 0, slot, d.order_id, body)
        return replace(base, notices=(notice,))
    return base


def _seller_notices(order_id: int, lines, currency: str, status: str) -> list[Notice]:
    """One notice per seller of the lines, counting only that seller's lines."""
    by_seller: dict[int, list] = {}
    for line in lines:
        if line.seller_id > 0:
            by_seller.setdefault(line.seller_id, []).append(line)
    kind = NEW_ORDER if status == "confirmed" else ORDER_CANCELLED
    return [
        Notice(
            seller,
            0,
            kind,
            0,
            sale_slot(order_id, status),
            order_id,
            sale_text(
                order_id,
                status,
                sum(line.quantity for line in own),
                sum(line.quantity * line.unit_price_minor for line in own),
                currency,
            ),
        )
        for seller, own in by_seller.items()
    ]


# -- order texts -----------------------------------------------------------------

# ISO 4217 minor-unit exponents that are not 2.
_ZERO_DECIMALS = frozenset("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split())
_THREE_DECIMALS = frozenset("BHD IQD JOD KWD LYD OMR TND".split())

_DELIVERY_PHRASES = {
    "pending": "is waiting to be packed",
    "packed": "was packed",
    "shipped": "has shipped",
    "delivered": "was delivered",
}


def delivery_status_key(status: str) -> str:
    """The orders API's status name as a slot part: DELIVERY_STATUS_SHIPPED
    (or shipped) -> "shipped"; "" when unset or unusable."""
    key = "_".join(status.upper().split()).removeprefix("DELIVERY_STATUS_").lower()
    key = re.sub(r"[^a-z0-9_]", "", key)
    return "" if key in ("", "unspecified") else key


def format_money(amount_minor: int, currency: str) -> str:
    """12345, "usd" -> "USD 123.45"; 500, "JPY" -> "JPY 500"."""
    code = currency.strip().upper()
    exponent = 0 if code in _ZERO_DECIMALS else 3 if code in _THREE_DECIMALS else 2
    sign = "-" if amount_minor < 0 else ""
    major, minor = divmod(abs(amount_minor), 10**exponent)
    amount = f"{sign}{major:,}" + (f".{minor:0{exponent}d}" if exponent else "")
    return f"{code} {amount}" if code else amount


def confirmed_text(order_id: int, total_minor: int, currency: str) -> str:
    text = f"Your order {order_id} is confirmed"
    if currency.strip():
        text += f" ({format_money(total_minor, currency)})"
    return text


def cancelled_text(order_id: int, total_minor: int, currency: str) -> str:
    text = f"Your order {order_id} is cancelled"
    if currency.strip():
        text += f": {format_money(total_minor, currency)} will be refunded"
    return text


def sale_text(order_id: int, status: str, units: int, subtotal_minor: int, currency: str) -> str:
    """New order 7: 2 items of yours (USD 25.00) / Order 7 was cancelled before shipping: ..."""
    items = f"{units} item{'' if units == 1 else 's'} of yours"
    if currency.strip():
        items += f" ({format_money(subtotal_minor, currency)})"
    if status == "confirmed":
        return f"New order {order_id}: {items}"
    return f"Order {order_id} was cancelled by the buyer: do not send its {items}"


def delivery_text(order_id: int, status_key: str, note: str, *, part: bool = False) -> str:
    """Your order 7 has shipped: tracking 1Z999 (an unknown status reads "is now <status>");
    "Part of your order 7 has shipped" when one seller's part of several moved."""
    phrase = _DELIVERY_PHRASES.get(status_key) or f"is now {status_key.replace('_', ' ')}"
    text = f"{'Part of your' if part else 'Your'} order {order_id} {phrase}"
    note = " ".join(note.split())  # one line, whatever the seller typed
    if len(note) > MAX_NOTE_CHARS:
        note = note[: MAX_NOTE_CHARS - 1].rstrip() + "\u2026"
    return f"{text}: {note}" if note else text


# -- grouping --------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """The state of one slot of one recipient (see the module doc)."""

    instance: int
    notification_id: int
    # The notification this group showed before its last move (deleted after
    # the move; kept so a replay after a crash can finish the job).
    previous_id: int
    version: int
    kind: Kind
    post_id: int
    actor_ids: tuple[int, ...]
    actor_count: int
    activity_ms: int
    # Order notices: the order, and the sentence shown (empty for the others,
    # whose text is built from current names at read time).
    order_id: int = 0
    body: str = ""


def opens_new_group(slot: str, group: Group | None, now_ms: int, follow_window_ms: int, read_mark: int = 0) -> bool:
    """No group yet, a follow group older than the window, or a message
    group the recipient has read (its notice groups the unread messages):
    the notice starts a new one."""
    if group is None:
        return True
    if is_message_slot(slot):
        return group.notification_id <= read_mark
    return slot == FOLLOW_SLOT and now_ms - timestamp_ms(group.instance) >= follow_window_ms


def grows_on_every_event(slot: str) -> bool:
    """A message notice moves to the top with each new message, even one from
    a sender it names already; other groups grow only by new actors."""
    return is_message_slot(slot)


def replaces_old_instance(slot: str) -> bool:
    """A new message group takes the place of the conversation's read one
    (one notice per conversation); an old follow group stays where it was."""
    return is_message_slot(slot)


def new_group(notice: Notice, new_id: int, activity_ms: int, version: int = 1) -> Group:
    """The group `notice` opens; an actorless notice lists nobody and counts 0."""
    actors = () if notice.actorless else (notice.actor_id,)
    return Group(
        instance=new_id,
        notification_id=new_id,
        previous_id=0,
        version=version,
        kind=notice.kind,
        post_id=notice.post_id,
        actor_ids=actors,
        actor_count=len(actors),
        activity_ms=activity_ms,
        order_id=notice.order_id,
        body=notice.body,
    )


def stays_in_place(group: Group, newest_id: int, read_mark: int) -> bool:
    """A group that gains an actor moves to the top under a new id, unless it
    is on top already and unread: then it keeps its id (no churn, no tombstone
    per like while a post goes viral)."""
    return group.notification_id >= newest_id and group.notification_id > read_mark


def with_actor(group: Group, actor_id: int, new_id: int, activity_ms: int, *, move: bool) -> Group:
    """The group after `actor_id` acted (again): first in the list, counted once."""
    listed = (actor_id, *(a for a in group.actor_ids if a != actor_id))[:MAX_LISTED]
    count = group.actor_count + (0 if actor_id in group.actor_ids else 1)
    return replace(
        group,
        notification_id=new_id if move else group.notification_id,
        previous_id=group.notification_id if move else group.previous_id,
        version=group.version + 1,
        actor_ids=listed,
        actor_count=max(count, len(listed)),
        activity_ms=max(activity_ms, group.activity_ms),
    )


def without_actor(group: Group, actor_id: int) -> Group | None:
    """The group after `actor_id` undid their part (a deleted repost); None when nobody is left."""
    count = group.actor_count - 1
    if count <= 0:
        return None
    listed = tuple(a for a in group.actor_ids if a != actor_id)
    if not listed:
        return None  # nobody listed is left to name; the rest are too old to matter
    return replace(group, version=group.version + 1, actor_ids=listed, actor_count=max(count, len(listed)))


# -- reading -----------------------------------------------------------------------


def display_name(user) -> str:
    """What a person is called in a notice: the display name, else the username."""
    return (getattr(user, "display_name", "") or getattr(user, "username", "") or "").strip()


def notice_text(
    kind: Kind, actor_ids: list[int] | tuple[int, ...], actor_count: int, names: dict[int, str], body: str = ""
) -> str:
    """'alice liked your post', 'alice and bob ...', 'alice and 4 others ...';
    a notice with its own `body` (order notices) reads as that.

    `names` maps actor ids to what they are called now (unknown ids are left
    out: a deleted account is still counted but not named)."""
    if body:
        return body
    if kind in (ORDER_STATUS, NEW_ORDER, ORDER_CANCELLED):
        return "One of your orders has news"  # stored without a body: should not happen
    known = [names[a] for a in actor_ids if names.get(a)]
    first = known[0] if known else "Someone"
    others = max(actor_count, len(actor_ids), 1) - 1
    verb = _PLURAL_VERBS.get(kind, "") if others else ""
    verb = verb or _VERBS.get(kind, "did something")
    if others == 0:
        return f"{first} {verb}"
    if others == 1:
        second = known[1] if len(known) > 1 else "1 other"
        return f"{first} and {second} {verb}"
    return f"{first} and {others} others {verb}"


def without_hidden_actors(rows: Iterable[Any], hidden: frozenset[int]) -> list[Any]:
    """Inbox rows as a recipient who blocks or mutes some actors may see them:
    those actors left out of each group, and a group left with none of its
    named actors dropped. Actorless rows (order notices) always stay."""
    shown = []
    for row in rows:
        kept = tuple(a for a in row.actor_ids if a not in hidden)
        if len(kept) == len(row.actor_ids):
            shown.append(row)
        elif kept:
            removed = len(row.actor_ids) - len(kept)
            shown.append(replace(row, actor_ids=kept, actor_count=max(len(kept), row.actor_count - removed)))
    return shown


def shown_unread_count(rows: Iterable[Any], read_mark: int, hidden: frozenset[int]) -> int:
    """How many of `rows` (newest first) are unread as the list shows them:
    a leftover row of a moved group counted once, and hidden actors left out
    as `without_hidden_actors` leaves them (a group of none but them not at all)."""
    unread = [r for r in rows if r.notification_id > read_mark]
    shown, _ = dedupe_page(unread, key=lambda r: (r.slot, r.instance))
    return len(without_hidden_actors(shown, hidden))


def names_needed(actor_ids: list[int] | tuple[int, ...]) -> list[int]:
    """The actors a notice's text can name (the first two; a few more in case some are gone)."""
    return list(actor_ids[:4])


def dedupe_page(rows: list, key) -> tuple[list, list]:
    """(rows to show, stale rows): keeps the first (newest) row of each group
    instance; an older row of the same instance is a leftover of a move."""
    seen, shown, stale = set(), [], []
    for row in rows:
        k = key(row)
        if k in seen:
            stale.append(row)
        else:
            seen.add(k)
            shown.append(row)
    return shown, stale


def notification_proto(
    notification_id: int,
    kind: Kind,
    post_id: int,
    actor_ids,
    actor_count: int,
    activity_ms: int,
    *,
    read: bool,
    names: dict[int, str],
    order_id: int = 0,
    body: str = "",
    conversation_id: int = 0,
) -> notifications_pb2.Notification:
    """The API shape of one stored notification, its text built from current
    names (or its own body, for order notices)."""
    out = notifications_pb2.Notification(
        id=str(notification_id),
        kind=kind,
        actor_ids=[str(a) for a in actor_ids],
        post_id=str(post_id) if post_id else "",
        order_id=str(order_id) if order_id else "",
        conversation_id=str(conversation_id) if conversation_id else "",
        text=notice_text(kind, actor_ids, actor_count, names, body),
        read=read,
        actor_count=max(actor_count, len(actor_ids)),
    )
    out.create_time.FromMilliseconds(activity_ms or timestamp_ms(notification_id))
    return out
