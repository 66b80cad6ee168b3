"""EngagementService: likes, and the like/repost/reply/quote counts of every post.

Likes are written here (an edge per user and post, idempotent by a
compare-and-set). Reposts, replies and quotes are posts, written by the posts
service; this service counts them from the posts events it consumes, and
keeps which posts each user has a live repost of (reposted_by_me). A
deleted account's likes and reposts are taken back when its AccountDeleted
is read.
Counts are served from Redis hot counters (counters.py) and flushed to
Cassandra.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

import grpc
from google.protobuf.message import DecodeError

from aviary.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from aviary.events.v1 import events_pb2
from aviary.posts.v1 import posts_pb2
from services.engagement.counters import HotCounters
from services.engagement.by_me import LIKED, REPOSTED, ByMeCache
from services.engagement.settings import EngagementSettings
from services.engagement.store import Counts, EngagementStore
from services.kit.events.account_deletions import AccountDeletions
from services.kit.events import consumer, kafka
from services.kit.peers import accounts, clients, safety
from services.kit.server import ids, service, startup
from services.kit.server.logs import error_text
from services.kit.stores import redis_bulk, redis_client
from services.kit.stores.redis_epoch import RedisEpoch
from services.kit.server.auth import caller_id
from services.kit.server.errors import ApiError, not_found, permission_denied, unavailable
from services.kit.server.ids import IdGenerator, parse_id, parse_ids, parse_optional_id

log = logging.getLogger(__name__)

CONSUMER_GROUP = "engagement"
ACCOUNTS_GROUP = "engagement-accounts"
# A deleted account's likes (and reposts) are taken back this many at a time.
UNLIKE_PAGE = 500
MAX_BATCH = 200
# Batches one StreamEngagement call may have in the works at once.
STREAM_IN_FLIGHT = 256


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class EngagementServicer(engagement_pb2_grpc.EngagementServiceServicer):
    def __init__(self, settings: EngagementSettings) -> None:
        self.settings = settings
        self.store = EngagementStore(settings)
        self.ids = IdGenerator(settings.worker_id)
        self.producer = kafka.Producer(settings.kafka_bootstrap)
        self.redis = redis_client.client(settings)
        # Every read of engagement (one per page anyone reads) is a burst of
        # HMGETs: packed and parsed by hiredis, about a quarter of the CPU of
        # redis-py's pipeline.
        self.bulk = redis_bulk.BulkRedis(settings.redis_url)
        # Which history Redis follows: hashes of counts and of likedByMe hold
        # only within one (a promoted replica may have missed writes).
        self.redis_epoch = RedisEpoch(self.redis)
        # A blocker's posts are not found for the users they block: no likes.
        self.hidden_authors = safety.HiddenAuthors(
            self.redis, timeout=settings.rpc_timeout_seconds, epoch=self.redis_epoch, bulk=self.bulk
        )
        self.counters = HotCounters(
            self.redis,
            self.store,
            self.redis_epoch,
            bulk=self.bulk,
            ttl_seconds=settings.counter_ttl_seconds,
            flush_interval=settings.flush_seconds,
            trust_margin=settings.trust_margin_seconds,
        )
        # The same size and lifetime for both kinds: reposts are fewer than likes.
        self.liked, self.reposted = (
            ByMeCache(
                self.redis,
                self.store,
                self.redis_epoch,
                kind,
                bulk=self.bulk,
                load_size=settings.liked_cache_size,
                ttl_seconds=settings.liked_cache_ttl_seconds,
            )
            for kind in (LIKED, REPOSTED)
        )
        self.post_events = consumer.ConsumerLoop(
            settings.kafka_bootstrap,
            CONSUMER_GROUP,
            [kafka.POSTS_TOPIC],
            self._on_post_event,
            gather_ms=consumer.GATHER_SOON_MS,
        )
        # Suspended and deleted accounts cannot like.
        self.gone = accounts.GoneAccounts(self.redis, bulk=self.bulk)
        # From the earliest offset: no deletion is skipped, whenever the group starts.
        self.account_deletions = AccountDeletions(settings.kafka_bootstrap, ACCOUNTS_GROUP, self._on_account_deleted)

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        # On a fresh machine Cassandra may still be starting: retry for a while.
        await startup.retry_until_up(lambda: self.store.start(self.producer), "cassandra")
        await self.redis_epoch.refresh()

    async def stop(self) -> None:
        try:
            await self.counters.flush_once()
        except Exception:
            log.warning("final counter flush failed; the next load recounts", exc_info=True)
        await self.producer.close()
        await clients.close_all()
        await self.bulk.close()
        await self.redis.aclose()
        await self.store.stop()

    async def relay_outbox(self) -> None:
        """Background job: publishes stored like events to Kafka."""
        await kafka.relay_ensuring_topic(
            self.store.outbox.relay_forever, self.settings.kafka_bootstrap, kafka.ENGAGEMENT_TOPIC
        )

    async def watch_redis_epoch(self) -> None:
        """Background job: notices Redis failovers and restarts (RedisEpoch)."""
        await self.redis_epoch.watch_forever()

    async def flush_counters(self) -> None:
        """Background job: copies dirty hot counters to Cassandra every second."""
        await self.counters.flush_forever()

    async def consume_post_events(self) -> None:
        """Background job: counts reposts and replies from the posts topic."""
        await self.post_events.run()

    async def consume_account_events(self) -> None:
        """Background job: takes back the likes and reposts of deleted accounts."""
        await self.account_deletions.run()

    # -- RPCs -----------------------------------------------------------------------

    async def LikePost(self, request: engagement_pb2.LikePostRequest, context) -> engagement_pb2.PostEngagement:
        user_id = caller_id(context)
        post_id_asked = parse_id(request.post_id, "post_id")
        if await self.gone.contains(user_id):
            # A deleted account's token outlives the deletion by up to its
            # lifetime; a like now would outlive the sweep of its likes.
            raise permission_denied("your account is suspended or deleted: it cannot like posts")
        post = await self._live_post(post_id_asked)
        await self._refuse_if_blocked(post, user_id)
        post_id = _liked_target(post)
        now = _utcnow()
        began = await self.counters.clock(post_id)
        if await self.store.claim_like(post_id, user_id, now):
            event = self._event(
                like_created=events_pb2.LikeCreated(
                    post_id=post_id, user_id=user_id, post_author_id=_target_author(post)
                )
            )
            await self.store.finish_like(event, now)
            await self._count(post_id, "likes", +1, began)
            log.info("post liked", extra={"post_id": post_id, "user_id": user_id})
        # Also on a repeat: a retry after a crash here repairs the cache.
        await self.liked.record(user_id, post_id, True)
        return await self._engagement_of(post_id, user_id)

    async def UnlikePost(self, request: engagement_pb2.UnlikePostRequest, context) -> engagement_pb2.PostEngagement:
        user_id = caller_id(context)
        requested = parse_id(request.post_id, "post_id")
        post = await self._post_or_none(requested)
        post_id = _liked_target(post) if post is not None else requested
        if post is None and not await self.store.has_like_edge(post_id, user_id):
            raise not_found(f"post {requested} does not exist")
        # A like on a post deleted since can still be taken back.
        began = await self.counters.clock(post_id)
        if await self.store.release_like(post_id, user_id):
            now = _utcnow()
            event = self._event(
                like_removed=events_pb2.LikeRemoved(
                    post_id=post_id, user_id=user_id, post_author_id=_target_author(post) if post else 0
                )
            )
            await self.store.finish_unlike(event, now)
            await self._count(post_id, "likes", -1, began)
            log.info("post unliked", extra={"post_id": post_id, "user_id": user_id})
        await self.liked.record(user_id, post_id, False)
        return await self._engagement_of(post_id, user_id)

    async def BatchGetEngagement(self, request, context) -> engagement_pb2.BatchGetEngagementResponse:
        post_ids = parse_ids(request.post_ids, "post_ids", max_items=MAX_BATCH)
        viewer_id = parse_optional_id(request.viewer_id, "viewer_id")
        return engagement_pb2.BatchGetEngagementResponse(engagements=await self._engagements(post_ids, viewer_id))

    async def StreamEngagement(self, request_iterator, context):
        """Answers each batch as soon as it is ready. Batches run side by
        side, so one waiting on Cassandra (loading a counter or a reader's
        likes) does not hold up the others; at most STREAM_IN_FLIGHT at once
        per stream, beyond which the caller's writes wait (flow control)."""
        answers: asyncio.Queue = asyncio.Queue()
        running: set[asyncio.Task] = set()
        room = asyncio.Semaphore(STREAM_IN_FLIGHT)

        async def answer(request: engagement_pb2.StreamEngagementRequest) -> None:
            try:
                batch = await self.BatchGetEngagement(request.batch, context)
                reply = engagement_pb2.StreamEngagementResponse(request_id=request.request_id, batch=batch)
            except Exception as exc:
                code, message = service.status_for("StreamEngagement", exc)
                reply = engagement_pb2.StreamEngagementResponse(
                    request_id=request.request_id, status_code=code.value[0], status_message=message
                )
            finally:
                room.release()
            answers.put_nowait(reply)

        async def take_requests() -> None:
            try:
                async for request in request_iterator:
                    await room.acquire()
                    task = asyncio.create_task(answer(request))
                    running.add(task)
                    task.add_done_callback(running.discard)
                while running:
                    await asyncio.wait(set(running))
            except ApiError:
                pass  # a malformed request: the kit ends the call with it
            finally:
                answers.put_nowait(None)  # the caller is done (or gone): end the stream

        taker = asyncio.create_task(take_requests())
        try:
            while (reply := await answers.get()) is not None:
                yield reply
        finally:
            taker.cancel()
            for task in running:
                task.cancel()

    # -- post events ------------------------------------------------------------------

    async def _on_post_event(self, topic: str, key: bytes | None, value: bytes) -> None:
        event = events_pb2.PostEvent()
        try:
            event.ParseFromString(value)
        except DecodeError as exc:
            raise consumer.PoisonRecord(str(exc)) from exc
        kind = event.WhichOneof("kind")
        if kind == "created":
            await self._on_created(event.created)
        elif kind == "deleted":
            await self._on_deleted(event.deleted)

    async def _on_created(self, created: events_pb2.PostCreated) -> None:
        # Each count changes only when its edge changes (compare-and-set), so
        # a redelivered event counts nothing twice.
        if created.reply_to_id:
            began = await self._changing(created.reply_to_id)
            if await self.store.add_reply(created.reply_to_id, created.post_id):
                await self._count(created.reply_to_id, "replies", +1, began)
        if created.repost_of_id and not created.text:
            began = await self._changing(created.repost_of_id)
            added, held = await self.store.add_repost(created.repost_of_id, created.author_id, created.post_id)
            if added:
                await self._count(created.repost_of_id, "reposts", +1, began)
            await self._index_repost(created.author_id, created.repost_of_id, held)
        if created.repost_of_id and created.text:
            # A quote: a repost with text of its own, counted apart.
            began = await self._changing(created.repost_of_id)
            if await self.store.add_quote(created.repost_of_id, created.post_id):
                await self._count(created.repost_of_id, "quotes", +1, began)
        try:
            await self.counters.load_ahead([created.post_id])
        except Exception as exc:
            # Only saves the first pages that show the post a call here.
            log.warning(
                "new post's counter not loaded ahead", extra={"post_id": created.post_id, "error": error_text(exc)}
            )

    async def _on_deleted(self, deleted: events_pb2.PostDeleted) -> None:
        if deleted.reply_to_id:
            began = await self._changing(deleted.reply_to_id)
            if await self.store.remove_reply(deleted.reply_to_id, deleted.post_id):
                await self._count(deleted.reply_to_id, "replies", -1, began)
        if deleted.repost_of_id:
            # The event does not say whether it was a repost or a quote: each
            # edge removes only its own post (a quote of the same post by the
            # same user is not the repost the repost edge records).
            began = await self._changing(deleted.repost_of_id)
            removed, held = await self.store.remove_repost(deleted.repost_of_id, deleted.author_id, deleted.post_id)
            if removed:
                await self._count(deleted.repost_of_id, "reposts", -1, began)
            await self._index_repost(deleted.author_id, deleted.repost_of_id, held)
            if await self.store.remove_quote(deleted.repost_of_id, deleted.post_id):
                await self._count(deleted.repost_of_id, "quotes", -1, began)

    async def _index_repost(self, user_id: int, post_id: int, held: int | None) -> None:
        """Makes the user's reposted index and cache follow the repost edge as
        it now stands (held: the repost id it holds, None when there is none).
        After the edge, and on every delivery, so a redelivery repairs what a
        crash between the edge and its index left behind. An edge holding
        another repost (a quote deleted, not the repost) leaves both alone."""
        if held is None:
            await self.store.unindex_repost(user_id, post_id)
            await self.reposted.record(user_id, post_id, False)
        else:
            await self.store.index_repost(user_id, post_id, held)
            await self.reposted.record(user_id, post_id, True)

    # -- account events ---------------------------------------------------------------

    async def _on_account_deleted(self, event: events_pb2.AccountEvent) -> None:
        user_id = event.deleted.user_id
        likes = await self.remove_likes_of(user_id)
        reposts = await self.remove_reposts_of(user_id)
        log.info(
            "deleted account's likes and reposts taken back",
            extra={"user_id": user_id, "likes": likes, "reposts": reposts},
        )

    async def remove_likes_of(self, user_id: int) -> int:
        """Takes back every like of a (deleted) account as an unlike would:
        the edge, the user's index row, the count of the liked post and a
        LikeRemoved event. Idempotent: a redelivery, or a rerun after dying
        half-way, finds only the likes that are left (the index rows go with
        each like). Returns how many likes were taken back."""
        taken = 0
        while post_ids := await self.store.newest_likes(user_id, UNLIKE_PAGE):
            for post_id in post_ids:
                taken += await self._take_back_like(user_id, post_id)
        await self.liked.forget(user_id)
        return taken

    async def remove_reposts_of(self, user_id: int) -> int:
        """Takes back every repost edge of a (deleted) account and its index
        row, and uncounts them, as their PostDeleted would (posts deletes the
        reposts themselves; whichever comes first counts, the other finds the
        edge gone). Idempotent like remove_likes_of. Returns how many edges
        this call removed."""
        taken = 0
        while reposts := await self.store.newest_reposts(user_id, UNLIKE_PAGE):
            for post_id, repost_id in reposts:
                taken += await self._take_back_repost(user_id, post_id, repost_id)
        await self.reposted.forget(user_id)
        return taken

    async def _take_back_repost(self, user_id: int, post_id: int, repost_id: int) -> int:
        began = await self._changing(post_id)
        removed, held = await self.store.remove_repost(post_id, user_id, repost_id)
        if not removed and held is not None:
            # The index fell behind the edge (a crash): take back what the edge holds.
            removed, _ = await self.store.remove_repost(post_id, user_id, held)
        if removed:
            await self._count(post_id, "reposts", -1, began)
        await self.store.unindex_repost(user_id, post_id)
        return int(removed)

    async def _take_back_like(self, user_id: int, post_id: int) -> int:
        began = await self.counters.clock(post_id)
        if not await self.store.release_like(post_id, user_id):
            # The edge went earlier (a crash before its follow-ups): only the index row is left.
            await self.store.forget_user_like(user_id, post_id)
            return 0
        now = _utcnow()
        # The liked post's author is not known here without asking posts for
        # every post; consumers of LikeRemoved treat 0 as unknown.
        event = self._event(like_removed=events_pb2.LikeRemoved(post_id=post_id, user_id=user_id))
        await self.store.finish_unlike(event, now)
        await self._count(post_id, "likes", -1, began)
        return 1

    # -- helpers ----------------------------------------------------------------------

    async def _changing(self, post_id: int) -> int:
        """Marks the post's engagement as changing, before an edge write; answers
        when on the counters' clock (for `_count`)."""
        began, _ = await asyncio.gather(self.counters.clock(post_id), self.store.mark_changed(post_id, _utcnow()))
        return began

    async def _count(self, post_id: int, what: str, delta: int, began: int) -> None:
        """Applies a counted change whose edge write began at `began`."""
        await self.counters.add(post_id, what, delta, began)

    def _event(self, **kind) -> events_pb2.EngagementEvent:
        event_id = self.ids.next_id()
        event = events_pb2.EngagementEvent(event_id=event_id, **kind)
        event.occur_time.FromMilliseconds(ids.timestamp_ms(event_id))
        return event

    async def _post_or_none(self, post_id: int) -> posts_pb2.Post | None:
        try:
            reply = await clients.posts().BatchGetPosts(
                posts_pb2.BatchGetPostsRequest(post_ids=[str(post_id)], skip_engagement=True),
                timeout=self.settings.rpc_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("posts lookup failed", extra={"code": exc.code().name, "details": exc.details()})
            raise unavailable("cannot check the post right now; try again") from exc
        return reply.posts[0] if reply.posts else None

    async def _live_post(self, post_id: int) -> posts_pb2.Post:
        post = await self._post_or_none(post_id)
        if post is None:
            raise not_found(f"post {post_id} does not exist")
        return post

    async def _refuse_if_blocked(self, post: posts_pb2.Post, user_id: int) -> None:
        """404, as posts answers them: the post's (or its original's) author blocks the caller."""
        blocked_by = (await self.hidden_authors.of(user_id)).blocked_by
        if int(post.author_id) in blocked_by or _target_author(post) in blocked_by:
            raise not_found(f"post {post.id} does not exist")

    async def _engagement_of(self, post_id: int, viewer_id: int) -> engagement_pb2.PostEngagement:
        return (await self._engagements([post_id], viewer_id))[0]

    async def _engagements(self, post_ids: list[int], viewer_id: int) -> list[engagement_pb2.PostEngagement]:
        """Counts and the viewer's likes and reposts (none without a viewer), in the order asked.

        One Redis round trip in the common case: every post's counters and
        the viewer's liked and reposted hashes go in a single bulk round trip."""
        unique = list(dict.fromkeys(post_ids))
        commands = self.counters.read_commands(unique)
        mine = [self.liked, self.reposted] if viewer_id else []
        commands += [cache.read_command(viewer_id, unique) for cache in mine]
        rows = await self.bulk.read(commands) if commands else []
        counts_rows, mine_rows = rows[: len(unique)], rows[len(unique) :]
        counts, found = await asyncio.gather(
            self.counters.finish_reads(unique, counts_rows),
            asyncio.gather(*(cache.finish_read(viewer_id, unique, row) for cache, row in zip(mine, mine_rows))),
        )
        liked, reposted = found or (set(), set())
        return [_message(p, counts.get(p, Counts()), p in liked, p in reposted) for p in post_ids]


def _liked_target(post: posts_pb2.Post) -> int:
    """Liking a pure repost likes the post it reposts."""
    if post.repost_of_id and not post.text:
        return int(post.repost_of_id)
    return int(post.id)


def _target_author(post: posts_pb2.Post) -> int:
    if post.repost_of_id and not post.text and post.HasField("repost_of"):
        return int(post.repost_of.author_id)
    return int(post.author_id)


def _message(post_id: int, counts: Counts, liked: bool, reposted: bool = False) -> engagement_pb2.PostEngagement:
    return engagement_pb2.PostEngagement(
        post_id=str(post_id),
        like_count=counts.likes,
        repost_count=counts.reposts,
        reply_count=counts.replies,
        liked_by_me=liked,
        quote_count=counts.quotes,
        reposted_by_me=reposted,
    )
