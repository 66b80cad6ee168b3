"""CORS for configured third-party origins: a second Envoy, rendered by the
devstack's own renderer with one allowed origin and in front of the same
gateway and services, answers that origin's preflights itself (no token,
never 401) and grants nothing to any other origin."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devstack import config
from edge_config import cors_policy, render_config
from devstack.services import GATEWAY_PORT, KEYS_DIR, envoy_mesh_certs
from services.kit.settings import SERVICE_PORTS
from tests.integration.support import free_port

pytestmark = pytest.mark.e2e

ALLOWED = "https://shop.example.com"


@pytest.fixture(scope="module")
def cors_edge(tmp_path_factory):
    conf = tmp_path_factory.mktemp("cors-envoy")
    port, admin = free_port(), free_port()
    render_config(
        conf / "envoy.yaml",
        port=port,
        admin_port=admin,
        descriptor=config.CONF / "envoy" / "aviary.pb",
        jwks=KEYS_DIR / "jwks.json",
        access_log=conf / "access.log",
        service_ports=SERVICE_PORTS,
        gateway_port=GATEWAY_PORT,
        objectstore_port=config.OBJECTSTORE_PORT,
        media_bucket=config.MEDIA_BUCKET,
        cors=cors_policy([ALLOWED]),
        mesh_certs=envoy_mesh_certs(),
    )
    envoy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "envoy"),
            "-c",
            str(conf / "envoy.yaml"),
            "--disable-hot-restart",
            "--log-level",
            "warn",
            "--concurrency",
            "1",
            "--base-id",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(conf / "envoy.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, envoy, conf / "envoy.log")
        with httpx.Client(base_url=url, timeout=10.0) as client:
            yield client
    finally:
        envoy.terminate()
        envoy.wait(10)


def _wait_healthy(url: str, envoy: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert envoy.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the CORS Envoy never became healthy: {log.read_text()[-2000:]}")


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
