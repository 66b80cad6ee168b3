"""Timeline member encoding, ordering and the read-time merge (pure logic)."""

from __future__ import annotations

import zlib

import pytest

from services.timeline.entries import (
    MEMBER_BYTES,
    REPOST_MEMBER_BYTES,
    Entry,
    Stored,
    author_fingerprint,
    author_key,
    celebrity_cache_key,
    decode_id_list,
    decode_member,
    earlier_range,
    entry_member,
    member_forms,
    oldest_per_original,
    encode_id_list,
    encode_member,
    home_key,
    legacy_author_key,
    lex_start,
    merge_newest,
    plan_round,
    post_prefix,
    repeated_reposts,
    seen_key,
    shows,
    with_siblings,
)

MAX_ID = (1 << 63) - 1

# Ids of very different magnitudes, ascending: one byte, byte carries (255 ->
# 256, 65535 -> 65536), the old decimal-padding trap (9 vs 10 digits), and
# the top of the Snowflake range.
MIXED_IDS = [
    1,
    9,
    10,
    255,
    256,
    65_535,
    65_536,
    999_999_999,
    1_000_000_000,
    (1 << 32) - 1,
    1 << 32,
    (1 << 56) - 1,
    1 << 56,
    383231189328842752,
    (1 << 62) + 1,
    MAX_ID - 1,
    MAX_ID,
]


def members(*pairs):
    """Newest-first member list, as ZRANGE BYLEX returns it."""
    return sorted(encode_member(p, a) for p, a in pairs)


def in_lex_range(member: bytes, low: bytes, high: bytes) -> bool:
    """Whether ZRANGE BYLEX low high returns the member: - and + are the
    ends, [ includes its bound and ( leaves it out."""
    above = low == b"-" or (member >= low[1:] if low[:1] == b"[" else member > low[1:])
    below = high == b"+" or (member <= high[1:] if high[:1] == b"[" else member < high[1:])
    return above and below


def test_keys_carry_cluster_hash_tags():
    assert home_key(42) == "timeline:{42}"
    assert author_key(7) == "authored:{7}"
    assert celebrity_cache_key(42) == "celebs:{42}"
    assert seen_key(42) == "active:{42}"


def test_keys_of_the_oldest_first_order_are_named_apart():
    # A timeline or index kept oldest first is never read as newest first.
    assert legacy_author_key(7) == "aidx:{7}"
    for user in (1, 42, MAX_ID):
        assert home_key(user) != f"home:{{{user}}}"
        assert seen_key(user) != f"seen:{{{user}}}"
        assert author_key(user) != legacy_author_key(user)


def test_a_users_keys_share_one_cluster_slot():
    # Deliveries check seen and write home in one script; purges touch home
    # and the celebrity cache in one script: same hash tag, same slot.
    user = 383231189328842752
    tags = {key[key.index("{") :] for key in (home_key(user), seen_key(user), celebrity_cache_key(user))}
    assert tags == {f"{{{user}}}"}


def test_member_is_12_bytes_of_the_post_key_then_author_crc32():
    assert MEMBER_BYTES == 12
    # Pinned bytes: members already in Redis must keep meaning the same.
    assert encode_member(1, 123) == bytes.fromhex("fffffffffffffffea2f577dd")
    for post_id, author_id in [(1, 1), (123456789, 987), (MAX_ID, MAX_ID)]:
        member = encode_member(post_id, author_id)
        assert len(member) == MEMBER_BYTES
        assert member[:8] == post_prefix(post_id) == (2**64 - 1 - post_id).to_bytes(8, "big")
        assert member[8:] == author_fingerprint(author_id)
        assert author_fingerprint(author_id) == zlib.crc32(author_id.to_bytes(8, "big")).to_bytes(4, "big")


def test_member_round_trips_including_the_largest_id():
    for post_id, author_id in [(1, 1), (123456789, 987), (MAX_ID, MAX_ID)]:
        member = encode_member(post_id, author_id)
        stored = decode_member(member)
        assert stored == Stored(post_id, member)
        assert stored.post_id == post_id and stored.member == member
        assert isinstance(stored.member, bytes)


