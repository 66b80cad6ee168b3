"""CORS for configured third-party origins: a second Envoy, rendered by the
devstack's own renderer with one allowed origin and in front of the same
gateway and services, answers that origin's preflights itself (no token,
never 401) and grants nothing to any other origin."""

from __future__ import annotations

import httpx
import pytest

from edge_config import cors_policy
from tests.e2e.second_edge import second_edge

pytestmark = pytest.mark.e2e

ALLOWED = "https://shop.example.com"


@pytest.fixture(scope="module")
def cors_edge(tmp_path_factory):
    with second_edge(tmp_path_factory.mktemp("cors-envoy"), cors=cors_policy([ALLOWED])) as edge:
        with httpx.Client(base_url=edge.url, timeout=10.0) as client:
            yield client


def _preflight(client: httpx.Client, origin: str) -> httpx.Response:
    return client.options(
        "/v1/posts",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_an_allowed_origins_preflight_is_answered_without_a_token(cors_edge):
    r = _preflight(cors_edge, ALLOWED)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"]


def test_another_origin_gets_no_grant_and_no_401(cors_edge):
    r = _preflight(cors_edge, "https://evil.example")
    assert r.status_code == 204, r.text
    assert "access-control-allow-origin" not in r.headers


def test_an_allowed_origins_actual_request_is_marked_for_the_browser(cors_edge):
    r = cors_edge.get("/v1/trends", headers={"Origin": ALLOWED})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert (
        "access-control-allow-origin"
        not in cors_edge.get("/v1/trends", headers={"Origin": "https://x.example"}).headers
    )
