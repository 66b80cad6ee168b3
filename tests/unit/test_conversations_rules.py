"""conversations' pure rules: the identity of a set of people, time buckets,
id-ordered write timestamps, and what a send may carry."""

import pytest

from aviary.conversations.v1 import conversations_pb2
from services.conversations.servicer import _message_fields, live_channel
from services.conversations.store import bucket_of, participants_key, write_micros
from services.kit.server.errors import ApiError
from services.kit.server.ids import min_id_at


def test_a_set_of_people_has_one_key_whatever_the_order():
    assert participants_key({30, 4, 200}) == participants_key({200, 30, 4}) == "4,30,200"


def test_a_message_falls_in_the_bucket_of_its_time():
    day = 86_400_000
    start = 1_780_000_000_000 - 1_780_000_000_000 % day
    assert bucket_of(min_id_at(start), day) == start
    assert bucket_of(min_id_at(start + day - 1) | 4095, day) == start
    assert bucket_of(min_id_at(start + day), day) == start + day


def test_a_newer_id_writes_with_a_later_timestamp():
    older, newer = min_id_at(1_780_000_000_000) | 5, min_id_at(1_780_000_000_001)
    assert write_micros(newer) > write_micros(older)
    assert write_micros(older + 1) > write_micros(older)


def test_live_channels_are_per_user_and_hash_tagged():
    assert live_channel(42) == "live:cv:{42}"


def fields(**kw):
    return _message_fields(conversations_pb2.SendMessageRequest(conversation_id="1", **kw))


def test_a_message_needs_text_media_or_products():
    assert fields(text="  hi  ") == ("hi", [], [], "")
    assert fields(product_ids=["7"]) == ("", [], [7], "")
    with pytest.raises(ApiError, match="text"):
        fields(text="   ")


def test_text_is_counted_in_code_points():
    assert fields(text="🙂" * 2000)[0] == "🙂" * 2000
    with pytest.raises(ApiError, match="text"):
        fields(text="a" * 2001)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"text": "x", "media_ids": ["1", "1"]}, "media_ids"),
        ({"text": "x", "media_ids": ["1"] * 5}, "media_ids"),
        ({"text": "x", "product_ids": [str(i) for i in range(1, 12)]}, "product_ids"),
        ({"text": "x", "product_ids": ["x"]}, "product_ids"),
        ({"text": "x", "client_message_id": "k" * 65}, "client_message_id"),
    ],
)
def test_bad_content_names_its_field(kw, field):
    with pytest.raises(ApiError, match=field):
        fields(**kw)
