"""The fanout worker: post and graph events -> timeline writes.

Every effect is idempotent (sorted-set adds and removes), so the consumer
loop's at-least-once replay after a crash is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Sequence

import grpc
from prometheus_client import Counter, Histogram

from aviary.graph.v1 import graph_pb2
from aviary.timeline.v1 import timeline_pb2
from services.fanout.events import (
    AuthorStatusChange,
    FollowChange,
    Ignored,
    PostChange,
    decode,
    delivery_request,
    event_age_seconds,
    timeline_entry,
)
from services.fanout.settings import FanoutSettings
from services.kit.peers import clients
from services.kit.events.consumer import ConsumerLoop, PoisonRecord
from services.kit.events.kafka import GRAPH_TOPIC, POSTS_TOPIC, ensure_topics_async

log = logging.getLogger(__name__)

CONSUMER_GROUP = "fanout"
FOLLOWER_BATCH_SIZE = 1000

EVENT_AGE = Histogram(
    "aviary_fanout_event_age_seconds",
    "Time from an event happening to the worker finishing its effect",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
TIMELINES_DELIVERED = Counter("aviary_fanout_timelines_delivered_total", "Home timelines updated by fanout", ["op"])

# Peer answers that no retry can change: the record is skipped, not retried forever.
_PERMANENT_CODES = (grpc.StatusCode.INVALID_ARGUMENT,)


class FollowerFeed:
    """Maps a StreamFollowers call to timeline requests as batches arrive.

    Followers are never collected in memory: each batch is forwarded as soon
    as graph sends it. grpc swallows an exception raised by a request
    iterator (it just cancels the call), so the feed keeps it for the caller.
    """

    def __init__(self, followers_call, to_request: Callable[[Sequence[int]], Any]) -> None:
        self._call = followers_call
        self._to_request = to_request
        self.error: BaseException | None = None
        self.followers = 0

    async def requests(self):
        try:
            async for batch in self._call:
                if not batch.follower_ids:
                    continue
                self.followers += len(batch.follower_ids)
                yield self._to_request(batch.follower_ids)
        except Exception as exc:
            self.error = exc
            raise


class FanoutWorker:
    def __init__(self, settings: FanoutSettings) -> None:
        self.settings = settings
        self.timeout = settings.rpc_timeout_seconds
        # Streaming every follower of a large author takes longer than one call.
        self.stream_timeout = settings.stream_timeout_seconds
        # Posts of different authors fan out side by side (a post by the same
        # author waits for the one before, so a delete never overtakes its
        # create): one post, or one partition, at a time left the worker
        # waiting on graph, then on timeline, with the cores half idle. Graph
        # records (follows, unfollows, threshold crossings) are never applied
        # beside anything, so an unfollow's purge cannot race a delivery to
        # the same timeline. A fanout cancelled half-way is replayed whole,
        # which its idempotent writes allow.
        self.consumer = ConsumerLoop(
            settings.kafka_bootstrap,
            CONSUMER_GROUP,
            [POSTS_TOPIC, GRAPH_TOPIC],
            self.handle,
            parallel_topics=frozenset({POSTS_TOPIC}),
            parallel_limit=settings.parallel_posts,
        )

    async def start(self) -> None:
        try:
            await ensure_topics_async(self.settings.kafka_bootstrap)
        except Exception:
            # The consumer loop waits for Kafka by itself; nothing is lost.
            log.warning("could not ensure Kafka topics; consuming anyway", exc_info=True)

    async def stop(self) -> None:
        await clients.close_all()

    async def run(self) -> None:
        await self.consumer.run()

    async def handle(self, topic: str, key: bytes | None, value: bytes) -> None:
        change = decode(topic, value)
        if isinstance(change, Ignored):
            log.info("ignoring event", extra={"topic": change.topic, "why": change.reason})
            return
        try:
            if isinstance(change, PostChange):
                await self._apply_post(change)
            elif isinstance(change, AuthorStatusChange):
                await self._apply_author_status(change)
            else:
                await self._apply_follow(change)
        except grpc.aio.AioRpcError as err:
            if err.code() in _PERMANENT_CODES:
                raise PoisonRecord(f"{change.kind}: {err.code().name}: {err.details()}") from err
            raise
        age = event_age_seconds(change.occur_time, time.time())
        if age is not None:
            EVENT_AGE.labels(change.kind).observe(age)

    # --- posts ------------------------------------------------------------------

    async def _apply_post(self, change: PostChange) -> None:
        if change.kind == "post_created":
            await self._post_created(change)
        else:
            await self._post_deleted(change)

    async def _post_created(self, change: PostChange) -> None:
        stats, _ = await asyncio.gather(
            clients.graph().GetFollowStats(
                graph_pb2.GetFollowStatsRequest(user_id=str(change.author_id)), timeout=self.timeout
            ),
            self._index(timeline_pb2.DELIVERY_OP_ADD, change),
        )
        if stats.celebrity:
            # Celebrities are merged into readers' timelines at read time.
            log.info(
                "celebrity post indexed, not fanned out",
                extra={"post_id": change.post_id, "author_id": change.author_id, "followers": stats.follower_count},
            )
            return
        await self._deliver_to_followers(timeline_pb2.DELIVERY_OP_ADD, change)

    async def _post_deleted(self, change: PostChange) -> None:
        await self._index(timeline_pb2.DELIVERY_OP_REMOVE, change)
        # Every follower, celebrity or not: follow backfills copy even a
        # celebrity's posts into timelines. Deletes are rare; removal is idempotent.
        await self._deliver_to_followers(timeline_pb2.DELIVERY_OP_REMOVE, change)

    async def _index(self, op: timeline_pb2.DeliveryOp.ValueType, change: PostChange) -> None:
        await clients.timeline().IndexAuthorPost(
            timeline_pb2.IndexAuthorPostRequest(op=op, entry=timeline_entry(change)),
            timeout=self.timeout,
        )

    async def _deliver_to_followers(self, op: timeline_pb2.DeliveryOp.ValueType, change: PostChange) -> None:
        started = time.perf_counter()
        reply, followers = await self._stream_followers(
            change.author_id,
            lambda ids: delivery_request(
                op, change.post_id, change.author_id, ids, timeline_entry(change).repost_of_id
            ),
            clients.timeline().DeliverEntries,
        )
        op_name = timeline_pb2.DeliveryOp.Name(op)
        TIMELINES_DELIVERED.labels(op_name).inc(reply.timelines)
        log.info(
            "fanned out post",
            extra={
                "kind": change.kind,
                "post_id": change.post_id,
                "author_id": change.author_id,
                "followers": followers,
                "timelines": reply.timelines,
                "batches": reply.batches,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    async def _stream_followers(self, author_id: int, to_request, timeline_call):
        """Streams the author's followers, batch by batch, into a
        client-streaming timeline call; returns (its reply, followers sent)."""
        followers_call = clients.graph().StreamFollowers(
            graph_pb2.StreamFollowersRequest(user_id=str(author_id), batch_size=FOLLOWER_BATCH_SIZE),
            timeout=self.stream_timeout,
        )
        feed = FollowerFeed(followers_call, to_request)
        try:
            reply = await timeline_call(feed.requests(), timeout=self.stream_timeout)
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            if feed.error is not None:
                # The follower stream failed; report that, not the cancel it caused.
                raise feed.error from None
            raise
        finally:
            followers_call.cancel()
        return reply, feed.followers

    # --- graph --------------------------------------------------------------------

    async def _apply_author_status(self, change: AuthorStatusChange) -> None:
        """Every follower of an author who crossed the threshold: their
        cached celebrity lists go, and (crossing down) the posts that were
        only merged at read time are copied into their timelines."""
        reply, _ = await self._stream_followers(
            change.author_id,
            lambda ids: timeline_pb2.ApplyAuthorStatusRequest(
                author_id=change.author_id, celebrity=change.celebrity, user_ids=ids
            ),
            clients.timeline().ApplyAuthorStatus,
        )
        log.info(
            "applied celebrity change",
            extra={
                "author_id": change.author_id,
                "celebrity": change.celebrity,
                "timelines": reply.timelines,
                "copied": reply.copied,
            },
        )

    async def _apply_follow(self, change: FollowChange) -> None:
        if change.follower_id == change.followee_id:
            return
        if change.kind == "follow_created":
            backfilled = await clients.timeline().BackfillAuthor(
                timeline_pb2.BackfillAuthorRequest(user_id=change.follower_id, author_id=change.followee_id),
                timeout=self.timeout,
            )
            log.info(
                "backfilled followee",
                extra={
                    "follower_id": change.follower_id,
                    "followee_id": change.followee_id,
                    "copied": backfilled.copied,
                },
            )
        else:
            purged = await clients.timeline().PurgeAuthor(
                timeline_pb2.PurgeAuthorRequest(user_id=change.follower_id, author_id=change.followee_id),
                timeout=self.timeout,
            )
            log.info(
                "purged unfollowed author",
                extra={"follower_id": change.follower_id, "followee_id": change.followee_id, "removed": purged.removed},
            )
