"""FeedService: the mixed home feed.

A first page builds a ranking: the home timeline (through the timeline
service, as the reader) and the reader's feed signals (recommendations:
product candidates and author affinities) are fetched in parallel; the
signals get a short deadline of their own, so a slow or dead recommendations
service costs at most that deadline and the feed is served with posts only.
Posts are ranked (ranking.py), products hydrated from the catalog (active and
in stock only) and put at every Nth slot, and the whole ranking is cached in
Redis for a short TTL. Later pages read their slice of that ranking, so
scrolling never re-ranks and never repeats an item; each page gets fresh
engagement counts and drops posts deleted since the ranking was built.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from google.protobuf.message import DecodeError
from prometheus_client import Counter, Histogram

from aviary.catalog.v1 import catalog_pb2
from aviary.events.v1 import events_pb2
from aviary.feed.v1 import feed_pb2, feed_pb2_grpc
from aviary.posts.v1 import posts_pb2
from aviary.recommendations.v1 import recommendations_pb2
from aviary.timeline.v1 import timeline_pb2
from services.feed import ranking
from services.feed.settings import FeedSettings
from services.feed.store import FeedCache
from services.kit.peers import clients, engagement_overlay, engagement_reads, safety
from services.kit.server import startup
from services.kit.stores import redis_bulk, redis_client
from services.kit.stores.cache import TtlCache
from services.kit.stores.redis_epoch import RedisEpoch
from services.kit.server.auth import caller_id
from services.kit.server.errors import failed_precondition, unavailable
from services.kit.server.ids import IdGenerator
from services.kit.events.consumer import GATHER_LATER_MS, ConsumerLoop, PoisonRecord
from services.kit.events.kafka import POSTS_TOPIC
from services.kit.server.paging import cursor_int, decode_token, encode_token, page_size
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

CONSUMER_GROUP = "feed"
# The timeline serves at most this many posts per call.
TIMELINE_PAGE = 100

PAGES = Counter(
    "aviary_feed_pages_total", "Feed pages served, by where the ranking came from", ["source"]
)  # built | reused | cached | uncached (Redis down)
SIGNALS = Counter(
    "aviary_feed_signals_total", "Recommendation signal fetches, by outcome", ["result"]
)  # ok | timeout | error
BUILD_SECONDS = Histogram(
    "aviary_feed_build_seconds",
    "Time to build and cache one ranking",
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2),
)
_REDIS_DOWN = redis_client.UNREACHABLE


class FeedServicer(feed_pb2_grpc.FeedServiceServicer):
    def __init__(self, settings: FeedSettings) -> None:
        self.settings = settings
        self.redis = redis_client.client(settings)
        self.bulk_redis = redis_bulk.BulkRedis(settings.redis_url)
        self.cache = FeedCache(
            self.redis,
            self.bulk_redis,
            ttl_seconds=settings.cache_seconds,
            # A first page within this many seconds of the last build shows the
            # same ranking (a double refresh costs nothing); later, it re-ranks.
            reuse_seconds=settings.reuse_seconds,
            max_age_seconds=settings.max_age_seconds,
        )
        self.product_every = settings.product_every
        self.max_posts = max(1, settings.max_posts)
        self.signals_timeout = settings.signals_timeout_seconds
        self.products_timeout = settings.products_timeout_seconds
        # Hydrated products, shared by every reader's rankings: candidates are
        # mostly the same popular and new products, and a few seconds of stale
        # price or stock in a feed is harmless (checkout re-reads both).
        self.products_cache: TtlCache[str, catalog_pb2.Product] = TtlCache(
            settings.product_cache_seconds, max_entries=20_000
        )
        self.weights = ranking.Weights(
            recency=settings.weight_recency,
            affinity=settings.weight_affinity,
            engagement=settings.weight_engagement,
            half_life_seconds=settings.recency_half_life_seconds,
        )
        # Cached pages get current counts and likedByMe from engagement (its
        # Redis hashes, or a call); off, they show the counts as of the ranking.
        self.fresh_counts = settings.fresh_counts
        self.ids = IdGenerator(settings.worker_id)
        # Failovers and restarts of Redis, read at most once a second: for
        # what is cached under it here and in engagement's hashes.
        redis_epoch = RedisEpoch(self.redis)
        # A ranking is built from the home timeline, which leaves hidden
        # authors out; a cached one may predate a block or mute: filtered
        # again when served.
        self.hidden_authors = safety.HiddenAuthors(
            self.redis, timeout=settings.rpc_timeout_seconds, epoch=redis_epoch, bulk=self.bulk_redis
        )
        # Pages' counts and the viewer's likes, from engagement's hashes.
        self.engagement_reads = engagement_reads.EngagementReads(self.bulk_redis, redis_epoch)
        self.deletions = ConsumerLoop(
            settings.kafka_bootstrap, CONSUMER_GROUP, [POSTS_TOPIC], self._remember_deletion, gather_ms=GATHER_LATER_MS
        )

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await startup.retry_until_up(self.redis.ping, "redis")

    async def stop(self) -> None:
        await self.bulk_redis.close()
        await self.redis.aclose()
        await clients.close_all()

    async def consume_deletions(self) -> None:
        await self.deletions.run()

    async def _remember_deletion(self, topic: str, key: bytes | None, value: bytes) -> None:
        try:
            event = events_pb2.PostEvent.FromString(value)
        except DecodeError as exc:
            raise PoisonRecord(f"unreadable post event: {exc}") from exc
        if event.WhichOneof("kind") == "deleted":
            await self.cache.mark_deleted(event.deleted.post_id)

    # -- the read --------------------------------------------------------------

    async def GetFeed(self, request, context) -> feed_pb2.GetFeedResponse:
        user = caller_id(context)
        size = page_size(request.page_size)
        cursor = decode_token(request.page_token)
        try:
            if cursor is None:
                # A page built just now already has current counts.
                response, fresh = await self._first_page(user, size, context)
                if fresh:
                    return response
            else:
                response = await self._page_after(user, cursor, size)
        except _REDIS_DOWN as exc:
            if cursor is not None:
                raise unavailable("the feed cache is not answering; reload the feed") from exc
            # Degraded, not down: rank afresh and serve the first page alone.
            log.warning("feed cache unreachable; serving an uncached first page", extra={"error": error_text(exc)})
            items = await self._build(user, context)
            PAGES.labels("uncached").inc()
            return feed_pb2.GetFeedResponse(items=items[:size])
        await self._refresh_engagement(response.items, user)
        return response

    async def _page_after(self, user: int, cursor: dict, size: int) -> feed_pb2.GetFeedResponse:
        feed_id, offset = _checked_cursor(cursor)
        response = await self._cached_page(user, feed_id, offset, size)
        if response is None:
            raise _expired()
        PAGES.labels("cached").inc()
        return response

    async def _first_page(self, user: int, size: int, context) -> tuple[feed_pb2.GetFeedResponse, bool]:
        """The first page and whether it was built just now."""
        reusable = await self.cache.reusable(user)
        if reusable is not None:
            response = await self._cached_page(user, reusable, 0, size)
            if response is not None:
                PAGES.labels("reused").inc()
                return response, False
        started = time.perf_counter()
        items = await self._build(user, context)
        if not items:
            PAGES.labels("built").inc()
            return feed_pb2.GetFeedResponse(), True
        feed_id = self.ids.next_id()
        await self.cache.save(user, feed_id, [item.SerializeToString() for item in items])
        BUILD_SECONDS.observe(time.perf_counter() - started)
        PAGES.labels("built").inc()
        return _page_of(items[:size], feed_id, 0, len(items)), True

    async def _cached_page(self, user: int, feed_id: int, offset: int, size: int) -> feed_pb2.GetFeedResponse | None:
        cached = await self.cache.page(user, feed_id, offset, size)
        if cached is None:
            return None
        items = [feed_pb2.FeedItem.FromString(raw) for raw in cached.items]
        gone, hidden = await asyncio.gather(self.cache.deleted_among(_post_ids(items)), self.hidden_authors.of(user))
        if gone:
            items = [item for item in items if not _shows_any(item, gone)]
        hidden_ids = hidden.ids()
        if hidden_ids:
            items = [item for item in items if not _by_hidden_author(item, hidden_ids)]
        return _page_of(items, feed_id, offset, cached.total, served=len(cached.items))

    async def _refresh_engagement(self, items, viewer: int) -> None:
        if not self.fresh_counts:
            return
        posts = [item.post for item in items if item.HasField("post")]
        await engagement_overlay.apply(posts, viewer, self.engagement_reads)

    # -- building a ranking ----------------------------------------------------

    async def _build(self, user: int, context) -> list[feed_pb2.FeedItem]:
        signals_task = asyncio.create_task(self._signals(user))
        try:
            posts = await self._home_posts(clients.forward_auth(context))
        except BaseException:
            signals_task.cancel()
            raise
        signals = await signals_task
        products = await self._products(signals)
        affinity = ranking.normalised_affinities((a.author_id, a.score) for a in signals.authors)
        now = time.time()
        posts = ranking.oldest_of_each(posts, _shown_post_id)
        by_id = {int(p.id): p for p in posts}
        ordered = ranking.rank([_signals_of(p, now) for p in posts], affinity, self.weights)
        post_items = [feed_pb2.FeedItem(post=by_id[s.post_id]) for s in ordered]
        return ranking.interleave(post_items, products, self.product_every)

    async def _home_posts(self, auth) -> list[posts_pb2.Post]:
        """The newest home-timeline posts, as the reader sees them."""
        posts: list[posts_pb2.Post] = []
        token = ""
        while len(posts) < self.max_posts:
            want = min(TIMELINE_PAGE, self.max_posts - len(posts))
            try:
                page = await clients.timeline().GetHomeTimeline(
                    timeline_pb2.GetHomeTimelineRequest(page_size=want, page_token=token),
                    metadata=auth,
                    timeout=self.settings.rpc_timeout_seconds,
                )
            except grpc.aio.AioRpcError as exc:
                log.warning("timeline unavailable", extra={"code": exc.code().name, "details": exc.details()})
                raise unavailable(f"cannot read the home timeline right now ({exc.code().name}); try again") from exc
            posts.extend(page.posts)
            token = page.next_page_token
            if not token:
                break
        return posts

    async def _signals(self, user: int) -> recommendations_pb2.GetFeedSignalsResponse:
        """Product candidates and author affinities, or nothing when the
        recommendations service is slow or down: the feed never waits on it
        longer than its own short deadline."""
        try:
            reply = await clients.recommendations().GetFeedSignals(
                recommendations_pb2.GetFeedSignalsRequest(user_id=user), timeout=self.signals_timeout
            )
        except grpc.aio.AioRpcError as exc:
            result = "timeout" if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED else "error"
            SIGNALS.labels(result).inc()
            log.warning(
                "recommendations unavailable; feed without products", extra={"user_id": user, "code": exc.code().name}
            )
            return recommendations_pb2.GetFeedSignalsResponse()
        SIGNALS.labels("ok").inc()
        return reply

    async def _products(self, signals) -> list[feed_pb2.FeedItem]:
        """Candidates hydrated from the catalog (or the cache): active and in
        stock only, in the recommendations' order."""
        if self.product_every == 0 or not signals.products:
            return []
        wanted = [str(c.product_id) for c in signals.products]
        by_id, missing = self.products_cache.get_many(wanted)
        if missing:
            try:
                got = await clients.catalog().BatchGetProducts(
                    catalog_pb2.BatchGetProductsRequest(product_ids=missing), timeout=self.products_timeout
                )
            except grpc.aio.AioRpcError as exc:
                # Without the catalog, only the products still cached.
                log.warning("catalog unavailable; feed with cached products only", extra={"code": exc.code().name})
            else:
                self.products_cache.put_many((p.id, p) for p in got.products)
                by_id.update((p.id, p) for p in got.products)
        items = []
        for candidate in signals.products:
            product = by_id.get(str(candidate.product_id))
            if product is not None and product.active and product.stock > 0:
                items.append(feed_pb2.FeedItem(product=product, reason=candidate.reason))
        return items


