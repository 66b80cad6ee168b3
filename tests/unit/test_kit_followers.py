"""Fanout's copy of graph's first follower pages: reused while the author's
followers version and the Redis epoch hold, and only when whole."""

from __future__ import annotations

from redis.exceptions import ConnectionError

from aviary.graph.v1 import graph_pb2
from services.kit.peers import followers

AUTHOR = 7


class _Epoch:
    def __init__(self, current: bytes | None = b"e1") -> None:
        self.current = current


class _Bulk:
    """Versions by key, read as the hiredis connections would."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.down = False

    async def read(self, commands):
        if self.down:
            raise ConnectionError("redis is down")
        return [self.values.get(key) for _, key in commands]


def _pages(bulk: _Bulk, epoch: _Epoch, answers: list[graph_pb2.ListFollowerIdsResponse] | None = None):
    pages = followers.FirstPages(bulk, epoch)  # type: ignore[arg-type]
    asked: list[int] = []

    async def ask(author_id: int, page_size: int, timeout: float) -> graph_pb2.ListFollowerIdsResponse:
        asked.append(author_id)
        if answers:
            return answers[len(asked) - 1]
        return graph_pb2.ListFollowerIdsResponse(follower_ids=[100 + len(asked)])

    pages._ask_graph = ask  # type: ignore[method-assign]
    return pages, asked


async def _ids(pages: followers.FirstPages) -> list[int]:
    return list((await pages.for_post(AUTHOR, 5000, 1.0)).follower_ids)


async def test_an_answer_is_reused_while_the_authors_followers_version_holds():
    bulk = _Bulk()
    pages, asked = _pages(bulk, _Epoch())
    assert await _ids(pages) == [101] and await _ids(pages) == [101] and asked == [AUTHOR]
    bulk.values[followers.version_key(AUTHOR)] = b"123"  # a follow or unfollow of the author
    assert await _ids(pages) == [102] and asked == [AUTHOR, AUTHOR]
    assert await _ids(pages) == [102] and asked == [AUTHOR, AUTHOR]


async def test_an_answer_from_another_redis_epoch_is_not_reused():
    # A failover may have lost the version a follow wrote, and brought back
    # the one the answer was kept under.
    epoch = _Epoch()
    pages, asked = _pages(_Bulk(), epoch)
    await _ids(pages)
    epoch.current = b"e2"
    assert await _ids(pages) == [102] and await _ids(pages) == [102] and len(asked) == 2


async def test_graph_is_asked_every_time_while_the_epoch_or_the_version_cannot_be_read():
    bulk, epoch = _Bulk(), _Epoch(None)
    pages, asked = _pages(bulk, epoch)
    assert [await _ids(pages) for _ in range(2)] == [[101], [102]]
    epoch.current, bulk.down = b"e1", True
    assert [await _ids(pages) for _ in range(2)] == [[103], [104]]
    bulk.down = False
    assert [await _ids(pages) for _ in range(2)] == [[105], [105]] and len(asked) == 5


async def test_a_celebritys_answer_is_kept_and_a_list_of_several_pages_is_not():
    celebrity = graph_pb2.ListFollowerIdsResponse(celebrity=True)
    pages, asked = _pages(_Bulk(), _Epoch(), [celebrity])
    assert (await pages.for_post(AUTHOR, 5000, 1.0)).celebrity
    assert (await pages.for_post(AUTHOR, 5000, 1.0)).celebrity and len(asked) == 1

    first_of_two = graph_pb2.ListFollowerIdsResponse(follower_ids=[1, 2], next_page_token="more")
    pages, asked = _pages(_Bulk(), _Epoch(), [first_of_two, first_of_two])
    await _ids(pages)
    await _ids(pages)
    assert len(asked) == 2
