"""The consumer side: post, graph, engagement, order, moderation and
conversation events -> stored, grouped notifications, pushed live to the
recipient's Redis channel; account deletions -> notices withdrawn.

Three consumer groups share `handle`: "notifications" (posts, graph,
engagement, orders, moderation), "notifications-messages" (conversations,
from the newest message when the group first starts) and
"notifications-accounts" (identity). The kit's loop commits a record only
after `handle` returned, so a crash replays it. Every step is idempotent:
  - a redelivered event is skipped by its processed marker (an event of
    order notices alone needs none: their slots below tell a replay);
  - an actor joins a group with a compare-and-set batch (set semantics: the
    same person liking twice, or a replay whose marker was lost, adds nothing);
    an order notice (no actor) claims its slot the same way under actor 0, so
    one order status makes one notification, however often it is delivered;
  - the inbox row is written after the group, and a replay of the same event
    re-writes it if a crash came in between;
  - a deleted post is remembered, so a late like (engagement and posts are
    different topics, not ordered with each other) or a replay does not
    bring its notice back, and a notice made while the delete ran is
    withdrawn by whoever finishes last.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import redis.asyncio as redis
from prometheus_client import Counter, Histogram

from aviary.identity.v1 import identity_pb2
from aviary.notifications.v1 import notifications_pb2
from services.kit.peers import clients, safety
from services.kit.stores.cache import TtlCache
from services.kit.server.ids import IdGenerator
from services.kit.events.live import publish as live_publish
from services.kit.events.consumer import PoisonRecord
from services.notifications import rules
from services.notifications.rules import Group, Notice, Plan, PostGone
from services.notifications.store import NotificationStore, SlotState
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

CONSUMER_GROUP = "notifications"
MESSAGES_GROUP = "notifications-messages"
ACCOUNTS_GROUP = "notifications-accounts"
# A deleted account's own inbox is read this many rows at a time.
ACCOUNT_PAGE = 500
# Compare-and-set rounds before giving up on a record (the loop then retries it).
MAX_CAS_ATTEMPTS = 30
# A slot as read before anything was written to it.
_NEVER_WRITTEN = SlotState(group=None, version=None, actor_instance=None, actor_event_id=None)

EVENTS = Counter("aviary_notifications_events_total", "Events consumed, by outcome", ["topic", "outcome"])
CHANGES = Counter(
    "aviary_notifications_changes_total",
    "Notification changes: created, grown (moved to the top), grown_in_place, duplicate, shrunk, withdrawn",
    ["kind", "change"],
)
CAS_CONFLICTS = Counter("aviary_notifications_cas_conflicts_total", "Group compare-and-set retries")
LIVE_PUBLISH_FAILURES = Counter("aviary_notifications_live_publish_failures_total", "Live pushes that failed")
EVENT_AGE = Histogram(
    "aviary_notifications_event_age_seconds",
    "Time from an event happening to its notifications being stored",
    ["topic"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

_KIND_NAMES = {v: k.removeprefix("NOTIFICATION_KIND_").lower() for k, v in notifications_pb2.NotificationKind.items()}


class Notifier:
    def __init__(
        self,
        store: NotificationStore,
        live: redis.Redis,
        ids: IdGenerator,
        *,
        follow_window_seconds: float,
        rpc_timeout: float,
        username_cache_seconds: float,
        hidden_authors: safety.HiddenAuthors | None = None,
    ) -> None:
        self.store = store
        self.live = live
        self.ids = ids
        self.follow_window_ms = int(follow_window_seconds * 1000)
        self.rpc_timeout = rpc_timeout
        # None hides nobody (the grouping rules tested on their own).
        self.hidden_authors = hidden_authors
        # Usernames never change, so username -> id may be cached long.
        self.user_ids: TtlCache[str, int] = TtlCache(ttl_seconds=username_cache_seconds, max_entries=100_000)

    # -- one record ------------------------------------------------------------

    async def handle(self, topic: str, key: bytes | None, value: bytes) -> None:
        try:
            plan = rules.plan_for(topic, value)
        except rules.Unreadable as exc:
            EVENTS.labels(topic, "poison").inc()
            raise PoisonRecord(str(exc)) from exc
        if plan.empty:
            EVENTS.labels(topic, "ignored").inc()
            return
        if plan.needs_marker and await self.store.processed(plan.source, plan.event_id):
            EVENTS.labels(topic, "redelivered").inc()
            return
        await self.apply(plan)
        if plan.needs_marker:
            await self.store.mark_processed(plan.source, plan.event_id)
        EVENTS.labels(topic, "applied").inc()
        if plan.occur_ms:
            EVENT_AGE.labels(topic).observe(max(0.0, time.time() - plan.occur_ms / 1000))

    async def apply(self, plan: Plan) -> None:
        if plan.account_gone:
            await self.remove_account(plan.account_gone)
        if plan.gone is not None:
            await self.withdraw_post(plan.gone)
        notices = list(plan.notices)
        if plan.mentions is not None:
            notices += plan.mentions.notices(await self.resolve_usernames(plan.mentions.usernames))
        if not notices:
            return
        if await self.store.any_deleted(plan.about_posts):
            EVENTS.labels(plan.source, "about_deleted_post").inc()
            return
        for notice in notices:
            await self.notify(notice, plan)

    # -- adding --------------------------------------------------------------------

    async def notify(self, notice: Notice, plan: Plan) -> str:
        """Adds one actor to the recipient's group for the slot; returns what changed."""
        recipient, slot, actor = notice.recipient_id, notice.slot, notice.actor_id
        if recipient == actor:
            return "self"
        if actor and await self._hidden(recipient, actor):
            # The recipient blocks or mutes the actor (or is blocked by them).
            CHANGES.labels(_KIND_NAMES.get(notice.kind, "?"), "hidden").inc()
            return "hidden"
        if notice.post_id:
            # Indexed before the group exists, so a concurrent delete of the
            # post either finds it or is seen by the re-check below.
            await self.store.index_post(notice.post_id, recipient, slot)
        if actor:
            # Likewise, so that the actor's account deletion finds the group.
            await self.store.index_actor(actor, recipient, slot)
        activity_ms = plan.occur_ms or int(time.time() * 1000)
        # A message group read by the recipient is done with: the next message opens a new one.
        mark = await self.store.read_mark(recipient) if rules.is_message_slot(slot) else 0
        for attempt in range(MAX_CAS_ATTEMPTS):
            # An actorless slot (an order's, a report decision's) is made once
            # and never grows: it is written as new unread, and read only when
            # the write finds it there (a replay or a concurrent replica).
            assumed_new = attempt == 0 and notice.actorless
            state = _NEVER_WRITTEN if assumed_new else await self.store.read_slot(recipient, slot, actor)
            old = state.group
            if old is None or rules.opens_new_group(slot, old, int(time.time() * 1000), self.follow_window_ms, mark):
                new = rules.new_group(notice, self.ids.next_id(), activity_ms, version=(state.version or 0) + 1)
                change = "created"
                # A read message group's notice makes way for the new one.
                moved_from = old.notification_id if old is not None and rules.replaces_old_instance(slot) else 0
            elif (
                state.actor_instance == old.instance
                and rules.grows_on_every_event(slot)
                and state.actor_event_id != plan.event_id
            ):
                # Another message from a sender the notice names already: it moves up all the same.
                newest = await self.store.newest_id(recipient)
                move = not rules.stays_in_place(old, newest, mark)
                new_id = self.ids.next_id() if move else old.notification_id
                new = rules.with_actor(old, actor, new_id, activity_ms, move=move)
                change, moved_from = ("grown", old.notification_id) if move else ("grown_in_place", 0)
            elif state.actor_instance == old.instance or notice.actorless:
                # Already in this group: the same person again, or a replay
                # (an actorless notice's slot is made once and never grows).
                if state.actor_event_id == plan.event_id or notice.actorless:
                    # Maybe a replay after a crash before the inbox write. An
                    # order slot never grows, so nothing later would finish
                    # it: any duplicate of one checks.
                    await self._repair(recipient, slot, old)
                CHANGES.labels(_KIND_NAMES.get(notice.kind, "?"), "duplicate").inc()
                return "duplicate"
            else:
                # Only a group that grows needs to know where the inbox's top
                # and read mark are (most notices open a group: no reads).
                newest, mark = await asyncio.gather(self.store.newest_id(recipient), self.store.read_mark(recipient))
                move = not rules.stays_in_place(old, newest, mark)
                new_id = self.ids.next_id() if move else old.notification_id
                new = rules.with_actor(old, actor, new_id, activity_ms, move=move)
                change, moved_from = ("grown", old.notification_id) if move else ("grown_in_place", 0)
            if await self.store.add_actor(recipient, slot, actor, plan.event_id, state, new):
                break
            if not assumed_new:
                CAS_CONFLICTS.inc()
        else:
            raise RuntimeError(f"group {recipient}/{slot} kept changing; will retry the record")

        if moved_from:
            await self.store.drop_row(recipient, moved_from)
        await self.store.put_row(recipient, slot, new)
        CHANGES.labels(_KIND_NAMES.get(notice.kind, "?"), change).inc()
        await self._publish(
            recipient,
            notifications_pb2.WatchNotificationsResponse(
                notification=_live_view(new, slot),
                replaces_id=str(moved_from) if moved_from else "",
            ),
        )
        if notice.post_id and await self.store.any_deleted(plan.about_posts):
            # The post was deleted while this notice was being made.
            await self.withdraw_group(recipient, slot)
        return change

    async def _hidden(self, recipient: int, actor: int) -> bool:
        if self.hidden_authors is None:
            return False
        return actor in (await self.hidden_authors.of(recipient)).ids()

    async def _repair(self, recipient: int, slot: str, group: Group) -> None:
        """After a crash between the group write and the inbox write: finish the latter."""
        if await self.store.get_row(recipient, group.notification_id) is not None:
            return
        if group.previous_id and group.previous_id != group.notification_id:
            await self.store.drop_row(recipient, group.previous_id)
        await self.store.put_row(recipient, slot, group)
        log.info("repaired an inbox row after a replay", extra={"recipient_id": recipient, "slot": slot})

    # -- removing ------------------------------------------------------------------

    async def withdraw_post(self, gone: PostGone) -> None:
        """Everything about a deleted post goes; a deleted repost leaves its original's group."""
        await self.store.mark_deleted(gone.post_id)
        about_it = await self.store.post_index(gone.post_id)
        for recipient, slot in about_it:
            await self.withdraw_group(recipient, slot)
        # A deleted quote (it has a quote notice) is not its author's repost:
        # the repost group keeps them if they reposted the original too.
        was_quote = any(rules.is_quote_slot(slot) for _, slot in about_it)
        if gone.repost_of_id and gone.author_id and not was_quote:
            original_slot = rules.repost_slot(gone.repost_of_id)
            for recipient, slot in await self.store.post_index(gone.repost_of_id):
                if slot == original_slot:
                    await self.drop_actor(recipient, slot, gone.author_id)
        await self.store.drop_post_index(gone.post_id)

    async def withdraw_group(self, recipient: int, slot: str) -> None:
        group, _ = await self.store.read_group(recipient, slot)
        await self.store.wipe_group(recipient, slot)
        if group is None:
            return
        for notification_id in {group.notification_id, group.previous_id} - {0}:
            await self.store.drop_row(recipient, notification_id)
        CHANGES.labels(_KIND_NAMES.get(group.kind, "?"), "withdrawn").inc()
        await self._publish(
            recipient, notifications_pb2.WatchNotificationsResponse(removed_id=str(group.notification_id))
        )

    async def drop_actor(self, recipient: int, slot: str, actor: int) -> None:
        """Takes one actor out of a group (in place: it does not move or become unread)."""
        for _ in range(MAX_CAS_ATTEMPTS):
            state = await self.store.read_slot(recipient, slot, actor)
            old = state.group
            if old is None or state.actor_instance != old.instance:
                return
            new = rules.without_actor(old, actor)
            if await self.store.remove_actor(recipient, slot, actor, old.instance, old.version, new):
                break
            CAS_CONFLICTS.inc()
        else:
            raise RuntimeError(f"group {recipient}/{slot} kept changing; will retry the record")
        if new is None:
            await self.store.drop_row(recipient, old.notification_id)
            CHANGES.labels(_KIND_NAMES.get(old.kind, "?"), "withdrawn").inc()
            await self._publish(
                recipient, notifications_pb2.WatchNotificationsResponse(removed_id=str(old.notification_id))
            )
        else:
            await self.store.put_row(recipient, slot, new)
            CHANGES.labels(_KIND_NAMES.get(old.kind, "?"), "shrunk").inc()
            await self._publish(
                recipient, notifications_pb2.WatchNotificationsResponse(notification=_live_view(new, slot))
            )

    # -- deleted accounts ------------------------------------------------------------

    async def remove_account(self, user: int) -> None:
        """A deleted account leaves every group it acted in (a group left with
        nobody is withdrawn), and its own inbox goes. Idempotent: a replay
        finds only what is left. Groups made before the actor index existed
        are not found here; they are hidden at read while the account is in
        the gone-accounts set, and expire with their retention."""
        after: tuple[int, str] = (0, "")
        while acted_in := await self.store.actor_index(user, after, ACCOUNT_PAGE):
            for recipient, slot in acted_in:
                if recipient != user:
                    await self.drop_actor(recipient, slot, user)
            after = acted_in[-1]
        await self.store.drop_actor_index(user)
        await self.forget_inbox(user)

    async def forget_inbox(self, user: int) -> None:
        """Every group and row of the user's own inbox, and their read marks."""
        before = None
        while rows := await self.store.page(user, before, ACCOUNT_PAGE):
            for slot in dict.fromkeys(r.slot for r in rows if r.slot):
                await self.store.wipe_group(user, slot)
            before = rows[-1].notification_id
        await self.store.drop_inbox(user)

    # -- helpers -------------------------------------------------------------------

    async def resolve_usernames(self, usernames: tuple[str, ...]) -> dict[str, int]:
        """username -> id for the known ones; unknown usernames are simply absent.

        Raises when identity cannot answer, so the record is retried rather
        than its mentions lost."""
        found, missing = self.user_ids.get_many(usernames)
        if missing:
            looked_up = await asyncio.gather(*(self._lookup(name) for name in missing))
            fresh = {name: user_id for name, user_id in zip(missing, looked_up) if user_id}
            self.user_ids.put_many(fresh.items())
            found.update(fresh)
        return found

    async def _lookup(self, username: str) -> int | None:
        try:
            user = await clients.identity().LookupUser(
                identity_pb2.LookupUserRequest(username=username), timeout=self.rpc_timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise
        return int(user.id)

    async def _publish(self, recipient: int, message: notifications_pb2.WatchNotificationsResponse) -> None:
        # Best effort: the notification is stored either way; a watcher that
        # missed a push sees it on its next list.
        try:
            await live_publish(self.live, rules.live_channel(recipient), message.SerializeToString())
        except Exception as exc:
            LIVE_PUBLISH_FAILURES.inc()
            log.warning("live push failed", extra={"recipient_id": recipient, "error": error_text(exc)})


def _live_view(g: Group, slot: str) -> notifications_pb2.Notification:
    """What goes on the live channel: the stored state; the watcher adds the
    text from current names (an order notice comes with its own)."""
    conversation_id = rules.conversation_of(slot)
    out = notifications_pb2.Notification(
        id=str(g.notification_id),
        kind=g.kind,
        actor_ids=[str(a) for a in g.actor_ids],
        post_id=str(g.post_id) if g.post_id else "",
        order_id=str(g.order_id) if g.order_id else "",
        conversation_id=str(conversation_id) if conversation_id else "",
        text=g.body,
        actor_count=g.actor_count,
    )
    out.create_time.FromMilliseconds(g.activity_ms)
    return out
