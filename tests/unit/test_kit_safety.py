"""The hidden-authors answer as read paths use it: who is hidden, and when a post is."""

from __future__ import annotations

import datetime

from aviary.graph.v1 import graph_pb2
from aviary.posts.v1 import posts_pb2
from services.kit.peers import accounts, safety

NOW = 1_800_000_000.0


def _hidden(blocking=(), blocked_by=(), muted_until=()) -> safety.Hidden:
    return safety.Hidden(blocking=frozenset(blocking), blocked_by=frozenset(blocked_by), muted_until=tuple(muted_until))


def test_blocked_either_way_and_actively_muted_users_are_hidden():
    hidden = _hidden(blocking=[1], blocked_by=[9], muted_until=[(2, None), (3, NOW + 10)])
    assert hidden.ids(NOW) == {1, 2, 3, 9}


def test_a_mute_is_over_at_its_end_time():
    hidden = _hidden(muted_until=[(3, NOW)])
    assert hidden.ids(NOW) == frozenset()
    assert hidden.ids(NOW - 1) == {3}


def test_a_post_is_hidden_by_its_author_or_the_author_it_reposts():
    ids = frozenset({7})
    own = posts_pb2.Post(id="10", author_id="7")
    repost = posts_pb2.Post(id="11", author_id="8", repost_of=posts_pb2.Post(id="10", author_id="7"))
    other = posts_pb2.Post(id="12", author_id="8", repost_of=posts_pb2.Post(id="9", author_id="6"))
    assert safety.hides_post(own, ids)
    assert safety.hides_post(repost, ids)
    assert not safety.hides_post(other, ids)


def test_the_reply_keeps_mute_end_times():
    end = datetime.datetime.fromtimestamp(NOW + 5, datetime.timezone.utc)
    reply = graph_pb2.GetHiddenAuthorsResponse(
        blocked_ids=[4], blocker_ids=[8], mutes=[graph_pb2.HiddenMute(user_id=5), graph_pb2.HiddenMute(user_id=6)]
    )
    reply.mutes[1].expires_at.FromDatetime(end)
    hidden = safety.from_reply(reply)
    assert hidden.ids(NOW) == {4, 5, 6, 8}
    assert hidden.ids(NOW + 5) == {4, 5, 8}
    assert hidden.blocked_by == {8}


def test_the_version_key_is_one_slot_per_viewer():
    assert safety.version_key(42) == "graph:hidden-version:{42}"


