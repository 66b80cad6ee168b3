"""Recommendations store and consumer against real Redis (and, for the two
lookups that leave it, the running posts and identity services).

Events go in as Kafka record bytes through the same handler the consumer
uses. Each test has its own key prefix and random ids, and deletes its keys.
"""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from aviary.events.v1 import events_pb2
from services.kit import mesh
from services.kit.peers import clients
from services.kit.settings import load
from services.kit.events.kafka import CATALOG_TOPIC, ENGAGEMENT_TOPIC, GRAPH_TOPIC, ORDERS_TOPIC, POSTS_TOPIC
from services.recommendations.events import EventApplier
from services.recommendations.scoring import ENGAGED, FOLLOWED_SELLER, Decay
from services.recommendations.settings import RecommendationsSettings
from services.recommendations.signals import SignalReader
from services.recommendations.store import RecommendationsStore
from tests import redis_clients

HOUR_MS = 3_600_000
T0 = 1_790_000_000_000  # a fixed moment (2026-09) so the maths is exact


def rid() -> int:
    return (1 << 61) + secrets.randbits(56)


@pytest.fixture(autouse=True)
def _mesh_identity():
    # The store's peer calls go out as recommendations'.
    mesh.set_identity("recommendations")


@pytest.fixture
async def world():
    prefix = f"rect{secrets.token_hex(4)}"
    settings = dataclasses.replace(load(RecommendationsSettings), key_prefix=prefix)
    store = RecommendationsStore(settings)
    applier = EventApplier(store, settings)
    reader = SignalReader(store, settings)
    yield store, applier, reader, settings
    await store.close()
    await clients.close_all()
    plain = redis_clients.from_url(settings.redis_url)
    keys = list(plain.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        plain.delete(*keys)
    plain.close()


def _stamp(event, t_ms: int):
    event.event_id = rid()
    event.occur_time.FromMilliseconds(t_ms)
    return event


def post_created(
    post_id, author, t_ms, products=(), repost_of=0, repost_author=0, reply_to=0, reply_author=0, text="hello"
):
    return _stamp(
        events_pb2.PostEvent(
            created=events_pb2.PostCreated(
                post_id=post_id,
                author_id=author,
                text=text,
                product_ids=list(products),
                repost_of_id=repost_of,
                repost_of_author_id=repost_author,
                reply_to_id=reply_to,
                reply_to_author_id=reply_author,
            )
        ),
        t_ms,
    )


def post_deleted(post_id, author, t_ms, repost_of=0, reply_to=0):
    return _stamp(
        events_pb2.PostEvent(
            deleted=events_pb2.PostDeleted(
                post_id=post_id, author_id=author, repost_of_id=repost_of, reply_to_id=reply_to
            )
        ),
        t_ms,
    )


def like(post_id, user, author, t_ms, removed=False):
    body = events_pb2.LikeRemoved if removed else events_pb2.LikeCreated
    kind = "like_removed" if removed else "like_created"
    return _stamp(
        events_pb2.EngagementEvent(**{kind: body(post_id=post_id, user_id=user, post_author_id=author)}), t_ms
    )


def product_upserted(product_id, seller, t_ms, active=True, event_id=None):
    event = _stamp(
        events_pb2.ProductEvent(
            upserted=events_pb2.ProductUpserted(product_id=product_id, seller_id=seller, title="x", active=active)
        ),
        t_ms,
    )
    event.upserted.created_at.FromMilliseconds(t_ms)
    if event_id is not None:
        event.event_id = event_id
    return event


def order_confirmed(buyer, lines, t_ms):
    return _stamp(
        events_pb2.OrderEvent(
            confirmed=events_pb2.OrderConfirmed(
                order_id=rid(), buyer_id=buyer, lines=[events_pb2.OrderLine(product_id=p, quantity=q) for p, q in lines]
            )
        ),
        t_ms,
    )


async def feed(applier, topic, event) -> None:
    await applier.handle(topic, None, event.SerializeToString())


def snapshot(store: RecommendationsStore, user: int) -> dict:
    """Everything the user's engagement and global popularity hold now."""
    plain = redis_clients.from_url(load(RecommendationsSettings).redis_url)
    try:
        return {
            "aff": plain.zrange(store.user_key(user, "aff"), 0, -1, withscores=True),
            "auth": plain.zrange(store.user_key(user, "auth"), 0, -1, withscores=True),
            "eng": plain.hgetall(store.user_key(user, "eng")),
            "pop": plain.zrange(store.global_key("pop"), 0, -1, withscores=True),
            "bought": plain.smembers(store.user_key(user, "bought")),
        }
    finally:
        plain.close()


async def test_a_replayed_like_changes_nothing_and_an_unlike_takes_it_back_exactly(world):
    store, applier, _, config = world
    author, user, post = rid(), rid(), rid()
    p1, p2 = rid(), rid()
    await feed(applier, POSTS_TOPIC, post_created(post, author, T0, products=[p1, p2]))
    liked = like(post, user, author, T0 + HOUR_MS)
    await feed(applier, ENGAGEMENT_TOPIC, liked)
    first = snapshot(store, user)
    affinity = Decay(config.epoch_ms, config.affinity_half_life_ms)
    popularity = Decay(config.epoch_ms, config.popularity_half_life_ms)
    assert dict(first["aff"]) == {str(p).encode(): pytest.approx(affinity.stored(1.0, T0 + HOUR_MS)) for p in (p1, p2)}
    assert dict(first["auth"]) == {str(author).encode(): pytest.approx(affinity.stored(1.0, T0 + HOUR_MS))}
    assert dict(first["pop"]) == {
        str(p).encode(): pytest.approx(popularity.stored(1.0, T0 + HOUR_MS)) for p in (p1, p2)
    }

    await feed(applier, ENGAGEMENT_TOPIC, liked)  # redelivered
    assert snapshot(store, user) == first

    unliked = like(post, user, author, T0 + 5 * HOUR_MS, removed=True)
    await feed(applier, ENGAGEMENT_TOPIC, unliked)
    empty = snapshot(store, user)
    assert empty == {"aff": [], "auth": [], "eng": {}, "pop": [], "bought": set()}
    # Redelivery of either event after the unlike: still nothing.
    await feed(applier, ENGAGEMENT_TOPIC, unliked)
    await feed(applier, ENGAGEMENT_TOPIC, liked)
    assert snapshot(store, user) == empty


async def test_decay_weighs_an_engagement_by_its_age(world):
    store, applier, reader, config = world
    author, user = rid(), rid()
    old_post, new_post, old_product, new_product = rid(), rid(), rid(), rid()
    half_life = config.affinity_half_life_ms
    await feed(applier, POSTS_TOPIC, post_created(old_post, author, T0, products=[old_product]))
    await feed(applier, POSTS_TOPIC, post_created(new_post, author, T0, products=[new_product]))
    await feed(applier, ENGAGEMENT_TOPIC, like(old_post, user, author, T0))
    await feed(applier, ENGAGEMENT_TOPIC, like(new_post, user, author, T0 + half_life))

    mine = await store.read_user(user, engaged=10, authors=10, sellers=10)
    scores = dict(mine.engaged)
    assert scores[new_product] / scores[old_product] == pytest.approx(2.0)
    affinity = Decay(config.epoch_ms, half_life)
    now = T0 + half_life
    assert affinity.current(scores[old_product], now) == pytest.approx(0.5)
    assert affinity.current(scores[new_product], now) == pytest.approx(1.0)

    signals = await reader.read(user, max_products=10, max_authors=10, at_ms=now)
    engaged = [c for c in signals.products if c.reason == ENGAGED]
    assert [c.product_id for c in engaged] == [new_product, old_product]
    # Both likes were of one author: 0.5 + 1.0 of affinity now.
    assert signals.authors == [(author, pytest.approx(1.5))]


async def test_reposts_count_double_replies_only_for_the_author_and_deletes_take_them_back(world):
    store, applier, _, config = world
    author, user, original, product = rid(), rid(), rid(), rid()
    await feed(applier, POSTS_TOPIC, post_created(original, author, T0, products=[product]))
    repost, reply = rid(), rid()
    await feed(applier, POSTS_TOPIC, post_created(repost, user, T0, repost_of=original, repost_author=author, text=""))
    await feed(applier, POSTS_TOPIC, post_created(reply, user, T0, reply_to=original, reply_author=author))
    affinity = Decay(config.epoch_ms, config.affinity_half_life_ms)
    state = snapshot(store, user)
    assert dict(state["aff"]) == {str(product).encode(): pytest.approx(affinity.stored(2.0, T0))}
    assert dict(state["auth"]) == {str(author).encode(): pytest.approx(affinity.stored(2.5, T0))}

    await feed(applier, POSTS_TOPIC, post_deleted(repost, user, T0 + HOUR_MS, repost_of=original))
    state = snapshot(store, user)
    assert state["aff"] == [] and state["pop"] == []
    assert dict(state["auth"]) == {str(author).encode(): pytest.approx(affinity.stored(0.5, T0))}
    await feed(applier, POSTS_TOPIC, post_deleted(reply, user, T0 + HOUR_MS, reply_to=original))
    assert snapshot(store, user)["auth"] == []


async def test_followed_sellers_inactive_products_and_stale_catalog_events(world):
    store, applier, reader, _ = world
    seller, user, product, other = rid(), rid(), rid(), rid()
    first = product_upserted(product, seller, T0)
    await feed(applier, CATALOG_TOPIC, first)
    await feed(applier, CATALOG_TOPIC, product_upserted(other, seller, T0 + 1))
    # The seller is known from the catalog events: no identity lookup needed.
    await feed(
        applier,
        GRAPH_TOPIC,
        _stamp(
            events_pb2.GraphEvent(follow_created=events_pb2.FollowCreated(follower_id=user, followee_id=seller)), T0
        ),
    )
    signals = await reader.read(user, max_products=10, max_authors=0, at_ms=T0 + HOUR_MS)
    followed = {c.product_id: c.reason for c in signals.products if c.product_id in (product, other)}
    assert followed == {product: FOLLOWED_SELLER, other: FOLLOWED_SELLER}

    # The user also liked a post tagging the product; then the seller deactivates it.
    post = rid()
    await feed(applier, POSTS_TOPIC, post_created(post, seller, T0, products=[product]))
    await feed(applier, ENGAGEMENT_TOPIC, like(post, user, seller, T0 + HOUR_MS))
    deactivated = product_upserted(product, seller, T0 + 2 * HOUR_MS, active=False)
    deactivated.event_id = first.event_id + 10
    await feed(applier, CATALOG_TOPIC, deactivated)
    # A replay of the older "active" state must not bring it back.
    await feed(applier, CATALOG_TOPIC, first)
    signals = await reader.read(user, max_products=10, max_authors=0, at_ms=T0 + 3 * HOUR_MS)
    ids = [c.product_id for c in signals.products]
    assert product not in ids and other in ids
    plain = redis_clients.from_url(load(RecommendationsSettings).redis_url)
    try:
        assert plain.zscore(store.global_key("new"), product) is None
        assert plain.zscore(store.global_key("pop"), product) is None
    finally:
        plain.close()

    await feed(
        applier,
        GRAPH_TOPIC,
        _stamp(
            events_pb2.GraphEvent(follow_removed=events_pb2.FollowRemoved(follower_id=user, followee_id=seller)),
            T0 + 4 * HOUR_MS,
        ),
    )
    signals = await reader.read(user, max_products=10, max_authors=0, at_ms=T0 + 4 * HOUR_MS)
    assert all(c.reason != FOLLOWED_SELLER for c in signals.products)


async def test_a_purchase_is_excluded_and_counted_popular_once(world):
    store, applier, reader, config = world
    author, buyer, post, product, seller = rid(), rid(), rid(), rid(), rid()
    await feed(applier, CATALOG_TOPIC, product_upserted(product, seller, T0))
    await feed(applier, POSTS_TOPIC, post_created(post, author, T0, products=[product]))
    await feed(applier, ENGAGEMENT_TOPIC, like(post, buyer, author, T0))
    signals = await reader.read(buyer, max_products=10, max_authors=0, at_ms=T0)
    assert signals.products[0].product_id == product and signals.products[0].reason == ENGAGED

    order = order_confirmed(buyer, [(product, 3)], T0 + HOUR_MS)
    await feed(applier, ORDERS_TOPIC, order)
    popularity = Decay(config.epoch_ms, config.popularity_half_life_ms)
    expected = popularity.stored(1.0, T0) + popularity.stored(15.0, T0 + HOUR_MS)
    state = snapshot(store, buyer)
    assert dict(state["pop"]) == {str(product).encode(): pytest.approx(expected)}
    await feed(applier, ORDERS_TOPIC, order)  # redelivered
    assert snapshot(store, buyer) == state

    signals = await reader.read(buyer, max_products=10, max_authors=0, at_ms=T0 + HOUR_MS)
    assert product not in [c.product_id for c in signals.products]
    # Everyone else sees it as popular.
    stranger = await reader.read(rid(), max_products=10, max_authors=0, at_ms=T0 + HOUR_MS)
    assert product in [c.product_id for c in stranger.products]


async def test_a_like_of_a_post_never_seen_asks_the_posts_service_once(world):
    store, applier, _, _ = world
    unknown = rid()
    assert await store.post_products(unknown) is None
    assert await applier.post_products(unknown) == []  # posts knows no such post
    assert await store.post_products(unknown) == []  # ... and that is remembered


async def test_following_someone_who_sells_nothing_is_ignored(world):
    store, applier, reader, _ = world
    user, nobody = rid(), rid()
    await feed(
        applier,
        GRAPH_TOPIC,
        _stamp(
            events_pb2.GraphEvent(follow_created=events_pb2.FollowCreated(follower_id=user, followee_id=nobody)), T0
        ),
    )
    mine = await store.read_user(user, engaged=10, authors=0, sellers=10)
    assert mine.sellers == []
