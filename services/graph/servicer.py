"""GraphService: follow edges, counts, the celebrity flag, and follower streams for fanout."""

from __future__ import annotations

import asyncio
import bisect
import datetime
import logging
from array import array
from contextlib import aclosing
from typing import Sequence

from redis.exceptions import RedisError

from aviary.events.v1 import events_pb2
from aviary.graph.v1 import graph_pb2, graph_pb2_grpc
from aviary.identity.v1 import identity_pb2
from services.graph import rules
from services.graph.follower_lists import FollowerLists, Kept
from services.kit.stores.redis_epoch import RedisEpoch
from services.graph.settings import GraphSettings
from services.graph.store import GraphStore
from services.kit.events.account_deletions import AccountDeletions
from services.kit.peers import accounts, clients
from services.kit.server import startup
from services.kit.server.auth import caller_id
from services.kit.server.errors import invalid_argument, not_found, permission_denied
from services.kit.server.ids import MAX_ID, IdGenerator, parse_id, parse_ids
from services.kit.server.paging import encode_token, int_cursor, page_size
from services.kit.stores.cache import TtlCache
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

# A claim older than this whose followers row is missing was abandoned by a
# crashed call (a live one writes the row within milliseconds).
UNFINISHED_CLAIM_AGE = datetime.timedelta(seconds=30)
# Ids per BatchGetFollowStats (identity's BatchGetUsers asks at most as many).
MAX_BATCH_STATS = 200
# Profiles ask for one user; lists of people would ask for a page.
MAX_BATCH_RELATIONSHIPS = 100
# Account deletions (identity's AccountDeleted): one group for all replicas.
ACCOUNTS_GROUP = "graph-accounts"
# Rows read per page while removing a deleted account's edges, and how many
# of them are ended at once.
REMOVAL_PAGE = 100
REMOVAL_CONCURRENCY = 16
# How long identity's "this user exists" is taken on trust by the existence
# checks of follows, blocks and mutes. A deleted account shows in the gone set
# (within accounts.REFRESH_SECONDS), which sends the check back to identity;
# it stays there for the username hold, far longer than this.
KNOWN_USER_SECONDS = 60.0


