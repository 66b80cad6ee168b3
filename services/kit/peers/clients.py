"""Channels and stubs to other services, one shared channel (and stub) per target.

Any service in the manifest is reachable as `stub(name)`; the typed helpers
below name the stubs the services use today. Channels are created lazily
inside the running event loop (grpc.aio needs it).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import re
import time
from typing import Any, Awaitable, Callable

import grpc

from aviary.cart.v1 import cart_pb2_grpc
from aviary.catalog.v1 import catalog_pb2_grpc
from aviary.conversations.v1 import conversations_pb2_grpc
from aviary.engagement.v1 import engagement_pb2_grpc
from aviary.graph.v1 import graph_pb2, graph_pb2_grpc
from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.inventory.v1 import inventory_pb2_grpc
from aviary.media.v1 import media_pb2_grpc
from aviary.notifications.v1 import notifications_pb2_grpc
from aviary.orders.v1 import orders_pb2_grpc
from aviary.payments.v1 import payments_pb2_grpc
from aviary.posts.v1 import posts_pb2_grpc
from aviary.recommendations.v1 import recommendations_pb2_grpc
from aviary.timeline.v1 import timeline_pb2_grpc
from services.kit import manifest, mesh, settings, tracing
from services.kit.settings import service_addr
from services.kit.server.errors import unavailable

log = logging.getLogger(__name__)

_channels: dict[str, grpc.aio.Channel] = {}
# Stubs by (service name, stub class), each with the channel it was made on.
_stubs: dict[tuple[str, Any], tuple[grpc.aio.Channel, Any]] = {}

_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.enable_retries", 1),
    # A restarted peer is back within seconds: reconnect every half second at most,
    # not after gRPC's default backoff of up to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]

# Unary methods that only read; only these are retried on UNAVAILABLE.
_READ_METHOD = re.compile(r"(Get|BatchGet|List|Lookup|Search|Count|Check|Find)[A-Z]")

# Up to 5 attempts over about 1.2 s (at most 2.4 s): a peer restarting, or the channel
# still reconnecting to it, is waited out rather than passed on as an error.
_READ_RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


# How often a caller looks whether its mesh certificate was renewed, and how long
# calls already on a channel opened before the renewal may go on.
CERTIFICATE_CHECK_SECONDS = 5.0
RETIRED_CHANNEL_GRACE_SECONDS = 60.0


def channel(name: str) -> grpc.aio.Channel:
    if settings.current().mesh_tls and _mesh_credentials.renewed():
        _retire_channels()
    ch = _channels.get(name)
    if ch is None:
        ch = _channels[name] = tracing.traced_channel(_open(name))
    return ch


def _open(name: str) -> grpc.aio.Channel:
    options = [*_CHANNEL_OPTIONS, ("grpc.service_config", service_config(name))]
    if not settings.current().mesh_tls:
        return grpc.aio.insecure_channel(service_addr(name), options=options)
    credentials = _mesh_credentials.current()
    return grpc.aio.secure_channel(service_addr(name), credentials, options=[*options, *mesh.channel_options(name)])


class _MeshCredentials:
    """This process's channel credentials, made again when its certificate files
    change (a renewal; the files are looked at every few seconds) or its mesh
    identity does (tests acting as one service, then another)."""

    def __init__(self) -> None:
        self._version: object = None
        self._identity: str | None = None
        self._credentials: grpc.ChannelCredentials | None = None
        self._next_look = 0.0

    def current(self) -> grpc.ChannelCredentials:
        if self._credentials is None:
            self.renewed()
        assert self._credentials is not None
        return self._credentials

    def renewed(self) -> bool:
        """Whether the files changed since the credentials in hand were made from them."""
        now = time.monotonic()
        who = mesh.identity()
        if self._credentials is not None and who == self._identity and now < self._next_look:
            return False
        self._next_look = now + CERTIFICATE_CHECK_SECONDS
        try:
            version = (who, mesh.Files.of(who).version())
            if version == self._version:
                return False
            credentials = mesh.channel_credentials(who)
        except (OSError, RuntimeError):
            if self._credentials is None:
                raise
            return False  # caught mid-renewal: keep the certificate in hand, look again later
        first = self._credentials is None
        self._version, self._identity, self._credentials = version, who, credentials
        return not first


_mesh_credentials = _MeshCredentials()
_retiring: set[asyncio.Future] = set()


def _retire_channels() -> None:
    """New calls get channels that present the renewed certificate; calls on the
    old channels may go on for a minute before those close."""
    retired = list(_channels.values())
    _channels.clear()
    _stubs.clear()
    log.info("mesh certificate renewed: new channels to peers", extra={"retired": len(retired)})
    for old in retired:
        closing = asyncio.ensure_future(old.close(grace=RETIRED_CHANNEL_GRACE_SECONDS))
        _retiring.add(closing)
        closing.add_done_callback(_retiring.discard)


def service_config(name: str) -> str:
    """The channel's service config for service `name`: its read methods retried."""
    reads = [
        {"service": full_name, "method": method.name}
        for full_name in manifest.service(name).grpc
        for method in manifest.proto_service(full_name).methods
        if _READ_METHOD.match(method.name) and not (method.client_streaming or method.server_streaming)
    ]
    if not reads:
        return json.dumps({})
    return json.dumps(
        {
            "methodConfig": [{"name": reads, "retryPolicy": _READ_RETRY_POLICY}],
            # A peer down for longer: calls stop retrying once failed attempts outnumber
            # half the successes by 50 (about ten calls' worth of retries). A smaller
            # bucket ran dry on one call during a short outage, and the first call after
            # it then failed while the channel was still reconnecting.
            "retryThrottling": {"maxTokens": 100, "tokenRatio": 0.5},
        }
    )


