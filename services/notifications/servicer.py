"""NotificationsService: the caller's inbox (list, live watch, mark read) and
the Kafka consumer that fills it (services/notifications/notifier.py).

The recipient is always the verified caller: there is no user id in any request.
Text is built at read time from identity's current user summaries, so a
renamed user shows under their new name everywhere (order notices name nobody:
their sentence is stored with them).
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.message import DecodeError
from prometheus_client import Gauge

from aviary.identity.v1 import identity_pb2
from aviary.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from services.kit.peers import clients, safety
from services.kit.server import startup
from services.kit.stores import cql, redis_client
from services.kit.server.auth import caller_id, stream_deadline
from services.kit.stores.cache import TtlCache
from services.kit.server.errors import unavailable
from services.kit.server.ids import IdGenerator, parse_id
from services.kit.events.consumer import ConsumerLoop
from services.kit.events.kafka import (
    CONVERSATIONS_TOPIC,
    ENGAGEMENT_TOPIC,
    GRAPH_TOPIC,
    IDENTITY_TOPIC,
    MODERATION_TOPIC,
    ORDERS_TOPIC,
    POSTS_TOPIC,
    ensure_topics_async,
)
from services.kit.events.live import LiveHub
from services.kit.server.paging import encode_token, int_cursor, page_size
from services.notifications import rules
from services.notifications.events_watch import EventsWatch
from services.notifications.notifier import ACCOUNTS_GROUP, CONSUMER_GROUP, MESSAGES_GROUP, Notifier
from services.notifications.settings import NotificationsSettings
from services.notifications.store import NotificationStore, Row
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

WATCHERS = Gauge("aviary_notifications_watchers", "Open WatchNotifications streams")
EVENT_WATCHERS = Gauge("aviary_notifications_event_watchers", "Open WatchEvents streams")


class NotificationsServicer(notifications_pb2_grpc.NotificationsServiceServicer):
    def __init__(self, settings: NotificationsSettings) -> None:
        self.settings = settings
        self.store = NotificationStore(settings, retention_seconds=settings.retention_seconds)
        self.redis = redis_client.client(settings)
        self.hub = LiveHub(self.redis)
        self.ids = IdGenerator(settings.worker_id)
        # Blocked and muted actors: left out when notices are made and when read.
        self.hidden_authors = safety.HiddenAuthors(self.redis, timeout=settings.rpc_timeout_seconds)
        self.notifier = Notifier(
            self.store,
            self.redis,
            self.ids,
            # Follows of one recipient group while the group is younger than this.
            follow_window_seconds=settings.follow_window_seconds,
            rpc_timeout=settings.rpc_timeout_seconds,
            username_cache_seconds=settings.username_cache_seconds,
            hidden_authors=self.hidden_authors,
        )
        # Answers at once (no gather_ms): a notice names its actors newest
        # first in the order their events arrive, and a gathered fetch hands
        # over near-simultaneous events of different partitions in partition order.
        self.consumer = ConsumerLoop(
            settings.kafka_bootstrap,
            CONSUMER_GROUP,
            [POSTS_TOPIC, GRAPH_TOPIC, ENGAGEMENT_TOPIC, ORDERS_TOPIC, MODERATION_TOPIC],
            self.notifier.handle,
        )
        # New messages only: a group starting for the first time does not
        # notify every message ever sent. Once it has offsets, nothing is skipped.
        self.message_consumer = ConsumerLoop(
            settings.kafka_bootstrap,
            MESSAGES_GROUP,
            [CONVERSATIONS_TOPIC],
            self.notifier.handle,
            auto_offset_reset="latest",
        )
        # From the earliest offset: no account deletion is skipped.
        self.account_consumer = ConsumerLoop(
            settings.kafka_bootstrap, ACCOUNTS_GROUP, [IDENTITY_TOPIC], self.notifier.handle
        )
        # Names for the texts; a rename shows within this many seconds.
        self.names: TtlCache[int, str] = TtlCache(ttl_seconds=settings.name_cache_seconds, max_entries=50_000)
        # unread_count and markRead's `marked` count at most this many.
        self.count_cap = settings.unread_cap
        # An empty line this often keeps an idle watch open through proxies.
        self.heartbeat_seconds = settings.watch_heartbeat_seconds
        self._cleanups: set[asyncio.Task] = set()

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        # Backends may still be starting next to us: retry for a while.
        await startup.retry_until_up(self._start_backends, "backends")

    async def _start_backends(self) -> None:
        await self.store.start()
        await self.redis.ping()

    async def stop(self) -> None:
        await self.hub.close()
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
        await self.store.stop()
        await self.redis.aclose()
        await clients.close_all()

    async def consume(self) -> None:
        """Background job: the four event topics -> notifications, forever."""
        try:
            await ensure_topics_async(self.settings.kafka_bootstrap)
        except Exception as exc:
            log.warning("could not ensure Kafka topics; consuming anyway", extra={"error": error_text(exc)})
        await self.consumer.run()

    async def consume_messages(self) -> None:
        """Background job: new direct messages -> one notice per conversation."""
        await self.message_consumer.run()

    async def consume_accounts(self) -> None:
        """Background job: deleted accounts -> their notices withdrawn, their
        inbox gone. The actor index is filled from older groups first (once
        per keyspace), so a deletion finds old notices too."""
        written = await self.store.fill_actor_index()
        if written:
            log.info("actor index filled from existing groups", extra={"rows": written})
        await self.account_consumer.run()

    # -- RPCs --------------------------------------------------------------------

    async def ListNotifications(self, request, context):
        recipient = caller_id(context)
        size = page_size(request.page_size)
        before = int_cursor(request.page_token, "before")
        try:
            fetched, mark, hidden = await asyncio.gather(
                self.store.page(recipient, before, size + 1),
                self.store.read_mark(recipient),
                self.hidden_authors.of(recipient),
            )
            # Made before a block or mute: filtered here (the rows stay, so an
            # unblock or a mute's end shows them again).
            hidden_ids = hidden.ids()
            unread = await self._unread_count(recipient, mark, hidden_ids, fetched if before is None else None, size)
        except cql.OUTAGES as exc:
            raise unavailable("notifications are temporarily unavailable; try again") from exc
        has_more = len(fetched) > size
        rows = fetched[:size]
        shown, stale = rules.dedupe_page(rows, key=lambda r: (r.slot, r.instance))
        shown = rules.without_hidden_actors(shown, hidden_ids)
        if stale:
            self._clean_later(recipient, stale)
        names = await self._names([a for r in shown for a in rules.names_needed(r.actor_ids)])
        token = encode_token({"before": rows[-1].notification_id}) if has_more and rows else ""
        return notifications_pb2.ListNotificationsResponse(
            notifications=[_to_proto(r, mark, names) for r in shown],
            next_page_token=token,
            unread_count=unread,
        )

    async def MarkNotificationsRead(self, request, context):
        recipient = caller_id(context)
        up_to = parse_id(request.up_to_id, "up_to_id") if request.up_to_id else None
        try:
            # Marks land on an existing notification id: never in the future,
            # so a notification made later is unread whatever the client sent.
            newest, old_mark = await asyncio.gather(
                self.store.newest_id(recipient, at_most=up_to), self.store.read_mark(recipient)
            )
            if newest <= old_mark:
                return notifications_pb2.MarkNotificationsReadResponse(marked=0)
            marked = await self.store.count_between(recipient, old_mark, newest, self.count_cap)
            await self.store.put_read_mark(recipient, newest)
        except cql.OUTAGES as exc:
            raise unavailable("notifications are temporarily unavailable; try again") from exc
        log.info("notifications marked read", extra={"user_id": recipient, "up_to": newest, "marked": marked})
        return notifications_pb2.MarkNotificationsReadResponse(marked=marked)

    async def WatchNotifications(self, request, context):
        recipient = caller_id(context)
        # The stream ends when the token it was opened with expires.
        deadline = stream_deadline(context)
        async with self.hub.listen([rules.live_channel(recipient)]) as queue:
            # Headers now: the client (and Envoy) learn at once that the
            # stream is open and subscribed, so nothing published later is missed.
            await context.send_initial_metadata(())
            WATCHERS.inc()
            try:
                while True:
                    raw = await deadline.next_message(queue, self.heartbeat_seconds)
                    if raw is None:
                        yield notifications_pb2.WatchNotificationsResponse()
                        continue
                    event = notifications_pb2.WatchNotificationsResponse()
                    try:
                        event.ParseFromString(raw)
                    except DecodeError:
                        continue
                    if event.HasField("notification"):
                        await self._fill_text(event.notification)
                    yield event
            finally:
                WATCHERS.dec()

    async def WatchEvents(self, request, context):
        recipient = caller_id(context)
        # The stream ends when the token it was opened with expires.
        deadline = stream_deadline(context)
        async with self.hub.listen([rules.live_channel(recipient)]) as notices:
            watch = EventsWatch(notices, self._fill_text)
            try:
                await watch.open(clients.forward_auth(context))
                # Headers once every source is subscribed: nothing published later is missed.
                await context.send_initial_metadata(())
                EVENT_WATCHERS.inc()
                try:
                    while True:
                        yield await watch.next(deadline, self.heartbeat_seconds)
                finally:
                    EVENT_WATCHERS.dec()
            finally:
                await watch.close()

    # -- helpers -----------------------------------------------------------------

    async def _unread_count(
        self, recipient: int, mark: int, hidden: frozenset[int], first_page: list[Row] | None, size: int
    ) -> int:
        """How many unread notifications the list shows: the unread rows as
        the list filters them (a leftover row of a moved group once, actors
        the recipient blocks or mutes and gone accounts left out, a group of
        none but them not at all), counting at most the cap. When the first
        page already holds every unread row (the usual case) they are counted
        from it; otherwise the unread rows are read (one partition slice of
        at most `count_cap` rows, with their actor lists)."""
        if first_page is not None and (len(first_page) <= size or first_page[-1].notification_id <= mark):
            return rules.shown_unread_count(first_page, mark, hidden)
        return rules.shown_unread_count(await self.store.rows_above(recipient, mark, self.count_cap), mark, hidden)

    async def _fill_text(self, n: notifications_pb2.Notification) -> None:
        if n.text:
            return  # an order notice: its own sentence, nobody to name
        actor_ids = [int(a) for a in n.actor_ids]
        names = await self._names(rules.names_needed(actor_ids))
        n.text = rules.notice_text(n.kind, actor_ids, n.actor_count, names)

    async def _names(self, user_ids: list[int]) -> dict[int, str]:
        """Current names of users; degrades to fewer names (text says "Someone")
        rather than failing when identity cannot answer."""
        wanted = list(dict.fromkeys(user_ids))
        found, missing = self.names.get_many(wanted)
        if missing:
            try:
                users: dict[int, identity_pb2.User] = await clients.user_summaries(
                    missing, self.settings.rpc_timeout_seconds, counts=False
                )
            except Exception:
                return found
            fresh = {uid: rules.display_name(user) for uid, user in users.items()}
            self.names.put_many(fresh.items())
            found.update(fresh)
        return found

    def _clean_later(self, recipient: int, stale: list[Row]) -> None:
        """Drops rows left over by a move that raced with another write."""

        async def clean() -> None:
            for row in stale:
                try:
                    await self.store.drop_row(recipient, row.notification_id)
                except Exception:
                    return

        task = asyncio.create_task(clean())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)


def _to_proto(row: Row, mark: int, names: dict[int, str]) -> notifications_pb2.Notification:
    return rules.notification_proto(
        row.notification_id,
        row.kind,
        row.post_id,
        row.actor_ids,
        row.actor_count,
        row.activity_ms,
        read=row.notification_id <= mark,
        names=names,
        order_id=row.order_id,
        body=row.body,
        conversation_id=rules.conversation_of(row.slot),
    )
