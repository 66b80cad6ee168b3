"""Cassandra storage for posts: the only code that talks to aviary_posts.

Tables:
  posts            one partition per post (the row every read hydrates from)
  posts_by_author  an author's post ids, newest first (ListUserPosts)
  author_stats     live post count per author (a counter table, so it is
                   written outside the LOGGED batches, which cannot mix
                   counters with regular rows)
  reposts_by_user  a user's claim on reposting a post (one repost per user
                   and original: what makes RepostPost idempotent)
  bookmarks_by_user    a user's bookmarks, most recently bookmarked first
  bookmark_claims      (user, post) -> bookmark id: one bookmark per user and
                       post, found and removed without a scan
  outbox           events waiting for the relay (services.kit.events.outbox)
"""

from __future__ import annotations

import asyncio
import calendar
import datetime
from dataclasses import dataclass
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

from aviary.events.v1 import events_pb2
from services.kit.events import kafka, outbox
from services.kit.stores import cql
from services.kit.settings import Settings
from services.posts.model import PostRecord, timestamp_from_ms, to_created_event


KEYSPACE = "aviary_posts"

SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.posts (
        post_id bigint PRIMARY KEY,
        author_id bigint,
        text text,
        media_ids list<bigint>,
        product_ids list<bigint>,
        reply_to_id bigint,
        repost_of_id bigint,
        hashtags list<text>,
        mentions list<text>,
        created_at timestamp,
        deleted boolean
    )""",
    # Production buckets this partition by month ((author_id, month), post_id)
    # so a prolific author's partition stays bounded; one partition per author
    # is enough for the local stack.
    # repost_of: the original of a pure repost, 0 for any other post, null
    # for a row written before the column (PostRecord.pure_repost_of).
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.posts_by_author (
        author_id bigint,
        post_id bigint,
        repost_of bigint,
        PRIMARY KEY (author_id, post_id)
    ) WITH CLUSTERING ORDER BY (post_id DESC)""",
    # A thread: replies of one parent, oldest first (conversation order).
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.replies_by_parent (
        parent_id bigint,
        post_id bigint,
        PRIMARY KEY (parent_id, post_id)
    ) WITH CLUSTERING ORDER BY (post_id ASC)""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.reposts_by_user (
        user_id bigint,
        original_id bigint,
        repost_id bigint,
        PRIMARY KEY (user_id, original_id)
    )""",
    # Bookmarks, private to their user. The bookmark id is a time-ordered id
    # taken when the post is first bookmarked, so the clustering order is the
    # bookmark time. Like posts_by_author, production would bucket this
    # partition by month of the bookmark id.
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.bookmarks_by_user (
        user_id bigint,
        bookmark_id bigint,
        post_id bigint,
        PRIMARY KEY (user_id, bookmark_id)
    ) WITH CLUSTERING ORDER BY (bookmark_id DESC)""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.bookmark_claims (
        user_id bigint,
        post_id bigint,
        bookmark_id bigint,
        PRIMARY KEY (user_id, post_id)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.author_stats (
        author_id bigint PRIMARY KEY,
        post_count counter
    )""",
    *outbox.schema(KEYSPACE),
]

COLUMNS_ADDED = [("posts_by_author", "repost_of", "bigint")]

POST_COLUMNS = (
    "post_id, author_id, text, media_ids, product_ids, reply_to_id, repost_of_id, "
    "hashtags, mentions, created_at, deleted"
)


class TombstoneResult:
    """What DeletePost's compare-and-set found."""

    APPLIED = "applied"  # this call tombstoned the post
    ALREADY_DELETED = "already"  # it was deleted before
    MISSING = "missing"  # no such post