def test_nine_and_ten_digit_ids_compare_right():
    nine, ten = 999_999_999, 1_000_000_000
    assert str(nine) > str(ten)  # the trap decimal text members had to pad around
    assert encode_member(ten, 5) < encode_member(nine, 5)


def test_byte_order_is_newest_first_across_magnitudes_regardless_of_author():
    authors = [9, 1, 88888, 2, 7, 3, 1, 10**18, 5, 123, 5123, 12, 1123, MAX_ID, 4, 6, 8]
    encoded = [encode_member(i, a) for i, a in zip(MIXED_IDS, authors, strict=True)]
    assert sorted(encoded) == encoded[::-1]
    # Also when every author's fingerprint sorts against the id order.
    by_fingerprint = sorted(authors, key=author_fingerprint, reverse=True)
    encoded = [encode_member(i, a) for i, a in zip(MIXED_IDS, by_fingerprint, strict=True)]
    assert sorted(encoded) == encoded[::-1]


def test_adjacent_snowflake_ids_stay_distinct_where_a_float_score_would_not():
    a, b = (1 << 62) + 1, (1 << 62) + 2
    assert float(a) == float(b)  # why scores cannot carry the id
    assert encode_member(b, 1) < encode_member(a, 1)
    # Whatever the authors' fingerprints.
    assert encode_member(b, 123) < encode_member(a, 5123)
    assert encode_member(b, 5123) < encode_member(a, 123)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"123",
        bytes(11),  # one byte short
        bytes(13),  # one byte long
        encode_member(1, 1) + b"\x00",
        encode_member(1, 1)[:-1],
        b"00000000000000000001:1",  # the old decimal text format
        b"00000000000000000001:",
        b"garbage",
    ],
)
def test_decode_rejects_anything_but_12_or_20_bytes(bad):
    with pytest.raises(ValueError):
        decode_member(bad)


def test_author_fingerprint_is_the_members_last_four_bytes_and_tells_authors_apart():
    fp = author_fingerprint(123)
    assert len(fp) == 4
    assert encode_member(55, 123).endswith(fp)
    # Authors whose decimal ids share digits are different fingerprints.
    for other in (5123, 1123, 12, 1230, 124):
        assert author_fingerprint(other) != fp
        assert not encode_member(55, other).endswith(fp)
    # The post id never stands in for the author.
    assert not encode_member(123, 12).endswith(fp)


def test_the_start_bound_leaves_out_the_cursor_and_newer_and_keeps_older_ones():
    assert lex_start(None) == b"-"
    bound = lex_start(1000)
    assert bound[:1] == b"["
    # Whatever the author's fingerprint (0xff.. or 0x00..), for every author.
    for author in (1, 2, 123, 5123, MAX_ID):
        assert in_lex_range(encode_member(999, author), bound, b"+")
        assert in_lex_range(encode_member(999, author, original_id=MAX_ID), bound, b"+")
        assert not in_lex_range(encode_member(1000, author), bound, b"+")
        assert not in_lex_range(encode_member(1000, author, original_id=1), bound, b"+")
        assert not in_lex_range(encode_member(1001, author), bound, b"+")
    # Across magnitudes: a cursor at 256 keeps 255 and drops 65536.
    assert in_lex_range(encode_member(255, 1), lex_start(256), b"+")
    assert not in_lex_range(encode_member(65_536, 1), lex_start(256), b"+")
    # Below the first id there is nothing.
    assert not any(in_lex_range(encode_member(p, 1), lex_start(1), b"+") for p in (1, 2, MAX_ID))


def test_merge_dedupes_by_post_id_and_orders_newest_first():
    home = members((10, 1), (7, 2), (3, 1))
    own = members((9, 99), (4, 99))
    celebrity = members((10, 1), (8, 50))  # post 10 both fanned out and indexed
    junk = [b"garbage", b"00000000000000000010:1", bytes(13)]
    merged = [decode_member(m) for m in merge_newest([home, own, celebrity, junk])]
    assert [e.post_id for e in merged] == [10, 9, 8, 7, 4, 3]
    assert merged[0] == Stored(10, encode_member(10, 1))
    # Each entry keeps its exact member bytes, so it can be removed.
    assert {e.member for e in merged} == set(home) | set(own) | set(celebrity)


