"""Cassandra storage for engagement: the only code that talks to aviary_engagement.

Tables:
  likes_by_post    who liked a post (the truth likes are counted from; the
                   compare-and-set insert makes a like idempotent per user)
  likes_by_user    what a user liked (liked_by_me, newest first)
  reposts_by_post  who reposted a post, with the repost's id (from post events)
  reposts_by_user  what a user has a live repost of, with the repost's id
                   (reposted_by_me, newest post first; follows reposts_by_post)
  replies_by_post  a post's live replies (from post events)
  quotes_by_post   a post's live quotes: posts that repost it with text of
                   their own (from post events)
  post_counts      per post: the last flushed counts and when they were
                   flushed, and when the post's engagement last changed. A
                   snapshot flushed well after the last change is complete;
                   otherwise the counts are recounted from the edge tables.
  outbox           like events waiting for the relay (services.kit.events.outbox)
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass

from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from aviary.events.v1 import events_pb2
from services.kit.events import kafka, outbox
from services.kit.stores import cql
from services.kit.settings import Settings

KEYSPACE = "aviary_engagement"

SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.likes_by_post (
        post_id bigint,
        user_id bigint,
        liked_at timestamp,
        PRIMARY KEY (post_id, user_id)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.likes_by_user (
        user_id bigint,
        post_id bigint,
        PRIMARY KEY (user_id, post_id)
    ) WITH CLUSTERING ORDER BY (post_id DESC)""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.reposts_by_post (
        post_id bigint,
        user_id bigint,
        repost_id bigint,
        PRIMARY KEY (post_id, user_id)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.reposts_by_user (
        user_id bigint,
        post_id bigint,
        repost_id bigint,
        PRIMARY KEY (user_id, post_id)
    ) WITH CLUSTERING ORDER BY (post_id DESC)""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.replies_by_post (
        post_id bigint,
        reply_id bigint,
        PRIMARY KEY (post_id, reply_id)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.quotes_by_post (
        post_id bigint,
        quote_id bigint,
        PRIMARY KEY (post_id, quote_id)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.post_counts (
        post_id bigint PRIMARY KEY,
        likes int,
        reposts int,
        replies int,
        quotes int,
        flushed_at timestamp,
        last_change timestamp
    )""",
    *outbox.schema(KEYSPACE),
]

# (table, column, type) added after the table was first created: CREATE
# TABLE IF NOT EXISTS leaves an existing table as it was.
COLUMNS_ADDED = [("post_counts", "quotes", "int")]

# Per-user indexes of posts, by what the user did to them (by_me.Kind.name):
# each is (user_id, post_id, ...) with the newest post first.
USER_INDEXES = {"liked": "likes_by_user", "reposted": "reposts_by_user"}


@dataclass(frozen=True)
class Counts:
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    quotes: int = 0


@dataclass(frozen=True)
class Snapshot:
    counts: Counts
    flushed_at: datetime.datetime | None
    last_change: datetime.datetime | None


