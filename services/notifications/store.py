"""Cassandra storage for notifications: the only code that talks to
`aviary_notifications`.

Adding an actor to a group and updating the group is one conditional batch on
the group's own partition (atomic; a concurrent writer loses its
compare-and-set and retries), so an actor is in a group at most once. Columns
added after a table was first created are added at start (`COLUMNS_ADDED`).
Rows live `retention` (default 90 days, AVIARY_NOTIFICATIONS_RETENTION_DAYS).
Every table and what it is for: services/notifications/README.md.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from services.kit.stores import cql
from services.kit.settings import Settings
from services.notifications.rules import Group, Kind

log = logging.getLogger(__name__)

KEYSPACE = "aviary_notifications"
PROCESSED_TTL_SECONDS = 7 * 24 * 3600
# The one-time fill of actor_notices from the groups written before it existed.
ACTOR_INDEX_BACKFILL = "actor_notices"
BACKFILL_PAGE = 500
BACKFILL_CONCURRENCY = 16
# Groups about one post: its author's like and repost groups, one reply notice,
# at most MAX_MENTIONS mentions; far below this bound (and the driver's page).
_INDEX_SCAN_LIMIT = 4000

SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.notifications (
        recipient_id bigint,
        notification_id bigint,
        slot text,
        instance bigint,
        kind int,
        post_id bigint,
        actor_ids list<bigint>,
        actor_count int,
        activity_ms bigint,
        order_id bigint,
        body text,
        PRIMARY KEY (recipient_id, notification_id)
    ) WITH CLUSTERING ORDER BY (notification_id DESC)""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.groups (
        recipient_id bigint,
        slot text,
        actor_id bigint,
        actor_instance bigint,
        event_id bigint,
        instance bigint STATIC,
        notification_id bigint STATIC,
        previous_id bigint STATIC,
        version int STATIC,
        kind int STATIC,
        post_id bigint STATIC,
        actor_ids list<bigint> STATIC,
        actor_count int STATIC,
        activity_ms bigint STATIC,
        order_id bigint STATIC,
        body text STATIC,
        PRIMARY KEY ((recipient_id, slot), actor_id)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.post_notices (
        post_id bigint,
        recipient_id bigint,
        slot text,
        PRIMARY KEY (post_id, recipient_id, slot)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.actor_notices (
        actor_id bigint,
        recipient_id bigint,
        slot text,
        PRIMARY KEY (actor_id, recipient_id, slot)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.backfills (
        name text PRIMARY KEY,
        done_at timestamp
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.deleted_posts (
        post_id bigint PRIMARY KEY
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.read_marks (
        recipient_id bigint,
        up_to bigint,
        PRIMARY KEY (recipient_id, up_to)
    ) WITH CLUSTERING ORDER BY (up_to DESC)""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.processed_events (
        source text,
        event_id bigint,
        PRIMARY KEY ((source, event_id))
    ) WITH default_time_to_live = {PROCESSED_TTL_SECONDS}""",
]

# (table, column, definition) added since the first release (order notices).
COLUMNS_ADDED = [
    ("notifications", "order_id", "bigint"),
    ("notifications", "body", "text"),
    ("groups", "order_id", "bigint STATIC"),
    ("groups", "body", "text STATIC"),
]

_GROUP_COLUMNS = (
    "instance, notification_id, previous_id, version, kind, post_id, actor_ids, actor_count, "
    "activity_ms, order_id, body"
)
_ROW_COLUMNS = "notification_id, slot, instance, kind, post_id, actor_ids, actor_count, activity_ms, order_id, body"


@dataclass(frozen=True)
class Row:
    """One inbox row."""

    recipient_id: int
    notification_id: int
    slot: str
    instance: int
    kind: Kind
    post_id: int
    actor_ids: tuple[int, ...]
    actor_count: int
    activity_ms: int
    order_id: int = 0
    body: str = ""


@dataclass(frozen=True)
class SlotState:
    """A slot as read: its group (None when there is none, or it was emptied),
    the version to compare-and-set against (None: the slot was never written
    or was wiped), and the acting actor's row (its group instance and event)."""

    group: Group | None
    version: int | None
    actor_instance: int | None
    actor_event_id: int | None


