"""TrendsService: windowed hashtag counts from post events, and the public top list.

Writes: a consumer (group `trends`) reads `posts.events.v1`; every
PostCreated with hashtags (posts, replies and quote posts alike; a pure
repost has no text, hence no tags) counts its author once per tag in the
bucket of the post's creation time, and a PostDeleted takes back what that
post counted (windows.py has the rules, store.py the Redis scripts).
Applying an event twice changes nothing, so at-least-once delivery and
replays are safe. Likes and pure reposts do not count: a hashtag trends by
people writing it.

Reads: ListTrends serves one top list computed in Redis at most once per
AVIARY_TRENDS_CACHE_SECONDS per process, so a read storm costs Redis nothing;
if Redis stops answering, the last list is served for up to
AVIARY_TRENDS_STALE_SECONDS before reads fail with UNAVAILABLE. The settings
and their defaults: services/trends/README.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TypeGuard

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError

from aviary.events.v1 import events_pb2
from aviary.trends.v1 import trends_pb2, trends_pb2_grpc
from services.kit.server import ids, paging, startup
from services.kit.server.errors import unavailable
from services.kit.events.consumer import GATHER_LATER_MS, ConsumerLoop, PoisonRecord
from services.kit.events.kafka import POSTS_TOPIC
from services.trends.settings import TrendsSettings
from services.trends.store import TrendsStore
from services.trends.windows import Decision, TrendRow, Window, countable_tags
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

CONSUMER_GROUP = "trends"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 50

TAG_USES = Counter(
    "aviary_trends_tag_uses_total", "Hashtag uses read from post events, by what they did to the counts", ["result"]
)  # counted | moved | duplicate_user | too_old | taken_back (by deletions)
APPLY_DELAY = Histogram(
    "aviary_trends_apply_delay_seconds",
    "From a post's creation to its tags being counted (consumer lag in time)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
READS = Counter(
    "aviary_trends_reads_total", "ListTrends answers, by where the list came from", ["source"]
)  # cache | redis | stale

_DECISION_LABELS = {Decision.COUNT: "counted", Decision.MOVE: "moved", Decision.DUPLICATE: "duplicate_user"}


def window_from_settings(settings: TrendsSettings) -> Window:
    return Window(
        bucket_seconds=settings.bucket_seconds,
        buckets=settings.window_buckets,
        decay=settings.decay,
        min_users=settings.min_users,
    )


def created_seconds(created: events_pb2.PostCreated) -> float:
    """The post's creation time; its id carries it too, should the field be unset."""
    if created.HasField("created_at"):
        return created.created_at.seconds + created.created_at.nanos / 1e9
    return ids.timestamp_ms(created.post_id) / 1000.0


@dataclass(frozen=True)
class TopList:
    rows: list[TrendRow]
    window_start: int  # unix seconds
    window_end: float  # unix seconds: when the list was computed
    computed_at: float  # time.monotonic() then