@dataclass
class _Statements:
    insert_post: PreparedStatement
    insert_by_author: PreparedStatement
    fill_in_repost_of: PreparedStatement
    select_post: PreparedStatement
    select_posts: PreparedStatement
    tombstone: PreparedStatement
    tombstone_null: PreparedStatement
    delete_by_author: PreparedStatement
    select_by_author_first: PreparedStatement
    select_by_author_before: PreparedStatement
    select_by_author_one: PreparedStatement
    insert_reply: PreparedStatement
    delete_reply: PreparedStatement
    select_replies_after: PreparedStatement
    count_up: PreparedStatement
    count_down: PreparedStatement
    select_stats: PreparedStatement
    select_stats_many: PreparedStatement
    claim_repost: PreparedStatement
    reclaim_repost: PreparedStatement
    select_repost_claim: PreparedStatement
    scan_posts: PreparedStatement
    claim_bookmark: PreparedStatement
    insert_bookmark: PreparedStatement
    select_bookmark_claim: PreparedStatement
    count_bookmark_claims: PreparedStatement
    select_bookmark_claims_of: PreparedStatement
    delete_bookmark_claim: PreparedStatement
    delete_bookmark: PreparedStatement
    select_bookmarks_first: PreparedStatement
    select_bookmarks_before: PreparedStatement
    delete_bookmarks_of_user: PreparedStatement
    delete_bookmark_claims_of_user: PreparedStatement
    delete_reposts_of_user: PreparedStatement