class NotificationStore:
    def __init__(self, settings: Settings, retention_seconds: int) -> None:
        self.settings = settings
        self.retention = retention_seconds
        self._session: Session | None = None
        self._st: dict[str, PreparedStatement] = {}

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await self._shutdown()
        self._session = await cql.connect(self.settings)
        await cql.ensure_keyspace(self._session, KEYSPACE, self.settings.cassandra_rf)
        await cql.apply_schema(self._session, SCHEMA)
        await cql.add_missing_columns(self.session, KEYSPACE, COLUMNS_ADDED)
        await self._prepare_all()
        log.info("notifications keyspace ready", extra={"keyspace": KEYSPACE})

    async def stop(self) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        session, self._session = self._session, None
        await cql.close(session)

    async def _prepare_all(self) -> None:
        ks = KEYSPACE
        queries = {
            # inbox
            "put_row": f"INSERT INTO {ks}.notifications (recipient_id, {_ROW_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?",
            "drop_row": f"DELETE FROM {ks}.notifications WHERE recipient_id = ? AND notification_id = ?",
            "get_row": f"SELECT {_ROW_COLUMNS} FROM {ks}.notifications WHERE recipient_id = ? AND notification_id = ?",
            "page_first": f"SELECT {_ROW_COLUMNS} FROM {ks}.notifications WHERE recipient_id = ? LIMIT ?",
            "page_before": f"SELECT {_ROW_COLUMNS} FROM {ks}.notifications "
            "WHERE recipient_id = ? AND notification_id < ? LIMIT ?",
            "newest": f"SELECT notification_id FROM {ks}.notifications WHERE recipient_id = ? LIMIT 1",
            "newest_at_most": f"SELECT notification_id FROM {ks}.notifications "
            "WHERE recipient_id = ? AND notification_id <= ? LIMIT 1",
            "ids_between": f"SELECT notification_id FROM {ks}.notifications "
            "WHERE recipient_id = ? AND notification_id > ? AND notification_id <= ? LIMIT ?",
            "rows_above": f"SELECT {_ROW_COLUMNS} FROM {ks}.notifications "
            "WHERE recipient_id = ? AND notification_id > ? LIMIT ?",
            # groups
            "get_group": f"SELECT {_GROUP_COLUMNS} FROM {ks}.groups WHERE recipient_id = ? AND slot = ? LIMIT 1",
            "get_actor": f"SELECT actor_instance, event_id FROM {ks}.groups "
            "WHERE recipient_id = ? AND slot = ? AND actor_id = ?",
            "claim_actor": f"UPDATE {ks}.groups USING TTL ? SET actor_instance = ?, event_id = ? "
            "WHERE recipient_id = ? AND slot = ? AND actor_id = ? IF actor_instance = ?",
            "release_actor": f"DELETE FROM {ks}.groups WHERE recipient_id = ? AND slot = ? AND actor_id = ? "
            "IF actor_instance = ?",
            "set_group": f"UPDATE {ks}.groups USING TTL ? SET instance = ?, notification_id = ?, previous_id = ?, "
            "version = ?, kind = ?, post_id = ?, actor_ids = ?, actor_count = ?, activity_ms = ?, "
            "order_id = ?, body = ? WHERE recipient_id = ? AND slot = ? IF version = ?",
            "empty_group": f"UPDATE {ks}.groups USING TTL ? SET notification_id = 0, previous_id = 0, version = ?, "
            "actor_ids = [], actor_count = 0 WHERE recipient_id = ? AND slot = ? IF version = ?",
            "wipe_group": f"DELETE FROM {ks}.groups WHERE recipient_id = ? AND slot = ?",
            # post index and tombstones
            "index_post": f"INSERT INTO {ks}.post_notices (post_id, recipient_id, slot) VALUES (?, ?, ?) USING TTL ?",
            "post_index": f"SELECT recipient_id, slot FROM {ks}.post_notices WHERE post_id = ? "
            f"LIMIT {_INDEX_SCAN_LIMIT}",
            "drop_post_index": f"DELETE FROM {ks}.post_notices WHERE post_id = ?",
            # actor index (a deleted account's notices)
            "index_actor": f"INSERT INTO {ks}.actor_notices (actor_id, recipient_id, slot) VALUES (?, ?, ?) "
            "USING TTL ?",
            "actor_index": f"SELECT recipient_id, slot FROM {ks}.actor_notices WHERE actor_id = ? "
            "AND (recipient_id, slot) > (?, ?) LIMIT ?",
            "drop_actor_index": f"DELETE FROM {ks}.actor_notices WHERE actor_id = ?",
            "groups_after_token": f"SELECT DISTINCT token(recipient_id, slot), recipient_id, slot, instance "
            f"FROM {ks}.groups WHERE token(recipient_id, slot) > ? LIMIT ?",
            "group_actors": f"SELECT actor_id, actor_instance, TTL(actor_instance) AS ttl FROM {ks}.groups "
            f"WHERE recipient_id = ? AND slot = ? LIMIT {_INDEX_SCAN_LIMIT}",
            "backfill_done": f"SELECT done_at FROM {ks}.backfills WHERE name = ?",
            "mark_backfill_done": f"INSERT INTO {ks}.backfills (name, done_at) VALUES (?, toTimestamp(now()))",
            "drop_inbox": f"DELETE FROM {ks}.notifications WHERE recipient_id = ?",
            "drop_read_marks": f"DELETE FROM {ks}.read_marks WHERE recipient_id = ?",
            "mark_deleted": f"INSERT INTO {ks}.deleted_posts (post_id) VALUES (?) USING TTL ?",
            "is_deleted": f"SELECT post_id FROM {ks}.deleted_posts WHERE post_id = ?",
            # read marks
            "read_mark": f"SELECT up_to FROM {ks}.read_marks WHERE recipient_id = ? LIMIT 1",
            "put_read_mark": f"INSERT INTO {ks}.read_marks (recipient_id, up_to) VALUES (?, ?) USING TTL ?",
            "trim_read_marks": f"DELETE FROM {ks}.read_marks WHERE recipient_id = ? AND up_to < ?",
            # idempotency
            "processed": f"SELECT event_id FROM {ks}.processed_events WHERE source = ? AND event_id = ?",
            "mark_processed": f"INSERT INTO {ks}.processed_events (source, event_id) VALUES (?, ?)",
        }
        prepared = await asyncio.gather(*(cql.prepare(self.session, q) for q in queries.values()))
        self._st = dict(zip(queries, prepared))

    @property
    def session(self) -> Session:
        assert self._session is not None, "call start() first"
        return self._session

    async def _run(self, name: str, params: tuple) -> list:
        return await cql.execute(self.session, self._st[name], params)

    # -- idempotency -------------------------------------------------------------

    async def processed(self, source: str, event_id: int) -> bool:
        return bool(await self._run("processed", (source, event_id)))

    async def mark_processed(self, source: str, event_id: int) -> None:
        await self._run("mark_processed", (source, event_id))

    # -- deleted posts and the post index ------------------------------------------

    async def mark_deleted(self, post_id: int) -> None:
        await self._run("mark_deleted", (post_id, self.retention))

    async def any_deleted(self, post_ids: tuple[int, ...] | list[int]) -> bool:
        if not post_ids:
            return False
        found = await asyncio.gather(*(self._run("is_deleted", (p,)) for p in dict.fromkeys(post_ids)))
        return any(found)

    async def index_post(self, post_id: int, recipient_id: int, slot: str) -> None:
        await self._run("index_post", (post_id, recipient_id, slot, self.retention))

    async def post_index(self, post_id: int) -> list[tuple[int, str]]:
        return [(r.recipient_id, r.slot) for r in await self._run("post_index", (post_id,))]

    async def drop_post_index(self, post_id: int) -> None:
        await self._run("drop_post_index", (post_id,))

    # -- the actor index -----------------------------------------------------------

    async def index_actor(self, actor_id: int, recipient_id: int, slot: str) -> None:
        await self._run("index_actor", (actor_id, recipient_id, slot, self.retention))

    async def actor_index(self, actor_id: int, after: tuple[int, str], limit: int) -> list[tuple[int, str]]:
        """(recipient, slot) pairs the actor acted in (within the retention),
        in order, after `after` (start from (0, "")), at most `limit`."""
        rows = await self._run("actor_index", (actor_id, *after, limit))
        return [(r.recipient_id, r.slot) for r in rows]

    async def drop_actor_index(self, actor_id: int) -> None:
        await self._run("drop_actor_index", (actor_id,))

    async def fill_actor_index(self) -> int:
        """Once per keyspace: an actor_notices row for every actor of every
        current group written before that table existed (new notices write
        both), living as long as the actor's row. Idempotent upserts, so
        replicas starting together or a rerun after a crash do no harm.
        Returns the rows written (0 when done before). A full scan of
        `groups`, one partition read per group, 16 at a time."""
        if await self._run("backfill_done", (ACTOR_INDEX_BACKFILL,)):
            return 0
        written, after = 0, -(2**63)
        room = asyncio.Semaphore(BACKFILL_CONCURRENCY)

        async def index_group(recipient_id: int, slot: str, instance: int | None) -> int:
            async with room:
                actors = await self._run("group_actors", (recipient_id, slot))
                current = [a for a in actors if a.actor_id and instance and a.actor_instance == instance]
                for a in current:
                    ttl = a.ttl or self.retention
                    await self._run("index_actor", (a.actor_id, recipient_id, slot, ttl))
                return len(current)

        while True:
            groups = await self._run("groups_after_token", (after, BACKFILL_PAGE))
            counts = await asyncio.gather(*(index_group(g.recipient_id, g.slot, g.instance) for g in groups))
            written += sum(counts)
            if len(groups) < BACKFILL_PAGE:
                break
            after = groups[-1][0]
        await self._run("mark_backfill_done", (ACTOR_INDEX_BACKFILL,))
        return written

    async def drop_inbox(self, recipient_id: int) -> None:
        """The recipient's whole inbox partition and read marks (a deleted account)."""
        await self._run("drop_inbox", (recipient_id,))
        await self._run("drop_read_marks", (recipient_id,))

    # -- groups --------------------------------------------------------------------

    async def read_slot(self, recipient_id: int, slot: str, actor_id: int) -> SlotState:
        if actor_id == 0:
            # An actorless slot (an order's) has its actor-0 row written with
            # the group in one batch and never alone: no group, no row.
            group_rows = await self._run("get_group", (recipient_id, slot))
            actor_rows: list = []
        else:
            group_rows, actor_rows = await asyncio.gather(
                self._run("get_group", (recipient_id, slot)),
                self._run("get_actor", (recipient_id, slot, actor_id)),
            )
        group, version = _group(group_rows)
        actor = actor_rows[0] if actor_rows else None
        return SlotState(
            group=group,
            version=version,
            actor_instance=actor.actor_instance if actor else None,
            actor_event_id=actor.event_id if actor else None,
        )

    async def read_group(self, recipient_id: int, slot: str) -> tuple[Group | None, int | None]:
        return _group(await self._run("get_group", (recipient_id, slot)))

    async def add_actor(
        self, recipient_id: int, slot: str, actor_id: int, event_id: int, state: SlotState, new: Group
    ) -> bool:
        """One conditional batch: the actor joins `new.instance` and the group
        becomes `new`, only if neither changed since `state` was read."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.add(
            self._st["claim_actor"],
            (
                self.retention,
                new.instance,
                event_id,
                recipient_id,
                slot,
                actor_id,
                state.actor_instance,
            ),
        )
        batch.add(self._st["set_group"], (*self._group_values(new), recipient_id, slot, state.version))
        rows = await cql.execute(self.session, batch)
        return bool(rows and rows[0][0])

    async def remove_actor(
        self, recipient_id: int, slot: str, actor_id: int, instance: int, version: int, new: Group | None
    ) -> bool:
        """One conditional batch: the actor leaves and the group becomes `new`
        (or empty when None), only if neither changed since read."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.add(self._st["release_actor"], (recipient_id, slot, actor_id, instance))
        if new is None:
            batch.add(self._st["empty_group"], (self.retention, version + 1, recipient_id, slot, version))
        else:
            batch.add(self._st["set_group"], (*self._group_values(new), recipient_id, slot, version))
        rows = await cql.execute(self.session, batch)
        return bool(rows and rows[0][0])

    async def wipe_group(self, recipient_id: int, slot: str) -> None:
        """The group and all its actors, unconditionally (its post was deleted)."""
        await self._run("wipe_group", (recipient_id, slot))

    def _group_values(self, g: Group) -> tuple:
        return (
            self.retention,
            g.instance,
            g.notification_id,
            g.previous_id,
            g.version,
            g.kind,
            g.post_id,
            list(g.actor_ids),
            g.actor_count,
            g.activity_ms,
            g.order_id,
            g.body,
        )

    # -- inbox ---------------------------------------------------------------------

    async def put_row(self, recipient_id: int, slot: str, g: Group) -> None:
        await self._run(
            "put_row",
            (
                recipient_id,
                g.notification_id,
                slot,
                g.instance,
                g.kind,
                g.post_id,
                list(g.actor_ids),
                g.actor_count,
                g.activity_ms,
                g.order_id,
                g.body,
                self.retention,
            ),
        )

    async def drop_row(self, recipient_id: int, notification_id: int) -> None:
        await self._run("drop_row", (recipient_id, notification_id))

    async def get_row(self, recipient_id: int, notification_id: int) -> Row | None:
        rows = await self._run("get_row", (recipient_id, notification_id))
        return _row(recipient_id, rows[0]) if rows else None

    async def page(self, recipient_id: int, before: int | None, limit: int) -> list[Row]:
        if before is None:
            rows = await self._run("page_first", (recipient_id, limit))
        else:
            rows = await self._run("page_before", (recipient_id, before, limit))
        return [_row(recipient_id, r) for r in rows]

    async def newest_id(self, recipient_id: int, at_most: int | None = None) -> int:
        if at_most is None:
            rows = await self._run("newest", (recipient_id,))
        else:
            rows = await self._run("newest_at_most", (recipient_id, at_most))
        return rows[0].notification_id if rows else 0

    async def rows_above(self, recipient_id: int, above: int, limit: int) -> list[Row]:
        """The rows with an id above `above`, newest first, at most `limit`."""
        return [_row(recipient_id, r) for r in await self._run("rows_above", (recipient_id, above, limit))]

    async def count_between(self, recipient_id: int, above: int, up_to: int, cap: int) -> int:
        """How many notifications have above < id <= up_to, counting at most `cap`."""
        if up_to <= above:
            return 0
        return len(await self._run("ids_between", (recipient_id, above, up_to, cap)))

    # -- read marks ------------------------------------------------------------------

    async def read_mark(self, recipient_id: int) -> int:
        rows = await self._run("read_mark", (recipient_id,))
        return rows[0].up_to if rows else 0

    async def put_read_mark(self, recipient_id: int, up_to: int) -> None:
        await self._run("put_read_mark", (recipient_id, up_to, self.retention))
        # Older marks are meaningless once a higher one exists (the first row wins).
        await self._run("trim_read_marks", (recipient_id, up_to))


def _group(rows: list) -> tuple[Group | None, int | None]:
    if not rows or rows[0].version is None:
        return None, None
    r = rows[0]
    if not r.notification_id:
        return None, r.version  # emptied: no group, but writes compare against its version
    group = Group(
        instance=r.instance or 0,
        notification_id=r.notification_id,
        previous_id=r.previous_id or 0,
        version=r.version,
        kind=Kind(r.kind or 0),
        post_id=r.post_id or 0,
        actor_ids=tuple(r.actor_ids or ()),
        actor_count=r.actor_count or 0,
        activity_ms=r.activity_ms or 0,
        order_id=r.order_id or 0,
        body=r.body or "",
    )
    return group, r.version


def _row(recipient_id: int, r) -> Row:
    return Row(
        recipient_id=recipient_id,
        notification_id=r.notification_id,
        slot=r.slot or "",
        instance=r.instance or 0,
        kind=Kind(r.kind or 0),
        post_id=r.post_id or 0,
        actor_ids=tuple(r.actor_ids or ()),
        actor_count=r.actor_count or 0,
        activity_ms=r.activity_ms or 0,
        order_id=r.order_id or 0,
        body=r.body or "",
    )
