"""PostsService: validation, orchestration and error mapping.

Storage lives in store.py, text rules in text.py. The write paths follow one
pattern: validate everything, then one LOGGED batch holding the state change
and its outbox event, then the best-effort follow-ups (counter, relay wake-up,
hydration) that must never turn a durable write into an error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError

from aviary.events.v1 import events_pb2
from aviary.identity.v1 import identity_pb2
from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from services.kit.events.account_deletions import AccountDeletions
from services.kit.events import consumer, kafka
from services.kit.peers import accounts, clients, engagement_overlay, engagement_reads, profiles, safety
from services.kit.server import auth, ids, paging
from services.kit.stores import cql, redis_bulk, redis_client
from services.kit.stores.cache import TtlCache
from services.kit.stores.redis_epoch import RedisEpoch
from services.kit.server.errors import (
    failed_precondition,
    invalid_argument,
    not_found,
    permission_denied,
    unavailable,
)
from services.posts import authors
from services.posts import media as post_media
from services.posts import products as post_products
from services.posts import text as post_text
from services.posts.author_lists import READS as AUTHOR_LIST_READS
from services.posts.author_lists import AuthorPostIds
from services.posts.cache import DEFAULT_MAX_ENTRIES, PostCache
from services.posts.newest import newest_of_authors
from services.posts.model import PostProtos, PostRecord, timestamp_from_ms, to_created_event, to_proto
from services.posts.settings import PostsSettings
from services.posts.store import PostStore, TombstoneResult
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

MAX_MEDIA = 4
MAX_PRODUCTS = 10
MAX_BATCH_GET = 200
# How far up a thread GetPostContext walks: one read per level, so a
# pathological chain of replies cannot make one request read without end.
# Beyond this depth the oldest ancestors (the root end) are left out.
MAX_THREAD_DEPTH = 100
ACCOUNTS_CONSUMER_GROUP = "posts-accounts"
# A deleted account's posts are read this many ids at a time and deleted
# this many at once.
ACCOUNT_PAGE = 200
ACCOUNT_DELETE_CONCURRENCY = 16
# Every process's copy of the gone accounts has a deleted account this long
# after its deletion.
GONE_SETTLE_SECONDS = accounts.SETTLE_SECONDS


class PostsServicer(posts_pb2_grpc.PostsServiceServicer):
    def __init__(self, settings: PostsSettings) -> None:
        self.settings = settings
        self.store = PostStore(settings)
        self.ids = ids.IdGenerator(settings.worker_id)
        # Only the relay uses the producer; request paths never touch Kafka.
        self.producer = kafka.Producer(settings.kafka_bootstrap)
        # Post rows are immutable but for deletion: a local delete evicts at
        # once, another replica's delete arrives through `evict_deleted` (Kafka)
        # within milliseconds, so rows may live long in the cache; the TTL
        # only bounds a delete missed while this replica's Kafka consumer was
        # cut off. The size bound keeps memory in check.
        self.cache = PostCache(ttl_seconds=settings.cache_seconds)
        self.protos = PostProtos(max_entries=DEFAULT_MAX_ENTRIES)
        # Authors' newest post ids for profile pages, kept the same way: this
        # replica's writes change them at once, others' through the same
        # consumer as deletes.
        self.author_ids = AuthorPostIds(ttl_seconds=settings.author_list_seconds)
        # Author summaries for hydration. A profile edit drops its entry at
        # once (identity's announcement); the TTL only bounds an announcement
        # lost while Redis was unreachable. Follows announce both users'
        # changed counts the same way (graph); a post updates its author's
        # copy here (_count_post).
        self.authors: TtlCache[int, identity_pb2.User] = TtlCache(
            ttl_seconds=settings.author_cache_seconds, max_entries=50_000
        )
        # Media and products on hydrated posts, fetched from their owners.
        self.media = post_media.media_lookup(settings.media_cache_seconds)
        self.products = post_products.product_lookup(settings.product_cache_seconds)
        self.redis = redis_client.client(settings)
        self.bulk_redis = redis_bulk.BulkRedis(settings.redis_url)
        # Failovers and restarts of Redis, read at most once a second: for
        # what is cached under it here and in engagement's hashes.
        redis_epoch = RedisEpoch(self.redis)
        # Blocks and mutes, for what a signed-in viewer may see (one cached
        # lookup per read).
        self.hidden_authors = safety.HiddenAuthors(
            self.redis, timeout=settings.rpc_timeout_seconds, epoch=redis_epoch, bulk=self.bulk_redis
        )
        # Pages' counts and the viewer's likes, from engagement's hashes.
        self.engagement_reads = engagement_reads.EngagementReads(self.bulk_redis, redis_epoch)
        # Suspended and deleted accounts (identity's set in Redis): they may
        # not write, and their posts are left out of every read. The same
        # process-wide copy the hidden-authors lookup keeps.
        self.gone_accounts = self.hidden_authors.gone_accounts
        # A group of its own per process: every replica sees every post and delete.
        self.evictions = consumer.ConsumerLoop(
            settings.kafka_bootstrap,
            f"posts-cache-{socket.gethostname()}-{os.getpid()}",
            [kafka.POSTS_TOPIC],
            self._evict_deleted,
            auto_offset_reset="latest",
        )
        # One group for the service: a deleted account's posts are deleted once.
        self.account_deletions = AccountDeletions(
            settings.kafka_bootstrap, ACCOUNTS_CONSUMER_GROUP, self._on_account_deleted
        )

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        await self.store.start(self.producer)

    async def stop(self) -> None:
        await self.producer.close()
        await self.store.stop()
        await self.redis.aclose()
        await self.bulk_redis.close()
        await clients.close_all()

    async def relay(self) -> None:
        """Background job: publishes stored outbox events to Kafka, forever."""
        await kafka.relay_ensuring_topic(
            self.store.outbox.relay_forever, self.settings.kafka_bootstrap, kafka.POSTS_TOPIC
        )

    async def evict_deleted(self) -> None:
        """Background job: drops posts deleted through any replica from this
        one's caches, and adds posts created through any to its author lists."""
        await self.evictions.run()

    async def remove_deleted_accounts(self) -> None:
        """Background job: a deleted account's posts, reposts, bookmarks and repost claims go."""
        await self.account_deletions.run()

    async def follow_profile_changes(self) -> None:
        """Background job: drops edited profiles from the author cache."""
        await profiles.follow(self.redis, self.authors.discard, self.authors.clear)

    async def _evict_deleted(self, topic: str, key: bytes | None, value: bytes) -> None:
        event = events_pb2.PostEvent()
        try:
            event.ParseFromString(value)
        except DecodeError as exc:
            raise consumer.PoisonRecord(str(exc)) from exc
        kind = event.WhichOneof("kind")
        if kind == "created":
            self.author_ids.added(event.created.author_id, event.created.post_id)
        elif kind == "deleted":
            self.cache.invalidate(event.deleted.post_id)
            self.author_ids.removed(event.deleted.author_id, event.deleted.post_id)

    async def _on_account_deleted(self, event: events_pb2.AccountEvent) -> None:
        await self.remove_account(event.deleted.user_id, event.occur_time.ToMilliseconds())

    async def remove_account(self, user_id: int, deleted_at_ms: int = 0) -> None:
        """Deletes every post and repost of the account through the delete
        path (tombstone, then the PostDeleted event that timelines, search,
        trends, feed and counts follow), then its bookmarks and repost claims.

        Idempotent and resumable: deleted posts leave the author's list, so a
        redelivery after a crash half-way finds only what is left."""
        removed = await self._delete_posts_of(user_id)
        # A replica whose copy of the gone accounts was up to its refresh
        # interval old may still have taken a post or a bookmark from the
        # account's unexpired access token: once every copy has it, look again.
        wait = deleted_at_ms / 1000 + GONE_SETTLE_SECONDS - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
            removed += await self._delete_posts_of(user_id)
        await self.store.forget_user(user_id)
        log.info("deleted account's posts removed", extra={"user_id": user_id, "posts": removed})

    async def _delete_posts_of(self, user_id: int) -> int:
        """Deletes every post the author's list holds; how many this call deleted."""
        removed, before = 0, None
        gate = asyncio.Semaphore(ACCOUNT_DELETE_CONCURRENCY)

        async def delete_one(post_id: int) -> bool:
            async with gate:
                record = await self.store.get(post_id)
                if record is None:
                    return False
                return await self._delete(record) == TombstoneResult.APPLIED

        while True:
            page = await self.store.author_post_ids(user_id, before, ACCOUNT_PAGE)
            if not page:
                break
            removed += sum(await asyncio.gather(*(delete_one(post_id) for post_id in page)))
            before = page[-1]
        return removed

    # -- RPCs ---------------------------------------------------------------

    @cql.outage_as_unavailable("posts storage")
    async def CreatePost(self, request: posts_pb2.CreatePostRequest, context) -> posts_pb2.Post:
        author_id = auth.caller_id(context)
        await self._require_active_account(author_id)
        repost_of_id = ids.parse_optional_id(request.repost_of_id, "repost_of_id")
        if (
            repost_of_id
            and request.text == ""
            and not (request.media_ids or request.product_ids or request.reply_to_id)
        ):
            # A pure repost: the same idempotent path as RepostPost.
            return await self._repost(author_id, repost_of_id, "repost_of_id")
        body = post_text.normalize_text(request.text)
        media_ids = ids.parse_ids(request.media_ids, "media_ids", max_items=MAX_MEDIA)
        await post_media.check_media_ids(media_ids, author_id, self.settings.rpc_timeout_seconds)
        product_ids = ids.parse_ids(request.product_ids, "product_ids", max_items=MAX_PRODUCTS)
        await post_products.check_product_ids(self.products, product_ids, self.settings.rpc_timeout_seconds)
        reply_to_id = ids.parse_optional_id(request.reply_to_id, "reply_to_id")
        if reply_to_id and repost_of_id:
            raise invalid_argument("repost_of_id", "cannot be set together with reply_to_id")
        parent = await self._require_visible_post(reply_to_id, "reply_to_id", author_id) if reply_to_id else None
        quoted = await self._require_visible_post(repost_of_id, "repost_of_id", author_id) if repost_of_id else None

        post_id = self.ids.next_id()
        written_from = self.cache.now()
        record = PostRecord(
            post_id=post_id,
            author_id=author_id,
            text=body,
            # The id already carries the creation time; one clock, one truth.
            created_at_ms=ids.timestamp_ms(post_id),
            media_ids=tuple(media_ids),
            product_ids=tuple(product_ids),
            reply_to_id=reply_to_id,
            repost_of_id=repost_of_id,
            hashtags=tuple(post_text.extract_hashtags(body)),
            mentions=tuple(post_text.extract_mentions(body)),
        )
        await self.store.create(
            record,
            event_id=self.ids.next_id(),
            reply_to_author_id=parent.author_id if parent else 0,
            repost_of_author_id=quoted.author_id if quoted else 0,
        )
        # Durable from here on: nothing below may fail the call.
        # Its followers' homes ask for it next: kept as written, not read back.
        self.cache.put(record, written_from)
        self.author_ids.added(author_id, post_id)
        log.info("post created", extra={"post_id": post_id, "author_id": author_id})
        await self._count_post(author_id, +1)
        return await self._hydrate_one(record, author_id, new=True)

    @cql.outage_as_unavailable("posts storage")
    async def RepostPost(self, request: posts_pb2.RepostPostRequest, context) -> posts_pb2.Post:
        caller = auth.caller_id(context)
        await self._require_active_account(caller)
        post_id = ids.parse_id(request.post_id, "post_id")
        return await self._repost(caller, post_id, "post_id")

    async def _repost(self, caller: int, target_id: int, field: str) -> posts_pb2.Post:
        """The caller's one repost of the target's original, created at most once.

        A claim row (user, original) -> repost id, taken with a compare-and-set,
        makes concurrent and retried calls agree on one repost id; whoever
        finds the claimed post missing (a call that died between the claim and
        the post's batch) writes it under that same id, so a retry completes
        the repost instead of duplicating or losing it. A deleted repost frees
        the claim for a new one."""
        target = await self._require_visible_post(target_id, field, caller)
        original = target
        if target.pure_repost_of:
            # Reposting a repost reposts what it reposted.
            original = await self._require_visible_post(target.repost_of_id, field, caller)
        repost_id = await self.store.claim_repost(caller, original.post_id, self.ids.next_id())
        existing = await self.store.get(repost_id)
        if existing is not None and existing.deleted:
            repost_id = await self.store.reclaim_repost(caller, original.post_id, repost_id, self.ids.next_id())
            existing = await self.store.get(repost_id)
        if existing is not None and not existing.deleted:
            return await self._hydrate_one(existing, caller)
        record = PostRecord(
            post_id=repost_id,
            author_id=caller,
            text="",
            created_at_ms=ids.timestamp_ms(repost_id),
            repost_of_id=original.post_id,
        )
        await self.store.create(record, event_id=self.ids.next_id(), repost_of_author_id=original.author_id)
        self.author_ids.added(caller, repost_id)
        log.info("post reposted", extra={"post_id": repost_id, "author_id": caller, "repost_of_id": original.post_id})
        await self._count_post(caller, +1)
        return await self._hydrate_one(record, caller, new=True)

    @cql.outage_as_unavailable("posts storage")
    async def UnrepostPost(self, request: posts_pb2.UnrepostPostRequest, context) -> empty_pb2.Empty:
        """Deletes the caller's repost of the post's original (found through
        the repost claim RepostPost took) through the one delete path, so
        timelines, counts and events follow as for DeletePost. Succeeds when
        there is nothing to take back: no repost, or no such post."""
        caller = auth.caller_id(context)
        await self._require_active_account(caller)
        post_id = ids.parse_id(request.post_id, "post_id")
        # Deleted or not: a deleted repost still names its original. No
        # visibility check: a block since the repost must not keep it up.
        target = await self._record(post_id)
        if target is None:
            return empty_pb2.Empty()
        original_id = target.pure_repost_of or target.post_id
        repost_id = await self.store.repost_claim(caller, original_id)
        repost = await self.store.get(repost_id) if repost_id else None
        if repost is not None and repost.author_id == caller:
            # Also for a repost deleted already: a delete that stopped half-way is completed.
            if await self._delete(repost) == TombstoneResult.APPLIED:
                log.info(
                    "post unreposted", extra={"post_id": repost_id, "author_id": caller, "repost_of_id": original_id}
                )
        return empty_pb2.Empty()

    async def _hydrate_one(self, record: PostRecord, viewer_id: int, *, new: bool = False) -> posts_pb2.Post:
        """The response for a post just written: hydrated, never failing the call.

        A new post has no engagement yet (all counts zero), so asking the
        engagement service for it would only add a call to the write path;
        a new repost or quote still asks, for the original's counts."""
        try:
            posts = await self._hydrate([record], viewer_id, engagement=not new or bool(record.repost_of_id))
        except Exception:
            log.warning("hydrating a new post failed", extra={"post_id": record.post_id}, exc_info=True)
            posts = []
        if posts:
            return posts[0]
        users = await self._users_or_empty([record.author_id])
        return to_proto(record, users.get(record.author_id))

    @cql.outage_as_unavailable("posts storage")
    async def GetPost(self, request: posts_pb2.GetPostRequest, context) -> posts_pb2.Post:
        post_id = ids.parse_id(request.post_id, "post_id")
        viewer_id = auth.optional_caller_id(context)
        # Hydration leaves out gone (suspended or deleted) authors' posts.
        posts = await self._hydrate(await self._live_records([post_id]), viewer_id)
        if not posts or await self._author_hidden_from(int(posts[0].author_id), viewer_id):
            raise not_found(f"post {post_id} does not exist")
        return posts[0]

    @cql.outage_as_unavailable("posts storage")
    async def DeletePost(self, request: posts_pb2.DeletePostRequest, context) -> empty_pb2.Empty:
        caller = auth.caller_id(context)
        post_id = ids.parse_id(request.post_id, "post_id")
        record = await self.store.get(post_id)
        if record is None or (record.deleted and record.author_id != caller):
            raise not_found(f"post {post_id} does not exist")
        if record.author_id != caller:
            raise permission_denied("you can only delete your own posts")
        if await self._delete(record) == TombstoneResult.MISSING:
            raise not_found(f"post {post_id} does not exist")
        log.info("post deleted", extra={"post_id": post_id, "author_id": caller})
        return empty_pb2.Empty()

    @cql.outage_as_unavailable("posts storage")
    async def RemovePost(self, request: posts_pb2.RemovePostRequest, context) -> empty_pb2.Empty:
        post_id = ids.parse_id(request.post_id, "post_id")
        report_id = ids.parse_optional_id(request.report_id, "report_id")
        record = await self.store.get(post_id)
        if record is None or await self._delete(record) == TombstoneResult.MISSING:
            raise not_found(f"post {post_id} does not exist")
        log.info("post removed", extra={"post_id": post_id, "author_id": record.author_id, "report_id": report_id})
        return empty_pb2.Empty()

    async def _delete(self, record: PostRecord) -> str:
        """The one delete path (an author's delete, a moderator's removal, a
        deleted account): tombstone, then the author-list removal and the
        PostDeleted event in one batch. Idempotent; returns the TombstoneResult."""
        post_id, author_id = record.post_id, record.author_id
        outcome = TombstoneResult.ALREADY_DELETED if record.deleted else await self.store.tombstone(post_id)
        self.cache.invalidate(post_id)
        if outcome == TombstoneResult.APPLIED:
            await self._finish_delete(author_id, record)
            await self._count_post(author_id, -1)
        elif outcome == TombstoneResult.ALREADY_DELETED and await self.store.in_author_list(author_id, post_id):
            # An earlier delete tombstoned the post but stopped before its
            # batch; this retry completes it (the counter is not touched
            # again: whether it was decremented cannot be known).
            await self._finish_delete(author_id, record)
            log.info("post delete completed on retry", extra={"post_id": post_id, "author_id": author_id})
        return outcome

    @cql.outage_as_unavailable("posts storage")
    async def ListUserPosts(self, request: posts_pb2.ListUserPostsRequest, context) -> posts_pb2.ListUserPostsResponse:
        if request.user_id == "me":
            user_id = auth.caller_id(context)
            viewer_id: int | None = user_id
        else:
            user_id = ids.parse_id(request.user_id, "user_id")
            viewer_id = auth.optional_caller_id(context)
        size = paging.page_size(request.page_size)
        before = paging.int_cursor(request.page_token, "before")

        users = await self._cached_users([user_id])
        if user_id not in users or await self._author_hidden_from(user_id, viewer_id):
            raise not_found(f"user {user_id} does not exist")
        # Authors see their own newest posts at once, whichever replica wrote them.
        post_ids = await self._author_post_ids(user_id, before, size + 1, copy_ok=viewer_id != user_id)
        page = post_ids[:size]
        records = await self._live_records(page)
        posts = await self._hydrate(records, viewer_id, known_users=users)
        next_token = paging.encode_token({"before": page[-1]}) if len(post_ids) > size else ""
        return posts_pb2.ListUserPostsResponse(posts=posts, next_page_token=next_token)

    @cql.outage_as_unavailable("posts storage")
    async def ListReplies(self, request: posts_pb2.ListRepliesRequest, context) -> posts_pb2.ListRepliesResponse:
        parent_id = ids.parse_id(request.post_id, "post_id")
        viewer_id = auth.optional_caller_id(context)
        size = paging.page_size(request.page_size)
        after = paging.int_cursor(request.page_token, "after")
        await self._visible_thread_post(parent_id, viewer_id)
        posts, next_token = await self._reply_page(parent_id, viewer_id, after, size)
        return posts_pb2.ListRepliesResponse(posts=posts, next_page_token=next_token)

    @cql.outage_as_unavailable("posts storage")
    async def GetPostContext(self, request: posts_pb2.GetPostContextRequest, context) -> posts_pb2.PostContext:
        post_id = ids.parse_id(request.post_id, "post_id")
        viewer_id = auth.optional_caller_id(context)
        size = paging.page_size(request.page_size)
        after = paging.int_cursor(request.page_token, "after")
        record = await self._visible_thread_post(post_id, viewer_id)
        ancestor_records, (replies, next_token) = await asyncio.gather(
            self._live_ancestors(record), self._reply_page(post_id, viewer_id, after, size)
        )
        # Ancestors and the post in one hydration; the post comes last.
        hydrated = await self._hydrate([*ancestor_records, record], viewer_id)
        if not hydrated or hydrated[-1].id != str(post_id):
            # A pure repost whose original is gone has nothing to show.
            raise not_found(f"post {post_id} does not exist")
        ancestors = await self._without_authors_hidden_from(viewer_id, hydrated[:-1])
        return posts_pb2.PostContext(
            ancestors=ancestors, post=hydrated[-1], replies=replies, next_page_token=next_token
        )

    @cql.outage_as_unavailable("posts storage")
    async def BookmarkPost(self, request: posts_pb2.BookmarkPostRequest, context) -> posts_pb2.BookmarkPostResponse:
        caller = auth.caller_id(context)
        await self._require_active_account(caller)
        post_id = ids.parse_id(request.post_id, "post_id")
        record = await self.store.get(post_id)
        if record is None or record.deleted or await self._author_hidden_from(record.author_id, caller, writing=True):
            raise not_found(f"post {post_id} does not exist")
        await self._check_bookmark_room(caller, post_id)
        bookmark_id = await self.store.add_bookmark(caller, post_id, self.ids.next_id())
        return posts_pb2.BookmarkPostResponse(
            post_id=str(post_id), bookmark_time=timestamp_from_ms(ids.timestamp_ms(bookmark_id))
        )

    @cql.outage_as_unavailable("posts storage")
    async def UnbookmarkPost(
        self, request: posts_pb2.UnbookmarkPostRequest, context
    ) -> posts_pb2.UnbookmarkPostResponse:
        caller = auth.caller_id(context)
        post_id = ids.parse_id(request.post_id, "post_id")
        # Idempotent: removing a bookmark that is not there (or of a post
        # that never existed) succeeds.
        await self.store.remove_bookmark(caller, post_id)
        return posts_pb2.UnbookmarkPostResponse()

    @cql.outage_as_unavailable("posts storage")
    async def ListBookmarks(self, request: posts_pb2.ListBookmarksRequest, context) -> posts_pb2.ListBookmarksResponse:
        caller = auth.caller_id(context)
        size = paging.page_size(request.page_size)
        before = paging.int_cursor(request.page_token, "before")
        bookmarks = await self.store.bookmarks(caller, before, size + 1)
        page = bookmarks[:size]
        claims = await self.store.bookmark_claims(caller, [post_id for _, post_id in page])
        # A list row whose claim names another bookmark id (or none) is a
        # stray: an unbookmark that ran between a bookmark's claim and its
        # list row. The claim is the truth; strays are dropped.
        held = [(bookmark_id, post_id) for bookmark_id, post_id in page if claims.get(post_id) == bookmark_id]
        strays = tuple(bookmark_id for bookmark_id, post_id in page if claims.get(post_id) != bookmark_id)
        records = await self._live_records([post_id for _, post_id in held])
        live_ids = {r.post_id for r in records}
        gone = [(bookmark_id, post_id) for bookmark_id, post_id in held if post_id not in live_ids]
        posts, _ = await asyncio.gather(self._hydrate(records, caller), self._forget_bookmarks(caller, gone, strays))
        # Posts whose authors block the caller are not shown to them anywhere;
        # the bookmark stays, should the block be lifted.
        blocked_by = (await self._hidden_from(caller)).blocked_by
        posts = [post for post in posts if int(post.author_id) not in blocked_by]
        # The page may come back short (deleted posts left out), with a token that goes on.
        next_token = paging.encode_token({"before": page[-1][0]}) if len(bookmarks) > size else ""
        return posts_pb2.ListBookmarksResponse(posts=posts, next_page_token=next_token)

    @cql.outage_as_unavailable("posts storage")
    async def BatchGetPosts(self, request: posts_pb2.BatchGetPostsRequest, context) -> posts_pb2.BatchGetPostsResponse:
        post_ids = ids.parse_ids(request.post_ids, "post_ids", max_items=MAX_BATCH_GET)
        viewer_id = ids.parse_optional_id(request.viewer_id, "viewer_id") or None
        # A repeated id is read and returned once, at its first position.
        unique_ids = list(dict.fromkeys(post_ids))
        records = await self._live_records(unique_ids)
        posts = await self._hydrate(records, viewer_id, engagement=not request.skip_engagement, hide_gone=False)
        return posts_pb2.BatchGetPostsResponse(posts=posts)

    @cql.outage_as_unavailable("posts storage")
    async def GetAuthorStats(self, request: posts_pb2.GetAuthorStatsRequest, context) -> posts_pb2.AuthorStats:
        if request.user_id == "me":
            user_id = auth.caller_id(context)
        else:
            user_id = ids.parse_id(request.user_id, "user_id")
        count = await self.store.post_count(user_id)
        return posts_pb2.AuthorStats(user_id=str(user_id), post_count=count)

    @cql.outage_as_unavailable("posts storage")
    async def BatchGetAuthorStats(self, request, context) -> posts_pb2.BatchGetAuthorStatsResponse:
        user_ids = list(dict.fromkeys(ids.parse_ids(request.user_ids, "user_ids", max_items=MAX_BATCH_GET)))
        counts = await self.store.post_counts(user_ids) if user_ids else {}
        return posts_pb2.BatchGetAuthorStatsResponse(
            stats=[posts_pb2.AuthorStats(user_id=str(u), post_count=counts.get(u, 0)) for u in user_ids]
        )

    @cql.outage_as_unavailable("posts storage")
    async def ListAuthorsPostIds(self, request, context) -> posts_pb2.ListAuthorsPostIdsResponse:
        authors = _checked_author_ids(request.author_ids)
        before = request.before_post_id or None
        if before is not None and before < 0:
            raise invalid_argument("before_post_id", f"must be 0 or a positive id, got {before}")
        per_author = _bounded(request.per_author_limit, "per_author_limit", default=200, most=800)
        limit = _bounded(request.limit, "limit", default=800, most=800)
        newest = await newest_of_authors(self.store.author_posts, authors, before, per_author, limit)
        unknown = [post_id for post_id, _, repost_of in newest if repost_of is None]
        learned = await self._learn_repost_of(unknown) if unknown else {}
        return posts_pb2.ListAuthorsPostIdsResponse(
            posts=[
                posts_pb2.PostRef(post_id=p, author_id=a, repost_of_id=learned.get(p, 0) if r is None else r)
                for p, a, r in newest
                if r is not None or p in learned
            ]
        )

    async def _learn_repost_of(self, post_ids: list[int]) -> dict[int, int]:
        """What each live post among post_ids purely reposts (0: none), read
        from the posts themselves for author-list rows that predate the
        column; those rows are filled in, once, on the way."""
        records = await self._live_records(post_ids)
        try:
            await self.store.fill_in_repost_of(records)
        except cql.OUTAGES as exc:
            # Only costs the next read of these rows the same lookup.
            log.warning("author list rows not filled in", extra={"posts": len(records), "error": error_text(exc)})
        return {r.post_id: r.pure_repost_of for r in records}

    async def ExportPosts(self, request: posts_pb2.ExportPostsRequest, context):
        """Every live post, read page by page with the driver's paging (the
        full table scan never holds more than one page), deleted rows skipped."""
        batch_size = _bounded(request.batch_size, "batch_size", default=500, most=1000)
        paging_state, exported = None, 0
        while True:
            try:
                records, paging_state = await self.store.scan_page(paging_state, batch_size)
            except cql.OUTAGES as exc:
                log.warning("post export interrupted", extra={"exported": exported, "error": error_text(exc)})
                raise unavailable("posts storage is temporarily unavailable; start the export again") from exc
            live = [to_created_event(r) for r in records if not r.deleted]
            if live:
                exported += len(live)
                yield posts_pb2.ExportPostsResponse(posts=live)
            if paging_state is None:
                log.info("posts exported", extra={"posts": exported})
                return

    # -- helpers ------------------------------------------------------------

    async def _require_live_post(self, post_id: int, field: str) -> PostRecord:
        record = await self.store.get(post_id)
        if record is None:
            raise not_found(f"post {post_id} does not exist")
        if record.deleted:
            raise failed_precondition(f"{field}: post {post_id} was deleted")
        return record

    async def _require_visible_post(self, post_id: int, field: str, viewer_id: int) -> PostRecord:
        """A live post the viewer may see: a blocker's posts are not found for
        the blocked (who so cannot reply to, quote or repost them)."""
        record = await self._require_live_post(post_id, field)
        if await self._author_hidden_from(record.author_id, viewer_id, writing=True):
            raise not_found(f"post {post_id} does not exist")
        return record

    async def _author_post_ids(self, author_id: int, before: int | None, limit: int, *, copy_ok: bool) -> list[int]:
        """store.author_post_ids, from this replica's copy when it can tell (and `copy_ok`)."""
        ids_kept = self.author_ids.page(author_id, before, limit) if copy_ok else None
        if ids_kept is not None:
            AUTHOR_LIST_READS.labels("copy").inc()
            return ids_kept
        read_started = self.author_ids.now()
        post_ids = await self.store.author_post_ids(author_id, before, limit)
        AUTHOR_LIST_READS.labels("cassandra").inc()
        if before is None and self._hears_posts_since(read_started):
            self.author_ids.keep(author_id, post_ids, limit, read_started)
        return post_ids

    def _hears_posts_since(self, moment: float) -> bool:
        """Whether every post event written after `moment` (a value of
        time.monotonic()) reaches this replica's consumer: not so while it is
        still finding where to start, and a copy filled then could miss one."""
        since = self.evictions.reading_since
        return since is not None and moment >= since

    async def _live_records(self, post_ids: list[int]) -> list[PostRecord]:
        """Live posts among post_ids, in the given order; cache first, then one read each."""
        cached = {post_id: self.cache.get(post_id) for post_id in post_ids}
        missing = [post_id for post_id, record in cached.items() if record is None]
        if missing:
            read_started = self.cache.now()
            for record in await self.store.get_many(missing):
                if record is not None:
                    cached[record.post_id] = record
                    self.cache.put(record, read_started)
        return [r for r in (cached.get(post_id) for post_id in post_ids) if r is not None and not r.deleted]

    async def _hydrate(
        self,
        records: list[PostRecord],
        viewer_id: int | None,
        known_users: dict[int, identity_pb2.User] | None = None,
        *,
        engagement: bool = True,
        hide_gone: bool = True,
    ) -> list[posts_pb2.Post]:
        """Posts with author summaries, reposted originals and engagement.

        One identity call for all authors, one engagement call for all posts.
        A pure repost whose original is gone is left out (it has nothing to
        show); a quote of a deleted post stays, without the embedded original.
        Posts of gone (suspended or deleted) accounts are left out, and their
        posts as originals count as deleted, unless `hide_gone` is False:
        BatchGetPosts answers peers that apply the same set themselves
        (peers.safety), and must not make a suspended author's posts look
        deleted (timeline drops entries whose posts are absent for good, and a
        suspension can be lifted).
        """
        gone = await self.gone_accounts.ids() if hide_gone else frozenset()
        records = [r for r in records if r.author_id not in gone]
        if not records:
            return []
        original_ids = [r.repost_of_id for r in records if r.repost_of_id]
        live_originals = await self._live_records(list(dict.fromkeys(original_ids)))
        # A gone author's post reposted or quoted shows like a deleted one.
        originals = {r.post_id: r for r in live_originals if r.author_id not in gone}
        records = [r for r in records if not r.pure_repost_of or r.repost_of_id in originals]
        users = dict(known_users or {})
        authors = [r.author_id for r in records] + [r.author_id for r in originals.values()]
        wanted = [a for a in dict.fromkeys(authors) if a not in users]
        if wanted:
            users.update(await self._users_or_empty(wanted))
        posts = []
        for record in records:
            post = self.protos.to_proto(record, users.get(record.author_id))
            original = originals.get(record.repost_of_id)
            if original is not None:
                post.repost_of.CopyFrom(self.protos.to_proto(original, users.get(original.author_id)))
            posts.append(post)
        if engagement:
            await engagement_overlay.apply(posts, viewer_id, self.engagement_reads)
        # Media and products come from different services: asked side by side.
        await asyncio.gather(
            post_media.attach_media(self.media, posts, self.settings.rpc_timeout_seconds),
            # Reads give up on the catalog quickly: a slow catalog must not slow timelines.
            post_products.attach_products(self.products, posts, self.settings.catalog_read_timeout_seconds),
        )
        return posts

    async def _visible_thread_post(self, post_id: int, viewer_id: int | None) -> PostRecord:
        """The live post at the centre of a thread read; not found when
        deleted or when its author blocks the viewer."""
        record = await self._record(post_id)
        if record is None or record.deleted or await self._author_hidden_from(record.author_id, viewer_id):
            raise not_found(f"post {post_id} does not exist")
        return record

    async def _record(self, post_id: int) -> PostRecord | None:
        """One post row, deleted or not, cache first."""
        cached = self.cache.get(post_id)
        if cached is not None:
            return cached
        read_started = self.cache.now()
        record = await self.store.get(post_id)
        if record is not None:
            self.cache.put(record, read_started)
        return record

    async def _live_ancestors(self, record: PostRecord) -> list[PostRecord]:
        """The post's live ancestors, root first, ending with its parent.

        The walk goes through deleted ancestors (their rows keep reply_to_id)
        and leaves them out, with no placeholder: as Mastodon's context does,
        which collects the reply chain and then drops the statuses the viewer
        cannot see. At most MAX_THREAD_DEPTH levels, nearest first; a cycle
        (impossible for ids that only grow, but cheap to rule out) ends it."""
        chain: list[PostRecord] = []
        seen = {record.post_id}
        parent_id = record.reply_to_id
        while parent_id and parent_id not in seen and len(chain) < MAX_THREAD_DEPTH:
            seen.add(parent_id)
            parent = await self._record(parent_id)
            if parent is None:
                break
            chain.append(parent)
            parent_id = parent.reply_to_id
        return [r for r in reversed(chain) if not r.deleted]

    async def _reply_page(
        self, parent_id: int, viewer_id: int | None, after: int | None, size: int
    ) -> tuple[list[posts_pb2.Post], str]:
        """One page of the parent's direct replies, oldest first, and the token
        for the next. The page may come back short (deleted replies and hidden
        authors left out), with a token that goes on."""
        reply_ids = await self.store.reply_ids(parent_id, after, size + 1)
        page = reply_ids[:size]
        posts = await self._hydrate(await self._live_records(page), viewer_id)
        posts = await self._without_authors_hidden_from(viewer_id, posts)
        next_token = paging.encode_token({"after": page[-1]}) if len(reply_ids) > size else ""
        return posts, next_token

    async def _without_authors_hidden_from(
        self, viewer_id: int | None, posts: list[posts_pb2.Post]
    ) -> list[posts_pb2.Post]:
        """The one place thread reads (replies, and a context's ancestors and
        replies) remove posts by authors hidden from the viewer: blocked
        either way or muted, and posts reposting or quoting them; gone
        accounts for every viewer, signed in or not."""
        if not posts:
            return posts
        hidden_ids = (await self._hidden_from(viewer_id)).ids()
        return [post for post in posts if not safety.hides_post(post, hidden_ids)]

    async def _check_bookmark_room(self, user_id: int, post_id: int) -> None:
        """Refuses a new bookmark past the limit; bookmarking a post again
        always succeeds. Two concurrent new bookmarks can both pass the count:
        the limit bounds the partition, it is not an exact quota."""
        if await self.store.has_bookmark(user_id, post_id):
            return
        if await self.store.bookmark_count(user_id) >= self.settings.max_bookmarks:
            raise failed_precondition(
                f"at most {self.settings.max_bookmarks} bookmarks; remove some before adding more"
            )

    async def _forget_bookmarks(self, user_id: int, gone: list[tuple[int, int]], strays: tuple[int, ...]) -> None:
        """Drops bookmarks of deleted posts and stray list rows, found while
        listing. Best effort: a failure leaves the rows for the next listing
        to find again."""
        if not gone and not strays:
            return
        try:
            await self.store.remove_bookmark_rows(user_id, gone, strays)
        except Exception:
            log.warning("dropping bookmarks of deleted posts failed", extra={"user_id": user_id}, exc_info=True)

    async def _hidden_from(self, viewer_id: int | None) -> safety.Hidden:
        return await self.hidden_authors.of(viewer_id or 0)

    async def _author_hidden_from(self, author_id: int, viewer_id: int | None, *, writing: bool = False) -> bool:
        """Nobody finds a gone (suspended or deleted) author's posts, and a
        blocked viewer finds none of the blocker's (404 for them). Reads go
        by the process's copy of the gone accounts, as hydration does; a
        write aimed at the author's post asks Redis, so it is refused at once."""
        if writing:
            gone = await self.gone_accounts.contains(author_id)
        else:
            gone = author_id in await self.gone_accounts.ids()
        if gone:
            return True
        if not viewer_id or viewer_id == author_id:
            return False
        return author_id in (await self._hidden_from(viewer_id)).blocked_by

    async def _require_active_account(self, user_id: int) -> None:
        """A suspended or deleted account writes nothing, even with an
        access token that has not expired yet."""
        if await self.gone_accounts.contains(user_id):
            raise permission_denied("account is suspended: it cannot post, repost or bookmark")

    async def _users(self, user_ids: list[int]) -> dict[int, identity_pb2.User]:
        """User summaries by id with their counts; UNAVAILABLE when identity cannot answer."""
        return await authors.summaries(user_ids, self.store.post_counts, self.settings.rpc_timeout_seconds)

    async def _cached_users(self, user_ids: list[int]) -> dict[int, identity_pb2.User]:
        """Like _users (UNAVAILABLE when identity cannot answer), served from
        the author cache when every summary is there: a profile page read
        shares the summary hydration already keeps."""
        found, missing = self.authors.get_many(user_ids)
        if missing:
            version = self.authors.version()
            fetched = await self._users(missing)
            self.authors.put_many(fetched.items(), version=version)
            found.update(fetched)
        return found

    async def _users_or_empty(self, user_ids: list[int]) -> dict[int, identity_pb2.User]:
        # Posts stay readable while identity is down; they just lack the
        # author summary (author_id is always set).
        try:
            return await self._cached_users(user_ids)
        except Exception:
            return self.authors.get_many(user_ids)[0]

    async def _count_post(self, author_id: int, delta: int) -> None:
        try:
            await self.store.count_post(author_id, delta)
            self._recount_cached_author(author_id, delta)
        except Exception:
            # The post change is committed; a lost counter update is only a
            # slightly wrong number, not a reason to fail the call.
            log.warning("author_stats update failed", extra={"author_id": author_id, "delta": delta}, exc_info=True)

    def _recount_cached_author(self, author_id: int, delta: int) -> None:
        """The post's own answer shows the new count without asking identity
        again. Other replicas' copies show the old post count for at most
        the cache's TTL: announcing it would make every post refetch its
        author here too (this replica hears its own announcements)."""
        cached, _ = self.authors.get_many([author_id])
        if author_id in cached:
            summary = identity_pb2.User()
            summary.CopyFrom(cached[author_id])
            summary.post_count = max(0, summary.post_count + delta)
            self.authors.put_many([(author_id, summary)])

    async def _finish_delete(self, author_id: int, record: PostRecord) -> None:
        event_id = self.ids.next_id()
        await self.store.finish_delete(
            author_id, record.post_id, event_id, ids.timestamp_ms(event_id), record.reply_to_id, record.repost_of_id
        )
        self.author_ids.removed(author_id, record.post_id)


MAX_AUTHORS = 5000


def _checked_author_ids(author_ids) -> list[int]:
    if not author_ids:
        raise invalid_argument("author_ids", "must name at least one author")
    if len(author_ids) > MAX_AUTHORS:
        raise invalid_argument("author_ids", f"at most {MAX_AUTHORS}, got {len(author_ids)}")
    for i, author_id in enumerate(author_ids):
        if author_id <= 0:
            raise invalid_argument(f"author_ids[{i}]", f"must be a positive id, got {author_id}")
    return list(dict.fromkeys(author_ids))


def _bounded(value: int, field: str, *, default: int, most: int) -> int:
    if value == 0:
        return default
    if not 1 <= value <= most:
        raise invalid_argument(field, f"must be between 1 and {most}, got {value}")
    return value
