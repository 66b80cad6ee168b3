"""TimelineService: materialized home timelines, author indexes, celebrity merge."""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import AsyncIterator

import grpc

from aviary.graph.v1 import graph_pb2
from aviary.posts.v1 import posts_pb2
from aviary.timeline.v1 import timeline_pb2, timeline_pb2_grpc
from services.kit import clients, engagement_overlay
from services.kit.auth import caller_id
from services.kit.cache import TtlCache
from services.kit.config import Settings, env_float
from services.kit.errors import invalid_argument, unavailable
from services.kit.live import LiveHub
from services.kit.paging import encode_token, int_cursor, page_size
from services.timeline.entries import Entry, author_key, decode_member, home_key, lex_upper_bound, plan_round
from services.timeline.live import author_channel, home_channel
from services.timeline.store import TimelineStore

log = logging.getLogger(__name__)

ADD = timeline_pb2.DELIVERY_OP_ADD
REMOVE = timeline_pb2.DELIVERY_OP_REMOVE
MAX_USERS_PER_BATCH = 5000
# A page normally fills in one round; more rounds only when many of the
# candidates were deleted. The bound keeps a pathological timeline from
# turning one read into an unbounded scan (the page then comes back short,
# with a token that resumes below what was examined).
MAX_READ_ROUNDS = 8


def _checked_op(op: int) -> int:
    if op not in (ADD, REMOVE):
        raise invalid_argument("op", "must be DELIVERY_OP_ADD or DELIVERY_OP_REMOVE")
    return op


def _checked_entry(entry: timeline_pb2.TimelineEntry) -> Entry:
    if entry.post_id <= 0:
        raise invalid_argument("entry.post_id", f"must be a positive id, got {entry.post_id}")
    if entry.author_id <= 0:
        raise invalid_argument("entry.author_id", f"must be a positive id, got {entry.author_id}")
    return Entry(entry.post_id, entry.author_id)


def _checked_user_ids(user_ids) -> list[int]:
    if len(user_ids) > MAX_USERS_PER_BATCH:
        raise invalid_argument("user_ids", f"at most {MAX_USERS_PER_BATCH} per batch, got {len(user_ids)}")
    for i, user_id in enumerate(user_ids):
        if user_id <= 0:
            raise invalid_argument(f"user_ids[{i}]", f"must be a positive id, got {user_id}")
    return list(user_ids)


def _checked_pair(user_id: int, author_id: int) -> tuple[int, int]:
    if user_id <= 0:
        raise invalid_argument("user_id", f"must be a positive id, got {user_id}")
    if author_id <= 0:
        raise invalid_argument("author_id", f"must be a positive id, got {author_id}")
    return user_id, author_id


