"""Timeline member encoding, ordering and the read-time merge (pure logic)."""
from __future__ import annotations

import pytest

from services.timeline.entries import (
    Entry,
    author_key,
    author_suffix,
    decode_member,
    encode_member,
    home_key,
    lex_upper_bound,
    merge_newest,
    plan_round,
)

MAX_ID = (1 << 63) - 1


def members(*pairs):
    """Newest-first member list, as ZRANGE BYLEX REV returns it."""
    return sorted((encode_member(p, a) for p, a in pairs), reverse=True)


def test_keys_carry_cluster_hash_tags():
    assert home_key(42) == "tl:{42}"
    assert author_key(7) == "ai:{7}"


def test_member_round_trips_including_the_largest_id():
    for post_id, author_id in [(1, 1), (123456789, 987), (MAX_ID, MAX_ID)]:
        member = encode_member(post_id, author_id)
        assert decode_member(member) == Entry(post_id, author_id)
        assert len(member.split(b":")[0]) == 20


def test_nine_and_ten_digit_ids_compare_right_once_padded():
    nine, ten = 999_999_999, 1_000_000_000
    assert str(nine) > str(ten)  # the trap: unpadded strings sort wrongly
    assert encode_member(nine, 5) < encode_member(ten, 5)


def test_byte_order_equals_id_order_regardless_of_author():
    ids = [5, 10, 99, 100, 1 << 40, (1 << 40) + 1, MAX_ID - 1, MAX_ID]
    encoded = [encode_member(i, author) for i, author in zip(ids, [9, 1, 88888, 2, 7, 3, 1, 10**18])]
    assert sorted(encoded) == encoded


def test_adjacent_snowflake_ids_stay_distinct_where_a_float_score_would_not():
    a, b = (1 << 62) + 1, (1 << 62) + 2
    assert float(a) == float(b)  # why scores cannot carry the id
    assert encode_member(a, 1) < encode_member(b, 1)


@pytest.mark.parametrize(
    "bad", [b"", b"123", b"12:3", b"0000000000000000000x:1", b"00000000000000000001:", b"00000000000000000001:a"]
)
def test_decode_rejects_foreign_members(bad):
    with pytest.raises(ValueError):
        decode_member(bad)


def test_author_suffix_matches_only_that_author():
    suffix = author_suffix(123)
    assert encode_member(55, 123).endswith(suffix)
    assert not encode_member(55, 5123).endswith(suffix)
    assert not encode_member(123, 12).endswith(suffix)


def test_upper_bound_excludes_the_cursor_member_and_keeps_older_ones():
    bound = lex_upper_bound(1000)
    assert lex_upper_bound(None) == b"+"
    assert bound.startswith(b"(")
    limit = bound[1:]
    assert encode_member(999, 1) < limit
    assert not encode_member(1000, 1) < limit
    assert not encode_member(1001, 1) < limit


def test_merge_dedupes_by_post_id_and_orders_newest_first():
    home = members((10, 1), (7, 2), (3, 1))
    own = members((9, 99), (4, 99))
    celebrity = members((10, 1), (8, 50))  # post 10 both fanned out and indexed
    merged = merge_newest([home, own, celebrity, [b"garbage"]])
    assert [e.post_id for e in merged] == [10, 9, 8, 7, 4, 3]
    assert merged[0] == Entry(10, 1)


def test_plan_round_takes_need_and_reports_more():
    home = members((10, 1), (8, 1), (6, 1))
    celeb = members((9, 2), (7, 2), (5, 2))
    plan = plan_round([home, celeb], need=2, per_source_limit=3)
    assert [e.post_id for e in plan.candidates] == [10, 9]
    assert plan.has_more
    assert plan.next_cursor == 9


def test_plan_round_at_the_end():
    home = members((10, 1))
    celeb = members((9, 2))
    plan = plan_round([home, celeb], need=5, per_source_limit=6)
    assert [e.post_id for e in plan.candidates] == [10, 9]
    assert not plan.has_more
    assert plan.next_cursor == 9


def test_plan_round_exactly_need_left_is_the_end():
    page = members((3, 1), (2, 1))
    plan = plan_round([page, []], need=2, per_source_limit=3)
    assert len(plan.candidates) == 2 and not plan.has_more


def test_plan_round_with_duplicates_filling_a_source_still_has_more():
    # Both sources returned their full limit but overlap entirely.
    page = members((3, 1), (2, 1), (1, 1))
    plan = plan_round([page, page], need=2, per_source_limit=3)
    assert [e.post_id for e in plan.candidates] == [3, 2]
    assert plan.has_more


def test_plan_round_empty_sources():
    plan = plan_round([[], []], need=20, per_source_limit=21)
    assert plan.candidates == [] and not plan.has_more and plan.next_cursor is None


def test_paging_through_rounds_visits_every_entry_once():
    """Simulates the read loop over three sources with overlap: no skip, no repeat."""
    sources = [
        sorted({encode_member(p, 1) for p in range(1, 200, 2)}, reverse=True),
        sorted({encode_member(p, 2) for p in range(2, 200, 3)}, reverse=True),
        sorted({encode_member(p, 1) for p in range(1, 60, 2)}, reverse=True),  # overlaps source 0
    ]
    expected = sorted({decode_member(m).post_id for s in sources for m in s}, reverse=True)
    seen: list[int] = []
    cursor = None
    while True:
        bound = lex_upper_bound(cursor)
        limit = 26
        pages = [[m for m in s if bound == b"+" or m < bound[1:]][:limit] for s in sources]
        plan = plan_round(pages, need=25, per_source_limit=limit)
        seen.extend(e.post_id for e in plan.candidates)
        if not plan.has_more:
            break
        cursor = plan.next_cursor
    assert seen == expected


def test_celebrity_cache_value_round_trips_and_keeps_the_user_slot():
    from services.timeline.entries import celebrity_cache_key, decode_id_list, encode_id_list

    assert celebrity_cache_key(42) == "tc:{42}"
    assert encode_id_list([]) == b""
    assert decode_id_list(b"") == []
    ids = [1, MAX_ID, 383231189328842752]
    assert decode_id_list(encode_id_list(ids)) == ids
