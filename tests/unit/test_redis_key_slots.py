"""Keys that one script, transaction or multi-key command touches together
must share a Redis Cluster slot (their hash tags agree), and a live channel
must sit in the slot of the keys whose writes it announces (sharded pub/sub
from inside a script)."""

from __future__ import annotations

from redis.crc import key_slot

from gateway.ratelimit import bucket_key
from services.cart.model import cart_key, checkout_marker_key
from services.engagement import counters
from services.feed.store import latest_key, ranking_key
from services.recommendations.store import RecommendationsStore
from services.timeline import entries
from services.timeline.live import author_channel, home_channel
from services.trends.store import TrendsStore

USER, OTHER, POST = 1_234_567_890_123, 42, 9_876_543_210


def slots(*keys: str) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def test_a_readers_timeline_keys_and_live_channel_share_a_slot():
    together = [
        entries.home_key(USER),
        entries.seen_key(USER),
        entries.celebrity_cache_key(USER),
        entries.celebrity_generation_key(USER),
        entries.author_key(USER),  # unlinked with the others when the account goes
        home_channel(USER),  # published on by the delivery script
    ]
    if hasattr(entries, "unfollowed_key"):
        together.append(entries.unfollowed_key(USER, OTHER))
    assert len(slots(*together)) == 1
    assert slots(author_channel(USER)) == slots(entries.author_key(USER))


def test_a_cart_and_its_checkout_marker_share_a_slot():
    assert len(slots(cart_key(USER), checkout_marker_key(USER, "c-1"))) == 1


def test_a_feed_ranking_and_the_latest_pointer_share_a_slot():
    assert len(slots(ranking_key(USER, 7), latest_key(USER))) == 1


def test_a_subjects_rate_limit_buckets_share_a_slot():
    assert len(slots(bucket_key("user:1", "read"), bucket_key("user:1", "write"))) == 1


def test_recommendations_script_keys_share_a_slot():
    store = object.__new__(RecommendationsStore)
    store.prefix = "rec"
    user = [store.user_key(USER, name) for name in ("ev:m1", "aff", "auth", "eng", "engt", "sellers", "bought")]
    assert len(slots(*user)) == 1
    shared = [store.global_key(name) for name in ("ev:m1", "pver", "sellers", "new", "pop", "inactive")]
    assert len(slots(*shared, store.seller_key(5))) == 1


def test_a_trend_windows_keys_share_a_slot():
    store = object.__new__(TrendsStore)
    store.prefix = "trends"
    keys = [store.bucket_key(3), store.marker_key(USER, "tag"), store.post_key(POST), *store._scratch_keys()]
    assert len(slots(*keys)) == 1


def test_an_engagement_counter_and_its_dirty_mark_share_a_slot_and_the_sets_spread():
    for post_id in (POST, POST + 1, 7):
        assert len(slots(counters.counter_key(post_id), counters.dirty_key(counters.dirty_set(post_id)))) == 1
    # Ids minted at a low rate end alike in their low bits; their sets still differ.
    assert len({counters.dirty_set(POST + (i << 22)) for i in range(64)}) > 32
    assert len(slots(*(counters.dirty_key(i) for i in range(counters.DIRTY_SETS)))) == counters.DIRTY_SETS
