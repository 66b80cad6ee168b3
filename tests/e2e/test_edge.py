"""The edge itself: health, identity only from the verified token, internal
methods unreachable, JSON shapes, and grpcurl against every service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from services.kit.settings import SERVICE_PORTS

from tests.e2e.edge import error_message, post, sign_up
from devstack.mesh_channels import grpcurl_flags

pytestmark = pytest.mark.e2e

GRPCURL = shutil.which("grpcurl") or str(Path(os.environ.get("GOPATH", Path.home() / "go")) / "bin" / "grpcurl")
# Every process the devstack runs (kit.config.SERVICE_PORTS) and the gRPC
# service it exposes; workers without an API serve health and reflection only.
WORKERS = {"fanout"}
SERVICES = {
    name: (port, None if name in WORKERS else f"aviary.{name}.v1.{name.capitalize()}Service")
    for name, port in SERVICE_PORTS.items()
}


def test_healthz(http):
    r = http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_unknown_path_is_json_404(http):
    me = sign_up(http, "n")
    r = http.get("/v1/nope", headers=me.auth)
    assert r.status_code == 404
    assert error_message(r)


def test_client_sent_identity_cannot_impersonate(http):
    victim, attacker = sign_up(http, "v"), sign_up(http, "x")
    # Body fields and headers naming another user are ignored: the post is the token's.
    r = http.post(
        "/v1/posts",
        json={"text": "who am i", "authorId": victim.id, "author_id": victim.id},
        headers={**attacker.auth, "x-aviary-user-id": victim.id, "x-jwt-payload": "e30"},
    )
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert r.json()["authorId"] == attacker.id
    assert http.get(f"/v1/users/{victim.id}/posts").json()["posts"] == []
    # Without a token, a header alone gets nothing.
    r = http.post("/v1/posts", json={"text": "no token"}, headers={"x-aviary-user-id": victim.id})
    assert r.status_code == 401


def test_internal_methods_are_not_routed(http):
    me = sign_up(http, "i")
    for path in (
        "/aviary.identity.v1.IdentityService/BatchGetUsers",
        "/aviary.timeline.v1.TimelineService/DeliverEntries",
        "/aviary.graph.v1.GraphService/StreamFollowers",
        "/aviary.timeline.v1.TimelineService/DeliverEntryBatch",
        "/aviary.graph.v1.GraphService/ListFollowerIds",
    ):
        r = http.post(path, content=b"\x00\x00\x00\x00\x00", headers={**me.auth, "content-type": "application/grpc"})
        assert r.status_code == 404 or r.headers.get("grpc-status") not in (None, "0"), path


def test_json_shapes_match_the_contract(http):
    me = sign_up(http, "j")
    created = post(http, me, "shape #check")
    for key in (
        "id",
        "authorId",
        "author",
        "text",
        "mediaIds",
        "productIds",
        "hashtags",
        "mentions",
        "likeCount",
        "repostCount",
        "replyCount",
        "likedByMe",
        "createdAt",
    ):
        assert key in created, key
    assert isinstance(created["id"], str) and created["id"].isdigit()
    profile = http.get(f"/v1/users/{me.id}").json()
    for key in (
        "id",
        "username",
        "displayName",
        "bio",
        "avatarUrl",
        "followerCount",
        "followingCount",
        "postCount",
        "createdAt",
    ):
        assert key in profile, key
    assert profile["postCount"] == 1
    assert http.get("/v1/users:lookup", params={"username": me.username}).json()["id"] == me.id


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_grpcurl_lists_and_calls_every_service(name):
    port, service = SERVICES[name]
    listed = subprocess.run(
        [GRPCURL, *grpcurl_flags(name), f"127.0.0.1:{port}", "list"], capture_output=True, text=True, timeout=20
    )
    assert listed.returncode == 0, listed.stderr
    assert "grpc.health.v1.Health" in listed.stdout
    if service:
        assert service in listed.stdout
    health = subprocess.run(
        [
            GRPCURL,
            *grpcurl_flags(name),
            "-d",
            json.dumps({"service": service or ""}),
            f"127.0.0.1:{port}",
            "grpc.health.v1.Health/Check",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["status"] == "SERVING"


def test_grpcurl_real_call_with_token(http):
    me = sign_up(http, "g")
    out = subprocess.run(
        [
            GRPCURL,
            *grpcurl_flags("identity"),
            "-H",
            f"authorization: Bearer {me.token}",
            "-d",
            '{"user_id": "me"}',
            "127.0.0.1:50051",
            "aviary.identity.v1.IdentityService/GetUser",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["username"] == me.username


def test_per_user_rate_limit_answers_429_with_retry_after(http, edge_url):
    """The gateway's per-user read bucket (devstack default 50/s, burst 100),
    hit with 400 cheap reads from 16 threads: far faster than it refills."""
    me, other = sign_up(http, "l"), sign_up(http, "l")

    def read(_):
        # A username no account can have: identity answers 404 without a query.
        with httpx.Client(base_url=edge_url, timeout=15.0) as client:
            return [client.get("/v1/users:lookup", params={"username": "!"}, headers=me.auth) for _ in range(25)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = [r for batch in pool.map(read, range(16)) for r in batch]
    statuses = {r.status_code for r in responses}
    assert statuses <= {404, 429}, statuses
    limited = [r for r in responses if r.status_code == 429]
    assert limited, "400 concurrent reads were never limited"
    assert int(limited[0].headers["retry-after"]) >= 1
    assert "rate limit" in error_message(limited[0])
    # Buckets are per user: someone else is unaffected.
    assert http.get(f"/v1/users/{me.id}", headers=other.auth).status_code == 200
