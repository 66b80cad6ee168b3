"""The mixed feed's ranking and interleaving rules (pure functions)."""

import pytest

from services.feed.ranking import (
    PostSignals,
    Weights,
    engagement,
    interleave,
    normalised_affinities,
    oldest_of_each,
    rank,
    recency,
)

W = Weights(recency=1.0, affinity=0.6, engagement=0.4, half_life_seconds=3600)


def test_recency_halves_every_half_life_and_never_exceeds_one():
    assert recency(0, 3600) == 1.0
    assert recency(3600, 3600) == pytest.approx(0.5)
    assert recency(7200, 3600) == pytest.approx(0.25)
    assert recency(-5, 3600) == 1.0  # clock skew: a post "from the future" is just new


def test_engagement_is_logarithmic_and_saturates():
    assert engagement(0, 0, 0) == 0.0
    one, ten, hundred = engagement(1, 0, 0), engagement(10, 0, 0), engagement(100, 0, 0)
    assert 0 < one < ten < hundred < 1.0
    assert hundred < 10 * ten  # not linear
    assert engagement(10**6, 0, 0) == 1.0
    assert engagement(0, 5, 0) == engagement(10, 0, 0)  # a repost weighs two likes


def test_affinities_are_relative_to_the_closest_author():
    assert normalised_affinities([(1, 8.0), (2, 2.0), (3, 0.0), (4, -1.0)]) == {1: 1.0, 2: 0.25}
    assert normalised_affinities([]) == {}


def test_newer_beats_older_when_nothing_else_differs_and_ties_go_to_the_newest():
    old = PostSignals(post_id=1, author_id=7, age_seconds=7200)
    new = PostSignals(post_id=2, author_id=7, age_seconds=60)
    assert [p.post_id for p in rank([old, new], {}, W)] == [2, 1]
    twin_a = PostSignals(post_id=10, author_id=7, age_seconds=100)
    twin_b = PostSignals(post_id=11, author_id=8, age_seconds=100)
    assert [p.post_id for p in rank([twin_a, twin_b], {}, W)] == [11, 10]


def test_a_close_author_or_a_popular_post_outranks_a_slightly_newer_one():
    newer = PostSignals(post_id=3, author_id=1, age_seconds=0)
    by_friend = PostSignals(post_id=2, author_id=2, age_seconds=1800)
    popular = PostSignals(post_id=1, author_id=3, age_seconds=1800, likes=500)
    order = [p.post_id for p in rank([newer, by_friend, popular], {2: 1.0}, W)]
    assert order.index(2) < order.index(3) and order.index(1) < order.index(3)


def test_ranking_is_deterministic_for_the_same_inputs():
    posts = [PostSignals(post_id=i, author_id=i % 3, age_seconds=i * 10, likes=i % 4) for i in range(50)]
    assert rank(posts, {1: 1.0}, W) == rank(list(reversed(posts)), {1: 1.0}, W)


def test_products_take_every_fifth_slot_while_both_last():
    posts = [f"p{i}" for i in range(12)]
    products = ["A", "B"]
    out = interleave(posts, products, 5)
    assert out == ["p0", "p1", "p2", "p3", "A", "p4", "p5", "p6", "p7", "B", "p8", "p9", "p10", "p11"]


def test_no_products_means_posts_only_and_zero_turns_products_off():
    posts = ["p0", "p1", "p2", "p3", "p4"]
    assert interleave(posts, [], 5) == posts
    assert interleave(posts, ["A"], 0) == posts


def test_products_never_come_without_posts():
    assert interleave([], ["A", "B"], 5) == []
    assert interleave(["p0", "p1"], ["A", "B"], 5) == ["p0", "p1"]
    assert interleave(["p0"], ["A"], 2) == ["p0", "A"]


def test_a_ratio_of_one_is_refused():
    with pytest.raises(ValueError):
        interleave(["p0"], ["A"], 1)


def test_one_item_per_key_the_oldest_in_newest_first_order():
    # (post id, what it shows), newest first: reposts 5 and 3 of 1, then 1.
    items = [(5, 1), (4, 4), (3, 1), (2, 2), (1, 1)]
    assert oldest_of_each(items, key=lambda item: item[1]) == [(4, 4), (2, 2), (1, 1)]
    # Without the original, the oldest repost stays.
    assert oldest_of_each([(5, 1), (3, 1)], key=lambda item: item[1]) == [(3, 1)]
    assert oldest_of_each([], key=lambda item: item) == []
