"""`make reindex` (python -m services.search.reindex) against the running stack:
it repairs a damaged live index in place, while the indexer keeps running,
from the source of truth (posts and catalog), and rebuilds from scratch into
separate indices with --recreate.

Damage is done directly on OpenSearch: a post's document lost, a deleted
post's document back with a high version, a document for an id that never
existed, a product document with content its catalog row does not have."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from services.kit.server import ids
from services.search import documents
from tests.e2e.commerce import create_product, sign_up_seller
from tests.e2e.edge import post, sign_up, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENSEARCH_URL = os.environ.get(
    "AVIARY_OPENSEARCH_URL", f"http://127.0.0.1:{os.environ.get('OPENSEARCH_PORT', '9200')}"
)
# The sweep leaves ids younger than this alone; the test's own writes are
# made older than it before the run, so the run judges them.
SETTLE_SECONDS = 2.0
COUNTS = ("exported", "indexed", "already_current", "skipped", "deleted_stale", "failed")


@pytest.fixture(scope="module")
def opensearch():
    client = OpenSearch(OPENSEARCH_URL, timeout=30)
    yield client
    client.close()


def _reindex(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.search.reindex", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def _summary(run: subprocess.CompletedProcess) -> dict:
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    summary = json.loads(run.stdout)
    for name in ("posts", "products"):
        part = summary[name]
        assert part["failed"] == 0, part
        assert part["exported"] == part["indexed"] + part["already_current"] + part["skipped"] + part["failed"], part
    for count in COUNTS:
        assert summary[count] == summary["posts"][count] + summary["products"][count], (count, summary)
    return summary


def _search(http, kind: str, q: str) -> list[str]:
    r = http.get(f"/v1/search/{kind}", params={"q": q})
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()[kind]]


def _wait_searchable(http, kind: str, q: str, wanted: str) -> None:
    assert wait_until(lambda: wanted in _search(http, kind, q), timeout=60, interval=0.2), f"{q} never found"


def _exists(opensearch, index: str, doc_id: str) -> bool:
    return opensearch.exists(index=index, id=doc_id)


def _sleep_past_settle(since: float) -> None:
    time.sleep(max(0.0, since + SETTLE_SECONDS + 0.5 - time.monotonic()))


def test_reindex_repairs_a_damaged_index_in_place(http, opensearch):
    author, seller = sign_up(http, "rx"), sign_up_seller(http)
    kept_word, gone_word, title_word, wrong_word = (f"zr{secrets.token_hex(4)}" for _ in range(4))
    kept = post(http, author, f"keep me {kept_word}")
    gone = post(http, author, f"delete me {gone_word}")
    item = create_product(http, seller, stock=2, title=f"Real {title_word} lamp")
    created = time.monotonic()
    _wait_searchable(http, "posts", kept_word, kept["id"])
    _wait_searchable(http, "posts", gone_word, gone["id"])
    _wait_searchable(http, "products", title_word, item["id"])
    assert http.delete(f"/v1/posts/{gone['id']}", headers=author.auth).status_code == 200
    assert wait_until(lambda: not _exists(opensearch, documents.POSTS_INDEX, gone["id"]), timeout=30, interval=0.1)

    # The damage.
    gone_doc = {
        "text": f"delete me {gone_word}",
        "hashtags": [],
        "mentions": [],
        "author_id": author.id,
        "created_at": gone["createdAt"],
    }
    opensearch.delete(index=documents.POSTS_INDEX, id=kept["id"])
    opensearch.index(
        index=documents.POSTS_INDEX,
        id=gone["id"],
        body=gone_doc,
        params={"version": ids.MAX_ID - 1, "version_type": "external"},
    )
    never_id = str(ids.min_id_at(int(time.time() * 1000) - 3_600_000) + secrets.randbelow(1 << 20))
    opensearch.index(index=documents.POSTS_INDEX, id=never_id, body={**gone_doc, "text": f"never {gone_word}"})
    indexed_product = opensearch.get(index=documents.PRODUCTS_INDEX, id=item["id"])
    opensearch.index(
        index=documents.PRODUCTS_INDEX,
        id=item["id"],
        body={**indexed_product["_source"], "title": f"Outdated {wrong_word} lamp"},
        params={"version": indexed_product["_version"] + 1, "version_type": "external"},
    )
    opensearch.indices.refresh(index=[documents.POSTS_INDEX, documents.PRODUCTS_INDEX])
    assert kept["id"] not in _search(http, "posts", kept_word)
    assert _exists(opensearch, documents.POSTS_INDEX, gone["id"])
    assert item["id"] in _search(http, "products", wrong_word)
    assert item["id"] not in _search(http, "products", title_word)

    _sleep_past_settle(created)
    summary = _summary(_reindex("--settle-seconds", str(SETTLE_SECONDS)))

    assert summary["recreated"] is False
    assert summary["posts"]["indexed"] >= 1  # the lost post
    assert summary["posts"]["deleted_stale"] >= 2  # the deleted post and the one that never was
    assert summary["products"]["indexed"] >= 1  # the product with the wrong title
    assert summary["posts"]["already_current"] >= 1  # e.g. nothing to do for other posts
    assert not _exists(opensearch, documents.POSTS_INDEX, gone["id"])
    assert not _exists(opensearch, documents.POSTS_INDEX, never_id)
    _wait_searchable(http, "posts", kept_word, kept["id"])
    _wait_searchable(http, "products", title_word, item["id"])
    assert item["id"] not in _search(http, "products", wrong_word)
    assert (
        opensearch.get(index=documents.PRODUCTS_INDEX, id=item["id"])["_source"]["title"] == f"Real {title_word} lamp"
    )

    # A second run finds these documents current and leaves them as they are.
    before = {
        (index, doc_id): opensearch.get(index=index, id=doc_id)["_version"]
        for index, doc_id in ((documents.POSTS_INDEX, kept["id"]), (documents.PRODUCTS_INDEX, item["id"]))
    }
    again = _summary(_reindex("--settle-seconds", str(SETTLE_SECONDS)))
    assert again["posts"]["already_current"] >= 1 and again["products"]["already_current"] >= 1
    assert {key: opensearch.get(index=key[0], id=key[1])["_version"] for key in before} == before


def test_recreate_rebuilds_separate_indices_from_scratch(http, opensearch):
    author = sign_up(http, "rc")
    word = f"zc{secrets.token_hex(4)}"
    live, deleted = post(http, author, f"alive {word}"), post(http, author, f"dead {word}")
    assert http.delete(f"/v1/posts/{deleted['id']}", headers=author.auth).status_code == 200
    posts_index, products_index = (f"test-reindex-{secrets.token_hex(4)}-{kind}" for kind in ("posts", "products"))
    try:
        # Left over from a former mapping: --recreate replaces it.
        opensearch.indices.create(index=posts_index, body={"mappings": {"properties": {"text": {"type": "keyword"}}}})
        summary = _summary(_reindex("--recreate", "--posts-index", posts_index, "--products-index", products_index))

        assert summary["recreated"] is True
        for name, index in (("posts", posts_index), ("products", products_index)):
            part = summary[name]
            assert part["index"] == index
            assert part["already_current"] == 0 and part["deleted_stale"] == 0, part
            assert part["indexed"] == part["exported"] - part["skipped"] > 0, part
            opensearch.indices.refresh(index=index)
            assert opensearch.count(index=index)["count"] == part["indexed"]
        mapping = opensearch.indices.get_mapping(index=posts_index)[posts_index]["mappings"]
        assert mapping == documents.POSTS_MAPPING["mappings"]
        assert _exists(opensearch, posts_index, live["id"])
        assert not _exists(opensearch, posts_index, deleted["id"])
    finally:
        opensearch.indices.delete(index=[posts_index, products_index], ignore_unavailable=True)


def test_an_index_with_another_mapping_is_refused_without_recreate(opensearch):
    posts_index = f"test-reindex-{secrets.token_hex(4)}-posts"
    opensearch.indices.create(index=posts_index, body={"mappings": {"properties": {"text": {"type": "keyword"}}}})
    try:
        run = _reindex("--only", "posts", "--posts-index", posts_index)
        assert run.returncode == 2, run.stdout + run.stderr
        assert "--recreate" in json.loads(run.stdout)["error"]
        assert opensearch.count(index=posts_index)["count"] == 0  # nothing written into it
    finally:
        opensearch.indices.delete(index=posts_index, ignore_unavailable=True)


def test_a_broken_export_fails_the_run_and_deletes_nothing(opensearch):
    posts_index = f"test-reindex-{secrets.token_hex(4)}-posts"
    opensearch.indices.create(index=posts_index, body=documents.POSTS_MAPPING)
    old_id = str(ids.min_id_at(int(time.time() * 1000) - 3_600_000))
    opensearch.index(
        index=posts_index,
        id=old_id,
        body={
            "text": "no such post",
            "hashtags": [],
            "mentions": [],
            "author_id": "1",
            "created_at": "2026-01-01T00:00:00Z",
        },
    )
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{s.getsockname()[1]}"
    try:
        run = _reindex(
            "--only", "posts", "--posts-index", posts_index, "--timeout", "10", env={"AVIARY_POSTS_ADDR": nowhere}
        )
        assert run.returncode == 1, run.stdout + run.stderr
        assert "UNAVAILABLE" in json.loads(run.stdout)["error"]
        # Without a complete export there is no sweep: the document the
        # export would have proven stale is still there.
        assert _exists(opensearch, posts_index, old_id)
    finally:
        opensearch.indices.delete(index=posts_index, ignore_unavailable=True)
