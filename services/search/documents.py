"""What the search index holds and how it is queried: pure functions on plain
data (events in, documents and query bodies out), unit-tested on their own."""

from __future__ import annotations

import datetime

from aviary.events.v1 import events_pb2
from services.kit.server.errors import invalid_argument

POSTS_INDEX = "aviary-posts-v1"
PRODUCTS_INDEX = "aviary-products-v1"
MAX_QUERY = 200
# Deep paging through a relevance ranking is not useful and costly in OpenSearch.
MAX_OFFSET = 1000

# How often new documents become searchable. OpenSearch's default is 1 s; the
# freshness target is 2 s at p95 from post to searchable, and the refresh is
# most of that delay, so posts refresh twice as often (cheap at this size).
POSTS_REFRESH_INTERVAL = "500ms"

# Text is folded (lower case, accents removed) so "cafe" finds "Café".
_ANALYSIS = {
    "analyzer": {"folded": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}}
}

POSTS_MAPPING = {
    "settings": {
        "number_of_shards": 1,
        "number_of_replicas": 0,
        "analysis": _ANALYSIS,
        "refresh_interval": POSTS_REFRESH_INTERVAL,
    },
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "text": {"type": "text", "analyzer": "folded"},
            "hashtags": {"type": "keyword"},
            "mentions": {"type": "keyword"},
            "author_id": {"type": "keyword"},
            "created_at": {"type": "date"},
        },
    },
}

PRODUCTS_MAPPING = {
    "settings": {"number_of_shards": 1, "number_of_replicas": 0, "analysis": _ANALYSIS},
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "title": {"type": "text", "analyzer": "folded"},
            "description": {"type": "text", "analyzer": "folded"},
            "seller_id": {"type": "keyword"},
            "active": {"type": "boolean"},
            "created_at": {"type": "date"},
        },
    },
}


def _iso(ts) -> str:
    return ts.ToDatetime(tzinfo=datetime.timezone.utc).isoformat()


def post_document(created: events_pb2.PostCreated) -> dict | None:
    """The indexed form of a post; None for pure reposts (no text of their own)."""
    if not created.text.strip():
        return None
    return {
        "text": created.text,
        "hashtags": list(created.hashtags),
        "mentions": list(created.mentions),
        "author_id": str(created.author_id),
        "created_at": _iso(created.created_at),
    }


def product_document(p: events_pb2.ProductUpserted) -> dict:
    return {
        "title": p.title,
        "description": p.description,
        "seller_id": str(p.seller_id),
        "active": p.active,
        "created_at": _iso(p.created_at),
    }


def check_query(q: str) -> str:
    q = q.strip()
    # Envoy's transcoder passes a form-encoded space ("+") through as is; the
    # analyzer splits on it like on a space, but "+++" alone asks for nothing.
    if not q.replace("+", " ").strip():
        raise invalid_argument("q", "is required: words, #hashtag or @username")
    if len(q) > MAX_QUERY:
        raise invalid_argument("q", f"must be at most {MAX_QUERY} characters")
    return q


def _recency(scale: str) -> dict:
    # Added to the text score (boost_mode sum): a fresh match outranks an old
    # one unless the old one is much more relevant; a recent non-match never shows.
    return {"gauss": {"created_at": {"origin": "now", "scale": scale, "decay": 0.5}}, "weight": 2}


def posts_query(q: str, *, recency_scale: str = "2d", without_authors: frozenset[int] = frozenset()) -> dict:
    """`#tag` -> posts with that hashtag, newest first; `@name` -> posts mentioning
    that user, newest first; words -> text relevance blended with recency.

    Posts by `without_authors` (gone accounts, and the viewer's hidden
    authors) are left out by the query itself, so pages stay full and
    offsets stay right however many posts they wrote."""
    body = _posts_query(q, recency_scale)
    if without_authors:
        excluded = {"terms": {"author_id": [str(a) for a in sorted(without_authors)]}}
        body["query"] = {"bool": {"must": body["query"], "must_not": excluded}}
    return body


def _posts_query(q: str, recency_scale: str) -> dict:
    if q.startswith("#") and len(q) > 1 and " " not in q:
        return {"query": {"term": {"hashtags": q[1:].lower()}}, "sort": [{"created_at": "desc"}]}
    if q.startswith("@") and len(q) > 1 and " " not in q:
        return {"query": {"term": {"mentions": q[1:].lower()}}, "sort": [{"created_at": "desc"}]}
    return {
        "query": {
            "function_score": {
                "query": {"match": {"text": {"query": q, "operator": "or"}}},
                "functions": [_recency(recency_scale)],
                "boost_mode": "sum",
            }
        },
        "sort": ["_score", {"created_at": "desc"}],
    }


def products_query(q: str) -> dict:
    return {
        "query": {
            "function_score": {
                "query": {
                    "bool": {
                        "must": {"multi_match": {"query": q, "fields": ["title^3", "description"]}},
                        "filter": {"term": {"active": True}},
                    }
                },
                "functions": [_recency("30d")],
                "boost_mode": "sum",
            }
        }
    }
