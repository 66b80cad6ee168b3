"""services.kit.peers.engagement_stream against the running engagement service:
batches streamed over one call with their answers matched back by id, errors
answered per batch, and nothing lost when the stream breaks (the batches go
unary, and a new stream opens after a pause)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from aviary.engagement.v1 import engagement_pb2
from services.kit import mesh
from services.kit.peers import clients, engagement_stream
from services.kit.peers.engagement_stream import BatchFailed, EngagementBatches

TIMEOUT = 10.0


def batch(*post_ids: int) -> engagement_pb2.BatchGetEngagementRequest:
    return engagement_pb2.BatchGetEngagementRequest(post_ids=[str(p) for p in post_ids])


@pytest.fixture(autouse=True)
def _mesh_identity():
    # The kit's engagement client here acts as one of engagement's callers.
    mesh.set_identity("timeline")


@pytest.fixture
async def batches():
    made = EngagementBatches(enabled=True, max_stream_seconds=300)
    yield made
    made.close()
    await clients.close_all()


async def test_concurrent_batches_on_one_stream_get_their_own_answers(batches):
    asked = [batch(*range(10 * i + 1, 10 * i + 1 + i % 5 + 1)) for i in range(40)]
    answers = await asyncio.gather(*(batches.get(b, TIMEOUT) for b in asked))
    for question, answer in zip(asked, answers):
        assert [e.post_id for e in answer.engagements] == list(question.post_ids)
    assert batches._stream is not None and not batches._stream.ended  # one stream, still open


async def test_a_failed_batch_raises_its_status_and_the_stream_goes_on(batches):
    with pytest.raises(BatchFailed) as failed:
        await batches.get(engagement_pb2.BatchGetEngagementRequest(post_ids=["x"]), TIMEOUT)
    assert failed.value.code == grpc.StatusCode.INVALID_ARGUMENT and failed.value.message.startswith("post_ids[0]")
    stream = batches._stream
    assert (await batches.get(batch(5), TIMEOUT)).engagements[0].post_id == "5"
    assert batches._stream is stream


async def test_a_broken_stream_loses_nothing_and_is_reopened_after_a_pause(batches, monkeypatch):
    monkeypatch.setattr(engagement_stream, "REOPEN_AFTER_SECONDS", 0.2)
    await batches.get(batch(1), TIMEOUT)
    broken = batches._stream
    broken.call.cancel()  # as a restarting engagement would end it
    # Asked while and after it breaks: answered (unary), not failed.
    answers = await asyncio.gather(*(batches.get(batch(i), TIMEOUT) for i in range(2, 12)))
    assert [a.engagements[0].post_id for a in answers] == [str(i) for i in range(2, 12)]
    assert batches._stream is None  # paused: unary for now
    await asyncio.sleep(0.3)
    await batches.get(batch(12), TIMEOUT)
    assert batches._stream is not None and batches._stream is not broken


async def test_a_caller_that_stops_waiting_leaves_the_stream_to_the_others(batches):
    await batches.get(batch(1), TIMEOUT)
    stream = batches._stream
    # A deadline that passes while its batch is being written (as when a
    # swamped engagement holds writes back): cancelling the write would
    # cancel the call, and every batch waiting on it would be asked again
    # unary, more load on an engagement already behind.
    with pytest.raises(TimeoutError):
        await batches.get(batch(2), 0)
    await asyncio.sleep(0.2)
    assert not stream.ended
    assert (await batches.get(batch(3), TIMEOUT)).engagements[0].post_id == "3"
    assert batches._stream is stream


async def test_an_old_stream_is_retired_and_finishes_what_it_holds(batches):
    await batches.get(batch(1), TIMEOUT)
    old = batches._stream
    batches.max_stream_seconds = 0  # every stream is now too old
    assert (await batches.get(batch(2), TIMEOUT)).engagements[0].post_id == "2"
    assert batches._stream is not old
    await asyncio.wait_for(old.reader, TIMEOUT)  # the server ended it after done_writing
    assert old.ended


async def test_switched_off_every_batch_is_a_unary_call():
    off = EngagementBatches(enabled=False, max_stream_seconds=300)
    try:
        assert (await off.get(batch(3), TIMEOUT)).engagements[0].post_id == "3"
        assert off._stream is None
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await off.get(engagement_pb2.BatchGetEngagementRequest(post_ids=["x"]), TIMEOUT)
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await clients.close_all()
