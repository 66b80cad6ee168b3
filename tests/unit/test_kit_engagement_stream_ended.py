"""A batch asked on an engagement stream that ends while the batch is being
written: the caller gets _StreamBroken (and falls back to a unary call), and
nothing is logged as an exception never retrieved."""

from __future__ import annotations

import asyncio
import gc

import grpc
import pytest

from services.kit.peers import engagement_stream
from aviary.engagement.v1 import engagement_pb2


class EndingCall:
    """A stream whose server ends it at once; a write fails after the reader saw the end."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    def __aiter__(self):
        return self

    async def __anext__(self):
        self.ended.set()
        raise StopAsyncIteration

    async def write(self, _request) -> None:
        await self.ended.wait()
        await asyncio.sleep(0)  # the reader's cleanup has run
        raise grpc.aio.UsageError("the call has ended")


async def test_a_batch_on_a_stream_that_ended_while_writing_logs_nothing():
    logged: list[dict] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: logged.append(context))
    stream = engagement_stream._Stream(EndingCall())
    with pytest.raises(engagement_stream._StreamBroken):
        await stream.ask(1, engagement_pb2.BatchGetEngagementRequest(post_ids=["1"]))
    await stream.reader
    del stream
    gc.collect()
    await asyncio.sleep(0)
    assert [c["message"] for c in logged] == []
