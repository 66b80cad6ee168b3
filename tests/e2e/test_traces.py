"""One POST /v1/posts through Envoy shows as one trace in the devstack's
Zipkin: Envoy's spans, posts serving it and publishing the event, fanout
consuming that event as the publish span's child (the context travels in the
Kafka record's headers), and timeline serving fanout's calls and pushing the
post live on Redis pub/sub. The request is sent with a sampled W3C trace
header, so it is traced whatever the sampling ratio."""

from __future__ import annotations

import os
import secrets

import httpx
import pytest

from tests.e2e.edge import follow, home_ids, sign_up, wait_until

ZIPKIN_URL = f"http://127.0.0.1:{os.environ.get('ZIPKIN_PORT', '9411')}"


def _trace(trace_id: str) -> list[dict]:
    r = httpx.get(f"{ZIPKIN_URL}/api/v2/trace/{trace_id}", timeout=5.0)
    return r.json() if r.status_code == 200 else []


def _service(span: dict) -> str:
    return span.get("localEndpoint", {}).get("serviceName", "")


def _ancestors(span: dict, by_id: dict[str, dict]) -> list[str]:
    ids = []
    while span.get("parentId") in by_id:
        span = by_id[span["parentId"]]
        ids.append(span["id"])
    return ids


def _complete(spans: list[dict]) -> bool:
    """Every hop has reported (each process sends its spans on its own schedule)."""
    names = {(_service(s), s.get("kind"), s["name"]) for s in spans}
    ids = {s["id"] for s in spans}
    # Envoy reports a request's own span when the request ends, after its
    # ext_authz call's: wait for the one that parents posts' span.
    parented = any(s["name"] == "aviary.posts.v1.postsservice/createpost" and s.get("parentId") in ids for s in spans)
    return (
        any(service == "envoy" for service, _, _ in names)
        and parented
        and ("posts", "SERVER", "aviary.posts.v1.postsservice/createpost") in names
        and ("fanout", "CONSUMER", "posts.events.v1 process") in names
        and ("timeline", "SERVER", "aviary.timeline.v1.timelineservice/deliverentrybatch") in names
        and any(service == "timeline" and "publish" in name for service, _, name in names)
    )


@pytest.fixture(scope="module")
def zipkin() -> str:
    try:
        httpx.get(f"{ZIPKIN_URL}/health", timeout=2.0).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(f"the devstack's Zipkin is not answering at {ZIPKIN_URL}: {exc!r}")
    return ZIPKIN_URL


def test_a_post_is_one_trace_from_envoy_through_kafka_to_the_timelines(http, zipkin):
    author, reader = sign_up(http, "tra"), sign_up(http, "trr")
    follow(http, reader, author)
    home_ids(http, reader)  # an active reader: fanout delivers to them
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"

    r = http.post("/v1/posts", json={"text": "traced hop by hop"}, headers={**author.auth, "traceparent": traceparent})
    assert r.status_code == 200, r.text

    spans = wait_until(
        lambda: (lambda found: found if _complete(found) else None)(_trace(trace_id)), timeout=45.0, interval=1.0
    )
    assert spans, (
        f"trace {trace_id} incomplete in Zipkin: {sorted({(_service(s), s['name']) for s in _trace(trace_id)})}"
    )
    assert {s["traceId"] for s in spans} == {trace_id}
    by_id = {s["id"]: s for s in spans}

    # Envoy's server span is the root's child (the header's span) and the parent of posts' span.
    create = next(s for s in spans if s["name"] == "aviary.posts.v1.postsservice/createpost")
    assert _service(by_id[create["parentId"]]) == "envoy"

    # fanout's consumer span is the child of the publish span posts' relay made, which hangs off CreatePost.
    consumed = next(s for s in spans if _service(s) == "fanout" and s.get("kind") == "CONSUMER")
    published = by_id[consumed["parentId"]]
    assert (_service(published), published.get("kind")) == ("posts", "PRODUCER")
    assert published["parentId"] == create["id"]

    # timeline serves fanout's delivery as the consumer span's descendant, and pushes the post live.
    deliveries = [s for s in spans if s["name"] == "aviary.timeline.v1.timelineservice/deliverentrybatch"]
    assert any(consumed["id"] in _ancestors(s, by_id) for s in deliveries), "no delivery descends from fanout's span"
    assert any(_service(s) == "timeline" and "publish" in s["name"] for s in spans)
