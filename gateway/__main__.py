"""The gateway: an HTTP authorization service for Envoy's ext_authz filter
(served by gateway/http.py, a minimal HTTP/1.1 server on httptools).

Envoy asks `GET|POST|... /check/<original path and query>` with the caller's
Authorization and X-Forwarded-For headers and the JSON body. First the rate
limit: the subject is the verified token's user (or, for anonymous calls, the
client address Envoy appended); the bucket is that subject's reads or writes.
Over the limit: 429 with Retry-After. Then the request itself
(gateway/checks.py): unknown paths 404, wrong methods 405, unknown parameters
and fields 400. It also serves the OpenAPI document.
If Redis is unreachable the gateway lets traffic through (and Envoy is set to
fail open too): rate limiting must never take the platform down.

    python -m gateway
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path

import uvloop
from prometheus_client import Counter, start_http_server

from gateway import checks
from gateway.http import Request, Response, serve
from gateway.ratelimit import Limit, RateLimiter, action_of, bucket_key
from services.kit.server import client_address
from services.kit.server.auth import verify_token
from gateway.settings import GatewaySettings
from services.kit.settings import load
from services.kit.server.errors import ApiError
from services.kit.server.logs import setup_logging
from services.kit.stores.redis_bulk import BulkRedis

log = logging.getLogger("gateway")

DECISIONS = Counter("aviary_gateway_decisions_total", "Rate-limit decisions", ["action", "kind", "allowed"])

_HEALTHY = Response(200, body=json.dumps({"status": "ok"}).encode(), content_type="application/json")
_JSON = "application/json"
# The published contract (make openapi), served at GET /openapi.json.
OPENAPI_DOCUMENT = Path(__file__).resolve().parents[1] / "envoy" / "openapi.json"
_ALLOWED = Response(200)


def limits_of(settings: GatewaySettings) -> dict[tuple[str, str], Limit]:
    """(subject kind, action) -> Limit. Anonymous traffic is keyed by client address."""
    return {
        ("user", "read"): Limit(settings.user_reads_per_sec, settings.user_read_burst),
        ("user", "write"): Limit(settings.user_writes_per_sec, settings.user_write_burst),
        ("ip", "read"): Limit(settings.ip_reads_per_sec, settings.ip_read_burst),
        ("ip", "write"): Limit(settings.ip_writes_per_sec, settings.ip_write_burst),
    }


def subject_of(request: Request, exempt_prefix: str = "", trusted_hops: int = 0) -> tuple[str, str]:
    """("user", id) from a valid token, else ("ip", client address);
    ("exempt", id) for a user whose name has the exempt prefix."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token:
        try:
            claims = verify_token(token.strip())
        except ApiError:
            pass  # Envoy already rejects bad tokens on protected routes
        else:
            exempt = exempt_prefix and claims.get("username", "").startswith(exempt_prefix)
            return "exempt" if exempt else "user", claims["sub"]
    # Envoy (use_remote_address) appends the peer it saw; the client is the
    # entry Envoy trusts, and anything left of it was written by the client.
    forwarded = request.headers.get("x-forwarded-for", "")
    return "ip", client_address.from_forwarded_for(forwarded, trusted_hops) or request.remote or "unknown"


def refused(refusal: checks.Refusal) -> Response:
    if refusal.status == 204:
        return Response(204, headers=refusal.headers)
    return Response(
        refusal.status, headers=refusal.headers, body=json.dumps(refusal.body()).encode(), content_type=_JSON
    )


def _forwarded_body(request: Request) -> bytes | None:
    """The body Envoy forwarded, or None when it was cut short."""
    if request.headers.get("x-envoy-auth-partial-body") == "true":
        return None
    return request.body


def build_handler(
    limiter: RateLimiter,
    limits: dict[tuple[str, str], Limit],
    openapi: bytes = b"",
    exempt_prefix: str = "",
    trusted_hops: int = 0,
):
    openapi_document = Response(200, body=openapi, content_type=_JSON, headers={"cache-control": "max-age=300"})

    async def check(request: Request) -> Response:
        limited = await rate_limit(request)
        if limited.status != 200:
            return limited
        refusal = checks.check(
            request.method, request.path[len("/check") :] or "/", request.query, _forwarded_body(request)
        )
        return refused(refusal) if refusal is not None else limited

    async def rate_limit(request: Request) -> Response:
        kind, subject = subject_of(request, exempt_prefix, trusted_hops)
        if kind == "exempt":
            return _ALLOWED
        action = action_of(request.method)
        limit = limits[(kind, action)]
        try:
            decision = await limiter.check(bucket_key(f"{kind}:{subject}", action), limit)
        except Exception:
            log.warning("rate limiter unavailable; allowing", exc_info=True)
            return _ALLOWED
        DECISIONS.labels(action, kind, str(decision.allowed).lower()).inc()
        if decision.allowed:
            return Response(200, headers={"x-ratelimit-remaining": str(decision.remaining)})
        retry = max(1, decision.retry_after_seconds)
        return Response(
            429,
            headers={"retry-after": str(retry)},
            body=json.dumps(
                {
                    "code": 8,
                    "message": (
                        f"rate limit exceeded: at most {limit.rate:g} {action}s per second "
                        f"(burst {limit.burst}); retry after {retry} s"
                    ),
                    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry}s"}],
                }
            ).encode(),
            content_type=_JSON,
        )

    async def handle(request: Request) -> Response:
        if request.path == "/check" or request.path.startswith("/check/"):
            return await check(request)
        if request.path == "/healthz" and request.method == "GET":
            return _HEALTHY
        if request.path == "/openapi.json" and request.method == "GET" and openapi:
            return openapi_document
        return refused(checks.Refusal(404, 5, f"no such endpoint: {request.method} {request.path}"))

    return handle


async def _serve(settings: GatewaySettings) -> None:
    redis = BulkRedis(settings.redis_url)
    checks.matcher()  # the route table, built before the first request
    # Users whose name starts with this prefix are not rate limited: the
    # devstack's API fuzzing accounts. Unset (nobody) in production.
    handler = build_handler(
        RateLimiter(redis, settings.rate_lease_most, settings.rate_lease_seconds),
        limits_of(settings),
        OPENAPI_DOCUMENT.read_bytes(),
        exempt_prefix=settings.rate_exempt_username_prefix,
        # Proxies in front of Envoy whose X-Forwarded-For entries it trusts.
        trusted_hops=settings.xff_trusted_hops,
    )
    server = await serve(handler, "127.0.0.1", settings.port)
    log.info("listening", extra={"port": settings.port})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await redis.close()
    log.info("stopped")


def main() -> None:
    settings = load(GatewaySettings)
    setup_logging("gateway")
    start_http_server(settings.metrics_port or settings.port + 1000, addr="127.0.0.1")
    uvloop.run(_serve(settings))  # the gateway sits on every request's path


if __name__ == "__main__":
    main()