def stub(name: str) -> Any:
    """The stub of the (first) gRPC service `name` serves, as the manifest says."""
    grpc_services = manifest.service(name).grpc
    if not grpc_services:
        raise ValueError(f"{name} is a worker: it has no API to call")
    _, domain, version, service = grpc_services[0].split(".")
    module = importlib.import_module(f"aviary.{domain}.{version}.{domain}_pb2_grpc")
    return _kept_stub(name, getattr(module, f"{service}Stub"))


def _kept_stub(name: str, make: Any) -> Any:
    """The `make` stub on the channel to `name`, made once per channel: a
    stub builds a multi-callable for each of its methods, which made per
    call would be paid on every hop."""
    ch = channel(name)
    kept = _stubs.get((name, make))
    if kept is None or kept[0] is not ch:
        kept = _stubs[(name, make)] = (ch, make(ch))
    return kept[1]


def identity() -> identity_pb2_grpc.IdentityServiceAsyncStub:
    return _kept_stub("identity", identity_pb2_grpc.IdentityServiceStub)


def graph() -> graph_pb2_grpc.GraphServiceAsyncStub:
    return _kept_stub("graph", graph_pb2_grpc.GraphServiceStub)


def posts() -> posts_pb2_grpc.PostsServiceAsyncStub:
    return _kept_stub("posts", posts_pb2_grpc.PostsServiceStub)


def timeline() -> timeline_pb2_grpc.TimelineServiceAsyncStub:
    return _kept_stub("timeline", timeline_pb2_grpc.TimelineServiceStub)


def engagement() -> engagement_pb2_grpc.EngagementServiceAsyncStub:
    return _kept_stub("engagement", engagement_pb2_grpc.EngagementServiceStub)


def notifications() -> notifications_pb2_grpc.NotificationsServiceAsyncStub:
    return _kept_stub("notifications", notifications_pb2_grpc.NotificationsServiceStub)


def media() -> media_pb2_grpc.MediaServiceAsyncStub:
    return _kept_stub("media", media_pb2_grpc.MediaServiceStub)


def catalog() -> catalog_pb2_grpc.CatalogServiceAsyncStub:
    return _kept_stub("catalog", catalog_pb2_grpc.CatalogServiceStub)


def cart() -> cart_pb2_grpc.CartServiceAsyncStub:
    return _kept_stub("cart", cart_pb2_grpc.CartServiceStub)