class GraphServicer(graph_pb2_grpc.GraphServiceServicer):
    def __init__(self, settings: GraphSettings) -> None:
        self.settings = settings
        self.store = GraphStore(settings)
        # Which history Redis follows: the follower lists' versions count within one.
        self.redis_epoch = RedisEpoch(self.store.redis)
        self.follower_lists = FollowerLists(
            self.store.bulk,
            self.redis_epoch,
            ttl_seconds=settings.follower_list_seconds,
            max_authors=settings.follower_list_authors,
            max_ids=settings.follower_list_max_ids,
            max_ids_held=settings.follower_list_ids_held,
        )
        self.ids = IdGenerator(settings.worker_id)
        # Suspended and deleted accounts can neither follow nor be followed.
        self.gone = accounts.GoneAccounts(self.store.redis)
        self.second_sweeps = accounts.SecondSweeps(self.gone, self.remove_account)
        self.known_users: TtlCache[int, bool] = TtlCache(ttl_seconds=KNOWN_USER_SECONDS, max_entries=100_000)
        self.account_deletions = AccountDeletions(
            settings.kafka_bootstrap, ACCOUNTS_GROUP, self._on_account_deleted, second_sweeps=self.second_sweeps
        )

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        # On a fresh machine Cassandra may still be starting: retry for a while.
        await startup.retry_until_up(self.store.start, "cassandra")
        await self.redis_epoch.refresh()

    async def stop(self) -> None:
        await clients.close_all()
        await self.store.stop()

    async def watch_redis_epoch(self) -> None:
        """Background job: notices Redis failovers and restarts (RedisEpoch)."""
        await self.redis_epoch.watch_forever()

    async def relay_outbox(self) -> None:
        """Background job: publishes stored graph events to Kafka."""
        assert self.store.outbox is not None, "start() runs before background jobs"
        await self.store.outbox.relay_forever()

    async def consume_account_events(self) -> None:
        """Background job: removes what graph holds of deleted accounts. The
        `muted_by` backfill runs first (once per keyspace), so a deletion
        finds every mute of the account, old ones included."""
        copied = await self.store.fill_muted_by()
        if copied:
            log.info("muted_by filled from existing mutes", extra={"mutes": copied})
        await self.account_deletions.run()

    async def _on_account_deleted(self, event: events_pb2.AccountEvent) -> None:
        await self.remove_account(event.deleted.user_id)

    async def remove_account(self, user: int) -> None:
        """Ends everything graph holds of a deleted account: its follows both
        ways through the usual unfollow (events for fanout and
        recommendations, the other side's counts, profile announcements,
        celebrity flags), its blocks and mutes both ways (moving the other
        users' hidden-authors versions, as unblock and unmute do), then its
        own counts. Idempotent: a redelivery, or a rerun after dying half-way,
        finds only what is left."""
        await _each_page(self.store.following_after, user, lambda followee: self._unfollow(user, followee))
        await _each_page(self.store.followers_after, user, lambda follower: self._unfollow(follower, user))
        await _each_page(self.store.blocks_after, user, lambda blocked: self._drop_block(user, blocked))
        await _each_page(self.store.blocked_by_after, user, lambda blocker: self._drop_block(blocker, user))
        await _each_page(self.store.mutes_after_ids, user, lambda muted: self._drop_mute(user, muted))
        await _each_page(self.store.muted_by_after, user, lambda muter: self._drop_mute(muter, user))
        await self.store.forget_user(user)
        await self._hidden_changed(user)
        log.info("deleted account removed from the graph", extra={"user_id": user})

    async def _drop_block(self, blocker: int, blocked: int) -> None:
        await self.store.release_block(blocker, blocked)
        await self._hidden_changed(blocker, blocked)

    async def _drop_mute(self, muter: int, muted: int) -> None:
        await self.store.drop_mute(muter, muted)
        await self._hidden_changed(muter)

    # -- follow / unfollow -------------------------------------------------

    async def FollowUser(self, request, context):
        follower = caller_id(context)
        followee = parse_id(request.user_id, "user_id")
        if followee == follower:
            raise invalid_argument("user_id", "you cannot follow yourself")
        gone = await self.gone.ids()
        if follower in gone:
            raise permission_denied("your account is suspended or deleted: it cannot follow anyone")
        if followee in gone:
            raise not_found(f"user {followee} does not exist")
        await self._require_user(followee)
        if await self.store.blocks_between(follower, followee):
            # Like Mastodon and Twitter: a refusal, not a pretended success.
            raise permission_denied(f"you cannot follow user {followee}: one of you blocks the other")

        now = datetime.datetime.now(datetime.timezone.utc)
        created, since = await self.store.claim_follow(follower, followee, now)
        if created:
            event = rules.follow_event(self.ids.next_id(), follower, followee, True, now)
            await self.store.commit_follower_row(follower, followee, since, event)
            flagged = await self.store.adjust_counts(follower, followee, +1, self.ids.next_id())
            await self._refresh_celebrity(followee, flagged)
            self.store.outbox.notify()
            log.info("follow created", extra={"follower_id": follower, "followee_id": followee})
        else:
            await self._finish_interrupted_follow(follower, followee, since, now)
        if await self.store.blocks_between(follower, followee):
            # A block written after the check above: its unfollows may have
            # run before this edge existed, so this call ends the edge itself.
            await self._unfollow(follower, followee)
            raise permission_denied(f"you cannot follow user {followee}: one of you blocks the other")
        return graph_pb2.FollowUserResponse(
            follower_id=str(follower), followee_id=str(followee), following=True, created=created
        )

    async def UnfollowUser(self, request, context):
        follower = caller_id(context)
        followee = parse_id(request.user_id, "user_id")
        if followee == follower:
            raise invalid_argument("user_id", "you cannot unfollow yourself")
        await self._require_user(followee)
        removed = await self._unfollow(follower, followee)
        return graph_pb2.UnfollowUserResponse(
            follower_id=str(follower), followee_id=str(followee), following=False, removed=removed
        )

    async def _unfollow(self, follower: int, followee: int) -> bool:
        """Ends the edge if there is one (with its event, so fanout purges
        the follower's timeline); True when this call removed it."""
        removed = await self.store.release_follow(follower, followee)
        if removed:
            now = datetime.datetime.now(datetime.timezone.utc)
            event = rules.follow_event(self.ids.next_id(), follower, followee, False, now)
            await self.store.commit_follower_removal(follower, followee, event)
            flagged = await self.store.adjust_counts(follower, followee, -1, self.ids.next_id())
            await self._refresh_celebrity(followee, flagged)
            self.store.outbox.notify()
            log.info("follow removed", extra={"follower_id": follower, "followee_id": followee})
        else:
            # A followers row left by a crashed call: the list changes
            # without an event, so its version is moved here.
            await self.store.drop_follower_row(follower, followee)
            await self.store.mark_followers_changed({followee: self.ids.next_id()})
        return removed

    async def _finish_interrupted_follow(
        self, follower: int, followee: int, since: datetime.datetime, now: datetime.datetime
    ) -> None:
        """The edge was claimed before. If that claim is old and its followers
        row never appeared, the call that claimed it died between its writes:
        do what it did not (followers row + event, counts, celebrity flag).
        A young claim may still be finishing in another call: left alone."""
        if await self.store.follower_row_exists(follower, followee):
            return
        if since.tzinfo is None:
            since = since.replace(tzinfo=datetime.timezone.utc)  # the driver returns naive UTC
        if now - since < UNFINISHED_CLAIM_AGE:
            return
        event = rules.follow_event(self.ids.next_id(), follower, followee, True, now)
        await self.store.commit_follower_row(follower, followee, since, event)
        flagged = await self.store.adjust_counts(follower, followee, +1, self.ids.next_id())
        await self._refresh_celebrity(followee, flagged)
        log.warning("finished a follow interrupted earlier", extra={"follower_id": follower, "followee_id": followee})

    async def _refresh_celebrity(self, user_id: int, flagged: bool) -> None:
        """Flags or unflags the user when their follower count has crossed
        the threshold; `flagged`: the flag as read after the count moved."""
        followers, _ = await self.store.counts(user_id)
        celebrity = rules.is_celebrity(followers, self.settings.fanout_threshold)
        if celebrity == flagged:
            return
        # The crossing is announced before the flag flips: a crash in
        # between re-announces on the next refresh (its handling is
        # idempotent), never loses it.
        now = datetime.datetime.now(datetime.timezone.utc)
        await self.store.commit_event(rules.celebrity_event(self.ids.next_id(), user_id, celebrity, followers, now))
        self.store.outbox.notify()
        log.info(
            "celebrity threshold crossed", extra={"user_id": user_id, "celebrity": celebrity, "followers": followers}
        )
        await self.store.set_celebrity(user_id, celebrity)

    # -- blocks and mutes ------------------------------------------------------

    async def BlockUser(self, request, context):
        blocker = caller_id(context)
        blocked = self._other_user(request.user_id, blocker, "you cannot block yourself")
        await self._require_user(blocked)
        now = datetime.datetime.now(datetime.timezone.utc)
        # The block first, so a follow racing this call is refused from now
        # on; then the follows both ways, through the usual unfollow (its
        # events make fanout purge both timelines). Run again on a repeated
        # call, which finishes a block interrupted before its unfollows.
        created = await self.store.claim_block(blocker, blocked, now)
        await self._hidden_changed(blocker, blocked)
        await self._unfollow(blocker, blocked)
        await self._unfollow(blocked, blocker)
        if created:
            log.info("block created", extra={"user_id": blocker, "blocked_id": blocked})
        return graph_pb2.BlockUserResponse(user_id=str(blocked), blocked=True, created=created)

    async def UnblockUser(self, request, context):
        blocker = caller_id(context)
        blocked = self._other_user(request.user_id, blocker, "you cannot unblock yourself")
        await self._require_user(blocked)
        removed = await self.store.release_block(blocker, blocked)
        await self._hidden_changed(blocker, blocked)
        return graph_pb2.UnblockUserResponse(user_id=str(blocked), blocked=False, removed=removed)

    async def ListBlockedUsers(self, request, context):
        blocker = caller_id(context)
        size = page_size(request.page_size)
        after = self._after(request.page_token)
        page, last = rules.split_page(await self.store.blocks_after(blocker, after, size + 1), size)
        found = await self._users(page) if page else {}
        token = encode_token({"after": last}) if last is not None else ""
        return graph_pb2.ListBlockedUsersResponse(users=rules.in_id_order(found, page), next_page_token=token)

    async def MuteUser(self, request, context):
        muter = caller_id(context)
        muted = self._other_user(request.user_id, muter, "you cannot mute yourself")
        now = datetime.datetime.now(datetime.timezone.utc)
        end = rules.mute_end(request.expires_at if request.HasField("expires_at") else None, now)
        user = (await self._users([muted])).get(muted)
        if user is None:
            raise not_found(f"user {muted} does not exist")
        await self.store.put_mute(muter, muted, now, end)
        await self._hidden_changed(muter)
        return graph_pb2.MuteUserResponse(mute=_mute(user, end))

    async def UnmuteUser(self, request, context):
        muter = caller_id(context)
        muted = self._other_user(request.user_id, muter, "you cannot unmute yourself")
        await self._require_user(muted)
        now = datetime.datetime.now(datetime.timezone.utc)
        exists, end = await self.store.mute_ends(muter, muted)
        await self.store.drop_mute(muter, muted)
        await self._hidden_changed(muter)
        removed = exists and rules.mute_is_active(end, now)
        return graph_pb2.UnmuteUserResponse(user_id=str(muted), muted=False, removed=removed)

    async def ListMutedUsers(self, request, context):
        muter = caller_id(context)
        size = page_size(request.page_size)
        after = self._after(request.page_token)
        now = datetime.datetime.now(datetime.timezone.utc)
        rows = await self.store.mutes_after(muter, after, size + 1)
        page, last = rules.split_page([user for user, _ in rows], size)
        ends = dict(rows)
        # Expired mutes are left out (their rows lapse by TTL soon after):
        # a page may come back short, with a token that goes on.
        active = [user for user in page if rules.mute_is_active(ends[user], now)]
        found = await self._users(active) if active else {}
        token = encode_token({"after": last}) if last is not None else ""
        mutes = [_mute(found[user], ends[user]) for user in active if user in found]
        return graph_pb2.ListMutedUsersResponse(mutes=mutes, next_page_token=token)

    async def GetHiddenAuthors(self, request, context):
        viewer = parse_id(request.viewer_id, "viewer_id")
        now = datetime.datetime.now(datetime.timezone.utc)
        rows = await self.store.hidden_for(viewer)
        return graph_pb2.GetHiddenAuthorsResponse(
            blocked_ids=rows.blocking,
            blocker_ids=rows.blocked_by,
            mutes=[_hidden_mute(user, end) for user, end in rows.mutes if rules.mute_is_active(end, now)],
        )

    def _other_user(self, user_id: str, caller: int, refusal: str) -> int:
        other = parse_id(user_id, "user_id")
        if other == caller:
            raise invalid_argument("user_id", refusal)
        return other

    def _after(self, page_token: str) -> int:
        after = int_cursor(page_token, "after") or 0
        if after > MAX_ID:
            raise invalid_argument("page_token", "is malformed; pass back next_page_token unchanged")
        return after

    async def _hidden_changed(self, *user_ids: int) -> None:
        """Readers' cached hidden authors of these users are stale from now on."""
        await self.store.mark_hidden_changed(list(user_ids), self.ids.next_id())

    # -- lists ---------------------------------------------------------------

    async def ListFollowers(self, request, context):
        users, token = await self._list_page(request, context, self.store.followers_after)
        return graph_pb2.ListFollowersResponse(users=users, next_page_token=token)

    async def ListFollowing(self, request, context):
        users, token = await self._list_page(request, context, self.store.following_after)
        return graph_pb2.ListFollowingResponse(users=users, next_page_token=token)

    async def _list_page(self, request, context, read_after):
        subject = self._subject(request.user_id, context)
        size = page_size(request.page_size)
        after = int_cursor(request.page_token, "after") or 0
        if after > MAX_ID:
            raise invalid_argument("page_token", "is malformed; pass back next_page_token unchanged")
        # Keyset paging on the clustering column: a walk neither skips nor
        # repeats even while edges are added or removed.
        page, last = rules.split_page(await read_after(subject, after, size + 1), size)
        found = await self._users([subject, *page])
        if subject not in found:
            raise not_found(f"user {subject} does not exist")
        token = encode_token({"after": last}) if last is not None else ""
        return rules.in_id_order(found, page), token

    # -- internal reads ------------------------------------------------------

    async def GetFollowStats(self, request, context):
        user_id = self._subject(request.user_id, context)
        return self._follow_stats(user_id, *await self.store.counts(user_id))

    async def BatchGetFollowStats(self, request, context):
        user_ids = list(dict.fromkeys(parse_ids(request.user_ids, "user_ids", max_items=MAX_BATCH_STATS)))
        counts = await self.store.counts_many(user_ids) if user_ids else {}
        return graph_pb2.BatchGetFollowStatsResponse(
            stats=[self._follow_stats(u, *counts.get(u, (0, 0))) for u in user_ids]
        )

    async def GetRelationships(self, request, context):
        viewer = parse_id(request.viewer_id, "viewer_id")
        others = list(dict.fromkeys(parse_ids(request.user_ids, "user_ids", max_items=MAX_BATCH_RELATIONSHIPS)))
        if not others:
            return graph_pb2.GetRelationshipsResponse()
        rows = await self.store.relationship_rows(viewer, others)
        now = datetime.datetime.now(datetime.timezone.utc)
        return graph_pb2.GetRelationshipsResponse(
            relationships=[rules.relationship(user, rows, now) for user in others]
        )

    def _follow_stats(self, user_id: int, followers: int, following: int) -> graph_pb2.FollowStats:
        return graph_pb2.FollowStats(
            user_id=str(user_id),
            follower_count=rules.as_int32(followers),
            following_count=rules.as_int32(following),
            celebrity=rules.is_celebrity(followers, self.settings.fanout_threshold),
        )

    async def ListFollowedCelebrities(self, request, context):
        user_id = parse_id(request.user_id, "user_id")
        # Hot path of every home-timeline read: one CQL query + one Redis command.
        followees = await self.store.following_ids(user_id)
        return graph_pb2.ListFollowedCelebritiesResponse(celebrity_ids=await self.store.celebrities_among(followees))

    async def ListFolloweeIds(self, request, context):
        user_id = parse_id(request.user_id, "user_id")
        followees = await self.store.following_ids(user_id)
        try:
            celebrities = await self.store.celebrities_among(followees)
        except RedisError as exc:
            # The caller is most likely reading a timeline from the posts
            # store because Redis is down; it needs the followees, and
            # treats everyone alike then.
            log.warning("celebrity set unreachable; answering followees only", extra={"error": error_text(exc)})
            celebrities = []
        return graph_pb2.ListFolloweeIdsResponse(followee_ids=followees, celebrity_ids=celebrities)

    async def StreamFollowers(self, request, context):
        user_id = parse_id(request.user_id, "user_id")
        batch_size = rules.stream_batch_size(request.batch_size)
        version, kept, celebrity = await self._kept_followers(user_id, request.skip_celebrity)
        if celebrity:
            yield graph_pb2.FollowerBatch(celebrity=True)
            return
        if kept.ids is not None:
            for start in range(0, len(kept.ids), batch_size):
                yield graph_pb2.FollowerBatch(follower_ids=kept.ids[start : start + batch_size])
            return
        read = array("q")
        async with aclosing(self._read_followers(user_id, batch_size)) as pages:
            async for ids in pages:
                if len(read) <= self.follower_lists.max_ids:
                    read.extend(ids)
                yield graph_pb2.FollowerBatch(follower_ids=ids)
        # Reached only when the whole list was read and sent.
        self.follower_lists.put(user_id, version, Kept(kept.followers, read))

    async def ListFollowerIds(self, request, context):
        user_id = parse_id(request.user_id, "user_id")
        size = rules.stream_batch_size(request.page_size, "page_size")
        after = int_cursor(request.page_token, "after") or 0
        version, kept, celebrity = await self._kept_followers(user_id, request.skip_celebrity)
        if celebrity:
            return graph_pb2.ListFollowerIdsResponse(celebrity=True)
        if kept.ids is not None:
            listed: Sequence[int] = kept.ids
        elif after:
            listed = await self.store.followers_after(user_id, after, size + 1)
        else:
            # A first page reads on to the whole list (as far as one is
            # kept) and keeps it: fanout asks for the next pages at once.
            listed = await self._followers_up_to(user_id, max(self.follower_lists.max_ids, size) + 1)
            self.follower_lists.put(user_id, version, Kept(kept.followers, array("q", listed)))
        start = bisect.bisect_right(listed, after)
        ids = listed[start : start + size]
        token = encode_token({"after": ids[-1]}) if start + size < len(listed) else ""
        return graph_pb2.ListFollowerIdsResponse(follower_ids=ids, next_page_token=token)

    async def _followers_up_to(self, user_id: int, limit: int) -> list[int]:
        """The user's first `limit` followers from Cassandra, in id order."""
        ids: list[int] = []
        while len(ids) < limit:
            wanted = min(rules.MAX_STREAM_BATCH, limit - len(ids))
            page = await self.store.followers_after(user_id, ids[-1] if ids else 0, wanted)
            ids += page
            if len(page) < wanted:
                break
        return ids

    async def _kept_followers(self, user_id: int, skip_celebrity: bool) -> tuple[bytes | None, Kept, bool]:
        """The list's version (read first: what is read after it is kept
        under it), what is kept under it, and, with `skip_celebrity`, the
        count filled in and whether it makes a celebrity. A celebrity's count
        is kept, so its next post reads nothing (its ids never are: they are
        not fanned out)."""
        version = await self.follower_lists.version(user_id)
        kept = self.follower_lists.get(user_id, version)
        if not skip_celebrity:
            return version, kept, False
        followers = kept.followers
        if followers is None:
            followers, _ = await self.store.counts(user_id)
        celebrity = rules.is_celebrity(followers, self.settings.fanout_threshold)
        if celebrity:
            self.follower_lists.put(user_id, version, Kept(followers, None))
        return version, Kept(followers, kept.ids), celebrity

    async def _read_followers(self, user_id: int, batch_size: int):
        """The user's followers from Cassandra, page by page."""
        # One page read ahead: Cassandra reads the next page while this one
        # is on its way to the fanout worker (one at a time, each side idled
        # while the other worked).
        page = asyncio.ensure_future(self.store.followers_after(user_id, 0, batch_size))
        try:
            while True:
                ids = await page
                if len(ids) == batch_size:
                    page = asyncio.ensure_future(self.store.followers_after(user_id, ids[-1], batch_size))
                if ids:
                    yield ids
                if len(ids) < batch_size:
                    return
        finally:
            # The reader left early (or failed): the read ahead is not wanted.
            page.cancel()
            if page.done() and not page.cancelled():
                page.exception()  # retrieved, so asyncio does not log it as lost

    # -- helpers -------------------------------------------------------------

    def _subject(self, user_id: str, context) -> int:
        return caller_id(context) if user_id == "me" else parse_id(user_id, "user_id")

    async def _require_user(self, user_id: int) -> None:
        """NOT_FOUND unless identity knows the user. A recent yes is kept,
        unless the account has gone since (deleted or suspended): then
        identity, which knows which of the two, is asked again."""
        if self.known_users.get_many([user_id])[0] and user_id not in await self.gone.ids():
            return
        if user_id not in await self._users([user_id], counts=False):
            raise not_found(f"user {user_id} does not exist")
        self.known_users.put_many([(user_id, True)])

    async def _users(self, user_ids: list[int], *, counts: bool = True) -> dict[int, identity_pb2.User]:
        """Summaries from identity by id; ids identity does not know are absent."""
        return await clients.user_summaries(user_ids, self.settings.rpc_timeout_seconds, counts=counts)


async def _each_page(read_after, user: int, end_one) -> None:
    """Calls `end_one(other)` for every id in the user's list, a page at a
    time (a few at once), each page read after the last id of the one before."""
    after = 0
    while True:
        page = await read_after(user, after, REMOVAL_PAGE)
        for start in range(0, len(page), REMOVAL_CONCURRENCY):
            await asyncio.gather(*(end_one(other) for other in page[start : start + REMOVAL_CONCURRENCY]))
        if len(page) < REMOVAL_PAGE:
            return
        after = page[-1]


def _mute(user: identity_pb2.User, end: datetime.datetime | None) -> graph_pb2.Mute:
    mute = graph_pb2.Mute(user=user)
    if end is not None:
        mute.expires_at.FromDatetime(end)
    return mute


def _hidden_mute(user_id: int, end: datetime.datetime | None) -> graph_pb2.HiddenMute:
    mute = graph_pb2.HiddenMute(user_id=user_id)
    if end is not None:
        mute.expires_at.FromDatetime(end)
    return mute