def test_merge_orders_across_magnitudes():
    ids = MIXED_IDS
    sources = [members(*((p, 1) for p in ids[0::2])), members(*((p, 2) for p in ids[1::2]))]
    assert [decode_member(m).post_id for m in merge_newest(sources)] == sorted(ids, reverse=True)


def test_plan_round_takes_need_and_reports_more():
    home = members((10, 1), (8, 1), (6, 1))
    celeb = members((9, 2), (7, 2), (5, 2))
    plan = plan_round([home, celeb], need=2, per_source_limit=3)
    assert plan.candidates == [Stored(10, encode_member(10, 1)), Stored(9, encode_member(9, 2))]
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


def test_plan_round_of_only_undecodable_members_is_the_end():
    plan = plan_round([[b"garbage", bytes(13)]], need=1, per_source_limit=2)
    assert plan.candidates == [] and not plan.has_more and plan.next_cursor is None


def _page_through(sources: list[list[bytes]], need: int) -> list[int]:
    """The read loop over sorted-set sources, with ZRANGE BYLEX semantics."""
    seen: list[int] = []
    cursor = None
    while True:
        bound = lex_start(cursor)
        limit = need + 1
        pages = [[m for m in s if in_lex_range(m, bound, b"+")][:limit] for s in sources]
        plan = plan_round(pages, need=need, per_source_limit=limit)
        seen.extend(e.post_id for e in plan.candidates)
        if not plan.has_more:
            return seen
        cursor = plan.next_cursor


def test_paging_through_rounds_visits_every_entry_once():
    """Simulates the read loop over three sources with overlap: no skip, no repeat."""
    sources = [
        sorted({encode_member(p, 1) for p in range(1, 200, 2)}),
        sorted({encode_member(p, 2) for p in range(2, 200, 3)}),
        sorted({encode_member(p, 1) for p in range(1, 60, 2)}),  # overlaps source 0
    ]
    expected = sorted({decode_member(m).post_id for s in sources for m in s}, reverse=True)
    assert _page_through(sources, need=25) == expected


def test_paging_across_magnitudes_visits_every_entry_once_newest_first():
    # Byte carries and 9/10-digit neighbours straddle page boundaries.
    ids = sorted({*MIXED_IDS, *(i + d for i in MIXED_IDS[1:-2] for d in (-1, 1))})
    sources = [
        sorted({encode_member(p, 123) for p in ids[0::2]}),
        sorted({encode_member(p, 5123) for p in ids[1::2]}),
        sorted({encode_member(p, 123) for p in ids[0::4]}),  # overlaps source 0
    ]
    for need in (1, 2, 3, 7):
        assert _page_through(sources, need=need) == sorted(ids, reverse=True)


def test_celebrity_cache_value_round_trips():
    assert encode_id_list([]) == b""
    assert decode_id_list(b"") == []
    ids = [1, MAX_ID, 383231189328842752]
    assert decode_id_list(encode_id_list(ids)) == ids


# -- each original once --------------------------------------------------------


def test_a_pure_repost_member_carries_its_original_and_sorts_by_its_own_id():
    member = encode_member(500, 7, original_id=100)
    assert len(member) == REPOST_MEMBER_BYTES == 20
    assert member[:MEMBER_BYTES] == encode_member(500, 7)
    stored = decode_member(member)
    assert (stored.post_id, stored.original_id, stored.content_id) == (500, 100, 100)
    assert decode_member(encode_member(500, 7)).content_id == 500
    # Between the plain members of the posts before and after it.
    assert encode_member(501, 7) < member < encode_member(499, 7)
    # The fingerprint stays at bytes 9..12, where an unfollow's purge looks.
    assert member[8:12] == author_fingerprint(7)


