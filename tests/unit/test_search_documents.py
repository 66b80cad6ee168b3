"""Pure rules of the search index: documents from events, query bodies."""

import grpc
import pytest

from aviary.events.v1 import events_pb2
from services.kit.server.errors import ApiError
from services.search import documents


def test_posts_become_documents_and_pure_reposts_do_not():
    created = events_pb2.PostCreated(post_id=7, author_id=3, text="Hi #Tag @Ann", hashtags=["tag"], mentions=["ann"])
    created.created_at.FromSeconds(1_700_000_000)
    doc = documents.post_document(created)
    assert doc == {
        "text": "Hi #Tag @Ann",
        "hashtags": ["tag"],
        "mentions": ["ann"],
        "author_id": "3",
        "created_at": "2023-11-14T22:13:20+00:00",
    }
    assert documents.post_document(events_pb2.PostCreated(post_id=8, author_id=3, text="", repost_of_id=7)) is None


def test_hashtag_and_mention_queries_are_exact_terms_newest_first():
    assert documents.posts_query("#Running")["query"] == {"term": {"hashtags": "running"}}
    assert documents.posts_query("@Ann")["query"] == {"term": {"mentions": "ann"}}
    assert documents.posts_query("#a")["sort"] == [{"created_at": "desc"}]


def test_word_queries_blend_relevance_with_recency():
    body = documents.posts_query("trail shoes")
    fs = body["query"]["function_score"]
    assert fs["boost_mode"] == "sum" and "gauss" in fs["functions"][0]
    assert fs["query"] == {"match": {"text": {"query": "trail shoes", "operator": "or"}}}
    assert documents.products_query("mug")["query"]["function_score"]["query"]["bool"]["filter"] == {
        "term": {"active": True}
    }


@pytest.mark.parametrize("q", ["", "   ", "+++", "x" * 201])
def test_bad_queries_name_q(q):
    with pytest.raises(ApiError) as err:
        documents.check_query(q)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.message.startswith("q")


@pytest.mark.parametrize("q", ["#running", "@ann", "trail shoes"])
def test_hidden_authors_are_left_out_by_the_query_itself(q):
    plain = documents.posts_query(q)
    body = documents.posts_query(q, without_authors=frozenset({12, 3}))
    assert body["query"] == {"bool": {"must": plain["query"], "must_not": {"terms": {"author_id": ["3", "12"]}}}}
    assert body["sort"] == plain["sort"]
    assert documents.posts_query(q, without_authors=frozenset()) == plain