class TrendsServicer(trends_pb2_grpc.TrendsServiceServicer):
    def __init__(self, settings: TrendsSettings) -> None:
        self.settings = settings
        self.window = window_from_settings(settings)
        self.max_tags_per_post = settings.max_tags_per_post
        # The top list is recomputed at most this often per process.
        self.cache_seconds = settings.cache_seconds
        # How long the last list may stand in while Redis does not answer.
        self.stale_seconds = settings.stale_seconds
        # Deadline for computing the list in Redis.
        self.read_timeout_seconds = settings.read_timeout_seconds
        self.store = TrendsStore(settings, self.window)
        self.consumer = ConsumerLoop(
            settings.kafka_bootstrap, CONSUMER_GROUP, [POSTS_TOPIC], self.handle, gather_ms=GATHER_LATER_MS
        )
        self._top: TopList | None = None
        # One recomputation at a time: concurrent readers wait for it and share it.
        self._refreshing = asyncio.Lock()
        # After a failed recomputation, no new attempt before this (monotonic).
        self._next_attempt = 0.0

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await startup.retry_until_up(self.store.ping, "redis")
        log.info(
            "trends window",
            extra={
                "bucket_seconds": self.window.bucket_seconds,
                "buckets": self.window.buckets,
                "decay": self.window.decay,
                "min_users": self.window.min_users,
            },
        )

    async def stop(self) -> None:
        await self.store.close()

    async def consume(self) -> None:
        await self.consumer.run()

    # -- counting (at-least-once, idempotent) -----------------------------------

    async def handle(self, topic: str, key: bytes | None, value: bytes) -> None:
        try:
            event = events_pb2.PostEvent.FromString(value)
        except DecodeError as exc:
            raise PoisonRecord(f"unreadable {topic} record: {exc}") from exc
        kind = event.WhichOneof("kind")
        if kind == "created":
            await self._count_post(event.created)
        elif kind == "deleted" and event.deleted.author_id > 0:
            # Redis errors propagate: the consumer loop retries the record.
            changed = await self.store.uncount(
                event.deleted.author_id, event.deleted.post_id, self.window.bucket_of(time.time())
            )
            TAG_USES.labels("taken_back").inc(changed)

    async def _count_post(self, created: events_pb2.PostCreated) -> None:
        tags = countable_tags(created.hashtags, self.max_tags_per_post)
        if not tags or created.author_id <= 0:
            return
        posted = created_seconds(created)
        now = time.time()
        bucket = self.window.place(posted, now)
        if bucket is None:
            TAG_USES.labels("too_old").inc(len(tags))
            return
        # Redis errors propagate: the consumer loop retries the record.
        decisions = await self.store.count(created.author_id, created.post_id, bucket, tags)
        for decision in decisions:
            TAG_USES.labels(_DECISION_LABELS[decision]).inc()
        APPLY_DELAY.observe(max(0.0, now - posted))

    # -- reads -------------------------------------------------------------------

    async def ListTrends(self, request: trends_pb2.ListTrendsRequest, context) -> trends_pb2.ListTrendsResponse:
        size = paging.bounded("page_size", request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        paging.no_page_token(request.page_token, "trends")
        top = await self._current_top()
        return trends_pb2.ListTrendsResponse(
            trends=[
                trends_pb2.Trend(hashtag=row.hashtag, user_count=row.user_count, score=row.score)
                for row in top.rows[:size]
            ],
            window_start=_timestamp(top.window_start),
            window_end=_timestamp(top.window_end),
        )

    def _fresh(self, top: TopList | None) -> TypeGuard[TopList]:
        return top is not None and time.monotonic() - top.computed_at < self.cache_seconds

    async def _current_top(self) -> TopList:
        if self._fresh(self._top):
            READS.labels("cache").inc()
            return self._top
        if time.monotonic() < self._next_attempt:  # Redis failed a moment ago: do not pile on
            return self._stale_or_unavailable(None)
        async with self._refreshing:
            if self._fresh(self._top):  # computed while this call waited
                READS.labels("cache").inc()
                return self._top
            if time.monotonic() < self._next_attempt:
                return self._stale_or_unavailable(None)
            try:
                self._top = await asyncio.wait_for(self._compute(), self.read_timeout_seconds)
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                # Readers queued behind this one answer at once instead of
                # each waiting out its own timeout.
                self._next_attempt = time.monotonic() + self.cache_seconds
                log.warning("redis not answering for trends", extra={"error": error_text(exc)})
                return self._stale_or_unavailable(exc)
            READS.labels("redis").inc()
            return self._top

    async def _compute(self) -> TopList:
        now = time.time()
        rows = await self.store.top(self.window.bucket_of(now), MAX_PAGE_SIZE)
        return TopList(
            rows=rows, window_start=self.window.start_seconds(now), window_end=now, computed_at=time.monotonic()
        )

    def _stale_or_unavailable(self, exc: BaseException | None) -> TopList:
        last = self._top
        if last is not None and time.monotonic() - last.computed_at < self.stale_seconds:
            READS.labels("stale").inc()
            return last
        raise unavailable("trends are unavailable right now; try again shortly") from exc


def _timestamp(unix_seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(unix_seconds * 1e9))
    return ts