class PostStore:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: Session | None = None
        self._outbox: outbox.Outbox | None = None
        self._statements: _Statements | None = None

    @property
    def session(self) -> Session:
        assert self._session is not None, "call start() first"
        return self._session

    @property
    def outbox(self) -> outbox.Outbox:
        assert self._outbox is not None, "call start() first"
        return self._outbox

    @property
    def _st(self) -> _Statements:
        assert self._statements is not None, "call start() first"
        return self._statements

    async def start(self, producer: kafka.Producer) -> None:
        """Connects, creates the keyspace and tables, prepares every statement."""
        self._session = await cql.connect(self._settings)
        await cql.ensure_keyspace(self.session, KEYSPACE, self._settings.cassandra_rf)
        await cql.apply_schema(self.session, SCHEMA)
        await cql.add_missing_columns(self.session, KEYSPACE, COLUMNS_ADDED)
        self._outbox = outbox.Outbox(self.session, KEYSPACE, producer)
        await self.outbox.prepare()
        self._statements = await self._prepare_all()

    async def _prepare_all(self) -> _Statements:
        ks = KEYSPACE

        async def p(query: str) -> PreparedStatement:
            return await cql.prepare(self.session, query)

        names_and_queries = {
            "insert_post": f"INSERT INTO {ks}.posts ({POST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "insert_by_author": f"INSERT INTO {ks}.posts_by_author (author_id, post_id, repost_of) VALUES (?, ?, ?)",
            # Written at the post's creation time, so the row's delete (always
            # later) shadows it: filling in a row never brings one back.
            "fill_in_repost_of": (
                f"UPDATE {ks}.posts_by_author USING TIMESTAMP ? SET repost_of = ? WHERE author_id = ? AND post_id = ?"
            ),
            "select_post": f"SELECT {POST_COLUMNS} FROM {ks}.posts WHERE post_id = ?",
            "select_posts": f"SELECT {POST_COLUMNS} FROM {ks}.posts WHERE post_id IN ?",
            "tombstone": f"UPDATE {ks}.posts SET deleted = true WHERE post_id = ? IF deleted = false",
            # Rows written before `deleted` was always set carry null there.
            "tombstone_null": f"UPDATE {ks}.posts SET deleted = true WHERE post_id = ? IF deleted = null",
            "delete_by_author": f"DELETE FROM {ks}.posts_by_author WHERE author_id = ? AND post_id = ?",
            "select_by_author_first": (
                f"SELECT post_id, repost_of FROM {ks}.posts_by_author WHERE author_id = ? LIMIT ?"
            ),
            "select_by_author_before": (
                f"SELECT post_id, repost_of FROM {ks}.posts_by_author WHERE author_id = ? AND post_id < ? LIMIT ?"
            ),
            "select_by_author_one": f"SELECT post_id FROM {ks}.posts_by_author WHERE author_id = ? AND post_id = ?",
            "insert_reply": f"INSERT INTO {ks}.replies_by_parent (parent_id, post_id) VALUES (?, ?)",
            "delete_reply": f"DELETE FROM {ks}.replies_by_parent WHERE parent_id = ? AND post_id = ?",
            "select_replies_after": (
                f"SELECT post_id FROM {ks}.replies_by_parent WHERE parent_id = ? AND post_id > ? LIMIT ?"
            ),
            "count_up": f"UPDATE {ks}.author_stats SET post_count = post_count + 1 WHERE author_id = ?",
            "count_down": f"UPDATE {ks}.author_stats SET post_count = post_count - 1 WHERE author_id = ?",
            "select_stats": f"SELECT post_count FROM {ks}.author_stats WHERE author_id = ?",
            "select_stats_many": f"SELECT author_id, post_count FROM {ks}.author_stats WHERE author_id IN ?",
            "claim_repost": (
                f"INSERT INTO {ks}.reposts_by_user (user_id, original_id, repost_id) VALUES (?, ?, ?) IF NOT EXISTS"
            ),
            "reclaim_repost": (
                f"UPDATE {ks}.reposts_by_user SET repost_id = ? WHERE user_id = ? AND original_id = ? IF repost_id = ?"
            ),
            "select_repost_claim": (
                f"SELECT repost_id FROM {ks}.reposts_by_user WHERE user_id = ? AND original_id = ?"
            ),
            # The whole table in token order, paged by the driver (ExportPosts).
            "scan_posts": f"SELECT {POST_COLUMNS} FROM {ks}.posts",
            "claim_bookmark": (
                f"INSERT INTO {ks}.bookmark_claims (user_id, post_id, bookmark_id) VALUES (?, ?, ?) IF NOT EXISTS"
            ),
            "insert_bookmark": f"INSERT INTO {ks}.bookmarks_by_user (user_id, bookmark_id, post_id) VALUES (?, ?, ?)",
            "select_bookmark_claim": (
                f"SELECT bookmark_id FROM {ks}.bookmark_claims WHERE user_id = ? AND post_id = ?"
            ),
            "select_bookmark_claims_of": (
                f"SELECT post_id, bookmark_id FROM {ks}.bookmark_claims WHERE user_id = ? AND post_id IN ?"
            ),
            "count_bookmark_claims": f"SELECT COUNT(*) FROM {ks}.bookmark_claims WHERE user_id = ?",
            "delete_bookmark_claim": f"DELETE FROM {ks}.bookmark_claims WHERE user_id = ? AND post_id = ?",
            "delete_bookmark": f"DELETE FROM {ks}.bookmarks_by_user WHERE user_id = ? AND bookmark_id = ?",
            "select_bookmarks_first": (
                f"SELECT bookmark_id, post_id FROM {ks}.bookmarks_by_user WHERE user_id = ? LIMIT ?"
            ),
            "select_bookmarks_before": (
                f"SELECT bookmark_id, post_id FROM {ks}.bookmarks_by_user WHERE user_id = ? AND bookmark_id < ? LIMIT ?"
            ),
            # A deleted account's partitions, each dropped whole.
            "delete_bookmarks_of_user": f"DELETE FROM {ks}.bookmarks_by_user WHERE user_id = ?",
            "delete_bookmark_claims_of_user": f"DELETE FROM {ks}.bookmark_claims WHERE user_id = ?",
            "delete_reposts_of_user": f"DELETE FROM {ks}.reposts_by_user WHERE user_id = ?",
        }
        prepared = await asyncio.gather(*(p(q) for q in names_and_queries.values()))
        statements = _Statements(**dict(zip(names_and_queries, prepared)))
        # Compare-and-set within the local DC; the commit itself uses the
        # kit's LOCAL_QUORUM.
        for lwt in (
            statements.tombstone,
            statements.tombstone_null,
            statements.claim_repost,
            statements.reclaim_repost,
            statements.claim_bookmark,
        ):
            lwt.serial_consistency_level = ConsistencyLevel.LOCAL_SERIAL
        return statements

    async def stop(self) -> None:
        session, self._session = self._session, None
        await cql.close(session)

    # -- writes -------------------------------------------------------------

    async def create(
        self, record: PostRecord, event_id: int, *, reply_to_author_id: int = 0, repost_of_author_id: int = 0
    ) -> None:
        """Writes the post, its author-list entry and its `created` event atomically.

        One LOGGED batch: either all three are stored or none is, so an
        acknowledged post always has its event waiting for the relay.
        """
        st = self._st
        batch = outbox.OutboxBatch()
        batch.add(st.insert_post, _post_row(record))
        batch.add(st.insert_by_author, (record.author_id, record.post_id, record.pure_repost_of))
        if record.reply_to_id:
            batch.add(st.insert_reply, (record.reply_to_id, record.post_id))
        event = events_pb2.PostEvent(
            event_id=event_id,
            occur_time=timestamp_from_ms(record.created_at_ms),
            created=to_created_event(
                record, reply_to_author_id=reply_to_author_id, repost_of_author_id=repost_of_author_id
            ),
        )
        self.outbox.add(batch, event_id, kafka.POSTS_TOPIC, _author_key(record.author_id), event.SerializeToString())
        await self.outbox.commit(batch)

    async def tombstone(self, post_id: int) -> str:
        """Marks the post deleted with a compare-and-set; returns a TombstoneResult."""
        rows = await cql.execute(self.session, self._st.tombstone, (post_id,))
        applied, current = _lwt_outcome(rows)
        if applied:
            return TombstoneResult.APPLIED
        if current is None:
            return TombstoneResult.MISSING
        if current.deleted is None:
            rows = await cql.execute(self.session, self._st.tombstone_null, (post_id,))
            applied, _ = _lwt_outcome(rows)
            # Lost the race to a concurrent delete: that one owns the follow-up.
            return TombstoneResult.APPLIED if applied else TombstoneResult.ALREADY_DELETED
        return TombstoneResult.ALREADY_DELETED

    async def finish_delete(
        self, author_id: int, post_id: int, event_id: int, occurred_ms: int, reply_to_id: int = 0, repost_of_id: int = 0
    ) -> None:
        """Drops the post from its author's list (and its parent's thread) and
        stores the `deleted` event, atomically."""
        batch = outbox.OutboxBatch()
        batch.add(self._st.delete_by_author, (author_id, post_id))
        if reply_to_id:
            batch.add(self._st.delete_reply, (reply_to_id, post_id))
        event = events_pb2.PostEvent(
            event_id=event_id,
            occur_time=timestamp_from_ms(occurred_ms),
            deleted=events_pb2.PostDeleted(
                post_id=post_id, author_id=author_id, reply_to_id=reply_to_id, repost_of_id=repost_of_id
            ),
        )
        self.outbox.add(batch, event_id, kafka.POSTS_TOPIC, _author_key(author_id), event.SerializeToString())
        await self.outbox.commit(batch)

    async def claim_repost(self, user_id: int, original_id: int, repost_id: int) -> int:
        """Claims `repost_id` as the user's repost of the original; returns the
        id that holds the claim (an earlier one when the user reposted before)."""
        rows = await cql.execute(self.session, self._st.claim_repost, (user_id, original_id, repost_id))
        applied, current = _lwt_outcome(rows)
        return repost_id if applied else current.repost_id

    async def reclaim_repost(self, user_id: int, original_id: int, old_id: int, new_id: int) -> int:
        """Moves the claim from a deleted repost to a new one; returns the winner."""
        rows = await cql.execute(self.session, self._st.reclaim_repost, (new_id, user_id, original_id, old_id))
        applied, current = _lwt_outcome(rows)
        return new_id if applied else current.repost_id

    async def repost_claim(self, user_id: int, original_id: int) -> int | None:
        """The id of the user's repost of the original (live or deleted since), if any."""
        rows = await cql.execute(self.session, self._st.select_repost_claim, (user_id, original_id))
        return rows[0].repost_id if rows else None

    async def add_bookmark(self, user_id: int, post_id: int, bookmark_id: int) -> int:
        """Bookmarks the post for the user; returns the bookmark id that holds
        (an earlier one when the user bookmarked it before).

        The claim is taken first with a compare-and-set, then the list row is
        written under the claimed id: a retry after a call that died between
        the two writes the same row again, so the list never holds two rows
        for one post and never misses a claimed one."""
        rows = await cql.execute(self.session, self._st.claim_bookmark, (user_id, post_id, bookmark_id))
        applied, current = _lwt_outcome(rows)
        held = bookmark_id if applied else current.bookmark_id
        await cql.execute(self.session, self._st.insert_bookmark, (user_id, held, post_id))
        return held

    async def has_bookmark(self, user_id: int, post_id: int) -> bool:
        rows = await cql.execute(self.session, self._st.select_bookmark_claim, (user_id, post_id))
        return bool(rows)

    async def bookmark_count(self, user_id: int) -> int:
        """How many bookmarks the user keeps: a count over their one claims
        partition, which the bookmark limit keeps small."""
        rows = await cql.execute(self.session, self._st.count_bookmark_claims, (user_id,))
        return rows[0].count if rows else 0

    async def remove_bookmark(self, user_id: int, post_id: int) -> None:
        """Removes the user's bookmark of the post, if any: its list row and
        its claim together (one LOGGED batch)."""
        rows = await cql.execute(self.session, self._st.select_bookmark_claim, (user_id, post_id))
        if rows:
            await self.remove_bookmark_rows(user_id, [(rows[0].bookmark_id, post_id)])

    async def remove_bookmark_rows(
        self, user_id: int, bookmarks: list[tuple[int, int]], stray_ids: tuple[int, ...] = ()
    ) -> None:
        """Removes (bookmark id, post id) pairs of one user, list rows and
        claims, and list rows alone by bookmark id (`stray_ids`), at once."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        for bookmark_id, post_id in bookmarks:
            batch.add(self._st.delete_bookmark, (user_id, bookmark_id))
            batch.add(self._st.delete_bookmark_claim, (user_id, post_id))
        for bookmark_id in stray_ids:
            batch.add(self._st.delete_bookmark, (user_id, bookmark_id))
        await cql.execute(self.session, batch)

    async def bookmark_claims(self, user_id: int, post_ids: list[int]) -> dict[int, int]:
        """post id -> the bookmark id that holds it, for those of `post_ids` the
        user has bookmarked (one query in the user's claims partition)."""
        if not post_ids:
            return {}
        rows = await cql.execute(self.session, self._st.select_bookmark_claims_of, (user_id, list(set(post_ids))))
        return {row.post_id: row.bookmark_id for row in rows}

    async def bookmarks(self, user_id: int, before: int | None, limit: int) -> list[tuple[int, int]]:
        """Up to `limit` (bookmark id, post id) pairs of the user, most recent
        first, older than the bookmark id `before`."""
        if before is None:
            rows = await cql.execute(self.session, self._st.select_bookmarks_first, (user_id, limit))
        else:
            rows = await cql.execute(self.session, self._st.select_bookmarks_before, (user_id, before, limit))
        return [(row.bookmark_id, row.post_id) for row in rows]

    async def forget_user(self, user_id: int) -> None:
        """Drops a deleted account's bookmarks (list and claims) and repost
        claims: three partition deletes in one LOGGED batch. Its posts and
        reposts themselves go through the delete path first."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(self._st.delete_bookmarks_of_user, (user_id,))
        batch.add(self._st.delete_bookmark_claims_of_user, (user_id,))
        batch.add(self._st.delete_reposts_of_user, (user_id,))
        await cql.execute(self.session, batch)

    async def count_post(self, author_id: int, delta: int) -> None:
        stmt = self._st.count_up if delta > 0 else self._st.count_down
        await cql.execute(self.session, stmt, (author_id,))

    # -- reads --------------------------------------------------------------

    async def get(self, post_id: int) -> PostRecord | None:
        """The post row, deleted or not; None when it never existed."""
        rows = await cql.execute(self.session, self._st.select_post, (post_id,))
        return _record(rows[0]) if rows else None

    async def get_many(self, post_ids: list[int]) -> list[PostRecord | None]:
        """The rows of post_ids, deleted or not, in the order asked; None for a post that never existed."""
        rows = await cql.rows_by_key(self.session, self._st.select_posts, post_ids, key_of=lambda row: row.post_id)
        return [_record(rows[post_id]) if post_id in rows else None for post_id in post_ids]

    async def author_post_ids(self, author_id: int, before: int | None, limit: int) -> list[int]:
        """Up to `limit` of the author's post ids, newest first, older than `before`."""
        return [post_id for post_id, _ in await self.author_posts(author_id, before, limit)]

    async def author_posts(self, author_id: int, before: int | None, limit: int) -> list[tuple[int, int | None]]:
        """Up to `limit` of the author's posts, newest first, older than
        `before`: (post id, the original it purely reposts or 0; None when the
        row predates that column)."""
        if before is None:
            rows = await cql.execute(self.session, self._st.select_by_author_first, (author_id, limit))
        else:
            rows = await cql.execute(self.session, self._st.select_by_author_before, (author_id, before, limit))
        return [(row.post_id, row.repost_of) for row in rows]

    async def fill_in_repost_of(self, records: list[PostRecord]) -> None:
        """Writes what each post purely reposts into its author's list, for rows
        that predate the column."""
        st = self._st.fill_in_repost_of
        await asyncio.gather(
            *(
                cql.execute(self.session, st, (r.created_at_ms * 1000, r.pure_repost_of, r.author_id, r.post_id))
                for r in records
            )
        )

    async def reply_ids(self, parent_id: int, after: int | None, limit: int) -> list[int]:
        """Up to `limit` reply ids of the parent, oldest first, newer than `after`."""
        rows = await cql.execute(self.session, self._st.select_replies_after, (parent_id, after or 0, limit))
        return [row.post_id for row in rows]

    async def in_author_list(self, author_id: int, post_id: int) -> bool:
        rows = await cql.execute(self.session, self._st.select_by_author_one, (author_id, post_id))
        return bool(rows)

    async def scan_page(self, paging_state: bytes | None, fetch_size: int) -> tuple[list[PostRecord], bytes | None]:
        """One page of a scan over every post row (deleted ones included), in
        token order, and the driver's paging state for the next page (None
        after the last one). Rows written during a scan may or may not appear."""
        bound = self._st.scan_posts.bind(())
        bound.fetch_size = fetch_size

        def fetch_one_page():
            # The blocking call runs in a worker thread; reading current_rows
            # only never makes the driver fetch the following page.
            result = self.session.execute(bound, paging_state=paging_state)
            return list(result.current_rows), result.paging_state

        cql.STATEMENTS.labels(f"SELECT ... FROM {KEYSPACE}.posts (scan)").inc()
        rows, next_state = await asyncio.get_running_loop().run_in_executor(None, fetch_one_page)
        return [_record(row) for row in rows], next_state

    async def post_count(self, author_id: int) -> int:
        rows = await cql.execute(self.session, self._st.select_stats, (author_id,))
        # A counter can dip below zero after a lost increment; never show that.
        return max(0, rows[0].post_count) if rows and rows[0].post_count is not None else 0

    async def post_counts(self, author_ids: list[int]) -> dict[int, int]:
        """Post counts of many authors in one query; authors who never posted are absent."""
        rows = await cql.execute(self.session, self._st.select_stats_many, (author_ids,))
        return {row.author_id: max(0, row.post_count or 0) for row in rows}


def _author_key(author_id: int) -> bytes:
    # Kafka key: one author's events land on one partition, in order.
    return str(author_id).encode("ascii")


def _unset_if_empty(value):
    # Leaving a column unset writes nothing, where null or an empty list
    # would write a tombstone.
    return value if value else UNSET_VALUE


def _post_row(record: PostRecord) -> tuple:
    return (
        record.post_id,
        record.author_id,
        record.text,
        _unset_if_empty(list(record.media_ids)),
        _unset_if_empty(list(record.product_ids)),
        _unset_if_empty(record.reply_to_id),
        _unset_if_empty(record.repost_of_id),
        _unset_if_empty(list(record.hashtags)),
        _unset_if_empty(list(record.mentions)),
        _datetime_from_ms(record.created_at_ms),
        # Always written, so the delete's `IF deleted = false` holds for new rows.
        False,
    )


def _record(row) -> PostRecord:
    return PostRecord(
        post_id=row.post_id,
        author_id=row.author_id,
        text=row.text or "",
        created_at_ms=_ms_from_datetime(row.created_at),
        media_ids=tuple(row.media_ids or ()),
        product_ids=tuple(row.product_ids or ()),
        reply_to_id=row.reply_to_id or 0,
        repost_of_id=row.repost_of_id or 0,
        hashtags=tuple(row.hashtags or ()),
        mentions=tuple(row.mentions or ()),
        deleted=bool(row.deleted),
    )


def _lwt_outcome(rows) -> tuple[bool, Any]:
    """(applied, current row or None when the row does not exist) of an LWT.
    The row is the driver's named tuple, which has no type information."""
    row = rows[0]
    applied = bool(row[0])
    # A failed condition returns the current values after [applied]; a
    # missing row returns [applied] alone.
    current = row if (not applied and len(row) > 1) else None
    return applied, current


_UNIX_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _datetime_from_ms(ms: int) -> datetime.datetime:
    # Integer arithmetic: a float detour can land one millisecond early.
    return _UNIX_EPOCH + datetime.timedelta(milliseconds=ms)


def _ms_from_datetime(value: datetime.datetime | None) -> int:
    if value is None:
        return 0
    # The driver returns naive UTC datetimes.
    return calendar.timegm(value.utctimetuple()) * 1000 + value.microsecond // 1000
