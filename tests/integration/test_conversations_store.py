"""The conversations store against real Cassandra: history pages cross time
buckets (empty ones skipped) towards older and back towards newer, unread
counts across buckets, a change of bucket size keeps old messages reachable,
a clientMessageId is claimed once, and (through the running service) a repeat
send completes a claim whose first send never wrote its message.

Messages get ids minted at chosen times (the kit's id layout), so a test
spans many small buckets without waiting. Each test uses fresh random
conversation ids; the events it stages carry no message, so the running
service's live pusher ignores them.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time

import pytest

from aviary.conversations.v1 import conversations_pb2, conversations_pb2_grpc
from aviary.identity.v1 import identity_pb2
from services.conversations.store import Claim, ConversationRow, ConversationStore, MessageRow, bucket_of
from services.kit.events.kafka import Producer
from services.kit.server.ids import min_id_at
from services.kit.settings import load_settings, service_addr
from tests.integration.support import wait_serving

EMPTY_EVENT = conversations_pb2.ConversationEvent().SerializeToString()


def fresh_id() -> int:
    return random.randrange(10**17, 10**18)


@pytest.fixture
async def stores():
    """Two stores on the same keyspace: buckets of 1 s and of 5 s."""
    settings = load_settings()
    producer = Producer(settings.kafka_bootstrap)
    made = [ConversationStore(settings, bucket_ms=1000), ConversationStore(settings, bucket_ms=5000)]
    for store in made:
        await store.start(producer)
    yield made
    for store in made:
        await store.stop()
    await producer.close()


async def write(store: ConversationStore, conversation_id: int, sender: int, at_ms: list[int]) -> list[int]:
    """Messages at the given times (unix ms), one LOGGED batch each; their ids."""
    ids = []
    conversation = ConversationRow(conversation_id, frozenset({sender}), secrets.token_hex(4), 0, 0, 0)
    for seq, ms in enumerate(at_ms):
        message_id = min_id_at(ms) | (seq % 4096)
        row = MessageRow(conversation_id, message_id, sender, f"m{seq}", (), (), "")
        await store.append(row, bucket_of(message_id, store.bucket_ms), conversation, fresh_id(), EMPTY_EVENT)
        ids.append(message_id)
    return ids


def spread(start_ms: int, n: int) -> list[int]:
    """n times from start, 0..2.5 s apart: many 1 s buckets, some of them empty."""
    times, t = [], start_ms
    for _ in range(n):
        t += random.choice([3, 40, 400, 2500])
        times.append(t)
    return times


async def walk_older(store: ConversationStore, cid: int, size: int) -> list[list[int]]:
    pages, before = [], None
    while True:
        rows = await store.older(cid, before, size)
        if not rows:
            return pages
        pages.append([r.message_id for r in rows])
        before = rows[-1].message_id


async def walk_newer(store: ConversationStore, cid: int, after: int, size: int) -> list[int]:
    seen = []
    while True:
        rows = await store.newer(cid, after, size)
        if not rows:
            return seen
        seen += [r.message_id for r in rows]
        after = rows[-1].message_id


async def test_pages_cross_buckets_towards_older_and_back_towards_newer(stores):
    store = stores[0]
    cid = fresh_id()
    ids = await write(store, cid, 7, spread(int(time.time() * 1000) - 600_000, 300))
    buckets = {bucket_of(i, 1000) for i in ids}
    assert len(buckets) > 40  # the walk really crosses buckets, with gaps between them
    pages = await walk_older(store, cid, 7)
    assert [i for page in pages for i in page] == sorted(ids, reverse=True)
    assert all(len(page) == 7 for page in pages[:-1])
    oldest = pages[-1][-1]
    assert [oldest, *await walk_newer(store, cid, oldest, 7)] == sorted(ids)
    # From the middle, both ways.
    middle = sorted(ids)[150]
    assert [r.message_id for r in await store.newer(cid, middle, 5)] == sorted(ids)[151:156]
    assert [r.message_id for r in await store.older(cid, middle, 5)] == sorted(ids)[145:150][::-1]


async def test_unread_counts_cross_buckets_and_stop_at_the_cap(stores):
    store = stores[0]
    cid = fresh_id()
    ids = sorted(await write(store, cid, 7, spread(int(time.time() * 1000) - 600_000, 60)))
    assert await store.count_after(cid, 0, 1000) == 60
    assert await store.count_after(cid, ids[9], 1000) == 50
    assert await store.count_after(cid, ids[9], 20) == 20
    assert await store.count_after(cid, ids[-1], 1000) == 0


async def test_a_new_bucket_size_keeps_old_messages_in_the_pages(stores):
    small, large = stores
    cid = fresh_id()
    start = int(time.time() * 1000) - 600_000
    old = await write(small, cid, 7, spread(start, 40))
    new = await write(large, cid, 7, spread(max(old) // (1 << 22) + 1_704_067_200_000 + 20_000, 40))
    everything = sorted(old + new, reverse=True)
    for store in stores:
        assert [i for page in await walk_older(store, cid, 9) for i in page] == everything
        assert await walk_newer(store, cid, everything[-1], 9) == everything[-2::-1]


async def test_a_client_message_id_is_claimed_once(stores):
    store = stores[0]
    cid, sender = fresh_id(), fresh_id()
    claims = [Claim(fresh_id(), 1000 * i) for i in range(5)]
    held = await asyncio.gather(*(store.claim(cid, sender, "key-1", c) for c in claims))
    assert len(set(held)) == 1 and held[0] in claims
    assert await store.get_claim(cid, sender, "key-1") == held[0]
    assert await store.get_claim(cid, sender, "key-2") is None


async def test_a_repeat_send_completes_a_claim_whose_first_send_never_wrote(stores, identity):
    """A send that failed after claiming its clientMessageId leaves a claim
    without a message; the repeat writes the message under the claimed id."""
    people = [
        identity.CreateAccount(
            identity_pb2.CreateAccountRequest(username=f"t_{secrets.token_hex(4)}", password="correct horse battery"),
            timeout=10,
        )
        for _ in range(2)
    ]
    sender = (("authorization", f"Bearer {people[0].access_token}"),)
    stub = conversations_pb2_grpc.ConversationsServiceStub(wait_serving(service_addr("conversations")))
    conversation = stub.CreateConversation(
        conversations_pb2.CreateConversationRequest(participant_ids=[people[1].user.id]), metadata=sender, timeout=10
    )
    cid, sender_id = int(conversation.id), int(people[0].user.id)
    message_id = min_id_at(int(time.time() * 1000) - 5000) | 77
    claim = Claim(message_id, bucket_of(message_id, stores[0].bucket_ms))
    assert await stores[0].claim(cid, sender_id, "stuck-key", claim) == claim
    request = conversations_pb2.SendMessageRequest(
        conversation_id=conversation.id, text="at last", client_message_id="stuck-key"
    )
    first = stub.SendMessage(request, metadata=sender, timeout=15)
    assert first.id == str(message_id) and first.text == "at last"
    again = stub.SendMessage(request, metadata=sender, timeout=15)
    assert again.id == first.id
    history = stub.ListMessages(conversations_pb2.ListMessagesRequest(conversation_id=conversation.id), metadata=sender)
    assert [m.id for m in history.messages] == [first.id]
