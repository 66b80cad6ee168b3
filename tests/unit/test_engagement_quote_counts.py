"""Quote counts on plain data: the counter hash as read (old hashes have no
quote field), the API message, and the kit's overlay copying every count into
posts and the originals they embed."""

from __future__ import annotations

import asyncio

from aviary.engagement.v1 import engagement_pb2
from aviary.posts.v1 import posts_pb2
from services.engagement import counters
from services.engagement.servicer import _message
from services.engagement.store import Counts
from services.kit.peers import engagement_overlay


def test_a_counter_hash_reads_its_quotes_and_an_older_hash_without_them_reads_zero():
    assert counters._counts([b"3", b"2", b"1", b"4"]) == Counts(3, 2, 1, 4)
    assert counters._counts([b"3", b"2", b"1", None]) == Counts(3, 2, 1, 0)
    assert counters._counts([b"-1", None, None, b"-2"]) == Counts(0, 0, 0, 0)
    assert counters.FIELDS["quotes"] == "q"


def test_the_engagement_message_carries_the_quote_count():
    message = _message(7, Counts(likes=1, reposts=2, replies=3, quotes=4), liked=True)
    assert (message.like_count, message.repost_count, message.reply_count, message.quote_count) == (1, 2, 3, 4)
    assert message.liked_by_me and message.post_id == "7"


class _Batches:
    def __init__(self, reply: engagement_pb2.BatchGetEngagementResponse) -> None:
        self.reply = reply
        self.asked: list[engagement_pb2.BatchGetEngagementRequest] = []

    async def get(self, batch, timeout):
        self.asked.append(batch)
        return self.reply


def test_the_overlay_copies_quote_counts_into_posts_and_their_originals(monkeypatch):
    reply = engagement_pb2.BatchGetEngagementResponse(
        engagements=[
            engagement_pb2.PostEngagement(post_id="2", like_count=1, quote_count=0),
            engagement_pb2.PostEngagement(post_id="1", like_count=5, repost_count=1, quote_count=3, reply_count=2),
        ]
    )
    fake = _Batches(reply)
    monkeypatch.setattr(engagement_overlay.engagement_stream, "batches", lambda: fake)
    quote = posts_pb2.Post(id="2", text="so true", repost_of_id="1", repost_of=posts_pb2.Post(id="1", text="orig"))

    assert asyncio.run(engagement_overlay.apply([quote], viewer_id=9))
    assert list(fake.asked[0].post_ids) == ["2", "1"] and fake.asked[0].viewer_id == "9"
    assert quote.like_count == 1 and quote.quote_count == 0
    original = quote.repost_of
    assert (original.like_count, original.repost_count, original.reply_count, original.quote_count) == (5, 1, 2, 3)
