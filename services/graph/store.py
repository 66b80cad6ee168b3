"""Follow edges and counts in Cassandra (keyspace `aviary_graph`) and the celebrity
set in Redis: the only code in graph that talks to a datastore.

Edges are stored twice, once per direction, each partitioned by the user whose
list is read (`following` by follower, `followers` by followee), so every list
is one partition scan ordered by the other user's id.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from dataclasses import dataclass
from typing import Mapping

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Session
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType, PreparedStatement
from redis.exceptions import ResponseError

from services.kit.peers import followers, profiles, safety

from services.kit.stores import cql, redis_bulk, redis_client
from services.kit.settings import Settings
from services.kit.events.kafka import GRAPH_TOPIC, Producer
from services.graph import rules
from services.kit.events.outbox import Outbox, OutboxBatch, OutboxEvent
from services.kit.events.outbox import schema as outbox_schema

log = logging.getLogger(__name__)

KEYSPACE = "aviary_graph"
CELEBRITIES_KEY = "graph:celebrities"
# One partition read answers "whom does X follow" for the celebrity merge.
# Production would page past this (or keep a per-user celebrity-followee set);
# 5000 is also the driver's fetch size, so one page is the whole answer.
FOLLOWING_SCAN_LIMIT = 5000
# A viewer's blocks (each way) and mutes read by GetHiddenAuthors: one
# partition read each. Real lists are far shorter; past this the oldest ids
# beyond the limit are not hidden, a bound instead of an unbounded answer.
HIDDEN_SCAN_LIMIT = 5000
# Cassandra refuses longer TTLs (20 years); a mute ending later is kept untimed.
CASSANDRA_MAX_TTL = 630_720_000
# The backfill that fills `muted_by` from `mutes` (see fill_muted_by).
MUTED_BY_BACKFILL = "muted_by"
BACKFILL_PAGE = 500

_TABLES = [
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.following (
        user_id bigint,
        followee_id bigint,
        created_at timestamp,
        PRIMARY KEY (user_id, followee_id)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.followers (
        user_id bigint,
        follower_id bigint,
        created_at timestamp,
        PRIMARY KEY (user_id, follower_id)
    )""",
    # Blocks, once per direction: `blocks` by blocker (their list), `blocked_by`
    # by the blocked user (read paths hide blockers from them too).
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.blocks (
        user_id bigint,
        blocked_id bigint,
        created_at timestamp,
        PRIMARY KEY (user_id, blocked_id)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.blocked_by (
        user_id bigint,
        blocker_id bigint,
        created_at timestamp,
        PRIMARY KEY (user_id, blocker_id)
    )""",
    # A mute with an end time is also written with a TTL past it, so expired
    # rows go away by themselves; reads still check expires_at.
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.mutes (
        user_id bigint,
        muted_id bigint,
        created_at timestamp,
        expires_at timestamp,
        PRIMARY KEY (user_id, muted_id)
    )""",
    # Mutes by the muted user (same rows and TTLs as `mutes`), so an account's
    # deletion finds who muted it without scanning everyone's mutes.
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.muted_by (
        user_id bigint,
        muter_id bigint,
        created_at timestamp,
        expires_at timestamp,
        PRIMARY KEY (user_id, muter_id)
    )""",
    # One-off jobs over existing rows (e.g. filling muted_by), by name, once done.
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.backfills (
        name text PRIMARY KEY,
        done_at timestamp
    )""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.follow_counts (
        user_id bigint PRIMARY KEY,
        followers counter,
        following counter
    )""",
]


@dataclass(frozen=True)
class HiddenRows:
    blocking: list[int]
    blocked_by: list[int]
    mutes: list[tuple[int, datetime.datetime | None]]


class GraphStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = Producer(settings.kafka_bootstrap)
        self.redis = redis_client.client(settings)
        # For the read every fanout call makes (a follower list's version,
        # read by follower_lists through kit/peers/followers.py).
        self.bulk = redis_bulk.BulkRedis(settings.redis_url)
        self._session: Session | None = None
        self._outbox: Outbox | None = None
        self._stmts: dict[str, PreparedStatement] = {}

    @property
    def outbox(self) -> Outbox:
        assert self._outbox is not None, "call start() first"
        return self._outbox

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Connects, creates keyspace and tables, prepares statements; safe to call again after a failure."""
        await self._shutdown_session()
        self._session = await cql.connect(self.settings)
        await cql.ensure_keyspace(self._session, KEYSPACE, self.settings.cassandra_rf)
        await cql.apply_schema(self._session, [*_TABLES, *outbox_schema(KEYSPACE)])
        await self._prepare_all()
        self._outbox = Outbox(self._session, KEYSPACE, self.producer, before_publish=self._mark_edge_changes)
        await self.outbox.prepare()
        log.info("graph keyspace ready", extra={"keyspace": KEYSPACE})

    async def stop(self) -> None:
        await self.producer.close()
        await self.redis.aclose()
        await self.bulk.close()
        await self._shutdown_session()

    async def _shutdown_session(self) -> None:
        session, self._session = self._session, None
        await cql.close(session)

    async def _prepare_all(self) -> None:
        ks = KEYSPACE
        queries = {
            "claim_follow": f"INSERT INTO {ks}.following (user_id, followee_id, created_at) VALUES (?, ?, ?) IF NOT EXISTS",
            "release_follow": f"DELETE FROM {ks}.following WHERE user_id = ? AND followee_id = ? IF EXISTS",
            "put_follower": f"INSERT INTO {ks}.followers (user_id, follower_id, created_at) VALUES (?, ?, ?)",
            "drop_follower": f"DELETE FROM {ks}.followers WHERE user_id = ? AND follower_id = ?",
            "has_follower": f"SELECT follower_id FROM {ks}.followers WHERE user_id = ? AND follower_id = ?",
            "add_followers": f"UPDATE {ks}.follow_counts SET followers = followers + ? WHERE user_id = ?",
            "add_following": f"UPDATE {ks}.follow_counts SET following = following + ? WHERE user_id = ?",
            "counts": f"SELECT followers, following FROM {ks}.follow_counts WHERE user_id = ?",
            "counts_many": f"SELECT user_id, followers, following FROM {ks}.follow_counts WHERE user_id IN ?",
            "followers_after": f"SELECT follower_id FROM {ks}.followers WHERE user_id = ? AND follower_id > ? LIMIT ?",
            "following_after": f"SELECT followee_id FROM {ks}.following WHERE user_id = ? AND followee_id > ? LIMIT ?",
            "following_all": f"SELECT followee_id FROM {ks}.following WHERE user_id = ? LIMIT {FOLLOWING_SCAN_LIMIT}",
            "is_following": f"SELECT followee_id FROM {ks}.following WHERE user_id = ? AND followee_id = ?",
            "put_block": f"INSERT INTO {ks}.blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?) IF NOT EXISTS",
            "put_blocked_by": f"INSERT INTO {ks}.blocked_by (user_id, blocker_id, created_at) VALUES (?, ?, ?)",
            "drop_block": f"DELETE FROM {ks}.blocks WHERE user_id = ? AND blocked_id = ? IF EXISTS",
            "drop_blocked_by": f"DELETE FROM {ks}.blocked_by WHERE user_id = ? AND blocker_id = ?",
            # Both directions in one statement: user ids and blocked ids each (a, b).
            "blocks_either_way": f"SELECT blocked_id FROM {ks}.blocks WHERE user_id IN ? AND blocked_id IN ?",
            "blocks_after": f"SELECT blocked_id FROM {ks}.blocks WHERE user_id = ? AND blocked_id > ? LIMIT ?",
            "blocks_all": f"SELECT blocked_id FROM {ks}.blocks WHERE user_id = ? LIMIT {HIDDEN_SCAN_LIMIT}",
            "blocked_by_all": f"SELECT blocker_id FROM {ks}.blocked_by WHERE user_id = ? LIMIT {HIDDEN_SCAN_LIMIT}",
            "put_mute": f"INSERT INTO {ks}.mutes (user_id, muted_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            "put_mute_ttl": (
                f"INSERT INTO {ks}.mutes (user_id, muted_id, created_at, expires_at) VALUES (?, ?, ?, ?) USING TTL ?"
            ),
            "put_muted_by": (
                f"INSERT INTO {ks}.muted_by (user_id, muter_id, created_at, expires_at) VALUES (?, ?, ?, ?)"
            ),
            "put_muted_by_ttl": (
                f"INSERT INTO {ks}.muted_by (user_id, muter_id, created_at, expires_at) VALUES (?, ?, ?, ?) USING TTL ?"
            ),
            "drop_mute": f"DELETE FROM {ks}.mutes WHERE user_id = ? AND muted_id = ?",
            "drop_muted_by": f"DELETE FROM {ks}.muted_by WHERE user_id = ? AND muter_id = ?",
            "muted_by_after": f"SELECT muter_id FROM {ks}.muted_by WHERE user_id = ? AND muter_id > ? LIMIT ?",
            "blocked_by_after": f"SELECT blocker_id FROM {ks}.blocked_by WHERE user_id = ? AND blocker_id > ? LIMIT ?",
            "muters_after_token": f"SELECT DISTINCT token(user_id), user_id FROM {ks}.mutes "
            "WHERE token(user_id) > ? LIMIT ?",
            "mutes_with_ttl": f"SELECT muted_id, created_at, expires_at, TTL(created_at) AS ttl FROM {ks}.mutes "
            f"WHERE user_id = ? LIMIT {HIDDEN_SCAN_LIMIT}",
            "backfill_done": f"SELECT done_at FROM {ks}.backfills WHERE name = ?",
            "mark_backfill_done": f"INSERT INTO {ks}.backfills (name, done_at) VALUES (?, ?)",
            "drop_counts": f"DELETE FROM {ks}.follow_counts WHERE user_id = ?",
            "get_mute": f"SELECT expires_at FROM {ks}.mutes WHERE user_id = ? AND muted_id = ?",
            "mutes_after": f"SELECT muted_id, expires_at FROM {ks}.mutes WHERE user_id = ? AND muted_id > ? LIMIT ?",
            "mutes_all": f"SELECT muted_id, expires_at FROM {ks}.mutes WHERE user_id = ? LIMIT {HIDDEN_SCAN_LIMIT}",
            # The viewer's side of each relationship: one partition read each,
            # the other users as a clustering-key IN list.
            "following_among": f"SELECT followee_id FROM {ks}.following WHERE user_id = ? AND followee_id IN ?",
            "followers_among": f"SELECT follower_id FROM {ks}.followers WHERE user_id = ? AND follower_id IN ?",
            "blocks_among": f"SELECT blocked_id FROM {ks}.blocks WHERE user_id = ? AND blocked_id IN ?",
            "mutes_among": f"SELECT muted_id, expires_at FROM {ks}.mutes WHERE user_id = ? AND muted_id IN ?",
        }
        prepared = await asyncio.gather(*(cql.prepare(self.session, q) for q in queries.values()))
        self._stmts = dict(zip(queries, prepared))

    @property
    def session(self) -> Session:
        assert self._session is not None, "call start() first"
        return self._session

    async def _run(self, name: str, params: tuple) -> list:
        return await cql.execute(self.session, self._stmts[name], params)

    # -- edges -------------------------------------------------------------

    async def claim_follow(
        self, follower: int, followee: int, now: datetime.datetime
    ) -> tuple[bool, datetime.datetime]:
        """LWT on the `following` row: (applied, created_at of the edge that now exists)."""
        rows = await self._run("claim_follow", (follower, followee, now))
        applied = bool(rows[0][0])
        # A refused IF NOT EXISTS returns the existing row: [applied], user_id, followee_id, created_at.
        existing = None if applied else getattr(rows[0], "created_at", None)
        return applied, (existing or now)

    async def release_follow(self, follower: int, followee: int) -> bool:
        rows = await self._run("release_follow", (follower, followee))
        return bool(rows[0][0])

    async def commit_follower_row(
        self, follower: int, followee: int, created_at: datetime.datetime, event: tuple[int, bytes, bytes]
    ) -> None:
        """The `followers` row and its event, all or nothing (LOGGED batch)."""
        batch = OutboxBatch()
        batch.add(self._stmts["put_follower"], (followee, follower, created_at))
        self._add_event(batch, event)
        await self.outbox.commit(batch)

    async def commit_follower_removal(self, follower: int, followee: int, event: tuple[int, bytes, bytes]) -> None:
        batch = OutboxBatch()
        batch.add(self._stmts["drop_follower"], (followee, follower))
        self._add_event(batch, event)
        await self.outbox.commit(batch)

    async def commit_event(self, event: tuple[int, bytes, bytes]) -> None:
        """An event on its own (through the outbox)."""
        batch = OutboxBatch()
        self._add_event(batch, event)
        await self.outbox.commit(batch)

    def _add_event(self, batch: OutboxBatch, event: tuple[int, bytes, bytes]) -> None:
        event_id, key, payload = event
        self.outbox.add(batch, event_id, GRAPH_TOPIC, key, payload)

    async def follower_row_exists(self, follower: int, followee: int) -> bool:
        return bool(await self._run("has_follower", (followee, follower)))

    async def put_follower_row(self, follower: int, followee: int, created_at: datetime.datetime) -> None:
        await self._run("put_follower", (followee, follower, created_at))

    async def drop_follower_row(self, follower: int, followee: int) -> None:
        await self._run("drop_follower", (followee, follower))

    # -- counts ------------------------------------------------------------

    async def adjust_counts(self, follower: int, followee: int, delta: int, version: int) -> bool:
        """Moves both counts by `delta`, then the followee's follower-list
        version to `version` (a token never used before): a follower count
        kept under the old version is not served past this change. Returns
        whether the followee is flagged a celebrity, read on the same trip."""
        batch = BatchStatement(batch_type=BatchType.COUNTER)
        batch.add(self._stmts["add_followers"], (delta, followee))
        batch.add(self._stmts["add_following"], (delta, follower))
        await cql.execute(self.session, batch)
        # One round trip: the version, caches of user summaries (posts'
        # authors) told to drop both users, whose counts changed, and the flag.
        # Each may run twice: a fresh token set again, a repeated announcement.
        announced = (follower, followee)
        version_set, flagged, *published = await self.bulk.execute(
            [
                _version_command(followee, version),
                _celebrity_flag_command(followee),
                *(profiles.announcement(user_id) for user_id in announced),
            ],
            idempotent=True,
        )
        if isinstance(version_set, redis_bulk.ReplyError):
            raise ResponseError(f"follower list version not moved: {version_set}")
        if isinstance(flagged, redis_bulk.ReplyError):
            raise ResponseError(f"celebrity flag not read: {flagged}")
        for user_id, reply in zip(announced, published):
            if isinstance(reply, redis_bulk.ReplyError):
                profiles.not_announced(user_id, reply)
        return bool(flagged)

    async def counts(self, user_id: int) -> tuple[int, int]:
        """(followers, following); zeros for a user nobody has touched yet."""
        rows = await self._run("counts", (user_id,))
        if not rows:
            return 0, 0
        return rows[0].followers or 0, rows[0].following or 0

    async def counts_many(self, user_ids: list[int]) -> dict[int, tuple[int, int]]:
        """(followers, following) of many users in one query; users nobody has touched yet are absent."""
        rows = await self._run("counts_many", (user_ids,))
        return {row.user_id: (row.followers or 0, row.following or 0) for row in rows}

    # -- lists -------------------------------------------------------------

    async def followers_after(self, user_id: int, after: int, limit: int) -> list[int]:
        return [r.follower_id for r in await self._run("followers_after", (user_id, after, limit))]

    async def following_after(self, user_id: int, after: int, limit: int) -> list[int]:
        return [r.followee_id for r in await self._run("following_after", (user_id, after, limit))]

    async def following_ids(self, user_id: int) -> list[int]:
        return [r.followee_id for r in await self._run("following_all", (user_id,))]

    async def is_following(self, follower: int, followee: int) -> bool:
        return bool(await self._run("is_following", (follower, followee)))

    # -- blocks and mutes ------------------------------------------------------

    async def claim_block(self, blocker: int, blocked: int, now: datetime.datetime) -> bool:
        """LWT on the blocker's row: True when this call created the block."""
        rows = await self._run("put_block", (blocker, blocked, now))
        # The reverse row is written either way: a crash between the two
        # writes is finished by the next (idempotent) call.
        await self._run("put_blocked_by", (blocked, blocker, now))
        return bool(rows[0][0])

    async def release_block(self, blocker: int, blocked: int) -> bool:
        rows = await self._run("drop_block", (blocker, blocked))
        await self._run("drop_blocked_by", (blocked, blocker))
        return bool(rows[0][0])

    async def blocks_between(self, a: int, b: int) -> bool:
        """True when either user blocks the other."""
        # Nobody blocks themselves, so every row found is (a, b) or (b, a).
        return bool(await self._run("blocks_either_way", ([a, b], [a, b])))

    async def blocks_after(self, user_id: int, after: int, limit: int) -> list[int]:
        return [r.blocked_id for r in await self._run("blocks_after", (user_id, after, limit))]

    async def put_mute(
        self, muter: int, muted: int, now: datetime.datetime, expires_at: datetime.datetime | None
    ) -> None:
        # The row outlives its end time by a minute, so no read sees it
        # vanish before expires_at says it ended.
        ttl = None if expires_at is None else int((expires_at - now).total_seconds()) + 60
        await self._put_mute_rows(muter, muted, now, expires_at, ttl)

    async def _put_mute_rows(
        self, muter: int, muted: int, created_at: datetime.datetime, expires_at: datetime.datetime | None, ttl
    ) -> None:
        """The muter's row and its reverse in `muted_by`, with the same TTL."""
        if ttl is None or ttl > CASSANDRA_MAX_TTL:
            await asyncio.gather(
                self._run("put_mute", (muter, muted, created_at, expires_at)),
                self._run("put_muted_by", (muted, muter, created_at, expires_at)),
            )
        else:
            await asyncio.gather(
                self._run("put_mute_ttl", (muter, muted, created_at, expires_at, ttl)),
                self._run("put_muted_by_ttl", (muted, muter, created_at, expires_at, ttl)),
            )

    async def drop_mute(self, muter: int, muted: int) -> None:
        await asyncio.gather(self._run("drop_mute", (muter, muted)), self._run("drop_muted_by", (muted, muter)))

    async def mutes_after_ids(self, user_id: int, after: int, limit: int) -> list[int]:
        return [muted for muted, _ in await self.mutes_after(user_id, after, limit)]

    async def muted_by_after(self, user_id: int, after: int, limit: int) -> list[int]:
        """Who mutes the user (expired mutes included until their rows lapse)."""
        return [r.muter_id for r in await self._run("muted_by_after", (user_id, after, limit))]

    async def blocked_by_after(self, user_id: int, after: int, limit: int) -> list[int]:
        return [r.blocker_id for r in await self._run("blocked_by_after", (user_id, after, limit))]

    async def fill_muted_by(self) -> int:
        """Once per keyspace: a `muted_by` row for every mute written before
        that table existed (new mutes write both). Idempotent (upserts with
        the row's remaining TTL), so replicas starting together or a rerun
        after a crash do no harm. Returns the mutes copied (0 when done before)."""
        if await self._run("backfill_done", (MUTED_BY_BACKFILL,)):
            return 0
        copied, after = 0, -(2**63)
        while True:
            muters = await self._run("muters_after_token", (after, BACKFILL_PAGE))
            for row in muters:
                for mute in await self._run("mutes_with_ttl", (row.user_id,)):
                    ttl = mute.ttl  # None for an untimed mute
                    await self._put_mute_rows(row.user_id, mute.muted_id, mute.created_at, mute.expires_at, ttl)
                    copied += 1
            if len(muters) < BACKFILL_PAGE:
                break
            after = muters[-1][0]
        await self._run("mark_backfill_done", (MUTED_BY_BACKFILL, datetime.datetime.now(datetime.timezone.utc)))
        return copied

    async def forget_user(self, user_id: int) -> None:
        """A deleted account's own counts and celebrity flag (its edges are gone by now)."""
        await self._run("drop_counts", (user_id,))
        await self.redis.srem(CELEBRITIES_KEY, user_id)

    async def mute_ends(self, muter: int, muted: int) -> tuple[bool, datetime.datetime | None]:
        """(a row exists, its end time or None for never)."""
        rows = await self._run("get_mute", (muter, muted))
        if not rows:
            return False, None
        return True, _utc(rows[0].expires_at)

    async def mutes_after(self, user_id: int, after: int, limit: int) -> list[tuple[int, datetime.datetime | None]]:
        return [(r.muted_id, _utc(r.expires_at)) for r in await self._run("mutes_after", (user_id, after, limit))]

    async def hidden_for(self, viewer: int) -> HiddenRows:
        """Whom the viewer blocks, who blocks the viewer, and the viewer's
        mutes with end times (expired ones included)."""
        blocks, blocked_by, mutes = await asyncio.gather(
            self._run("blocks_all", (viewer,)),
            self._run("blocked_by_all", (viewer,)),
            self._run("mutes_all", (viewer,)),
        )
        return HiddenRows(
            blocking=[r.blocked_id for r in blocks],
            blocked_by=[r.blocker_id for r in blocked_by],
            mutes=[(r.muted_id, _utc(r.expires_at)) for r in mutes],
        )

    async def relationship_rows(self, viewer: int, others: list[int]) -> rules.RelationshipRows:
        """Which of `others` the viewer follows, is followed by, blocks, and
        mutes (with end times, expired ones included)."""
        following, followers, blocks, mutes = await asyncio.gather(
            self._run("following_among", (viewer, others)),
            self._run("followers_among", (viewer, others)),
            self._run("blocks_among", (viewer, others)),
            self._run("mutes_among", (viewer, others)),
        )
        return rules.RelationshipRows(
            following={r.followee_id for r in following},
            followers={r.follower_id for r in followers},
            blocking={r.blocked_id for r in blocks},
            mutes={r.muted_id: _utc(r.expires_at) for r in mutes},
        )

    async def mark_hidden_changed(self, user_ids: list[int], token: int) -> None:
        """New hidden-authors versions for these viewers: readers drop what they cached."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.set(safety.version_key(user_id), token, ex=safety.VERSION_SECONDS)
            await pipe.execute()

    # -- follower list versions (Redis) --------------------------------------

    async def mark_followers_changed(self, changes: Mapping[int, int | str]) -> None:
        """user id -> a token never used before (an event id, a bulk load's) as their list's new version."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id, token in changes.items():
                pipe.execute_command(*_version_command(user_id, token))
            await pipe.execute()

    async def _mark_edge_changes(self, events: list[OutboxEvent]) -> None:
        """Before graph events go out: the follower lists they change get new
        versions, so a copy cached before the change is never used once
        fanout can learn of it (a backfill or purge follows the event)."""
        changes = {}
        for event in events:
            followee = rules.followee_of_edge_change(event.payload)
            if followee is not None:
                changes[followee] = event.event_id
        if changes:
            await self.mark_followers_changed(changes)

    # -- celebrity set (Redis) ---------------------------------------------

    async def set_celebrity(self, user_id: int, celebrity: bool) -> None:
        if celebrity:
            await self.redis.sadd(CELEBRITIES_KEY, user_id)
        else:
            await self.redis.srem(CELEBRITIES_KEY, user_id)

    async def set_celebrities(self, flags: dict[int, bool]) -> None:
        """set_celebrity for many users in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id, celebrity in flags.items():
                (pipe.sadd if celebrity else pipe.srem)(CELEBRITIES_KEY, user_id)
            await pipe.execute()

    async def celebrities_among(self, user_ids: list[int]) -> list[int]:
        if not user_ids:
            return []
        flags = await self.redis.smismember(CELEBRITIES_KEY, user_ids)
        return [uid for uid, flag in zip(user_ids, flags) if flag]


def _utc(value: datetime.datetime | None) -> datetime.datetime | None:
    # The driver returns naive UTC datetimes.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=datetime.timezone.utc)


def _celebrity_flag_command(user_id: int) -> tuple:
    return ("SISMEMBER", CELEBRITIES_KEY, str(user_id))


def _version_command(user_id: int, token: int | str) -> tuple:
    """The SET that gives a user's follower list its new version."""
    return ("SET", followers.version_key(user_id), token, "EX", followers.VERSION_SECONDS)


# -- bulk loading (python -m services.graph.load) -------------------------------
# Synchronous on purpose: the driver's execute_concurrent keeps `concurrency`
# requests in flight from its own threads, much faster than one awaited
# statement at a time for hundreds of thousands of rows.

# Cassandra's unlogged_batch_across_partitions_warn_threshold.
PARTITIONS_PER_BATCH = 10
BULK_REQUEST_TIMEOUT_SECONDS = 30.0


async def bulk_session(settings: Settings) -> Session:
    """A session of its own for bulk work, with a longer request timeout (big
    batches); the bulk functions below are blocking: run them in a thread."""
    session = await cql.connect(settings)
    session.get_execution_profile(EXEC_PROFILE_DEFAULT).request_timeout = BULK_REQUEST_TIMEOUT_SECONDS
    return session


def _run_concurrent(session: Session, statements, concurrency: int) -> int:
    done = 0
    for ok, result in execute_concurrent(
        session, statements, concurrency=concurrency, raise_on_first_error=True, results_generator=True
    ):
        if not ok:
            raise result
        done += 1
    return done


def _row_batches(stmt: PreparedStatement, lists: dict[int, list[int]], batch_rows: int, created_at):
    """(owner, other, created_at) rows in UNLOGGED batches: a partition's rows
    together, small partitions sharing a batch with a few others (at most
    PARTITIONS_PER_BATCH), so 100,000 users following a handful each are not
    100,000 requests."""
    batch, rows, parts = BatchStatement(batch_type=BatchType.UNLOGGED), 0, 0
    for owner, others in lists.items():
        for i in range(0, len(others), batch_rows):
            chunk = others[i : i + batch_rows]
            if rows and (rows + len(chunk) > batch_rows or parts >= PARTITIONS_PER_BATCH):
                yield batch, None
                batch, rows, parts = BatchStatement(batch_type=BatchType.UNLOGGED), 0, 0
            for other in chunk:
                batch.add(stmt, (owner, other, created_at))
            rows += len(chunk)
            parts += 1
    if rows:
        yield batch, None


def _grouped(statements: list[tuple[PreparedStatement, tuple]], batch_type):
    for i in range(0, len(statements), PARTITIONS_PER_BATCH):
        batch = BatchStatement(batch_type=batch_type)
        for stmt, params in statements[i : i + PARTITIONS_PER_BATCH]:
            batch.add(stmt, params)
        yield batch, None


def bulk_write_edges(
    session: Session,
    followers: dict[int, list[int]],
    following: dict[int, list[int]],
    *,
    batch_rows: int,
    concurrency: int,
) -> dict:
    """Writes edges as FollowUser leaves them (both rows, both counters),
    without events or outbox. Rows are upserts; counters are increments, so
    writing the same edges twice counts them twice."""
    ks = KEYSPACE
    put_following = session.prepare(f"INSERT INTO {ks}.following (user_id, followee_id, created_at) VALUES (?, ?, ?)")
    put_follower = session.prepare(f"INSERT INTO {ks}.followers (user_id, follower_id, created_at) VALUES (?, ?, ?)")
    add_followers = session.prepare(f"UPDATE {ks}.follow_counts SET followers = followers + ? WHERE user_id = ?")
    add_following = session.prepare(f"UPDATE {ks}.follow_counts SET following = following + ? WHERE user_id = ?")
    now = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    n_batches = _run_concurrent(session, _row_batches(put_follower, followers, batch_rows, now), concurrency)
    t1 = time.perf_counter()
    n_batches += _run_concurrent(session, _row_batches(put_following, following, batch_rows, now), concurrency)
    t2 = time.perf_counter()
    counters = [(add_followers, (len(f), a)) for a, f in followers.items() if f]
    counters += [(add_following, (len(f), u)) for u, f in following.items() if f]
    n_counter_batches = _run_concurrent(session, _grouped(counters, BatchType.COUNTER), concurrency)
    t3 = time.perf_counter()
    rows = sum(len(f) for f in followers.values())
    return {
        "seconds": round(t3 - t0, 1),
        "followers_rows": rows,
        "following_rows": sum(len(f) for f in following.values()),
        "counter_updates": len(counters),
        "batches": n_batches,
        "counter_batches": n_counter_batches,
        "rows_per_batch_max": batch_rows,
        "partitions_per_batch_max": PARTITIONS_PER_BATCH,
        "concurrency": concurrency,
        "followers_s": round(t1 - t0, 1),
        "following_s": round(t2 - t1, 1),
        "counters_s": round(t3 - t2, 1),
        "rows_per_s": round((2 * rows + len(counters)) / max(1e-9, t3 - t0)),
    }


def bulk_delete_users(session: Session, followees: list[int], followers: list[int], *, concurrency: int) -> dict:
    """Deletes whole partitions: the follower lists of `followees`, the
    following lists of `followers`, and the counts of both."""
    ks = KEYSPACE
    drop_following = session.prepare(f"DELETE FROM {ks}.following WHERE user_id = ?")
    drop_followers = session.prepare(f"DELETE FROM {ks}.followers WHERE user_id = ?")
    drop_counts = session.prepare(f"DELETE FROM {ks}.follow_counts WHERE user_id = ?")
    t0 = time.perf_counter()
    drops = [(drop_followers, (a,)) for a in followees] + [(drop_following, (u,)) for u in followers]
    _run_concurrent(session, _grouped(drops, BatchType.UNLOGGED), concurrency)
    users = set(followees) | set(followers)
    _run_concurrent(session, [(drop_counts, (u,)) for u in users], concurrency)
    return {"seconds": round(time.perf_counter() - t0, 1), "partitions": len(drops), "count_rows": len(users)}