class _Versions:
    """A stand-in for Redis GET of the version keys."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.gone: set[bytes] = set()
        self.down = False

    async def get(self, key: str):
        if self.down:
            raise OSError("redis down")
        return self.values.get(key)

    async def smembers(self, key: str):
        if self.down:
            raise OSError("redis down")
        return set(self.gone) if key == accounts.GONE_KEY else set()

    async def sismember(self, key: str, member: str):
        if self.down:
            raise OSError("redis down")
        return key == accounts.GONE_KEY and member.encode() in self.gone


class _Epoch:
    """A stand-in for RedisEpoch: the epoch is whatever the test sets."""

    def __init__(self) -> None:
        self.current: bytes | None = b"e1"

    async def current_within(self, max_age: float) -> bytes | None:
        return self.current


class _Bulk:
    """A stand-in for BulkRedis.read over the same versions."""

    def __init__(self, versions: _Versions) -> None:
        self.versions = versions
        self.reads = 0

    async def read(self, commands):
        self.reads += 1
        return [await self.versions.get(key) for _, key in commands]


def _counting_helper(versions, epoch=None, bulk=None):
    helper = safety.HiddenAuthors(versions, timeout=1.0, epoch=epoch or _Epoch(), bulk=bulk)
    asked: list[int] = []

    async def ask(viewer: int):
        asked.append(viewer)
        return safety.Hidden(blocking=frozenset({len(asked)}))

    helper._ask_graph = ask  # type: ignore[method-assign]
    return helper, asked


async def test_an_answer_is_reused_while_the_viewers_version_holds():
    versions = _Versions()
    helper, asked = _counting_helper(versions)
    first = await helper.of(7)
    assert await helper.of(7) == first and asked == [7]
    versions.values[safety.version_key(7)] = b"123"  # a block or mute changed it
    assert await helper.of(7) != first and asked == [7, 7]
    assert await helper.of(7) == safety.Hidden(blocking=frozenset({2})) and asked == [7, 7]


async def test_the_version_is_read_through_the_bulk_connections_when_given():
    versions = _Versions()
    bulk = _Bulk(versions)
    helper, asked = _counting_helper(versions, bulk=bulk)
    first = await helper.of(7)
    versions.values[safety.version_key(7)] = b"123"
    assert await helper.of(7) != first and asked == [7, 7] and bulk.reads == 2


async def test_an_answer_from_another_redis_epoch_is_not_reused():
    # A failover or restart may have lost the version a block wrote, and
    # brought back the one the answer was cached under.
    versions, epoch = _Versions(), _Epoch()
    helper, asked = _counting_helper(versions, epoch)
    first = await helper.of(7)
    epoch.current = b"e2"
    assert await helper.of(7) != first and asked == [7, 7]
    assert await helper.of(7) == safety.Hidden(blocking=frozenset({2})) and asked == [7, 7]


async def test_with_the_epoch_unknown_graph_is_asked_every_time():
    epoch = _Epoch()
    epoch.current = None
    helper, asked = _counting_helper(_Versions(), epoch)
    await helper.of(7)
    await helper.of(7)
    assert asked == [7, 7]


def test_answers_are_kept_less_long_than_a_version_lives():
    # Otherwise a version could lapse back to "none" while an answer cached
    # under "none", before a block, is still held.
    assert safety.CACHE_SECONDS < safety.VERSION_SECONDS


async def test_without_a_readable_version_graph_is_asked_every_time():
    versions = _Versions()
    versions.down = True
    helper, asked = _counting_helper(versions)
    await helper.of(7)
    await helper.of(7)
    assert asked == [7, 7]


async def test_no_viewer_hides_nobody_without_asking():
    helper, asked = _counting_helper(_Versions())
    assert await helper.of(0) is safety.NOTHING_HIDDEN and asked == []


async def test_gone_accounts_are_hidden_from_every_viewer_including_nobody():
    versions = _Versions()
    versions.gone = {b"77"}
    helper, _ = _counting_helper(versions)
    assert 77 in (await helper.of(0)).ids()
    signed_in = await helper.of(5)
    assert 77 in signed_in.ids() and 1 in signed_in.ids()


async def test_gone_accounts_are_reread_only_after_the_refresh_interval():
    versions = _Versions()
    gone = accounts.GoneAccounts(versions, refresh_seconds=3600)  # type: ignore[arg-type]
    versions.gone = {b"1"}
    assert await gone.ids() == frozenset({1})
    versions.gone = {b"1", b"2"}
    assert await gone.ids() == frozenset({1}), "copied until the interval passes"
    fresh = accounts.GoneAccounts(versions, refresh_seconds=0)  # type: ignore[arg-type]
    assert await fresh.ids() == frozenset({1, 2})


async def test_an_unreadable_redis_keeps_the_last_copy_of_gone_accounts():
    versions = _Versions()
    gone = accounts.GoneAccounts(versions, refresh_seconds=0)  # type: ignore[arg-type]
    versions.gone = {b"9"}
    assert await gone.ids() == frozenset({9})
    versions.down = True
    assert await gone.ids() == frozenset({9})


async def test_a_write_path_sees_a_gone_account_at_once_and_the_copy_while_redis_is_down():
    versions = _Versions()
    gone = accounts.GoneAccounts(versions, refresh_seconds=3600)  # type: ignore[arg-type]
    assert await gone.ids() == frozenset()
    versions.gone = {b"4"}
    assert await gone.contains(4), "asked of Redis, not the hour-old copy"
    assert not await gone.contains(5)
    versions.down = True
    assert not await gone.contains(4), "the copy (read before 4 was gone) answers while Redis is down"
