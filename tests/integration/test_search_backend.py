"""The devstack's OpenSearch node (run from Maven Central jars): the queries the
search service will rely on work against the real thing — analysis, match with
highlighting, relevance blended with recency (function_score gauss decay on the
creation time), exact hashtag terms, and deletes that vanish from results."""

from __future__ import annotations

import datetime
import os
import secrets

import pytest
from opensearchpy import OpenSearch

URL = os.environ.get("AVIARY_OPENSEARCH_URL", f"http://127.0.0.1:{os.environ.get('OPENSEARCH_PORT', '9200')}")


@pytest.fixture(scope="module")
def client():
    c = OpenSearch(URL, timeout=30)
    health = c.cluster.health(wait_for_status="yellow")
    assert health["status"] in ("green", "yellow"), health
    return c


@pytest.fixture()
def index(client):
    name = f"test-posts-{secrets.token_hex(4)}"
    client.indices.create(
        index=name,
        body={
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "analysis": {
                    "analyzer": {
                        "folded": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}
                    }
                },
            },
            "mappings": {
                "properties": {
                    "text": {"type": "text", "analyzer": "folded"},
                    "hashtags": {"type": "keyword"},
                    "created_at": {"type": "date"},
                }
            },
        },
    )
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


def _ago(days: float) -> str:
    return (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)).isoformat()


def test_relevance_blends_with_recency_and_deletes_vanish(client, index):
    docs = {
        "old": {"text": "Running shoes, running shoes", "hashtags": ["running"], "created_at": _ago(30)},
        "new": {
            "text": "Bought new running shoes today at the shop downtown with friends",
            "hashtags": ["running", "gear"],
            "created_at": _ago(0.1),
        },
        "other": {"text": "Café au lait", "hashtags": ["coffee"], "created_at": _ago(1)},
    }
    for doc_id, doc in docs.items():
        client.index(index=index, id=doc_id, body=doc)
    client.indices.refresh(index=index)

    plain = client.search(
        index=index, body={"query": {"match": {"text": "running shoes"}}, "highlight": {"fields": {"text": {}}}}
    )
    assert [h["_id"] for h in plain["hits"]["hits"]] == ["old", "new"]  # term frequency wins alone
    assert "<em>" in plain["hits"]["hits"][0]["highlight"]["text"][0]

    blended = client.search(
        index=index,
        body={
            "query": {
                "function_score": {
                    "query": {"match": {"text": "running shoes"}},
                    "functions": [
                        {"gauss": {"created_at": {"origin": "now", "scale": "2d", "decay": 0.5}}, "weight": 3}
                    ],
                    "boost_mode": "sum",
                }
            }
        },
    )
    assert [h["_id"] for h in blended["hits"]["hits"]] == ["new", "old"]  # recency lifts the new post

    tagged = client.search(index=index, body={"query": {"term": {"hashtags": "running"}}})
    assert {h["_id"] for h in tagged["hits"]["hits"]} == {"old", "new"}
    folded = client.search(index=index, body={"query": {"match": {"text": "cafe"}}})
    assert [h["_id"] for h in folded["hits"]["hits"]] == ["other"]

    client.delete(index=index, id="new", refresh=True)
    after = client.search(index=index, body={"query": {"term": {"hashtags": "running"}}})
    assert [h["_id"] for h in after["hits"]["hits"]] == ["old"]
