"""The fanout worker: post and graph events -> timeline writes.

Every effect is idempotent (sorted-set adds and removes), so the consumer
loop's at-least-once replay after a crash is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from services.kit.peers import clients, followers
from services.kit.events.consumer import ConsumerLoop, PoisonRecord
from services.kit.events.kafka import GRAPH_TOPIC, POSTS_TOPIC, ensure_topics_async
from services.kit.stores import redis_bulk, redis_client
from services.kit.stores.redis_epoch import RedisEpoch

log = logging.getLogger(__name__)

CONSUMER_GROUP = "fanout"
FOLLOWER_BATCH_SIZE = 1000
# Follows and unfollows sent in one ApplyFollowChanges call (timeline's limit).
FOLLOW_CHANGES_PER_CALL = 1000

EVENT_AGE = Histogram(
    "aviary_fanout_event_age_seconds",
    "Time from an event happening to the worker finishing its effect",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
GRAPH_CHANGES_APPLIED = Counter(
    "aviary_fanout_follow_changes_applied_total", "Follows and unfollows applied to home timelines"
)
TIMELINES_DELIVERED = Counter("aviary_fanout_timelines_delivered_total", "Home timelines updated by fanout", ["op"])

# Peer answers that no retry can change: the record is skipped, not retried forever.
_PERMANENT_CODES = (grpc.StatusCode.INVALID_ARGUMENT,)


class FollowerFeed:
    """Maps batches of followers (a StreamFollowers call, or pages asked for
    one by one) to timeline requests as they arrive.

    Followers are never collected in memory: each batch is forwarded as soon
    as graph sends it. grpc swallows an exception raised by a request
    iterator (it just cancels the call), so the feed keeps it for the caller.
    """

    def __init__(
        self, batches, to_request: Callable[[Sequence[int]], Any], cancel: Callable[[], Any] = lambda: None
    ) -> None:
        self._batches = batches
        self._to_request = to_request
        self._cancel = cancel
        self.error: BaseException | None = None
        self.followers = 0

    async def requests(self, *, index_author_post: bool = False):
        """One request per batch of followers. With `index_author_post`, the
        first request also writes the author's index (timeline does that
        before its timelines), and is sent about no follower when nobody
        follows: a message of its own would cost each side a stream message."""
        unsent = index_author_post
        try:
            async for batch in self._batches:
                if not batch.follower_ids:
                    continue
                self.followers += len(batch.follower_ids)
                request = self._to_request(batch.follower_ids)
                if unsent:
                    request.index_author_post, unsent = True, False
                yield request
            if unsent:
                request = self._to_request([])
                request.index_author_post = True
                yield request
        except Exception as exc:
            self.error = exc
            raise

    def cancel(self) -> None:
        self._cancel()


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
        # records (follows, unfollows, threshold crossings) are applied beside
        # posts, in batches: what one poll brought of a partition in one
        # call, so one follower's changes stay in order (they are keyed by
        # follower). A delivery racing an unfollow of its author is dropped
        # by timeline, not ordered here (see ApplyFollowChanges): that holds
        # across workers, whose posts and graph partitions are assigned
        # independently. A fanout cancelled half-way is replayed whole, which
        # its idempotent writes allow.
        self.consumer = ConsumerLoop(
            settings.kafka_bootstrap,
            CONSUMER_GROUP,
            [POSTS_TOPIC, GRAPH_TOPIC],
            self.handle,
            parallel_topics=frozenset({POSTS_TOPIC}),
            parallel_limit=settings.parallel_posts,
            batch_topics=frozenset({GRAPH_TOPIC}),
            batch_handler=self.handle_graph_batch,
        )
        # Graph's answer for an author's last post, reused while the author's
        # followers version in Redis stays the same (kit/peers/followers.py).
        self._redis = redis_client.client(settings)
        self._bulk = redis_bulk.BulkRedis(settings.redis_url)
        self.redis_epoch = RedisEpoch(self._redis)
        self.first_pages = followers.FirstPages(self._bulk, self.redis_epoch)

    async def start(self) -> None:
        # Unknown (nothing reused) until Redis answers; posts fan out meanwhile.
        await self.redis_epoch.refresh()
        try:
            await ensure_topics_async(self.settings.kafka_bootstrap)
        except Exception:
            # The consumer loop waits for Kafka by itself; nothing is lost.
            log.warning("could not ensure Kafka topics; consuming anyway", exc_info=True)

    async def stop(self) -> None:
        await clients.close_all()
        await self._bulk.close()
        await self._redis.aclose()

    async def watch_redis_epoch(self) -> None:
        """Background job: notices Redis failovers and restarts (RedisEpoch)."""
        await self.redis_epoch.watch_forever()

    async def run(self) -> None:
        await self.consumer.run()

    async def handle(self, topic: str, key: bytes | None, value: bytes) -> None:
        change = decode(topic, value)
        if isinstance(change, Ignored):
            log.info("ignoring event", extra={"topic": change.topic, "why": change.reason})
            return
        if not isinstance(change, PostChange):
            # Graph records come batched (handle_graph_batch); one alone is a batch of one.
            await self._apply_graph_changes([change])
            return
        with _permanent_errors_as_poison(change.kind):
            await self._apply_post(change)
        _observe_age(change)

    async def handle_graph_batch(self, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
        """One partition's graph records of one poll, in order; an unreadable
        one is skipped, the rest retried whole on failure (idempotent)."""
        changes: list[FollowChange | AuthorStatusChange] = []
        for _key, value in records:
            try:
                change = decode(topic, value)
            except PoisonRecord as exc:
                log.error("skipping unreadable record", extra={"topic": topic, "why": str(exc)})
                continue
            if isinstance(change, Ignored):
                log.info("ignoring event", extra={"topic": change.topic, "why": change.reason})
            elif not isinstance(change, PostChange):
                changes.append(change)
        await self._apply_graph_changes(changes)

    # --- posts ------------------------------------------------------------------

    async def _apply_post(self, change: PostChange) -> None:
        if change.kind == "post_created":
            await self._post_created(change)
        else:
            await self._post_deleted(change)

    async def _post_created(self, change: PostChange) -> None:
        # One graph call at most: the first page itself says when the author is a celebrity.
        first = await self.first_pages.for_post(change.author_id, self.settings.follower_page_size, self.timeout)
        if first.celebrity:
            # Celebrities are merged into readers' timelines at read time.
            await self._index(timeline_pb2.DELIVERY_OP_ADD, change)
            log.info(
                "celebrity post indexed, not fanned out",
                extra={"post_id": change.post_id, "author_id": change.author_id},
            )
            return
        await self._deliver_to_followers(timeline_pb2.DELIVERY_OP_ADD, change, first)

    async def _post_deleted(self, change: PostChange) -> None:
        # Every follower, celebrity or not: follow backfills copy even a
        # celebrity's posts into timelines. Deletes are rare; removal is idempotent.
        op = timeline_pb2.DELIVERY_OP_REMOVE
        await self._deliver_to_followers(op, change, await self._first_followers(change.author_id))

    async def _first_followers(self, author_id: int):
        """The first page of the author's followers (all of them, for most authors)."""
        return await clients.graph().ListFollowerIds(
            graph_pb2.ListFollowerIdsRequest(user_id=str(author_id), page_size=self.settings.follower_page_size),
            timeout=self.timeout,
        )

    async def _index(self, op: timeline_pb2.DeliveryOp.ValueType, change: PostChange) -> None:
        await clients.timeline().IndexAuthorPost(
            timeline_pb2.IndexAuthorPostRequest(op=op, entry=timeline_entry(change)),
            timeout=self.timeout,
        )

    @staticmethod
    def _deliveries(
        op: timeline_pb2.DeliveryOp.ValueType, change: PostChange, message=timeline_pb2.DeliverEntriesRequest
    ) -> Callable[[Sequence[int]], Any]:
        repost_of_id = timeline_entry(change).repost_of_id
        return lambda ids: delivery_request(op, change.post_id, change.author_id, ids, repost_of_id, message=message)

    async def _deliver_to_followers(
        self, op: timeline_pb2.DeliveryOp.ValueType, change: PostChange, first: graph_pb2.ListFollowerIdsResponse
    ) -> None:
        """The entry to every follower's home and to the author's index. One
        page of followers (most authors) goes in one call; more are streamed
        into timeline page by page, each asked for as the stream takes the
        one before."""
        started = time.perf_counter()
        if first.next_page_token:
            feed = FollowerFeed(self._pages(change.author_id, first), self._deliveries(op, change))
            # The author's index first, on the same stream as the timelines.
            reply = await self._stream_into(feed, clients.timeline().DeliverEntries, index_author_post=True)
            followers = feed.followers
        else:
            request = self._deliveries(op, change, timeline_pb2.DeliverEntryBatchRequest)(first.follower_ids)
            request.index_author_post = True
            reply = await clients.timeline().DeliverEntryBatch(request, timeout=self.timeout)
            followers = len(first.follower_ids)
        TIMELINES_DELIVERED.labels(timeline_pb2.DeliveryOp.Name(op)).inc(reply.timelines)
        log.info(
            "fanned out post",
            extra={
                "kind": change.kind,
                "post_id": change.post_id,
                "author_id": change.author_id,
                "followers": followers,
                "timelines": reply.timelines,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    async def _pages(self, author_id: int, page: graph_pb2.ListFollowerIdsResponse):
        """The first page of the author's followers, then the rest from graph, page by page."""
        yield page
        while page.next_page_token:
            page = await clients.graph().ListFollowerIds(
                graph_pb2.ListFollowerIdsRequest(
                    user_id=str(author_id), page_size=self.settings.follower_page_size, page_token=page.next_page_token
                ),
                timeout=self.timeout,
            )
            yield page

    def _followers(self, author_id: int, to_request) -> FollowerFeed:
        """The author's followers, streamed from graph batch by batch."""
        followers_call = clients.graph().StreamFollowers(
            graph_pb2.StreamFollowersRequest(user_id=str(author_id), batch_size=FOLLOWER_BATCH_SIZE),
            timeout=self.stream_timeout,
        )
        return FollowerFeed(followers_call, to_request, followers_call.cancel)

    async def _stream_into(self, feed: FollowerFeed, timeline_call, *, index_author_post: bool = False):
        """Streams the feed's followers into a client-streaming timeline call
        (see FollowerFeed.requests); returns its reply."""
        try:
            return await timeline_call(feed.requests(index_author_post=index_author_post), timeout=self.stream_timeout)
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            if feed.error is not None:
                # The follower stream failed; report that, not the cancel it caused.
                raise feed.error from None
            raise
        finally:
            feed.cancel()

    # --- graph --------------------------------------------------------------------

    async def _apply_graph_changes(self, changes: Sequence[FollowChange | AuthorStatusChange]) -> None:
        """Runs of follows and unfollows go in one call each; a threshold
        crossing between them is applied in its place in the order. What a
        peer refuses for good is skipped, not the rest of the batch."""
        follows: list[FollowChange] = []
        for change in changes:
            if isinstance(change, AuthorStatusChange):
                await self._apply_follows(follows)
                follows = []
                with _skipping_refused(change.kind):
                    await self._apply_author_status(change)
                    _observe_age(change)
            elif change.follower_id != change.followee_id:
                follows.append(change)
        await self._apply_follows(follows)

    async def _apply_follows(self, changes: list[FollowChange]) -> None:
        for start in range(0, len(changes), FOLLOW_CHANGES_PER_CALL):
            chunk = changes[start : start + FOLLOW_CHANGES_PER_CALL]
            request = timeline_pb2.ApplyFollowChangesRequest(
                changes=[
                    timeline_pb2.FollowChange(
                        user_id=c.follower_id, author_id=c.followee_id, following=c.kind == "follow_created"
                    )
                    for c in chunk
                ]
            )
            with _skipping_refused(f"{len(chunk)} follow changes"):
                reply = await clients.timeline().ApplyFollowChanges(request, timeout=self.timeout)
                for change in chunk:
                    _observe_age(change)
                GRAPH_CHANGES_APPLIED.inc(len(chunk))
                log.info(
                    "applied follow changes",
                    extra={"changes": len(chunk), "copied": reply.copied, "removed": reply.removed},
                )

    async def _apply_author_status(self, change: AuthorStatusChange) -> None:
        """Every follower of an author who crossed the threshold: their
        cached celebrity lists go, and (crossing down) the posts that were
        only merged at read time are copied into their timelines."""
        feed = self._followers(
            change.author_id,
            lambda ids: timeline_pb2.ApplyAuthorStatusRequest(
                author_id=change.author_id, celebrity=change.celebrity, user_ids=ids
            ),
        )
        reply = await self._stream_into(feed, clients.timeline().ApplyAuthorStatus)
        log.info(
            "applied celebrity change",
            extra={
                "author_id": change.author_id,
                "celebrity": change.celebrity,
                "timelines": reply.timelines,
                "copied": reply.copied,
            },
        )


@contextlib.contextmanager
def _permanent_errors_as_poison(what: str):
    """A peer's answer that no retry can change skips the record (or batch)."""
    try:
        yield
    except grpc.aio.AioRpcError as err:
        if err.code() in _PERMANENT_CODES:
            raise PoisonRecord(f"{what}: {err.code().name}: {err.details()}") from err
        raise


@contextlib.contextmanager
def _skipping_refused(what: str):
    """Inside a batch: a peer's answer that no retry can change skips this
    part only; any other failure retries the whole batch (idempotent)."""
    try:
        with _permanent_errors_as_poison(what):
            yield
    except PoisonRecord as exc:
        log.error("skipping what a peer refused", extra={"why": str(exc)})


def _observe_age(change: PostChange | FollowChange | AuthorStatusChange) -> None:
    age = event_age_seconds(change.occur_time, time.time())
    if age is not None:
        EVENT_AGE.labels(change.kind).observe(age)