def test_a_delete_removes_both_forms_of_a_repost_and_the_only_form_of_a_post():
    assert member_forms(Entry(500, 7, 100)) == [encode_member(500, 7), encode_member(500, 7, 100)]
    assert member_forms(Entry(500, 7)) == [encode_member(500, 7)]
    assert entry_member(Entry(500, 7, 100)) == encode_member(500, 7, 100)


def test_the_earlier_range_holds_the_original_and_earlier_reposts_but_not_the_repost_itself():
    low, high = earlier_range(decode_member(encode_member(500, 7, 100)))
    inside = [encode_member(100, 1), encode_member(300, 8, 100), encode_member(499, 9, 100)]
    outside = [encode_member(99, 1), encode_member(500, 7, 100), encode_member(501, 9, 100)]
    for member in inside:
        assert in_lex_range(member, low, high)
    for member in outside:
        assert not in_lex_range(member, low, high)


def stored(post_id: int, original_id: int = 0) -> Stored:
    return decode_member(encode_member(post_id, 1, original_id))


def test_shows_means_the_original_itself_or_a_pure_repost_of_it():
    assert shows(stored(100), 100)
    assert shows(stored(300, 100), 100)
    assert not shows(stored(300, 200), 100)
    assert not shows(stored(300), 100)


def everyone(post_id: int) -> bool:
    return True


def test_later_reposts_of_an_original_already_shown_are_left_out():
    # X=100 by A; B reposts at 200, C at 300; the reader sees 100 only.
    x, by_b, by_c = stored(100), stored(200, 100), stored(300, 100)
    earlier = {200: [x], 300: [x, by_b]}
    assert repeated_reposts([by_c, by_b, x], earlier, everyone) == {200, 300}


def test_without_the_original_the_first_repost_shows_and_later_ones_do_not():
    by_b, by_c, by_d = stored(200, 100), stored(300, 100), stored(400, 100)
    earlier = {300: [by_b], 400: [by_b, by_c]}
    assert repeated_reposts([by_d, by_c, by_b], earlier, everyone) == {300, 400}


def test_the_rule_needs_no_page_state_each_page_decides_alone():
    # Pages of one entry each, newest first: only the oldest shows, on its page.
    by_b, by_c, by_d = stored(200, 100), stored(300, 100), stored(400, 100)
    earlier = {300: [by_b], 400: [by_b, by_c]}
    pages = [[by_d], [by_c], [by_b]]
    shown = [e.post_id for page in pages for e in page if e.post_id not in repeated_reposts(page, earlier, everyone)]
    assert shown == [200]


def test_a_deleted_or_hidden_earlier_occurrence_lets_the_next_one_show():
    by_b, by_c, by_d = stored(200, 100), stored(300, 100), stored(400, 100)
    earlier = {300: [by_b], 400: [by_b, by_c]}
    gone = {200}
    left_out = repeated_reposts([by_d, by_c], earlier, lambda post_id: post_id not in gone)
    assert left_out == {400}  # 300 takes the place of the deleted 200


def test_plain_posts_and_quotes_are_never_left_out():
    quote = stored(300)  # a quote is stored plain: it shows itself
    assert repeated_reposts([quote, stored(100)], {300: [stored(100)]}, everyone) == set()


def test_an_earlier_member_of_another_original_does_not_count():
    assert repeated_reposts([stored(300, 100)], {300: [stored(200, 150)]}, everyone) == set()


def test_only_the_oldest_repost_of_each_original_is_looked_up_the_rest_follow():
    by_b, by_c, by_d, other = stored(200, 100), stored(300, 100), stored(400, 100), stored(350, 150)
    plain = stored(250)
    candidates = [by_d, other, by_c, plain, by_b]
    assert oldest_per_original(candidates) == [by_b, other]

    x = stored(100)
    earlier = with_siblings(candidates, {200: [x]})
    assert earlier == {200: [x], 300: [x, by_b], 400: [x, by_b, by_c]}
    # Nothing held before the oldest: the newer ones still have their siblings.
    assert with_siblings(candidates, {}) == {300: [by_b], 400: [by_b, by_c]}
    assert repeated_reposts(candidates, with_siblings(candidates, {}), everyone) == {300, 400}