class TimelineServicer(timeline_pb2_grpc.TimelineServiceServicer):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # How long a reader's followed-celebrity list is reused. A follow or
        # unfollow by the reader clears it at once (Backfill/PurgeAuthor); the
        # TTL only bounds how late an author crossing the celebrity threshold
        # is noticed. Saves a graph call (and a Cassandra read) on most reads.
        self.celebrity_cache_seconds = env_float("AVIARY_TIMELINE_CELEBRITY_CACHE_SECONDS", 5.0)
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
            plain_seconds=env_float("AVIARY_TIMELINE_POST_CACHE_SECONDS", 30.0),
            embedding_seconds=env_float("AVIARY_TIMELINE_REPOST_CACHE_SECONDS", 5.0),
        )
        self.store: TimelineStore | None = None
        self.hub: LiveHub | None = None
        # A line without a post every so often keeps idle live streams open
        # through proxies and tells clients the stream is alive.
        self.heartbeat_seconds = env_float("AVIARY_TIMELINE_WATCH_HEARTBEAT_SECONDS", 25.0)
        # Lazy clean-ups in flight; held so they are not garbage-collected.
        self._cleanups: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.store = TimelineStore(self.settings)
        await self._wait_for_redis()
        self.hub = LiveHub(self.store.client)

    async def _wait_for_redis(self, attempts: int = 30) -> None:
        # Backends may still be starting next to us; serve only once Redis answers.
        for attempt in range(1, attempts + 1):
            try:
                await self.store.ping()
                return
            except Exception:
                if attempt == attempts:
                    raise
                log.warning("redis not reachable yet; retrying", extra={"attempt": attempt})
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self.hub is not None:
            await self.hub.close()
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
        if self.store is not None:
            await self.store.close()
        await clients.close_all()

    # --- writes (internal, called by the fanout worker) ---------------------

    async def DeliverEntries(self, request_iterator: AsyncIterator, context) -> timeline_pb2.DeliverEntriesResponse:
        batches = timelines = 0
        async for request in request_iterator:
            # Each batch is validated whole before any of it is written.
            op = _checked_op(request.op)
            entry = _checked_entry(request.entry)
            user_ids = _checked_user_ids(request.user_ids)
            if op == REMOVE:
                self.posts_cache.discard(entry.post_id)
            if user_ids:
                if op == ADD:
                    await self.store.add_to_homes(entry, user_ids)
                else:
                    await self.store.remove_from_homes(entry, user_ids)
            batches += 1
            timelines += len(user_ids)
        return timeline_pb2.DeliverEntriesResponse(batches=batches, timelines=timelines)

    async def IndexAuthorPost(self, request, context) -> timeline_pb2.IndexAuthorPostResponse:
        op = _checked_op(request.op)
        entry = _checked_entry(request.entry)
        if op == ADD:
            await self.store.add_to_author_index(entry)
        else:
            self.posts_cache.discard(entry.post_id)
            await self.store.remove_from_author_index(entry)
        return timeline_pb2.IndexAuthorPostResponse()

    async def BackfillAuthor(self, request, context) -> timeline_pb2.BackfillAuthorResponse:
        user_id, author_id = _checked_pair(request.user_id, request.author_id)
        # A celebrity's posts are merged at read time: copying them would
        # materialize exactly what the hybrid model avoids.
        stats = await clients.graph().GetFollowStats(
            graph_pb2.GetFollowStatsRequest(user_id=str(author_id)), timeout=self.settings.rpc_timeout_seconds
        )
        copied = await self.store.backfill(user_id, author_id, copy=not stats.celebrity)
        return timeline_pb2.BackfillAuthorResponse(copied=copied)

    async def PurgeAuthor(self, request, context) -> timeline_pb2.PurgeAuthorResponse:
        user_id, author_id = _checked_pair(request.user_id, request.author_id)
        removed = await self.store.purge_author(user_id, author_id)
        return timeline_pb2.PurgeAuthorResponse(removed=removed)

    # --- the read path --------------------------------------------------------

    async def GetHomeTimeline(self, request, context) -> timeline_pb2.GetHomeTimelineResponse:
        caller = caller_id(context)
        size = page_size(request.page_size)
        cursor = int_cursor(request.page_token, "before")
        keys = await self._source_keys(caller)

        page: list = []
        # What the page already shows: a post reached both directly and
        # through reposts (or through several reposts) is shown once, at its
        # newest appearance, attributed to whoever brought it there.
        shown: set[str] = set()
        has_more = False
        for _ in range(MAX_READ_ROUNDS):
            need = size - len(page)
            # One extra per source tells "exactly `need` left" from "more left".
            limit = need + 1
            source_pages = await self.store.newest_below(keys, lex_upper_bound(cursor), limit)
            plan = plan_round(source_pages, need, limit)
            if not plan.candidates:
                has_more = False
                break
            found = await self._hydrate(plan.candidates, caller)
            for entry in plan.candidates:
                post = found.get(entry.post_id)
                if post is not None and _shown_first_time(post, shown):
                    page.append(post)
            self._forget_deleted(caller, [e for e in plan.candidates if e.post_id not in found])
            cursor = plan.next_cursor
            has_more = plan.has_more
            if len(page) >= size or not has_more:
                break

        # The cursor is the oldest post id examined: when the page is full that
        # is the last post returned; ids are unique and strictly ordered, so
        # paging below it neither skips nor repeats, however the timeline changes.
        token = encode_token({"before": cursor}) if has_more else ""
        page = await self._with_engagement(page, caller)
        return timeline_pb2.GetHomeTimelineResponse(posts=page, next_page_token=token)

    async def WatchHomeTimeline(self, request, context):
        caller = caller_id(context)
        celebrities = await self._followed_celebrities(caller)
        channels = [home_channel(caller), author_channel(caller)]
        channels += [author_channel(c) for c in celebrities if c != caller]
        seen: deque[int] = deque(maxlen=1000)
        async with self.hub.listen(channels) as queue:
            # Headers now, not with the first post: the client (and Envoy) learn
            # at once that the stream is open and subscribed.
            await context.send_initial_metadata(())
            log.info("watch opened", extra={"user_id": caller, "channels": len(channels)})
            while True:
                try:
                    member = await asyncio.wait_for(queue.get(), timeout=self.heartbeat_seconds)
                except asyncio.TimeoutError:
                    yield timeline_pb2.WatchHomeTimelineResponse()
                    continue
                try:
                    entry = decode_member(member)
                except ValueError:
                    continue
                if entry.post_id in seen:
                    continue  # e.g. a retried delivery
                seen.append(entry.post_id)
                post = (await self._hydrate([entry], caller)).get(entry.post_id)
                if post is not None:
                    post = (await self._with_engagement([post], caller))[0]
                    yield timeline_pb2.WatchHomeTimelineResponse(post=post)

    async def _source_keys(self, caller: int) -> list[str]:
        """The caller's timeline, own posts, and each followed celebrity's index."""
        keys = [home_key(caller), author_key(caller)]
        celebrities = await self._followed_celebrities(caller)
        keys.extend(author_key(c) for c in celebrities if c != caller)
        return keys

    async def _followed_celebrities(self, caller: int) -> list[int]:
        if self.celebrity_cache_seconds > 0:
            cached = await self.store.cached_celebrities(caller)
            if cached is not None:
                return cached
        celebrities = await self._ask_graph_for_celebrities(caller)
        if celebrities is not None and self.celebrity_cache_seconds > 0:
            await self.store.cache_celebrities(caller, celebrities, self.celebrity_cache_seconds)
        return celebrities or []

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
            log.warning("graph failed; serving without celebrity merge",
                        extra={"user_id": caller, "code": err.code().name, "details": err.details()})
            return None
        return list(reply.celebrity_ids)

    async def _with_engagement(self, posts: list[posts_pb2.Post], viewer: int) -> list[posts_pb2.Post]:
        """Copies of the (shared, cached) posts with fresh counts and the
        viewer's liked_by_me; never cached, so a like shows on the next read."""
        copies = []
        for post in posts:
            copy = posts_pb2.Post()
            copy.CopyFrom(post)
            copies.append(copy)
        await engagement_overlay.apply(copies, viewer, self.settings.rpc_timeout_seconds)
        return copies

    async def _hydrate(self, entries: list[Entry], viewer: int) -> dict[int, posts_pb2.Post]:
        """Live posts by id, without engagement (viewer-independent, so they
        can be shared through the cache); deleted or unknown ones are absent."""
        found, missing = self.posts_cache.get_many(e.post_id for e in entries)
        if not missing:
            return found
        try:
            reply = await clients.posts().BatchGetPosts(
                posts_pb2.BatchGetPostsRequest(post_ids=[str(p) for p in missing], skip_engagement=True),
                timeout=self.settings.rpc_timeout_seconds,
            )
        except grpc.aio.AioRpcError as err:
            log.warning("posts hydration failed", extra={"user_id": viewer, "code": err.code().name})
            raise unavailable("posts are temporarily unavailable; retry shortly") from err
        fetched = {int(post.id): post for post in reply.posts}
        self.posts_cache.put_many(fetched.items())
        found.update(fetched)
        return found

    def _forget_deleted(self, user_id: int, entries: list[Entry]) -> None:
        """Drops deleted posts from the reader's timeline without delaying the reply."""
        if not entries:
            return
        task = asyncio.create_task(self._drop_quietly(user_id, entries))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _drop_quietly(self, user_id: int, entries: list[Entry]) -> None:
        try:
            await self.store.drop_from_home(user_id, entries)
            log.info("dropped deleted posts from timeline", extra={"user_id": user_id, "count": len(entries)})
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


def _shown_first_time(post: posts_pb2.Post, shown: set[str]) -> bool:
    """Records what the post shows; False when the page already shows it."""
    content = post.repost_of_id if (post.repost_of_id and not post.text) else post.id
    if content in shown:
        return False
    shown.add(content)
    return True