def inventory() -> inventory_pb2_grpc.InventoryServiceAsyncStub:
    return _kept_stub("inventory", inventory_pb2_grpc.InventoryServiceStub)


def payments() -> payments_pb2_grpc.PaymentsServiceAsyncStub:
    return _kept_stub("payments", payments_pb2_grpc.PaymentsServiceStub)


def recommendations() -> recommendations_pb2_grpc.RecommendationsServiceAsyncStub:
    return _kept_stub("recommendations", recommendations_pb2_grpc.RecommendationsServiceStub)


def orders() -> orders_pb2_grpc.OrdersServiceAsyncStub:
    return _kept_stub("orders", orders_pb2_grpc.OrdersServiceStub)


def conversations() -> conversations_pb2_grpc.ConversationsServiceAsyncStub:
    return _kept_stub("conversations", conversations_pb2_grpc.ConversationsServiceStub)


_closers: list = []


def on_close(closer) -> None:
    """Registers a plain function close_all calls before closing the
    channels (for long-lived calls held on them)."""
    _closers.append(closer)


async def close_all() -> None:
    while _closers:
        _closers.pop()()
    for ch in list(_channels.values()):
        await ch.close()
    _channels.clear()
    _stubs.clear()


def forward_auth(context: grpc.aio.ServicerContext) -> tuple[tuple[str, str], ...]:
    """Metadata that passes the caller's bearer token on to a downstream call."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):  # bytes only for -bin keys
            return (("authorization", value),)
    return ()


async def user_summaries(user_ids: list[int], timeout: float, *, counts: bool = True) -> dict[int, identity_pb2.User]:
    """User summaries from identity by id; ids identity does not know are absent.
    `counts=False` leaves their follower, following and post counts at zero,
    for a caller that only asks who exists, their names or roles: two calls
    fewer behind identity's answer.

    Raises UNAVAILABLE (an ApiError) when identity cannot answer."""
    try:
        response = await identity().BatchGetUsers(
            identity_pb2.BatchGetUsersRequest(user_ids=[str(u) for u in user_ids], skip_counts=not counts),
            timeout=timeout,
        )
    except grpc.aio.AioRpcError as exc:
        log.warning("identity BatchGetUsers failed", extra={"code": exc.code().name, "details": exc.details()})
        raise unavailable(f"cannot look users up right now (identity: {exc.code().name}); try again") from exc
    return {int(user.id): user for user in response.users}


# Users per BatchGetFollowStats call (graph's limit) and per post-count lookup.
COUNTS_BATCH = 200


async def summary_counts(
    user_ids: list[int], post_counts: Callable[[list[int]], Awaitable[dict[int, int]]], timeout: float
) -> dict[int, tuple[int, int, int]]:
    """(followers, following, posts) per user for their summaries: graph's
    follow counts beside `post_counts` (posts' own, or asked of posts), in
    batches asked in parallel. Raises what graph or `post_counts` raised."""
    chunks = [user_ids[at : at + COUNTS_BATCH] for at in range(0, len(user_ids), COUNTS_BATCH)]
    answers = await asyncio.gather(*(_summary_counts_of(chunk, post_counts, timeout) for chunk in chunks))
    return {user_id: counts for answer in answers for user_id, counts in answer.items()}


async def _summary_counts_of(
    user_ids: list[int], post_counts: Callable[[list[int]], Awaitable[dict[int, int]]], timeout: float
) -> dict[int, tuple[int, int, int]]:
    follows, posts = await asyncio.gather(
        graph().BatchGetFollowStats(
            graph_pb2.BatchGetFollowStatsRequest(user_ids=[str(u) for u in user_ids]), timeout=timeout
        ),
        post_counts(user_ids),
        return_exceptions=True,
    )
    if isinstance(follows, BaseException):
        raise follows
    if isinstance(posts, BaseException):
        raise posts
    return {int(s.user_id): (s.follower_count, s.following_count, posts.get(int(s.user_id), 0)) for s in follows.stats}