def _signals_of(post: posts_pb2.Post, now: float) -> ranking.PostSignals:
    # A repost is ranked by when it arrived but with the original's author
    # and engagement: that is what the reader is shown.
    shown = post.repost_of if post.HasField("repost_of") else post
    return ranking.PostSignals(
        post_id=int(post.id),
        author_id=int(shown.author_id),
        age_seconds=now - post.created_at.ToSeconds(),
        likes=shown.like_count,
        reposts=shown.repost_count,
        replies=shown.reply_count,
    )


def _shown_post_id(post: posts_pb2.Post) -> str:
    """The post a reader is shown: the original for a pure repost."""
    return post.repost_of_id if post.repost_of_id and not post.text else post.id


def _post_ids(items) -> list[int]:
    ids = []
    for item in items:
        if item.HasField("post"):
            ids.append(int(item.post.id))
            if item.post.HasField("repost_of"):
                ids.append(int(item.post.repost_of.id))
    return ids


def _shows_any(item: feed_pb2.FeedItem, post_ids: set[int]) -> bool:
    return not post_ids.isdisjoint(_post_ids([item]))


def _by_hidden_author(item: feed_pb2.FeedItem, hidden: frozenset[int]) -> bool:
    return item.HasField("post") and safety.hides_post(item.post, hidden)


def _page_of(items, feed_id: int, offset: int, total: int, served: int | None = None) -> feed_pb2.GetFeedResponse:
    """A page and the token for the next; `served` is how many ranking slots
    this page consumed (before dropping deleted posts)."""
    end = offset + (len(items) if served is None else served)
    token = encode_token({"feed": feed_id, "offset": end}) if end < total else ""
    return feed_pb2.GetFeedResponse(items=items, next_page_token=token)


def _checked_cursor(cursor: dict) -> tuple[int, int]:
    return cursor_int(cursor, "feed", minimum=1), cursor_int(cursor, "offset", minimum=1)


def _expired():
    return failed_precondition(
        "page_token: this feed page belongs to a ranking that has expired; reload the feed from the first page"
    )
