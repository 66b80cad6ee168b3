"""FollowerFeed: follower batches -> delivery requests, errors kept for the caller."""

from __future__ import annotations

import pytest

from aviary.graph.v1 import graph_pb2
from aviary.timeline.v1 import timeline_pb2
from services.fanout.events import delivery_request
from services.fanout.worker import FollowerFeed

pytestmark = pytest.mark.asyncio


class Batches:
    """A plain async iterable of FollowerBatch, optionally failing at the end."""

    def __init__(self, batches, error: Exception | None = None) -> None:
        self.batches = batches
        self.error = error

    async def __aiter__(self):
        for ids in self.batches:
            yield graph_pb2.FollowerBatch(follower_ids=ids)
        if self.error is not None:
            raise self.error


async def test_each_batch_becomes_one_request_and_empty_batches_are_skipped():
    feed = FollowerFeed(
        Batches([[1, 2], [], [3]]), lambda ids: delivery_request(timeline_pb2.DELIVERY_OP_ADD, 77, 5, ids)
    )
    requests = [r async for r in feed.requests()]
    assert [list(r.user_ids) for r in requests] == [[1, 2], [3]]
    assert all(
        r.op == timeline_pb2.DELIVERY_OP_ADD and r.entry.post_id == 77 and r.entry.author_id == 5 for r in requests
    )
    assert feed.followers == 3 and feed.error is None


async def test_the_author_index_rides_on_the_first_batch_or_alone_when_nobody_follows():
    to_request = lambda ids: delivery_request(timeline_pb2.DELIVERY_OP_ADD, 77, 5, ids)  # noqa: E731

    requests = [r async for r in FollowerFeed(Batches([[], [1, 2], [3]]), to_request).requests(index_author_post=True)]
    assert [(list(r.user_ids), r.index_author_post) for r in requests] == [([1, 2], True), ([3], False)]
    alone = [r async for r in FollowerFeed(Batches([[]]), to_request).requests(index_author_post=True)]
    assert [(list(r.user_ids), r.index_author_post, r.entry.post_id) for r in alone] == [([], True, 77)]
    unflagged = [r async for r in FollowerFeed(Batches([]), to_request).requests()]
    assert unflagged == []


async def test_a_failing_follower_stream_is_remembered():
    boom = RuntimeError("graph went away")
    feed = FollowerFeed(
        Batches([[1]], error=boom), lambda ids: delivery_request(timeline_pb2.DELIVERY_OP_REMOVE, 1, 2, ids)
    )
    got = []
    with pytest.raises(RuntimeError):
        async for request in feed.requests():
            got.append(request)
    assert len(got) == 1
    assert feed.error is boom
