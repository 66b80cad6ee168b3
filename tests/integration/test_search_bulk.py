"""The search indexer's bulk writer against the devstack's OpenSearch: actions
from concurrent callers share one `_bulk` request, each caller gets its own
action's outcome (stale versions, absent deletes and refused documents
included), and nothing is lost when one action of a request fails."""

from __future__ import annotations

import asyncio
import os
import secrets

import pytest
from opensearchpy import AsyncOpenSearch

from services.search import bulk, documents

URL = os.environ.get("AVIARY_OPENSEARCH_URL", f"http://127.0.0.1:{os.environ.get('OPENSEARCH_PORT', '9200')}")


class CountingOpenSearch(AsyncOpenSearch):
    """The real client, counting the bulk requests it sends."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bulk_requests = 0

    async def bulk(self, *args, **kwargs):
        self.bulk_requests += 1
        return await super().bulk(*args, **kwargs)


@pytest.fixture()
async def client():
    c = CountingOpenSearch(URL, timeout=30)
    yield c
    await c.close()


@pytest.fixture()
async def index(client):
    name = f"test-bulk-{secrets.token_hex(4)}"
    await client.indices.create(index=name, body=documents.POSTS_MAPPING)
    yield name
    await client.indices.delete(index=name, ignore_unavailable=True)


def _doc(text: str) -> dict:
    return {"text": text, "hashtags": [], "mentions": [], "author_id": "7", "created_at": 1_700_000_000_000}


async def _stored(client: AsyncOpenSearch, index: str, doc_id: int) -> dict | None:
    answer = await client.get(index=index, id=str(doc_id), ignore=404)
    return answer["_source"] if answer.get("found") else None


async def test_concurrent_actions_share_one_request_and_each_caller_gets_its_outcome(client, index):
    writer = bulk.BulkWriter(client)
    outcomes = await asyncio.gather(*(writer.index(index, n, 100 + n, _doc(f"post {n}")) for n in range(1, 21)))

    assert outcomes == [bulk.INDEXED] * 20
    assert client.bulk_requests == 1
    for n in (1, 20):
        assert await _stored(client, index, n) == _doc(f"post {n}")


async def test_older_versions_are_stale_and_deletes_of_nothing_are_absent(client, index):
    writer = bulk.BulkWriter(client)
    assert await writer.index(index, 1, 500, _doc("newest")) == bulk.INDEXED

    replayed, missing, deleted = await asyncio.gather(
        writer.index(index, 1, 499, _doc("older")),
        writer.delete(index, 2, 10),
        writer.delete(index, 1, 600),
    )

    assert (replayed, missing, deleted) == (bulk.STALE, bulk.ABSENT, bulk.DELETED)
    assert await _stored(client, index, 1) is None
    # A create replayed after its delete does not bring the post back.
    assert await writer.index(index, 1, 500, _doc("newest")) == bulk.STALE
    assert await _stored(client, index, 1) is None


async def test_a_refused_document_fails_only_its_caller(client, index):
    writer = bulk.BulkWriter(client)
    refused = {**_doc("strict mapping"), "unknown_field": 1}

    results = await asyncio.gather(
        writer.index(index, 1, 1, _doc("fine")),
        writer.index(index, 2, 2, refused),
        writer.index(index, 3, 3, _doc("fine too")),
        return_exceptions=True,
    )

    assert results[0] == bulk.INDEXED and results[2] == bulk.INDEXED
    assert isinstance(results[1], bulk.BulkActionFailed) and results[1].status == 400
    assert await _stored(client, index, 2) is None
    assert await _stored(client, index, 3) == _doc("fine too")


async def test_actions_arriving_while_a_request_is_out_go_together_in_the_next(client, index):
    writer = bulk.BulkWriter(client)
    first = asyncio.create_task(writer.index(index, 1, 1, _doc("first")))
    await asyncio.sleep(0.001)  # the first request is out
    rest = [asyncio.create_task(writer.index(index, n, n, _doc(f"later {n}"))) for n in range(2, 12)]

    assert await first == bulk.INDEXED
    assert await asyncio.gather(*rest) == [bulk.INDEXED] * 10
    assert client.bulk_requests == 2


async def test_callers_hear_of_a_request_that_could_not_be_sent(index):
    unreachable = AsyncOpenSearch("http://127.0.0.1:9", timeout=2, max_retries=0)
    writer = bulk.BulkWriter(unreachable)
    try:
        results = await asyncio.gather(
            writer.index(index, 1, 1, _doc("a")), writer.delete(index, 2, 2), return_exceptions=True
        )
    finally:
        await unreachable.close()

    assert all(isinstance(r, Exception) and not isinstance(r, bulk.BulkActionFailed) for r in results)
