"""The consumer side: engagement, post, graph, catalog and order events ->
the recommendation store. At-least-once delivery, so every effect is
idempotent (see store.py); a record that cannot be decoded is poison."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError
from prometheus_client import Counter

from aviary.events.v1 import events_pb2
from aviary.posts.v1 import posts_pb2
from services.kit.peers import clients
from services.kit.server import ids
from services.kit.stores.cache import TtlCache
from services.kit.events.consumer import PoisonRecord
from services.kit.events.kafka import (
    CATALOG_TOPIC,
    ENGAGEMENT_TOPIC,
    GRAPH_TOPIC,
    IDENTITY_TOPIC,
    ORDERS_TOPIC,
    POSTS_TOPIC,
)
from services.recommendations import scoring
from services.recommendations.scoring import Decay, EngagementRecord, Weights
from services.recommendations.settings import RecommendationsSettings
from services.recommendations.store import RecommendationsStore

log = logging.getLogger(__name__)

TOPICS = [ENGAGEMENT_TOPIC, POSTS_TOPIC, GRAPH_TOPIC, CATALOG_TOPIC, ORDERS_TOPIC, IDENTITY_TOPIC]
ROLE_SELLER = "SELLER"
NOT_SELLER_CACHE_SECONDS = 6 * 3600
NOT_SELLER_CACHE_ENTRIES = 100_000

EVENTS = Counter(
    "aviary_recommendations_events_total", "Events consumed, by topic, kind and outcome", ["topic", "kind", "result"]
)
POST_LOOKUPS = Counter(
    "aviary_recommendations_post_lookups_total",
    "Tagged-product lookups for engaged posts, by where the answer came from",
    ["source"],
)

_SHORT = {
    ENGAGEMENT_TOPIC: "e",
    POSTS_TOPIC: "p",
    GRAPH_TOPIC: "g",
    CATALOG_TOPIC: "c",
    ORDERS_TOPIC: "o",
    IDENTITY_TOPIC: "i",
}
_Envelope = (
    events_pb2.EngagementEvent
    | events_pb2.PostEvent
    | events_pb2.GraphEvent
    | events_pb2.ProductEvent
    | events_pb2.OrderEvent
    | events_pb2.AccountEvent
)
_ENVELOPES: dict[str, type[_Envelope]] = {
    ENGAGEMENT_TOPIC: events_pb2.EngagementEvent,
    POSTS_TOPIC: events_pb2.PostEvent,
    GRAPH_TOPIC: events_pb2.GraphEvent,
    CATALOG_TOPIC: events_pb2.ProductEvent,
    ORDERS_TOPIC: events_pb2.OrderEvent,
    IDENTITY_TOPIC: events_pb2.AccountEvent,
}


def occur_ms(event) -> int:
    """When the event happened (its id's time if the producer left it out)."""
    if event.HasField("occur_time"):
        return event.occur_time.ToMilliseconds()
    return ids.timestamp_ms(event.event_id)


@dataclass(frozen=True)
class Occurrence:
    """What every handler needs of the envelope."""

    event_id: int
    marker: str  # unique per event: the idempotency marker's name
    t_ms: int  # when it happened


def _is_pure_repost(created: events_pb2.PostCreated) -> bool:
    return bool(created.repost_of_id) and not created.text


class EventApplier:
    def __init__(self, store: RecommendationsStore, settings: RecommendationsSettings) -> None:
        self.store = store
        self.settings = settings
        self.affinity = Decay(settings.epoch_ms, settings.affinity_half_life_ms)
        self.popularity = Decay(settings.epoch_ms, settings.popularity_half_life_ms)
        # Roles never change, so "not a seller" can be remembered as well
        # (in process: the answer for one follow is the answer for the next).
        self._not_sellers: TtlCache[int, bool] = TtlCache(NOT_SELLER_CACHE_SECONDS, NOT_SELLER_CACHE_ENTRIES)
        # (topic, event kind) -> handler; other kinds (delivery status,
        # celebrity changes) say nothing about what to recommend. A handler
        # takes the envelope's member of that kind (hence Any).
        self._handlers: dict[tuple[str, str], Callable[[Occurrence, Any], Awaitable[str]]] = {
            (ENGAGEMENT_TOPIC, "like_created"): self._on_like_created,
            (ENGAGEMENT_TOPIC, "like_removed"): self._on_like_removed,
            (POSTS_TOPIC, "created"): self._on_post_created,
            (POSTS_TOPIC, "deleted"): self._on_post_deleted,
            (GRAPH_TOPIC, "follow_created"): self._on_follow_created,
            (GRAPH_TOPIC, "follow_removed"): self._on_follow_removed,
            (CATALOG_TOPIC, "upserted"): self._on_product_upserted,
            (ORDERS_TOPIC, "confirmed"): self._on_order_confirmed,
            (IDENTITY_TOPIC, "deleted"): self._on_account_deleted,
        }

    async def handle(self, topic: str, key: bytes | None, value: bytes) -> None:
        envelope = _ENVELOPES.get(topic)
        if envelope is None:
            return
        try:
            event = envelope.FromString(value)
        except (DecodeError, ValueError) as exc:
            raise PoisonRecord(f"unreadable {topic} record: {exc}") from exc
        kind = event.WhichOneof("kind")
        apply = self._handlers.get((topic, kind)) if kind is not None else None
        if kind is None or apply is None:
            EVENTS.labels(topic, kind or "unknown", "ignored").inc()
            return
        # Event ids are unique per producer; the marker names the topic too.
        marker = f"{_SHORT[topic]}:{event.event_id}"
        result = await apply(Occurrence(event.event_id, marker, occur_ms(event)), getattr(event, kind))
        EVENTS.labels(topic, kind, result).inc()

    # -- engagement ------------------------------------------------------------------

    async def _on_like_created(self, at: Occurrence, like: events_pb2.LikeCreated) -> str:
        products = await self.post_products(like.post_id)
        return await self._engage(at, like.user_id, f"l:{like.post_id}", scoring.LIKE, like.post_author_id, products)

    async def _on_like_removed(self, at: Occurrence, like: events_pb2.LikeRemoved) -> str:
        return await self._disengage(at, like.user_id, f"l:{like.post_id}")

    # -- posts -----------------------------------------------------------------------

    async def _on_post_created(self, at: Occurrence, created: events_pb2.PostCreated) -> str:
        if not _is_pure_repost(created):
            # Likes carry no product ids: remember this post's (also when none,
            # so a like of it needs no lookup). Likes of a pure repost go to the
            # original, so a pure repost needs no entry.
            await self.store.remember_post(created.post_id, list(created.product_ids))
        if created.repost_of_id:
            products = await self.post_products(created.repost_of_id)
            return await self._engage(
                at, created.author_id, f"r:{created.post_id}", scoring.REPOST, created.repost_of_author_id, products
            )
        if created.reply_to_id:
            return await self._engage(
                at, created.author_id, f"c:{created.post_id}", scoring.REPLY, created.reply_to_author_id, []
            )
        return "applied"

    async def _on_post_deleted(self, at: Occurrence, deleted: events_pb2.PostDeleted) -> str:
        await self.store.forget_post(deleted.post_id)
        # A deleted repost or reply takes its engagement back.
        if deleted.repost_of_id:
            return await self._disengage(at, deleted.author_id, f"r:{deleted.post_id}")
        if deleted.reply_to_id:
            return await self._disengage(at, deleted.author_id, f"c:{deleted.post_id}")
        return "applied"

    # -- graph -----------------------------------------------------------------------

    async def _on_follow_created(self, at: Occurrence, follow: events_pb2.FollowCreated) -> str:
        # Only followed sellers matter here. Seller accounts are SELLER from
        # sign-up (identity), so a seller followed before listing anything is
        # recorded too, and their products show up as they are listed.
        if not await self.is_seller(follow.followee_id):
            return "ignored"
        await self.store.follow_seller(follow.follower_id, follow.followee_id)
        return "applied"

    async def _on_follow_removed(self, at: Occurrence, follow: events_pb2.FollowRemoved) -> str:
        await self.store.unfollow_seller(follow.follower_id, follow.followee_id)
        return "applied"

    # -- catalog -----------------------------------------------------------------------

    async def _on_product_upserted(self, at: Occurrence, product: events_pb2.ProductUpserted) -> str:
        created_ms = product.created_at.ToMilliseconds() if product.HasField("created_at") else at.t_ms
        applied = await self.store.upsert_product(
            at.event_id, product.product_id, product.seller_id, product.active, created_ms
        )
        return "applied" if applied else "stale"

    # -- orders ------------------------------------------------------------------------

    async def _on_order_confirmed(self, at: Occurrence, order: events_pb2.OrderConfirmed) -> str:
        products = [line.product_id for line in order.lines]
        # Absolute (a set), so a replay adds nothing; then popularity, once per event.
        await self.store.record_purchase(order.buyer_id, products)
        quantities: dict[int, int] = {}
        for line in order.lines:
            quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
        deltas = [(p, scoring.order_popularity(q, at.t_ms, self.popularity)) for p, q in quantities.items()]
        applied = await self.store.add_popularity(at.marker, deltas)
        return "applied" if applied else "duplicate"

    # -- identity ----------------------------------------------------------------------

    async def _on_account_deleted(self, at: Occurrence, deleted: events_pb2.AccountDeleted) -> str:
        # Absolute (keys deleted), so a replay changes nothing. A seller's
        # products leave through catalog's deactivation events, followers'
        # sets through graph's unfollows.
        await self.store.forget_user(deleted.user_id)
        return "applied"

    # -- shared ------------------------------------------------------------------------

    async def _engage(
        self, at: Occurrence, user_id: int, field: str, weights: Weights, author_id: int, products: list[int]
    ) -> str:
        record = scoring.engagement_record(weights, at.t_ms, user_id, author_id, products, self.affinity)
        if record is None:
            return "ignored"
        outcome = await self.store.engage(user_id, field, record, at.marker)
        # The global side runs on a replay too (its own marker makes it once):
        # the first run may have died between the two scripts.
        await self._popularity(at.marker, outcome.record, +1)
        return "duplicate" if outcome.duplicate else "applied"

    async def _disengage(self, at: Occurrence, user_id: int, field: str) -> str:
        outcome = await self.store.disengage(user_id, field, at.marker)
        await self._popularity(at.marker, outcome.record, -1)
        if outcome.duplicate:
            return "duplicate"
        return "applied" if outcome.record is not None else "ignored"

    async def _popularity(self, marker: str, record: EngagementRecord | None, sign: int) -> None:
        if record is None or not record.product_ids:
            return
        delta = sign * scoring.engagement_popularity(record, self.popularity)
        await self.store.add_popularity(marker, [(p, delta) for p in record.product_ids])

    async def post_products(self, post_id: int) -> list[int]:
        """A post's tagged products: from what the posts events told us, else
        (a post older than that memory) from the posts service, remembered
        for next time. Only the consumer calls this, never a read."""
        known = await self.store.post_products(post_id)
        if known is not None:
            POST_LOOKUPS.labels("memory").inc()
            return known
        try:
            reply = await clients.posts().BatchGetPosts(
                posts_pb2.BatchGetPostsRequest(post_ids=[str(post_id)], skip_engagement=True),
                timeout=self.settings.peer_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            # Raised, so the consumer retries this record until posts answers.
            log.warning("posts lookup failed", extra={"post_id": post_id, "code": exc.code().name})
            raise
        POST_LOOKUPS.labels("posts").inc()
        products: list[int] = []
        for post in reply.posts:  # absent: deleted since, so no products
            source = post.repost_of if post.repost_of_id and not post.text and post.HasField("repost_of") else post
            products = [int(p) for p in source.product_ids]
        await self.store.remember_post(post_id, products)
        return products

    async def is_seller(self, user_id: int) -> bool:
        """Known from catalog events, else asked of identity (roles never
        change, so a yes is remembered in Redis, a no in process)."""
        if await self.store.is_known_seller(user_id):
            return True
        if self._not_sellers.get_many([user_id])[0]:
            return False
        users = await clients.user_summaries([user_id], self.settings.peer_timeout_seconds, counts=False)
        user = users.get(user_id)
        if user is None or user.role != ROLE_SELLER:
            if user is not None:
                self._not_sellers.put_many([(user_id, True)])
            return False
        await self.store.add_known_seller(user_id)
        return True
