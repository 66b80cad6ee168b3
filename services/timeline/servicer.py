"""TimelineService: materialized home timelines, author indexes, celebrity merge."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import AsyncIterator

import grpc
from prometheus_client import Counter, Histogram

from aviary.events.v1 import events_pb2
from aviary.graph.v1 import graph_pb2
from aviary.posts.v1 import posts_pb2
from aviary.timeline.v1 import timeline_pb2, timeline_pb2_grpc
from services.kit.events.account_deletions import AccountDeletions
from services.kit.peers import clients, engagement_overlay, engagement_reads, safety
from services.kit.server import startup
from services.kit.stores import redis_client
from services.kit.server.auth import caller_id, stream_deadline
from services.kit.stores.cache import TtlCache
from services.kit.server.errors import invalid_argument, unavailable
from services.kit.events.live import LiveHub
from services.kit.server.paging import encode_token, int_cursor, page_size
from services.timeline.entries import (
    Entry,
    Stored,
    author_key,
    decode_member,
    encode_member,
    home_key,
    lex_start,
    plan_round,
    repeated_reposts,
)
from services.timeline.live import author_channel, home_channel
from services.timeline.settings import TimelineSettings
from services.timeline.store import TimelineStore
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

ADD = timeline_pb2.DELIVERY_OP_ADD
REMOVE = timeline_pb2.DELIVERY_OP_REMOVE
MAX_USERS_PER_BATCH = 5000
MAX_FOLLOW_CHANGES = 1000
# Authors asked about in one BatchGetFollowStats call (graph's limit).
STATS_BATCH = 200
# Account deletions (identity's AccountDeleted): one group for all replicas.
ACCOUNTS_GROUP = "timeline-accounts"
# A page normally fills in one round; more rounds only when many of the
# candidates were deleted. The bound keeps a pathological timeline from
# turning one read into an unbounded scan (the page then comes back short,
# with a token that resumes below what was examined).
MAX_READ_ROUNDS = 8
# Rebuilding a returning reader's timeline takes this many of each followed
# author's newest posts (the same depth as the author indexes keep).
REBUILD_PER_AUTHOR = 200
# Posts asked for in one BatchGetPosts call (the posts service's limit).
HYDRATE_BATCH = 200
# Redis failures that make a read fall back to the posts store.
_REDIS_DOWN = redis_client.UNREACHABLE

DELIVERIES = Counter(
    "aviary_timeline_deliveries_total", "Fanned-out adds, by outcome (inactive users are skipped)", ["result"]
)
POST_CACHE = Counter("aviary_timeline_post_cache_total", "Hydrated-post cache lookups", ["result"])
CELEBRITY_MERGE = Histogram(
    "aviary_timeline_celebrity_merge_size",
    "Followed celebrities merged into one home read",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500),
)
READS = Counter("aviary_timeline_reads_total", "Home timeline reads, by how they were served", ["path"])
REBUILD_SECONDS = Histogram(
    "aviary_timeline_rebuild_seconds",
    "Rebuilding a returning reader's timeline",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class _OverlappedWrites:
    """Runs coroutines as tasks, at most `limit` at a time; collects their
    results. The first failure is raised (by add or drain); the caller
    cancels the rest."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._pending: set[asyncio.Task] = set()
        self._results: list = []

    async def add(self, coro) -> None:
        self._pending.add(asyncio.create_task(coro))
        if len(self._pending) >= self._limit:
            await self._collect(asyncio.FIRST_COMPLETED)

    async def drain(self) -> list:
        while self._pending:
            await self._collect(asyncio.ALL_COMPLETED)
        return self._results

    async def _collect(self, when: str) -> None:
        done, self._pending = await asyncio.wait(self._pending, return_when=when)
        for task in done:
            self._results.append(task.result())

    def cancel(self) -> None:
        for task in self._pending:
            task.cancel()


def _tally(chunks: list[tuple[int, int]]) -> tuple[int, int]:
    """(delivered, skipped as inactive) over delivery chunks' (delivered, offered)."""
    delivered = sum(done for done, _ in chunks)
    return delivered, sum(offered for _, offered in chunks) - delivered


def _checked_op(op: int) -> int:
    if op not in (ADD, REMOVE):
        raise invalid_argument("op", "must be DELIVERY_OP_ADD or DELIVERY_OP_REMOVE")
    return op


def _checked_entry(entry: timeline_pb2.TimelineEntry, field: str = "entry") -> Entry:
    if entry.post_id <= 0:
        raise invalid_argument(f"{field}.post_id", f"must be a positive id, got {entry.post_id}")
    if entry.author_id <= 0:
        raise invalid_argument(f"{field}.author_id", f"must be a positive id, got {entry.author_id}")
    if entry.repost_of_id < 0 or entry.repost_of_id == entry.post_id:
        raise invalid_argument(
            f"{field}.repost_of_id", f"must be 0 or another post's positive id, got {entry.repost_of_id}"
        )
    return Entry(entry.post_id, entry.author_id, entry.repost_of_id)