class EngagementStore:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.session: Session | None = None
        self._outbox: outbox.Outbox | None = None
        self._st: dict[str, PreparedStatement] = {}

    @property
    def outbox(self) -> outbox.Outbox:
        assert self._outbox is not None, "call start() first"
        return self._outbox

    async def start(self, producer: kafka.Producer) -> None:
        """Connects, creates keyspace and tables, prepares; safe to call again after a failure."""
        await self.stop()
        self.session = await cql.connect(self._settings)
        await cql.ensure_keyspace(self.session, KEYSPACE, self._settings.cassandra_rf)
        await cql.apply_schema(self.session, SCHEMA)
        await cql.add_missing_columns(self.session, KEYSPACE, COLUMNS_ADDED)
        self._outbox = outbox.Outbox(self.session, KEYSPACE, producer)
        await self.outbox.prepare()
        await self._prepare_all()

    async def _prepare_all(self) -> None:
        ks = KEYSPACE
        queries = {
            "like": f"INSERT INTO {ks}.likes_by_post (post_id, user_id, liked_at) VALUES (?, ?, ?) IF NOT EXISTS",
            "unlike": f"DELETE FROM {ks}.likes_by_post WHERE post_id = ? AND user_id = ? IF EXISTS",
            "liked_row": f"SELECT user_id FROM {ks}.likes_by_post WHERE post_id = ? AND user_id = ?",
            "by_user_add": f"INSERT INTO {ks}.likes_by_user (user_id, post_id) VALUES (?, ?)",
            "by_user_del": f"DELETE FROM {ks}.likes_by_user WHERE user_id = ? AND post_id = ?",
            "reposted_add": f"INSERT INTO {ks}.reposts_by_user (user_id, post_id, repost_id) VALUES (?, ?, ?)",
            "reposted_del": f"DELETE FROM {ks}.reposts_by_user WHERE user_id = ? AND post_id = ?",
            "reposts_with_ids": f"SELECT post_id, repost_id FROM {ks}.reposts_by_user WHERE user_id = ? LIMIT ?",
            "repost_add": (
                f"INSERT INTO {ks}.reposts_by_post (post_id, user_id, repost_id) VALUES (?, ?, ?) IF NOT EXISTS"
            ),
            "repost_del": f"DELETE FROM {ks}.reposts_by_post WHERE post_id = ? AND user_id = ? IF repost_id = ?",
            "reply_add": f"INSERT INTO {ks}.replies_by_post (post_id, reply_id) VALUES (?, ?) IF NOT EXISTS",
            "reply_del": f"DELETE FROM {ks}.replies_by_post WHERE post_id = ? AND reply_id = ? IF EXISTS",
            "quote_add": f"INSERT INTO {ks}.quotes_by_post (post_id, quote_id) VALUES (?, ?) IF NOT EXISTS",
            "quote_del": f"DELETE FROM {ks}.quotes_by_post WHERE post_id = ? AND quote_id = ? IF EXISTS",
            "changed": f"UPDATE {ks}.post_counts SET last_change = ? WHERE post_id = ?",
            "flush": (
                f"UPDATE {ks}.post_counts SET likes = ?, reposts = ?, replies = ?, quotes = ?, flushed_at = ? "
                "WHERE post_id = ?"
            ),
            "snapshots": (
                f"SELECT post_id, likes, reposts, replies, quotes, flushed_at, last_change FROM {ks}.post_counts "
                "WHERE post_id IN ?"
            ),
            "count_likes": f"SELECT COUNT(*) FROM {ks}.likes_by_post WHERE post_id = ?",
            "count_reposts": f"SELECT COUNT(*) FROM {ks}.reposts_by_post WHERE post_id = ?",
            "count_replies": f"SELECT COUNT(*) FROM {ks}.replies_by_post WHERE post_id = ?",
            "count_quotes": f"SELECT COUNT(*) FROM {ks}.quotes_by_post WHERE post_id = ?",
        }
        per_index = {}
        for kind, table in USER_INDEXES.items():
            per_index[f"{kind}_in"] = f"SELECT post_id FROM {ks}.{table} WHERE user_id = ? AND post_id IN ?"
            per_index[f"{kind}_newest"] = f"SELECT post_id FROM {ks}.{table} WHERE user_id = ? LIMIT ?"
        # A generated name must not shadow a written query.
        assert not per_index.keys() & queries.keys(), per_index.keys() & queries.keys()
        queries.update(per_index)
        prepared = await asyncio.gather(*(cql.prepare(self.session, q) for q in queries.values()))
        self._st = dict(zip(queries, prepared))
        for name in ("like", "unlike", "repost_add", "repost_del", "reply_add", "reply_del", "quote_add", "quote_del"):
            self._st[name].serial_consistency_level = ConsistencyLevel.LOCAL_SERIAL

    async def stop(self) -> None:
        session, self.session = self.session, None
        await cql.close(session)

    # -- likes ------------------------------------------------------------------

    async def claim_like(self, post_id: int, user_id: int, now: datetime.datetime) -> bool:
        """Compare-and-set insert of the like edge; True when this call created it."""
        rows = await cql.execute(self.session, self._st["like"], (post_id, user_id, now))
        return bool(rows[0][0])

    async def release_like(self, post_id: int, user_id: int) -> bool:
        """Compare-and-set delete of the like edge; True when this call removed it."""
        rows = await cql.execute(self.session, self._st["unlike"], (post_id, user_id))
        return bool(rows[0][0])

    async def has_like_edge(self, post_id: int, user_id: int) -> bool:
        return bool(await cql.execute(self.session, self._st["liked_row"], (post_id, user_id)))

    async def finish_like(self, event: events_pb2.EngagementEvent, now: datetime.datetime) -> None:
        """The like's follow-ups, atomically: the user's index, the change mark
        and the event (one LOGGED batch through the outbox)."""
        like = event.like_created
        batch = outbox.OutboxBatch()
        batch.add(self._st["by_user_add"], (like.user_id, like.post_id))
        batch.add(self._st["changed"], (now, like.post_id))
        self.outbox.add(
            batch, event.event_id, kafka.ENGAGEMENT_TOPIC, _post_key(like.post_id), event.SerializeToString()
        )
        await self.outbox.commit(batch)

    async def finish_unlike(self, event: events_pb2.EngagementEvent, now: datetime.datetime) -> None:
        unlike = event.like_removed
        batch = outbox.OutboxBatch()
        batch.add(self._st["by_user_del"], (unlike.user_id, unlike.post_id))
        batch.add(self._st["changed"], (now, unlike.post_id))
        self.outbox.add(
            batch, event.event_id, kafka.ENGAGEMENT_TOPIC, _post_key(unlike.post_id), event.SerializeToString()
        )
        await self.outbox.commit(batch)

    async def posts_among(self, kind: str, user_id: int, post_ids: list[int]) -> set[int]:
        """Which of post_ids the user's index of that kind (USER_INDEXES)
        holds: one single-partition read; none for user 0."""
        if not user_id or not post_ids:
            return set()
        rows = await cql.execute(self.session, self._st[f"{kind}_in"], (user_id, post_ids))
        return {row.post_id for row in rows}

    async def newest_posts(self, kind: str, user_id: int, limit: int) -> list[int]:
        """The newest post ids in the user's index of that kind (newest first), at most limit."""
        rows = await cql.execute(self.session, self._st[f"{kind}_newest"], (user_id, limit))
        return [row.post_id for row in rows]

    async def newest_likes(self, user_id: int, limit: int) -> list[int]:
        return await self.newest_posts("liked", user_id, limit)

    async def forget_user_like(self, user_id: int, post_id: int) -> None:
        """Drops a likes_by_user row whose like edge is already gone (a stray
        left by a crash between the edge delete and its follow-ups)."""
        await cql.execute(self.session, self._st["by_user_del"], (user_id, post_id))

    # -- reposts and replies (from post events) ---------------------------------

    async def add_repost(self, post_id: int, user_id: int, repost_id: int) -> tuple[bool, int | None]:
        """Compare-and-set insert of the repost edge: whether this call added
        it, and the repost id the edge now holds."""
        rows = await cql.execute(self.session, self._st["repost_add"], (post_id, user_id, repost_id))
        return _edge_outcome(rows, repost_id)

    async def remove_repost(self, post_id: int, user_id: int, repost_id: int) -> tuple[bool, int | None]:
        """Compare-and-set delete of the edge if it holds this repost: whether
        this call removed it, and the repost id the edge now holds (None: no edge)."""
        rows = await cql.execute(self.session, self._st["repost_del"], (post_id, user_id, repost_id))
        return _edge_outcome(rows, None)

    async def index_repost(self, user_id: int, post_id: int, repost_id: int) -> None:
        """The user's reposts_by_user row for a live repost edge (idempotent)."""
        await cql.execute(self.session, self._st["reposted_add"], (user_id, post_id, repost_id))

    async def unindex_repost(self, user_id: int, post_id: int) -> None:
        await cql.execute(self.session, self._st["reposted_del"], (user_id, post_id))

    async def newest_reposts(self, user_id: int, limit: int) -> list[tuple[int, int]]:
        """(post id, repost id) of the user's newest indexed reposts, at most limit."""
        rows = await cql.execute(self.session, self._st["reposts_with_ids"], (user_id, limit))
        return [(row.post_id, row.repost_id) for row in rows]

    async def add_reply(self, post_id: int, reply_id: int) -> bool:
        rows = await cql.execute(self.session, self._st["reply_add"], (post_id, reply_id))
        return bool(rows[0][0])

    async def remove_reply(self, post_id: int, reply_id: int) -> bool:
        rows = await cql.execute(self.session, self._st["reply_del"], (post_id, reply_id))
        return bool(rows[0][0])

    async def add_quote(self, post_id: int, quote_id: int) -> bool:
        rows = await cql.execute(self.session, self._st["quote_add"], (post_id, quote_id))
        return bool(rows[0][0])

    async def remove_quote(self, post_id: int, quote_id: int) -> bool:
        rows = await cql.execute(self.session, self._st["quote_del"], (post_id, quote_id))
        return bool(rows[0][0])

    async def mark_changed(self, post_id: int, now: datetime.datetime) -> None:
        await cql.execute(self.session, self._st["changed"], (now, post_id))

    # -- counts -------------------------------------------------------------------

    async def snapshots(self, post_ids: list[int]) -> list[Snapshot]:
        """Each post's stored counts, in the order asked, in one read per 100 posts."""
        rows = await cql.rows_by_key(self.session, self._st["snapshots"], post_ids, key_of=lambda row: row.post_id)
        return [_snapshot(rows.get(post_id)) for post_id in post_ids]

    async def recount(self, post_id: int) -> Counts:
        """Exact counts from the edge tables (a partition scan each)."""
        likes, reposts, replies, quotes = await asyncio.gather(
            cql.execute(self.session, self._st["count_likes"], (post_id,)),
            cql.execute(self.session, self._st["count_reposts"], (post_id,)),
            cql.execute(self.session, self._st["count_replies"], (post_id,)),
            cql.execute(self.session, self._st["count_quotes"], (post_id,)),
        )
        return Counts(likes[0][0], reposts[0][0], replies[0][0], quotes[0][0])

    async def flush(self, post_id: int, counts: Counts, flushed_at: datetime.datetime) -> None:
        await cql.execute(
            self.session,
            self._st["flush"],
            (counts.likes, counts.reposts, counts.replies, counts.quotes, flushed_at, post_id),
        )


def _edge_outcome(rows, held_if_applied: int | None) -> tuple[bool, int | None]:
    """(applied, the repost id the edge holds now) of a repost edge's
    compare-and-set. A failed condition answers the current repost_id after
    [applied]; a missing row answers [applied] alone."""
    row = rows[0]
    if row[0]:
        return True, held_if_applied
    return False, (row.repost_id if len(row) > 1 else None)


def _post_key(post_id: int) -> bytes:
    # Kafka key: one post's engagement events stay in order.
    return str(post_id).encode("ascii")


def _snapshot(row) -> Snapshot:
    """A post's stored counts; all zero, never flushed, for a post without a row."""
    if row is None:
        return Snapshot(Counts(), None, None)
    counts = Counts(row.likes or 0, row.reposts or 0, row.replies or 0, row.quotes or 0)
    return Snapshot(counts, row.flushed_at, row.last_change)
