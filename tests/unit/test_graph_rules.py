"""Pure decisions of graph: keyset paging, stream batch sizes, events, celebrity rule."""

import datetime

import grpc
import pytest

from google.protobuf.timestamp_pb2 import Timestamp

from aviary.events.v1 import events_pb2
from services.graph import rules
from services.kit.server.errors import ApiError


def test_split_page_with_more_rows_returns_cursor_at_last_id_of_page():
    page, last = rules.split_page([10, 20, 30, 40], 3)
    assert page == [10, 20, 30]
    assert last == 30


def test_split_page_on_last_page_has_no_cursor():
    assert rules.split_page([10, 20, 30], 3) == ([10, 20, 30], None)
    assert rules.split_page([10], 3) == ([10], None)
    assert rules.split_page([], 3) == ([], None)


def test_walking_pages_visits_every_id_once():
    ids = list(range(1, 26))
    seen, after = [], 0
    while True:
        page, last = rules.split_page([i for i in ids if i > after][: 7 + 1], 7)
        seen.extend(page)
        if last is None:
            break
        after = last
    assert seen == ids


@pytest.mark.parametrize("value,expected", [(0, 1000), (1, 1), (5000, 5000), (9999, 5000)])
def test_stream_batch_size_defaults_and_caps(value, expected):
    assert rules.stream_batch_size(value) == expected


def test_negative_stream_batch_size_is_invalid_argument():
    with pytest.raises(ApiError) as err:
        rules.stream_batch_size(-1)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message.startswith("batch_size:")


def test_in_id_order_keeps_order_and_drops_unknown_ids():
    assert rules.in_id_order({3: "c", 1: "a"}, [1, 2, 3]) == ["a", "c"]


def test_celebrity_is_strictly_above_threshold():
    assert not rules.is_celebrity(3, 3)
    assert rules.is_celebrity(4, 3)


def test_as_int32_clamps():
    assert rules.as_int32(-2) == 0
    assert rules.as_int32(2**40) == 2**31 - 1
    assert rules.as_int32(7) == 7


def test_follow_event_is_keyed_by_follower_and_round_trips():
    now = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    event_id, key, payload = rules.follow_event(99, 111, 222, True, now)
    assert event_id == 99 and key == b"111"
    event = events_pb2.GraphEvent.FromString(payload)
    assert event.WhichOneof("kind") == "follow_created"
    assert (event.follow_created.follower_id, event.follow_created.followee_id) == (111, 222)
    assert event.occur_time.ToDatetime(tzinfo=datetime.timezone.utc) == now


def test_unfollow_event_uses_follow_removed():
    _, _, payload = rules.follow_event(1, 5, 6, False, datetime.datetime.now(datetime.timezone.utc))
    event = events_pb2.GraphEvent.FromString(payload)
    assert event.WhichOneof("kind") == "follow_removed"
    assert event.follow_removed.followee_id == 6


def test_a_mute_without_an_end_lasts():
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    assert rules.mute_end(None, now) is None
    assert rules.mute_is_active(None, now)


def test_a_mute_must_end_in_the_future():
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    past = Timestamp()
    past.FromDatetime(now - datetime.timedelta(seconds=1))
    with pytest.raises(ApiError) as err:
        rules.mute_end(past, now)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message.startswith("expires_at:")
    future = Timestamp()
    future.FromDatetime(now + datetime.timedelta(hours=1))
    end = rules.mute_end(future, now)
    assert end == now + datetime.timedelta(hours=1)
    assert rules.mute_is_active(end, now)
    assert not rules.mute_is_active(end, end)


def _rows(**overrides) -> rules.RelationshipRows:
    fields = {"following": set(), "followers": set(), "blocking": set(), "mutes": {}}
    fields.update(overrides)
    return rules.RelationshipRows(**fields)


def test_relationship_reads_each_direction_from_its_own_rows():
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    rows = _rows(following={1}, followers={2}, blocking={3}, mutes={4: None})
    one, two, three, four, five = (rules.relationship(u, rows, now) for u in (1, 2, 3, 4, 5))
    assert (one.followed_by_viewer, one.follows_viewer) == (True, False)
    assert (two.followed_by_viewer, two.follows_viewer) == (False, True)
    assert three.blocked_by_viewer and not three.muted_by_viewer
    assert four.muted_by_viewer and not four.blocked_by_viewer
    assert five == rules.relationship(5, _rows(), now)
    assert not any([five.followed_by_viewer, five.follows_viewer, five.blocked_by_viewer, five.muted_by_viewer])
    assert five.user_id == "5"


def test_relationship_counts_a_mute_only_until_it_ends():
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    later = now + datetime.timedelta(minutes=1)
    earlier = now - datetime.timedelta(seconds=1)
    assert rules.relationship(7, _rows(mutes={7: later}), now).muted_by_viewer
    assert not rules.relationship(7, _rows(mutes={7: earlier}), now).muted_by_viewer
    assert not rules.relationship(7, _rows(mutes={7: now}), now).muted_by_viewer
