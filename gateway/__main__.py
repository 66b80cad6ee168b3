"""The gateway: an HTTP authorization service for Envoy's ext_authz filter.

Envoy asks `GET|POST|... /check/<original path>` with the caller's
Authorization and X-Forwarded-For headers. The subject is the verified token's
user (or, for anonymous calls, the client address Envoy appended); the bucket
is that subject's reads or writes. Over the limit: 429 with Retry-After.
If Redis is unreachable the gateway lets traffic through (and Envoy is set to
fail open too): rate limiting must never take the platform down.

    python -m gateway
"""
from __future__ import annotations

import logging

import uvloop
from aiohttp import web
from prometheus_client import Counter, start_http_server

from gateway.ratelimit import Limit, RateLimiter, action_of, bucket_key
from services.kit import redis_client
from services.kit.auth import verify_token
from services.kit.config import env_float, env_int, load_settings
from services.kit.errors import ApiError
from services.kit.logs import setup_logging

log = logging.getLogger("gateway")

DECISIONS = Counter("aviary_gateway_decisions_total", "Rate-limit decisions", ["action", "kind", "allowed"])


def limits_from_env() -> dict[tuple[str, str], Limit]:
    """(subject kind, action) -> Limit. Anonymous traffic is keyed by client address."""
    return {
        ("user", "read"): Limit(env_float("AVIARY_RATE_USER_READS_PER_SEC", 50), env_int("AVIARY_RATE_USER_READ_BURST", 100)),
        ("user", "write"): Limit(env_float("AVIARY_RATE_USER_WRITES_PER_SEC", 20), env_int("AVIARY_RATE_USER_WRITE_BURST", 100)),
        ("ip", "read"): Limit(env_float("AVIARY_RATE_IP_READS_PER_SEC", 200), env_int("AVIARY_RATE_IP_READ_BURST", 400)),
        ("ip", "write"): Limit(env_float("AVIARY_RATE_IP_WRITES_PER_SEC", 100), env_int("AVIARY_RATE_IP_WRITE_BURST", 300)),
    }


def subject_of(request: web.Request) -> tuple[str, str]:
    """("user", id) from a valid token, else ("ip", client address)."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token:
        try:
            return "user", verify_token(token.strip())["sub"]
        except ApiError:
            pass  # Envoy already rejects bad tokens on protected routes
    # Envoy (use_remote_address) appends the peer it saw as the LAST entry;
    # earlier entries are client-supplied and cannot be trusted.
    forwarded = request.headers.get("x-forwarded-for", "")
    address = forwarded.split(",")[-1].strip() if forwarded else (request.remote or "unknown")
    return "ip", address


def build_app() -> web.Application:
    settings = load_settings()
    limiter = RateLimiter(redis_client.client(settings))
    limits = limits_from_env()

    async def check(request: web.Request) -> web.Response:
        kind, subject = subject_of(request)
        action = action_of(request.method)
        limit = limits[(kind, action)]
        try:
            decision = await limiter.check(bucket_key(f"{kind}:{subject}", action), limit)
        except Exception:
            log.warning("rate limiter unavailable; allowing", exc_info=True)
            return web.Response(status=200)
        DECISIONS.labels(action, kind, str(decision.allowed).lower()).inc()
        if decision.allowed:
            return web.Response(status=200, headers={"x-ratelimit-remaining": str(decision.remaining)})
        retry = max(1, decision.retry_after_seconds)
        return web.Response(
            status=429,
            headers={"retry-after": str(retry)},
            text=f"rate limit exceeded: at most {limit.rate:g} {action}s per second "
                 f"(burst {limit.burst}); retry after {retry} s",
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def no_such_endpoint(_: web.Request) -> web.Response:
        # Envoy's catch-all route lands here for paths no public method maps.
        return web.json_response({"code": 5, "message": "no such endpoint"}, status=404)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/check/{tail:.*}", check)
    app.router.add_route("*", "/check", check)
    app.router.add_route("*", "/{tail:.*}", no_such_endpoint)
    return app


def main() -> None:
    setup_logging("gateway")
    uvloop.install()  # aiohttp on uvloop: the gateway sits on every request's path
    port = env_int("AVIARY_GATEWAY_PORT", 8081)
    start_http_server(env_int("AVIARY_METRICS_PORT", port + 1000), addr="127.0.0.1")
    web.run_app(build_app(), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