def _checked_user_ids(user_ids, field: str = "user_ids") -> list[int]:
    if len(user_ids) > MAX_USERS_PER_BATCH:
        raise invalid_argument(field, f"at most {MAX_USERS_PER_BATCH} per batch, got {len(user_ids)}")
    for i, user_id in enumerate(user_ids):
        if user_id <= 0:
            raise invalid_argument(f"{field}[{i}]", f"must be a positive id, got {user_id}")
    return list(user_ids)


def _checked_pair(user_id: int, author_id: int, field_prefix: str = "") -> tuple[int, int]:
    if user_id <= 0:
        raise invalid_argument(f"{field_prefix}user_id", f"must be a positive id, got {user_id}")
    if author_id <= 0:
        raise invalid_argument(f"{field_prefix}author_id", f"must be a positive id, got {author_id}")
    return user_id, author_id


def _last_change_per_pair(changes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """ApplyFollowChanges' changes, validated whole, as (follows, unfollows):
    a pair's last change only, its effect then the same as applying them all
    in order (a follow after an unfollow keeps some older posts a purge
    would have taken, which a follower may see)."""
    if len(changes) > MAX_FOLLOW_CHANGES:
        raise invalid_argument("changes", f"at most {MAX_FOLLOW_CHANGES}, got {len(changes)}")
    following: dict[tuple[int, int], bool] = {}
    for i, change in enumerate(changes):
        pair = _checked_pair(change.user_id, change.author_id, f"changes[{i}].")
        following[pair] = change.following
    return [p for p, f in following.items() if f], [p for p, f in following.items() if not f]


class TimelineServicer(timeline_pb2_grpc.TimelineServiceServicer):
    def __init__(self, settings: TimelineSettings) -> None:
        self.settings = settings
        # How long a reader's followed-celebrity list is reused. Everything
        # that changes it forgets it at once: the reader following or
        # unfollowing (BackfillAuthor/PurgeAuthor) and a followed author
        # crossing the threshold (ApplyAuthorStatus); a generation keeps an
        # answer graph gave before that from being cached after it. So the
        # TTL is only a safety net, and long: asking graph costs a graph call
        # and a Cassandra read of every followee, per reader.
        self.celebrity_cache_seconds = settings.celebrity_cache_seconds
        # Hydrated posts (without engagement), shared by every reader: the
        # same popular posts fill many timelines, and a posts call per page
        # would be the largest cost of a read. Post bodies never change; a
        # deleted post leaves every source key a read merges (fanout REMOVE,
        # author index removal), so it is not shown whatever this holds, and
        # the TTL bounds only how long an author's old name or avatar shows.
        # Posts embedding another (reposts, quotes) are kept only briefly: when
        # the embedded original is deleted, a pure repost must vanish too, and
        # only a fresh hydration (which drops it) tells. Engagement (counts,
        # liked_by_me) is overlaid on copies per read.
        self.posts_cache = _PostCache(
            plain_seconds=settings.post_cache_seconds,
            embedding_seconds=settings.repost_cache_seconds,
        )
        # Only users seen within this long have a materialized timeline.
        self.active_seconds = settings.active_days * 86_400
        # How often one process renews a reader's activity mark (a write).
        self.touch_seconds = settings.touch_seconds
        self._touched: dict[int, float] = {}
        # The celebrities each reader's last home read merged: the next read
        # reads their indexes with its first round trip, on the likely bet
        # that the list has not changed.
        self._last_celebrities: dict[int, list[int]] = {}
        self._store: TimelineStore | None = None
        self._hub: LiveHub | None = None
        # A line without a post every so often keeps idle live streams open
        # through proxies and tells clients the stream is alive.
        self.heartbeat_seconds = settings.watch_heartbeat_seconds
        # Lazy clean-ups in flight; held so they are not garbage-collected.
        self._cleanups: set[asyncio.Task] = set()
        self.hidden_authors: safety.HiddenAuthors | None = None
        self.engagement_reads: engagement_reads.EngagementReads | None = None
        self.account_deletions = AccountDeletions(settings.kafka_bootstrap, ACCOUNTS_GROUP, self._on_account_deleted)

    @property
    def store(self) -> TimelineStore:
        assert self._store is not None, "call start() first"
        return self._store

    @property
    def hub(self) -> LiveHub:
        assert self._hub is not None, "call start() first"
        return self._hub

    async def start(self) -> None:
        self._store = TimelineStore(self.settings)
        # Backends may still be starting next to us; serve only once Redis answers.
        await startup.retry_until_up(self.store.ping, "redis")
        await self.store.redis_epoch.refresh()
        self._hub = LiveHub(self.store.client)
        self.hidden_authors = safety.HiddenAuthors(
            self.store.client,
            timeout=self.settings.rpc_timeout_seconds,
            epoch=self.store.redis_epoch,
            bulk=self.store.bulk,
        )
        # Pages' counts and the viewer's likes, from engagement's hashes.
        self.engagement_reads = engagement_reads.EngagementReads(self.store.bulk, self.store.redis_epoch)

    async def stop(self) -> None:
        if self._hub is not None:
            await self._hub.close()
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
        if self._store is not None:
            await self._store.close()
        await clients.close_all()

    async def move_legacy_keys(self) -> None:
        """Background job, once per start: keys kept before members sorted
        newest first move or go (entries.legacy_author_key). Until an
        author's index has moved, reads merge none of that author's older
        posts from it. Every start runs it, so whatever a replica on the old
        code wrote during a rolling deploy moves at the next."""
        indexes, members = await self.store.move_legacy_author_indexes()
        forgotten = await self.store.forget_legacy_timelines()
        if indexes or forgotten:
            log.info(
                "moved legacy timeline keys",
                extra={"author_indexes": indexes, "members": members, "timeline_keys_deleted": forgotten},
            )

    async def watch_redis_epoch(self) -> None:
        """Background job: notices Redis failovers and restarts (RedisEpoch)."""
        await self.store.redis_epoch.watch_forever()

    # --- account deletion ------------------------------------------------------

    async def consume_account_events(self) -> None:
        """Background job: a deleted account's own keys are dropped."""
        await self.account_deletions.run()

    async def _on_account_deleted(self, event: events_pb2.AccountEvent) -> None:
        # Its timeline, activity mark, celebrity list and its own author
        # index (what celebrity merges read). Its posts and reposts leave
        # followers' timelines through the posts service's deletions, and its
        # follows end through graph's unfollows (which purge and forget).
        await self.store.forget_account(event.deleted.user_id)
        self._touched.pop(event.deleted.user_id, None)
        log.info("deleted account's timeline keys dropped", extra={"user_id": event.deleted.user_id})

    # --- writes (internal, called by the fanout worker) ---------------------

    async def DeliverEntries(self, request_iterator: AsyncIterator, context) -> timeline_pb2.DeliverEntriesResponse:
        batches = removed = 0
        # Deliveries are written in chunks, several in flight at once, so that
        # Python packs the next chunk while Redis runs the previous one: one batch
        # at a time left each side idle half the time (issue 4's throughput bench).
        writes = _OverlappedWrites(self.settings.deliveries_in_flight)
        try:
            async for request in request_iterator:
                removed += await self._deliver_batch(request, writes)
                batches += 1
            delivered, skipped = _tally(await writes.drain())
        finally:
            writes.cancel()
        return timeline_pb2.DeliverEntriesResponse(
            batches=batches, timelines=removed + delivered, skipped_inactive=skipped
        )

    async def DeliverEntryBatch(self, request, context) -> timeline_pb2.DeliverEntryBatchResponse:
        writes = _OverlappedWrites(self.settings.deliveries_in_flight)
        try:
            removed = await self._deliver_batch(request, writes)
            delivered, skipped = _tally(await writes.drain())
        finally:
            writes.cancel()
        return timeline_pb2.DeliverEntryBatchResponse(timelines=removed + delivered, skipped_inactive=skipped)

    async def _deliver_batch(self, request, writes: _OverlappedWrites) -> int:
        """Applies one delivery batch, validated whole before any of it is
        written. Adds are handed to `writes` in chunks, for the caller to
        drain; answers the timelines a removal touched."""
        op = _checked_op(request.op)
        entry = _checked_entry(request.entry)
        user_ids = _checked_user_ids(request.user_ids)
        if request.index_author_post:
            await self._index_author_post(op, entry)
        if op == REMOVE:
            self.posts_cache.discard(entry.post_id)
            await self.store.remove_from_homes(entry, user_ids)
            return len(user_ids)
        chunk = self.settings.delivery_chunk
        for start in range(0, len(user_ids), chunk):
            await writes.add(self._add_to_homes(entry, user_ids[start : start + chunk]))
        return 0

    async def _add_to_homes(self, entry: Entry, user_ids: list[int]) -> tuple[int, int]:
        delivered = await self.store.add_to_homes(entry, user_ids)
        DELIVERIES.labels("delivered").inc(delivered)
        DELIVERIES.labels("inactive").inc(len(user_ids) - delivered)
        return delivered, len(user_ids)

    async def IndexAuthorPost(self, request, context) -> timeline_pb2.IndexAuthorPostResponse:
        await self._index_author_post(_checked_op(request.op), _checked_entry(request.entry))
        return timeline_pb2.IndexAuthorPostResponse()

    async def _index_author_post(self, op: int, entry: Entry) -> None:
        if op == ADD:
            await self.store.add_to_author_index(entry)
        else:
            self.posts_cache.discard(entry.post_id)
            await self.store.remove_from_author_index(entry)

    async def BackfillAuthor(self, request, context) -> timeline_pb2.BackfillAuthorResponse:
        pair = _checked_pair(request.user_id, request.author_id)
        return timeline_pb2.BackfillAuthorResponse(copied=await self._follows([pair]))

    async def PurgeAuthor(self, request, context) -> timeline_pb2.PurgeAuthorResponse:
        pair = _checked_pair(request.user_id, request.author_id)
        return timeline_pb2.PurgeAuthorResponse(removed=await self._unfollows([pair]))

    async def ApplyFollowChanges(self, request, context) -> timeline_pb2.ApplyFollowChangesResponse:
        follows, unfollows = _last_change_per_pair(request.changes)
        # Different pairs touch different keys or commute (adds of one
        # author, removals of another), so both kinds run at once.
        copied, removed = await asyncio.gather(self._follows(follows), self._unfollows(unfollows))
        return timeline_pb2.ApplyFollowChangesResponse(copied=copied, removed=removed)

    async def _follows(self, pairs: list[tuple[int, int]]) -> int:
        """Backfills; returns entries copied."""
        if not pairs:
            return 0
        # A celebrity's posts are merged at read time: copying them would
        # materialize exactly what the hybrid model avoids.
        celebrities = await self._celebrities_among({author for _, author in pairs})
        return await self.store.backfill_many(pairs, {author for _, author in pairs} - celebrities)

    async def _celebrities_among(self, authors: set[int]) -> set[int]:
        ids = [str(a) for a in sorted(authors)]
        replies = await asyncio.gather(
            *(
                clients.graph().BatchGetFollowStats(
                    graph_pb2.BatchGetFollowStatsRequest(user_ids=ids[i : i + STATS_BATCH]),
                    timeout=self.settings.rpc_timeout_seconds,
                )
                for i in range(0, len(ids), STATS_BATCH)
            )
        )
        return {int(stats.user_id) for reply in replies for stats in reply.stats if stats.celebrity}

    async def _unfollows(self, pairs: list[tuple[int, int]]) -> int:
        """Purges; returns entries removed."""
        if not pairs:
            return 0
        removed = await self.store.purge_many(pairs)
        # Members carry a 4-byte author fingerprint, so another followed
        # author may (rarely) share it: put back what is not this author's.
        authors = await self._authors_of([m for members in removed for m in members])
        wrongly: dict[tuple[int, int], list[bytes]] = {}
        for (user_id, author_id), members in zip(pairs, removed):
            for member in members:
                if authors.get(member, author_id) != author_id:
                    wrongly.setdefault((user_id, authors[member]), []).append(member)
        # Put back unless that author is unfollowed too (its mark is checked).
        await self.store.add_members_many([(user, author, members) for (user, author), members in wrongly.items()])
        return sum(len(members) for members in removed) - sum(len(members) for members in wrongly.values())

    async def ApplyAuthorStatus(
        self, request_iterator: AsyncIterator, context
    ) -> timeline_pb2.ApplyAuthorStatusResponse:
        timelines = copied = 0
        members: list[bytes] | None = None
        async for request in request_iterator:
            if request.author_id <= 0:
                raise invalid_argument("author_id", f"must be a positive id, got {request.author_id}")
            user_ids = _checked_user_ids(request.user_ids)
            to_copy: list[bytes] = []
            if not request.celebrity:
                if members is None:
                    members = await self.store.author_index_members(request.author_id)
                to_copy = members
            copied += await self.store.apply_author_status(request.author_id, user_ids, to_copy)
            timelines += len(user_ids)
        return timeline_pb2.ApplyAuthorStatusResponse(timelines=timelines, copied=copied)

    # --- delivery checks (internal: operators and benchmarks) -------------------

    async def FindMissingEntries(self, request, context) -> timeline_pb2.FindMissingEntriesResponse:
        # Validated whole before anything is read, like a delivery batch.
        lookups = [
            (
                _checked_entry(lookup.entry, f"lookups[{i}].entry"),
                _checked_user_ids(lookup.user_ids, f"lookups[{i}].user_ids"),
            )
            for i, lookup in enumerate(request.lookups)
        ]
        total = sum(len(user_ids) for _, user_ids in lookups)
        if total > MAX_USERS_PER_BATCH:
            raise invalid_argument("lookups", f"at most {MAX_USERS_PER_BATCH} user ids in all, got {total}")
        held = iter(await self.store.holding([(entry, u) for entry, user_ids in lookups for u in user_ids]))
        missing = [
            timeline_pb2.MissingEntry(user_ids=[u for u in user_ids if not next(held)]) for _, user_ids in lookups
        ]
        return timeline_pb2.FindMissingEntriesResponse(missing=missing)

    async def _authors_of(self, members: list[bytes]) -> dict[bytes, int]:
        """The author of each member's post, for the posts that still exist."""
        if not members:
            return {}
        stored = {m: decode_member(m).post_id for m in members}
        posts = await self._hydrate([Stored(p, m) for m, p in stored.items()], viewer=0)
        return {m: int(posts[p].author_id) for m, p in stored.items() if p in posts}

    # --- the read path --------------------------------------------------------

    async def GetHomeTimeline(self, request, context) -> timeline_pb2.GetHomeTimelineResponse:
        caller = caller_id(context)
        size = page_size(request.page_size)
        cursor = int_cursor(request.page_token, "before")
        try:
            page, token = await self._materialized_page(caller, size, cursor)
            READS.labels("materialized").inc()
        except _REDIS_DOWN as exc:
            # Degraded, not down: the same page straight from the posts store.
            log.warning(
                "timeline store unreachable; reading from the posts store",
                extra={"user_id": caller, "error": error_text(exc)},
            )
            page, token = await self._pulled_page(caller, size, cursor)
            READS.labels("pulled").inc()
        page = await self._with_engagement(page, caller)
        return timeline_pb2.GetHomeTimelineResponse(posts=page, next_page_token=token)

    async def _materialized_page(self, caller: int, size: int, cursor: int | None):
        # One extra per source tells "exactly `need` left" from "more left".
        keys, source_pages, hidden = await self._first_round(caller, lex_start(cursor), size + 1)
        CELEBRITY_MERGE.observe(len(keys) - 2)
        page: list = []
        # An original reached directly and through reposts, or through several
        # reposts, is shown once across all pages: at its oldest occurrence
        # (entries.repeated_reposts). What the page already shows is also
        # tracked, for entries stored before members carried originals.
        shown: set[str] = set()
        has_more = False
        for round_number in range(MAX_READ_ROUNDS):
            need = size - len(page)
            limit = need + 1
            if round_number > 0:
                source_pages = await self.store.newest_from(keys, lex_start(cursor), limit)
            plan = plan_round(source_pages, need, limit)
            if not plan.candidates:
                has_more = False
                break
            found, repeated = await self._hydrate_once_each(keys, plan.candidates, caller, hidden)
            _extend_page(page, shown, [e for e in plan.candidates if e.post_id not in repeated], found, hidden)
            self._forget_deleted(caller, [e.member for e in plan.candidates if e.post_id not in found])
            self._upgrade_legacy(caller, plan.candidates, found)
            cursor = plan.next_cursor
            has_more = plan.has_more
            if len(page) >= size or not has_more:
                break

        # The cursor is the oldest post id examined: when the page is full that
        # is the last post returned; ids are unique and strictly ordered, so
        # paging below it neither skips nor repeats, however the timeline changes.
        return page, (encode_token({"before": cursor}) if has_more else "")

    async def _hydrate_once_each(
        self, keys: list[str], candidates: list[Stored], caller: int, hidden: frozenset[int]
    ) -> tuple[dict[int, posts_pb2.Post], set[int]]:
        """The candidates hydrated, and the pure reposts among them to leave
        out because the reader is shown their original at an earlier
        occurrence in any of `keys` (one more Redis round trip, only when the
        candidates hold reposts)."""
        found, earlier = await asyncio.gather(
            self._hydrate(candidates, caller), self.store.earlier_occurrences(keys, candidates)
        )
        if not earlier:
            return found, set()
        occurrences = [e for members in earlier.values() for e in members if e.post_id not in found]
        if occurrences:
            found = {**found, **await self._hydrate(occurrences, caller)}

        def visible(post_id: int) -> bool:
            post = found.get(post_id)
            return post is not None and not safety.hides_post(post, hidden)

        return found, repeated_reposts(candidates, earlier, visible)

    async def _first_round(
        self, caller: int, start: bytes, limit: int
    ) -> tuple[list[str], list[list[bytes]], frozenset[int]]:
        """The keys a home read merges (the reader's timeline, their own
        posts, each followed celebrity's index), each one's newest `limit`
        members from `start` on, and the authors hidden from the reader.
        Usually one round trip: the reader's own keys, the cached celebrity
        list, the reader's hidden-authors version, and the indexes of the
        celebrities the reader's last read merged; a second only for
        celebrities that read did not merge."""
        version_read = self.hidden_authors.version_read(caller) if self.hidden_authors is not None else None
        first = await self.store.first_read(
            caller, start, limit, self._last_celebrities.get(caller, ()), [version_read] if version_read else []
        )
        hidden = await self._hidden_for(caller, first.also[0] if version_read else safety.UNREAD)
        celebrities = [c for c in await self._celebrities(caller, first.celebrities, first.generation) if c != caller]
        self._remember_celebrities(caller, celebrities)
        keys = [home_key(caller), author_key(caller), *(author_key(c) for c in celebrities)]
        if not first.active:
            await self._rebuild(caller)
            return keys, await self.store.newest_from(keys, start, limit), hidden
        await self._touch(caller)
        pages = dict(first.celebrity_pages)
        unread = [c for c in celebrities if c not in pages]
        pages.update(zip(unread, await self.store.newest_from([author_key(c) for c in unread], start, limit)))
        return keys, first.pages + [pages[c] for c in celebrities], hidden

    def _remember_celebrities(self, caller: int, celebrities: list[int]) -> None:
        if len(self._last_celebrities) > 200_000:
            self._last_celebrities.clear()
        self._last_celebrities[caller] = celebrities

    async def _ensure_active(self, caller: int) -> None:
        if await self.store.is_active(caller):
            await self._touch(caller)
        else:
            await self._rebuild(caller)

    async def _touch(self, caller: int) -> None:
        """Renews the reader's activity (at most once per touch period per process)."""
        now = time.monotonic()
        last = self._touched.get(caller)
        if last is not None and now - last < self.touch_seconds:
            return
        if len(self._touched) > 200_000:
            self._touched.clear()
        self._touched[caller] = now
        await self.store.mark_active(caller, self.active_seconds)

    async def _rebuild(self, caller: int) -> None:
        """A returning (or first-time) reader: their timeline is rebuilt from
        their followed authors' newest posts in the posts store.

        The activity mark goes first: from then on fanout delivers to this
        reader, and whatever it delivered before is already in the posts
        store, so the rebuild misses nothing either way (adds are idempotent).
        """
        started = time.perf_counter()
        await self.store.mark_active(caller, self.active_seconds)
        self._touched[caller] = time.monotonic()
        followees, celebrities = await self._followees(caller)
        # Celebrities are merged at read time, not materialized. Own posts
        # are read from the reader's author index too; they are copied in
        # as well so a lost author index does not hide them (a read shows
        # each post once whichever sources hold it).
        authors = [caller, *(a for a in followees if a not in celebrities and a != caller)]
        refs = await self._newest_posts_of(
            authors, before=None, per_author=REBUILD_PER_AUTHOR, limit=self.settings.timeline_max_entries
        )
        # Pure reposts are stored with their original (a read shows each
        # original once), as the posts store tells; a deleted post among
        # them is dropped by the read that finds it.
        members = [encode_member(r.post_id, r.author_id, r.repost_of_id) for r in refs]
        await self.store.rebuild(caller, members, self.active_seconds)
        REBUILD_SECONDS.observe(time.perf_counter() - started)
        log.info("rebuilt timeline", extra={"user_id": caller, "authors": len(authors), "entries": len(refs)})

    async def _pulled_page(self, caller: int, size: int, cursor: int | None):
        """One page by fan-out-on-read: everyone followed (celebrities too)
        and the reader's own posts, merged newest first from the posts store."""
        (followees, _), hidden = await asyncio.gather(self._followees(caller), self._hidden_for(caller))
        page: list = []
        shown: set[str] = set()
        has_more = False
        for _ in range(MAX_READ_ROUNDS):
            need = size - len(page)
            refs = await self._newest_posts_of([caller, *followees], before=cursor, per_author=need + 1, limit=need + 1)
            candidates = [Stored(r.post_id, b"") for r in refs[:need]]
            if not candidates:
                has_more = False
                break
            _extend_page(page, shown, candidates, await self._hydrate(candidates, caller), hidden)
            cursor = candidates[-1].post_id
            has_more = len(refs) > need
            if len(page) >= size or not has_more:
                break
        return page, (encode_token({"before": cursor}) if has_more else "")

    async def _followees(self, caller: int) -> tuple[list[int], set[int]]:
        try:
            reply = await clients.graph().ListFolloweeIds(
                graph_pb2.ListFolloweeIdsRequest(user_id=str(caller)), timeout=self.settings.rpc_timeout_seconds
            )
        except grpc.aio.AioRpcError as err:
            log.warning("graph failed; cannot list followees", extra={"user_id": caller, "code": err.code().name})
            raise unavailable("the timeline is temporarily unavailable; retry shortly") from err
        return list(reply.followee_ids), set(reply.celebrity_ids)

    async def _newest_posts_of(
        self, authors: list[int], *, before: int | None, per_author: int, limit: int
    ) -> list[posts_pb2.PostRef]:
        if not authors:
            return []
        try:
            reply = await clients.posts().ListAuthorsPostIds(
                posts_pb2.ListAuthorsPostIdsRequest(
                    author_ids=authors,
                    before_post_id=before or 0,
                    per_author_limit=min(per_author, 800),
                    limit=min(limit, 800),
                ),
                timeout=self.settings.rpc_timeout_seconds,
            )
        except grpc.aio.AioRpcError as err:
            log.warning("posts failed; cannot list authors' posts", extra={"code": err.code().name})
            raise unavailable("the timeline is temporarily unavailable; retry shortly") from err
        return list(reply.posts)

    async def WatchHomeTimeline(self, request, context):
        caller = caller_id(context)
        # The stream ends when the token it was opened with expires.
        deadline = stream_deadline(context)
        celebrities = await self._followed_celebrities(caller)
        channels = [home_channel(caller), author_channel(caller)]
        channels += [author_channel(c) for c in celebrities if c != caller]
        # The keys a home read merges: a repost of an original they already
        # hold (earlier) is not pushed, as a read would not show it.
        sources = [home_key(caller), author_key(caller), *(author_key(c) for c in celebrities if c != caller)]
        seen: deque[int] = deque(maxlen=1000)
        async with self.hub.listen(channels) as queue:
            # A reader watching live is active: fanout must deliver (and so
            # publish) to them. Subscribed first, so nothing falls in between.
            await self._ensure_active(caller)
            # Headers now, not with the first post: the client (and Envoy) learn
            # at once that the stream is open and subscribed.
            await context.send_initial_metadata(())
            log.info("watch opened", extra={"user_id": caller, "channels": len(channels)})
            while True:
                member = await deadline.next_message(queue, self.heartbeat_seconds)
                if member is None:
                    await self._touch(caller)
                    yield timeline_pb2.WatchHomeTimelineResponse()
                    continue
                try:
                    entry = decode_member(member)
                except ValueError:
                    continue
                if entry.post_id in seen:
                    continue  # e.g. a retried delivery
                seen.append(entry.post_id)
                hidden = await self._hidden_for(caller)
                found, repeated = await self._hydrate_once_each(sources, [entry], caller, hidden)
                post = found.get(entry.post_id)
                if post is not None and not repeated and not safety.hides_post(post, hidden):
                    post = (await self._with_engagement([post], caller))[0]
                    yield timeline_pb2.WatchHomeTimelineResponse(post=post)

    async def _followed_celebrities(self, caller: int) -> list[int]:
        return await self._celebrities(caller, *await self.store.cached_celebrities(caller))

    async def _celebrities(self, caller: int, cached: list[int] | None, generation: bytes) -> list[int]:
        """The cached list when there is one (and caching is on); otherwise
        graph's answer, cached under `generation` (read with the cache miss),
        or none when graph cannot answer (and nothing is cached then)."""
        if cached is not None and self.celebrity_cache_seconds > 0:
            return cached
        celebrities = await self._ask_graph_for_celebrities(caller)
        if celebrities is None:
            return []
        if self.celebrity_cache_seconds > 0:
            await self.store.cache_celebrities(caller, celebrities, self.celebrity_cache_seconds, generation)
        return celebrities

    async def _ask_graph_for_celebrities(self, caller: int) -> list[int] | None:
        """None when graph cannot answer (nothing is cached then)."""
        try:
            reply = await clients.graph().ListFollowedCelebrities(
                graph_pb2.ListFollowedCelebritiesRequest(user_id=str(caller)),
                timeout=self.settings.rpc_timeout_seconds,
            )
        except grpc.aio.AioRpcError as err:
            # Serve the materialized timeline rather than nothing: only
            # celebrity posts are missing while graph cannot answer.
            log.warning(
                "graph failed; serving without celebrity merge",
                extra={"user_id": caller, "code": err.code().name, "details": err.details()},
            )
            return None
        return list(reply.celebrity_ids)

    async def _hidden_for(self, caller: int, version_reply=safety.UNREAD) -> frozenset[int]:
        """Authors the reader must not be shown: one cached lookup per read
        (`version_reply`: see HiddenAuthors.of)."""
        if self.hidden_authors is None:
            return frozenset()
        return (await self.hidden_authors.of(caller, version_reply)).ids()

    async def _with_engagement(self, posts: list[posts_pb2.Post], viewer: int) -> list[posts_pb2.Post]:
        """Copies of the (shared, cached) posts with fresh counts and the
        viewer's liked_by_me; never cached, so a like shows on the next read."""
        copies = []
        for post in posts:
            copy = posts_pb2.Post()
            copy.CopyFrom(post)
            copies.append(copy)
        await engagement_overlay.apply(copies, viewer, self.engagement_reads)
        return copies

    async def _hydrate(self, entries: list[Stored], viewer: int) -> dict[int, posts_pb2.Post]:
        """Live posts by id, without engagement (viewer-independent, so they
        can be shared through the cache); deleted or unknown ones are absent."""
        found, missing = self.posts_cache.get_many(e.post_id for e in entries)
        POST_CACHE.labels("hit").inc(len(found))
        if not missing:
            return found
        POST_CACHE.labels("miss").inc(len(missing))
        missing = list(dict.fromkeys(missing))
        chunks = [missing[i : i + HYDRATE_BATCH] for i in range(0, len(missing), HYDRATE_BATCH)]
        try:
            replies = await asyncio.gather(
                *(
                    clients.posts().BatchGetPosts(
                        posts_pb2.BatchGetPostsRequest(post_ids=[str(p) for p in chunk], skip_engagement=True),
                        timeout=self.settings.rpc_timeout_seconds,
                    )
                    for chunk in chunks
                )
            )
        except grpc.aio.AioRpcError as err:
            log.warning("posts hydration failed", extra={"user_id": viewer, "code": err.code().name})
            raise unavailable("posts are temporarily unavailable; retry shortly") from err
        fetched = {int(post.id): post for reply in replies for post in reply.posts}
        self.posts_cache.put_many(fetched.items())
        found.update(fetched)
        return found

    def _forget_deleted(self, user_id: int, members: list[bytes]) -> None:
        """Drops deleted posts from the reader's timeline without delaying the reply."""
        if not members:
            return
        self._in_background(self._drop_quietly(user_id, members))

    def _upgrade_legacy(self, user_id: int, candidates: list[Stored], found: dict[int, posts_pb2.Post]) -> None:
        """Pure reposts stored before members carried their original (found
        out by hydrating them) are stored again with it, in the reader's
        timeline and the reposter's index, without delaying the reply: from
        then on every page shows their original once."""
        upgrades = []
        for entry in candidates:
            post = found.get(entry.post_id)
            if post is None or entry.original_id or not _pure_repost_of(post):
                continue
            author_id = int(post.author_id)
            upgraded = encode_member(entry.post_id, author_id, _pure_repost_of(post))
            upgrades += [(home_key(user_id), entry.member, upgraded), (author_key(author_id), entry.member, upgraded)]
        if upgrades:
            self._in_background(self._upgrade_quietly(user_id, upgrades))

    async def _upgrade_quietly(self, user_id: int, upgrades: list[tuple[str, bytes, bytes]]) -> None:
        try:
            replaced = await self.store.replace_members(upgrades)
            log.info("stored reposts with their originals", extra={"user_id": user_id, "count": replaced})
        except Exception:
            # Harmless: the next read finds them again.
            log.warning("could not store reposts with their originals", extra={"user_id": user_id}, exc_info=True)

    def _in_background(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _drop_quietly(self, user_id: int, members: list[bytes]) -> None:
        try:
            await self.store.drop_from_home(user_id, members)
            log.info("dropped deleted posts from timeline", extra={"user_id": user_id, "count": len(members)})
        except Exception:
            # Harmless: the next read filters them again.
            log.warning("could not drop deleted posts", extra={"user_id": user_id}, exc_info=True)


class _PostCache:
    """Two TTL caches: one for plain posts, a shorter one for posts that embed another."""

    def __init__(self, plain_seconds: float, embedding_seconds: float, max_entries: int = 100_000) -> None:
        self._plain: TtlCache[int, posts_pb2.Post] = TtlCache(plain_seconds, max_entries)
        self._embedding: TtlCache[int, posts_pb2.Post] = TtlCache(embedding_seconds, max_entries)

    def get_many(self, post_ids) -> tuple[dict[int, posts_pb2.Post], list[int]]:
        found, missing = self._plain.get_many(post_ids)
        if missing:
            more, missing = self._embedding.get_many(missing)
            found.update(more)
        return found, missing

    def put_many(self, items) -> None:
        items = list(items)
        self._plain.put_many((k, p) for k, p in items if not p.repost_of_id)
        self._embedding.put_many((k, p) for k, p in items if p.repost_of_id)

    def discard(self, post_id: int) -> None:
        self._plain.discard(post_id)
        self._embedding.discard(post_id)


def _extend_page(
    page: list, shown: set[str], candidates: list[Stored], found: dict[int, posts_pb2.Post], hidden: frozenset[int]
) -> None:
    """Appends the live candidates, newest first, that the page does not show
    yet, leaving out those by (or reposting) authors hidden from the reader.
    Hidden entries stay stored: an unblock or a mute's end shows them again."""
    for entry in candidates:
        post = found.get(entry.post_id)
        if post is None or safety.hides_post(post, hidden):
            continue
        if _shown_first_time(post, shown):
            page.append(post)


def _pure_repost_of(post: posts_pb2.Post) -> int:
    """The original a pure repost (no text of its own) shows, else 0."""
    return int(post.repost_of_id) if post.repost_of_id and not post.text else 0


def _shown_first_time(post: posts_pb2.Post, shown: set[str]) -> bool:
    """Records what the post shows; False when the page already shows it."""
    content = post.repost_of_id if (post.repost_of_id and not post.text) else post.id
    if content in shown:
        return False
    shown.add(content)
    return True
