"""Pure rules of trends: buckets, window boundaries, decay, who counts, ranking,
and the request checks."""

import grpc
import pytest

from aviary.events.v1 import events_pb2
from services.kit.server import paging
from services.kit.server.errors import ApiError
from services.kit.server.ids import IdGenerator, timestamp_ms
from services.trends import servicer
from services.trends.windows import Decision, TrendRow, Window, countable_tags, decide, rank, removal

W = Window(bucket_seconds=300, buckets=12, decay=0.8, min_users=3)
T0 = 1_700_000_100  # a bucket boundary (300 * 5_666_667)
assert T0 % 300 == 0


def test_buckets_are_half_open_intervals_of_bucket_seconds():
    assert W.bucket_of(T0) == T0 // 300
    assert W.bucket_of(T0 + 299.999) == T0 // 300
    assert W.bucket_of(T0 + 300) == T0 // 300 + 1
    assert W.bucket_of(T0 - 0.001) == T0 // 300 - 1
    assert W.window_seconds == 3600


def test_the_window_is_the_current_bucket_and_the_ones_before_it_oldest_first():
    current = W.bucket_of(T0)
    window = W.window_of(current)
    assert len(window) == 12 and window[-1] == current and window[0] == current - 11 == W.oldest(current)
    assert W.start_seconds(T0 + 42) == (current - 11) * 300


def test_decay_weights_are_one_for_the_newest_bucket_and_shrink_by_the_factor():
    weights = W.weights()
    assert len(weights) == 12 and weights[-1] == 1.0
    assert weights[-2] == pytest.approx(0.8) and weights[0] == pytest.approx(0.8**11)
    assert all(older < newer for older, newer in zip(weights, weights[1:]))
    assert Window(decay=1.0).weights() == [1.0] * 12


def test_events_land_in_the_bucket_of_their_creation_and_too_old_ones_nowhere():
    now = T0 + 10
    current = W.bucket_of(now)
    assert W.place(now - 5, now) == current
    assert W.place(now - 300, now) == current - 1
    assert W.place(now - 311, now) == current - 2
    oldest_start = (current - 11) * 300
    assert W.place(oldest_start, now) == current - 11  # first second of the window
    assert W.place(oldest_start - 0.001, now) is None  # just before it
    assert W.place(now - 7200, now) is None
    assert W.place(now + 900, now) == current  # a clock ahead: counted now, not later


def test_buckets_and_markers_outlive_the_window_by_exactly_one_bucket():
    b = W.bucket_of(T0)
    leaves_window_at = (b + 12) * 300  # from then on, oldest(current) > b
    assert W.oldest(W.bucket_of(leaves_window_at - 1)) == b
    assert W.oldest(W.bucket_of(leaves_window_at)) == b + 1
    assert W.expire_at(b) == leaves_window_at + 300


def test_a_user_counts_once_per_tag_and_moves_forward_to_their_latest_bucket():
    assert decide(None, 100, 12) is Decision.COUNT
    assert decide(100, 100, 12) is Decision.DUPLICATE  # same bucket, or the same event replayed
    assert decide(101, 100, 12) is Decision.DUPLICATE  # an older event after a newer one
    assert decide(95, 100, 12) is Decision.MOVE
    assert decide(89, 100, 12) is Decision.MOVE  # oldest bucket of the window
    assert decide(88, 100, 12) is Decision.COUNT  # its bucket already left the window


def test_countable_tags_are_normalised_unique_and_capped():
    assert countable_tags(["Rust", "#rust", " go ", "", "x" * 101, "py"], 10) == ["rust", "go", "py"]
    assert countable_tags([f"t{i}" for i in range(20)], 3) == ["t0", "t1", "t2"]


def test_rank_orders_by_decayed_score_and_counts_distinct_users():
    weights = [0.25, 0.5, 1.0]
    buckets = [{"old": 8, "mix": 1}, {"mix": 2}, {"new": 3, "mix": 1}]
    rows = rank(buckets, weights, min_users=3, limit=10)
    # old: 8 * 0.25 = 2.0; mix: 0.25 + 1.0 + 1.0 = 2.25; new: 3.0
    assert rows == [TrendRow("new", 3, 3.0), TrendRow("mix", 4, 2.25), TrendRow("old", 8, 2.0)]
    assert rank(buckets, weights, min_users=3, limit=2) == rows[:2]


def test_rank_leaves_out_tags_with_too_few_users_however_recent():
    buckets = [{}, {"solo": 1, "pair": 2}, {"crowd": 3}]
    assert [r.hashtag for r in rank(buckets, [0.25, 0.5, 1.0], min_users=3, limit=10)] == ["crowd"]
    assert [r.hashtag for r in rank(buckets, [0.25, 0.5, 1.0], min_users=2, limit=10)] == ["crowd", "pair"]


def test_rank_breaks_ties_like_redis_greater_tag_first():
    rows = rank([{"aa": 3, "bb": 3, "ab": 3}], [1.0], min_users=1, limit=10)
    assert [r.hashtag for r in rows] == ["bb", "ab", "aa"]


@pytest.mark.parametrize(
    "kwargs", [{"bucket_seconds": 0}, {"buckets": 0}, {"decay": 0.0}, {"decay": 1.5}, {"min_users": 0}]
)
def test_nonsense_settings_are_refused_naming_the_variable(kwargs):
    with pytest.raises(ValueError, match="AVIARY_TRENDS_"):
        Window(**kwargs)


def test_page_size_defaults_to_10_and_is_at_most_50():
    assert paging.bounded("page_size", 0, default=servicer.DEFAULT_PAGE_SIZE, maximum=servicer.MAX_PAGE_SIZE) == 10
    assert paging.bounded("page_size", 1, default=servicer.DEFAULT_PAGE_SIZE, maximum=servicer.MAX_PAGE_SIZE) == 1
    assert paging.bounded("page_size", 50, default=servicer.DEFAULT_PAGE_SIZE, maximum=servicer.MAX_PAGE_SIZE) == 50
    for bad in (51, -1):
        with pytest.raises(ApiError) as err:
            paging.bounded("page_size", bad, default=servicer.DEFAULT_PAGE_SIZE, maximum=servicer.MAX_PAGE_SIZE)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.message.startswith("page_size:") and str(bad) in err.value.message


def test_a_page_token_is_refused():
    paging.no_page_token("", "trends")
    with pytest.raises(ApiError) as err:
        paging.no_page_token("abc", "trends")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.message.startswith("page_token:")


def test_creation_time_comes_from_the_event_or_else_from_the_post_id():
    created = events_pb2.PostCreated(post_id=1, author_id=2)
    created.created_at.FromMilliseconds(1_700_000_000_250)
    assert servicer.created_seconds(created) == pytest.approx(1_700_000_000.25)
    post_id = IdGenerator(1).next_id()
    assert servicer.created_seconds(events_pb2.PostCreated(post_id=post_id)) == timestamp_ms(post_id) / 1000


def test_the_removal_reference_rule():
    assert removal(None, None, 5, 10, 12) == (None, None)  # nothing counted
    assert removal(7, 3, 5, 10, 12) == (None, None)  # a newer post holds the count
    assert removal(5, 5, 5, 10, 12) == (None, None)  # a twin in the same bucket holds it
    assert removal(5, 3, 5, 10, 12) == (5, 3)  # back to the older post's bucket
    assert removal(5, None, 5, 10, 12) == (5, None)  # none left: away
    assert removal(5, -3, 5, 10, 12) == (5, None)  # the older one left the window
    assert removal(-3, None, -3, 10, 12) == (None, None)  # all outside the window: untouched
