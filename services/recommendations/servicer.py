"""RecommendationsService: the caller's recommended products (public,
hydrated from the catalog) and the feed's signals (internal, ids and scores
straight from Redis). The consumer behind it lives in events.py."""

from __future__ import annotations

import functools
import logging
import time

import grpc
from prometheus_client import Histogram

from aviary.catalog.v1 import catalog_pb2
from aviary.recommendations.v1 import recommendations_pb2, recommendations_pb2_grpc
from services.kit.peers import clients
from services.kit.server import paging, startup
from services.kit.stores import redis_client
from services.kit.server.auth import caller_id
from services.kit.server.errors import unavailable
from services.kit.events import kafka
from services.kit.events.consumer import GATHER_LATER_MS, ConsumerLoop
from services.recommendations import scoring
from services.recommendations.events import TOPICS, EventApplier
from services.recommendations.settings import RecommendationsSettings
from services.recommendations.signals import SignalReader
from services.recommendations.store import RecommendationsStore

log = logging.getLogger(__name__)

CONSUMER_GROUP = "recommendations"
FEED_SIGNALS_SECONDS = Histogram(
    "aviary_recommendations_feed_signals_seconds",
    "GetFeedSignals latency (Redis reads and ranking)",
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25),
)
_REDIS_DOWN = redis_client.UNREACHABLE


def redis_unavailable(method):
    """An unreachable Redis answers UNAVAILABLE (the feed then goes on without us)."""

    @functools.wraps(method)
    async def call(self, request, context):
        try:
            return await method(self, request, context)
        except _REDIS_DOWN as exc:
            log.warning("redis unreachable", extra={"error": str(exc)[:300]})
            raise unavailable("recommendations are unavailable right now; try again shortly") from exc

    return call


class RecommendationsServicer(recommendations_pb2_grpc.RecommendationsServiceServicer):
    def __init__(self, settings: RecommendationsSettings) -> None:
        self.settings = settings
        self.store = RecommendationsStore(settings)
        self.reader = SignalReader(self.store, settings)
        self.applier = EventApplier(self.store, settings)
        self.consumer = ConsumerLoop(
            settings.kafka_bootstrap, CONSUMER_GROUP, TOPICS, self.applier.handle, gather_ms=GATHER_LATER_MS
        )

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        # Backends may still be starting next to us; serve only once Redis answers.
        await startup.retry_until_up(self.store.ping, "redis")

    async def stop(self) -> None:
        await self.store.close()
        await clients.close_all()

    async def consume(self) -> None:
        # The identity topic is the newest of ours: made here if identity has
        # not published yet, since the loop waits for every topic to exist.
        await kafka.relay_ensuring_topic(self.consumer.run, self.settings.kafka_bootstrap, kafka.IDENTITY_TOPIC)

    # -- RPCs --------------------------------------------------------------------------

    @redis_unavailable
    async def ListRecommendations(self, request, context):
        user_id = caller_id(context)
        size = paging.bounded(
            "page_size", request.page_size, default=scoring.DEFAULT_PAGE_SIZE, maximum=scoring.MAX_PAGE_SIZE
        )
        paging.no_page_token(request.page_token, "recommendations")
        # Ask for more than a page: hydration drops inactive and sold-out ones.
        signals = await self.reader.read(user_id, max_products=min(size * 2, scoring.MAX_HYDRATE), max_authors=0)
        products = await self._hydrate([c.product_id for c in signals.products])
        recommendations = []
        for candidate in signals.products:
            product = products.get(candidate.product_id)
            if product is None or not product.active or product.stock <= 0:
                continue
            recommendations.append(
                recommendations_pb2.Recommendation(product=product, score=candidate.score, reason=candidate.reason)
            )
            if len(recommendations) == size:
                break
        return recommendations_pb2.ListRecommendationsResponse(recommendations=recommendations)

    @redis_unavailable
    async def GetFeedSignals(self, request, context):
        started = time.perf_counter()
        user_id = scoring.check_user_id(request.user_id)
        max_products = paging.bounded(
            "max_products", request.max_products, default=scoring.DEFAULT_MAX_PRODUCTS, maximum=scoring.MAX_MAX_PRODUCTS
        )
        max_authors = paging.bounded(
            "max_authors", request.max_authors, default=scoring.DEFAULT_MAX_AUTHORS, maximum=scoring.MAX_MAX_AUTHORS
        )
        signals = await self.reader.read(user_id, max_products=max_products, max_authors=max_authors)
        response = recommendations_pb2.GetFeedSignalsResponse(
            products=[
                recommendations_pb2.ProductCandidate(product_id=c.product_id, score=c.score, reason=c.reason)
                for c in signals.products
            ],
            authors=[recommendations_pb2.AuthorAffinity(author_id=a, score=s) for a, s in signals.authors],
        )
        FEED_SIGNALS_SECONDS.observe(time.perf_counter() - started)
        return response

    async def _hydrate(self, product_ids: list[int]) -> dict[int, catalog_pb2.Product]:
        if not product_ids:
            return {}
        try:
            reply = await clients.catalog().BatchGetProducts(
                catalog_pb2.BatchGetProductsRequest(product_ids=[str(p) for p in product_ids]),
                timeout=self.settings.peer_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("catalog BatchGetProducts failed", extra={"code": exc.code().name})
            raise unavailable(f"cannot load the recommended products right now ({exc.code().name})") from exc
        return {int(p.id): p for p in reply.products}
