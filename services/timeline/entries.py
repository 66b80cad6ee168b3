"""Timeline entries as Redis sorted-set members, and the read-time merge.

Pure functions only (no I/O), so the ordering rules can be unit-tested.

Every sorted set here (home timelines `tl:{user}`, author indexes `ai:{author}`)
gives all members the score 0 and orders them by the member bytes instead
(ZRANGE ... BYLEX). A score is an IEEE double with a 53-bit mantissa, so it
cannot hold a 64-bit Snowflake id exactly: neighbouring ids would collapse to
one score and their order would be lost. Zero-padding the post id to 20 digits
(the width of 2**64 - 1) makes byte order equal numeric order, which for
Snowflake ids is also creation-time order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

POST_ID_WIDTH = 20
SEPARATOR = b":"


@dataclass(frozen=True, order=True)
class Entry:
    """One post on a timeline; orders by post id (= creation time)."""

    post_id: int
    author_id: int


def home_key(user_id: int) -> str:
    # The hash tag pins the key to one Redis Cluster slot per user.
    return f"tl:{{{user_id}}}"


def author_key(author_id: int) -> str:
    return f"ai:{{{author_id}}}"


def celebrity_cache_key(user_id: int) -> str:
    # Same hash tag as the user's home timeline: one slot, one script.
    return f"tc:{{{user_id}}}"


def encode_id_list(ids: Iterable[int]) -> bytes:
    """Comma-separated decimal ids; b"" for none (distinct from a missing key)."""
    return ",".join(str(i) for i in ids).encode()


def decode_id_list(raw: bytes) -> list[int]:
    return [int(part) for part in raw.split(b",")] if raw else []


def padded_post_id(post_id: int) -> bytes:
    return str(post_id).zfill(POST_ID_WIDTH).encode()


def encode_member(post_id: int, author_id: int) -> bytes:
    return padded_post_id(post_id) + SEPARATOR + str(author_id).encode()


def decode_member(member: bytes) -> Entry:
    """Inverse of encode_member; ValueError for anything else."""
    post_part, sep, author_part = member.partition(SEPARATOR)
    if not sep or len(post_part) != POST_ID_WIDTH or not post_part.isdigit() or not author_part.isdigit():
        raise ValueError(f"not a timeline member: {member[:60]!r}")
    return Entry(int(post_part), int(author_part))


def author_suffix(author_id: int) -> bytes:
    """What every member written for `author_id` ends with (one ':' per member)."""
    return SEPARATOR + str(author_id).encode()


def lex_upper_bound(before_post_id: int | None) -> bytes:
    """ZRANGE BYLEX REV start bound: everything, or strictly older than a post.

    `(<padded id>` excludes the cursor's own member too, because that member
    ("<padded id>:<author>") sorts after its bare prefix.
    """
    if before_post_id is None:
        return b"+"
    return b"(" + padded_post_id(before_post_id)


def merge_newest(sources: Iterable[Iterable[bytes]]) -> list[Entry]:
    """Union of several newest-first member lists: distinct post ids, newest first.

    Members that do not decode are dropped rather than failing a read.
    """
    by_post: dict[int, Entry] = {}
    for members in sources:
        for member in members:
            try:
                entry = decode_member(member)
            except ValueError:
                continue
            by_post.setdefault(entry.post_id, entry)
    return sorted(by_post.values(), reverse=True)


@dataclass(frozen=True)
class MergeRound:
    """One round of the home-timeline read: what to hydrate and what comes next."""

    candidates: list[Entry]  # newest first, at most `need`
    has_more: bool  # some source may still hold older entries
    next_cursor: int | None  # post id to read strictly below in the next round


def plan_round(source_pages: list[list[bytes]], need: int, per_source_limit: int) -> MergeRound:
    """Picks the newest `need` distinct entries out of per-source pages.

    Each source page is that source's newest `per_source_limit` members below
    the cursor. The union's newest `need` (< per_source_limit) distinct entries
    are exact: any of them is among the newest `need` of its own source. More
    may follow when the union holds more than `need` entries, which is always
    the case when any one source filled its page.
    """
    merged = merge_newest(source_pages)
    candidates = merged[:need]
    has_more = len(merged) > need or any(len(page) >= per_source_limit for page in source_pages)
    next_cursor = candidates[-1].post_id if candidates else None
    return MergeRound(candidates=candidates, has_more=has_more and bool(candidates), next_cursor=next_cursor)
