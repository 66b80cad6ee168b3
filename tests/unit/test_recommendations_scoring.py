"""Pure rules of the recommendations service: decay, engagement records,
request limits and the merged ranking."""

import grpc
import pytest

from services.kit.server import paging
from services.kit.server.errors import ApiError
from services.recommendations import scoring
from services.recommendations.scoring import (
    ENGAGED,
    FOLLOWED_SELLER,
    POPULAR,
    Decay,
    EngagementRecord,
    Sources,
)

DAY_MS = 86_400_000
EPOCH = 1_735_689_600_000
WEEK = Decay(EPOCH, 7 * DAY_MS)


def test_stored_scores_grow_with_time_and_read_back_as_current_values():
    t0 = EPOCH + 100 * DAY_MS
    assert WEEK.stored(1.0, t0 + 7 * DAY_MS) == pytest.approx(2 * WEEK.stored(1.0, t0))
    # Two likes a week apart, read a week after the second: 0.25 + 0.5.
    stored = WEEK.stored(1.0, t0) + WEEK.stored(1.0, t0 + 7 * DAY_MS)
    assert WEEK.current(stored, t0 + 14 * DAY_MS) == pytest.approx(0.75)
    assert WEEK.current(WEEK.stored(3.0, t0), t0) == pytest.approx(3.0)


def test_an_engagement_record_round_trips_exactly():
    record = scoring.engagement_record(
        scoring.REPOST, EPOCH + 12_345, user_id=1, author_id=2, product_ids=[9, 8, 9], affinity=WEEK
    )
    assert record.product_ids == (9, 8) and record.author_id == 2
    assert float(record.product_delta) == WEEK.stored(2.0, EPOCH + 12_345)
    decoded = EngagementRecord.decode(record.encode().encode())
    assert decoded == record


def test_engaging_with_oneself_or_with_nothing_records_nothing():
    assert scoring.engagement_record(scoring.LIKE, EPOCH, user_id=5, author_id=5, product_ids=[], affinity=WEEK) is None
    own = scoring.engagement_record(scoring.LIKE, EPOCH, user_id=5, author_id=5, product_ids=[7], affinity=WEEK)
    assert own.author_id == 0 and own.author_delta == "0" and own.product_ids == (7,)
    reply = scoring.engagement_record(scoring.REPLY, EPOCH, user_id=5, author_id=6, product_ids=[7], affinity=WEEK)
    assert reply.product_ids == () and reply.product_delta == "0" and float(reply.author_delta) == pytest.approx(0.5)


def test_popularity_of_an_engagement_is_the_same_when_taken_back():
    record = scoring.engagement_record(scoring.LIKE, EPOCH + DAY_MS, 1, 2, [3], WEEK)
    again = EngagementRecord.decode(record.encode())
    assert scoring.engagement_popularity(record, WEEK) == scoring.engagement_popularity(again, WEEK)
    assert scoring.order_popularity(3, EPOCH, WEEK) == 3 * scoring.ORDER_UNIT_POPULARITY


@pytest.mark.parametrize("value,expected", [(0, 20), (1, 1), (100, 100)])
def test_limits_default_and_accept_the_allowed_range(value, expected):
    assert paging.bounded("page_size", value, default=20, maximum=100) == expected


@pytest.mark.parametrize("value", [-1, 101])
def test_limits_refuse_values_outside_the_range_naming_the_field(value):
    with pytest.raises(ApiError) as err:
        paging.bounded("page_size", value, default=20, maximum=100)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.message.startswith("page_size:")


def test_user_id_is_required_and_a_page_token_refused():
    with pytest.raises(ApiError, match="user_id: is required"):
        scoring.check_user_id(0)
    with pytest.raises(ApiError, match="user_id"):
        scoring.check_user_id(-3)
    with pytest.raises(ApiError, match="page_token"):
        paging.no_page_token("abc", "recommendations")
    paging.no_page_token("", "recommendations")


NOW = EPOCH + 400 * DAY_MS


def test_engaged_outranks_followed_seller_outranks_merely_popular():
    sources = Sources(
        engaged=[(1, 1.0)], followed=[(2, NOW)], popular=[(3, 50.0), (4, 10.0)], newest=[(3, NOW), (4, NOW)]
    )
    ranked = scoring.rank(sources, excluded=set(), limit=10, now_ms=NOW, newest_half_life_ms=7 * DAY_MS)
    assert [c.product_id for c in ranked] == [1, 2, 3, 4]
    assert [c.reason for c in ranked] == [ENGAGED, FOLLOWED_SELLER, POPULAR, POPULAR]
    assert ranked[0].score == pytest.approx(2.0)  # one fresh like
    assert ranked[2].score == pytest.approx(1.25)  # top popularity + brand new
    assert ranked[3].score == pytest.approx(0.2 + 0.25)  # popularity relative to the top


def test_contributions_add_up_and_the_strongest_names_the_reason():
    # A faint old like on a very popular product: popular is the reason.
    sources = Sources(engaged=[(1, 0.05)], followed=[], popular=[(1, 9.0)], newest=[])
    [only] = scoring.rank(sources, set(), 10, NOW, 7 * DAY_MS)
    assert only.reason == POPULAR
    assert only.score == pytest.approx(1.0 + 3.0 * 0.05 / 0.55)


def test_excluded_products_never_come_back_and_the_limit_holds():
    sources = Sources(
        engaged=[(1, 5.0)], followed=[(2, NOW)], popular=[(1, 3.0), (5, 1.0)], newest=[(6, NOW - 30 * DAY_MS), (7, NOW)]
    )
    ranked = scoring.rank(sources, excluded={1, 2}, limit=2, now_ms=NOW, newest_half_life_ms=7 * DAY_MS)
    assert [c.product_id for c in ranked] == [5, 7]


def test_newest_products_fade_and_ties_go_to_the_newer_product():
    sources = Sources(engaged=[], followed=[], popular=[], newest=[(10, NOW), (11, NOW), (12, NOW - 7 * DAY_MS)])
    ranked = scoring.rank(sources, set(), 10, NOW, 7 * DAY_MS)
    assert [c.product_id for c in ranked] == [11, 10, 12]
    assert ranked[2].score == pytest.approx(scoring.NEWEST_WEIGHT / 2)


def test_author_affinities_come_out_as_current_values_closest_first():
    stored = [(7, WEEK.stored(1.0, NOW)), (8, WEEK.stored(3.0, NOW - 7 * DAY_MS)), (9, 0.0)]
    assert scoring.author_affinities(stored, WEEK, NOW) == [(8, pytest.approx(1.5)), (7, pytest.approx(1.0))]
