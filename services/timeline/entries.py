"""Timeline entries as Redis sorted-set members, and the read-time merge.

Pure functions only (no I/O), so the ordering rules can be unit-tested.

Every sorted set here (home timelines `timeline:{user}`, author indexes
`authored:{author}`) gives all members the score 0 and orders them by the
member bytes instead (ZRANGE ... BYLEX). A score is an IEEE double with a
53-bit mantissa, so it cannot hold a 64-bit Snowflake id exactly:
neighbouring ids would collapse to one score and their order would be lost.

A member is 12 bytes: the post's key (its id subtracted from 2^64 - 1, as 8
big-endian bytes: byte order is then the reverse of id order, which for
Snowflake ids puts the newest post first), then a 4-byte fingerprint of the
author (CRC-32 of the author id), which lets an unfollow find the author's
entries without a lookup per entry. A pure repost (no text of its own) adds
its original's key, 8 more bytes, so a read can tell which entries show the
same original without hydrating them. Small members keep a full 800-entry
timeline in Redis's compact listpack encoding (the server must allow
`zset-max-listpack-entries` >= the timeline length), a fraction of what
decimal text members in a skiplist take (bench/README.md has the size).

Newest first because Redis inserts into a listpack by walking from its head
to the member's place: a delivery, nearly always the newest post, then lands
at once instead of after every entry the timeline holds.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple

POST_ID_BYTES = 8
_LARGEST_ID = 2**64 - 1
FINGERPRINT_BYTES = 4
MEMBER_BYTES = POST_ID_BYTES + FINGERPRINT_BYTES
REPOST_MEMBER_BYTES = MEMBER_BYTES + POST_ID_BYTES


@dataclass(frozen=True, order=True)
class Entry:
    """One post to put on timelines; orders by post id (= creation time)."""

    post_id: int
    author_id: int
    original_id: int = 0  # the reposted original, for a pure repost


class Stored(NamedTuple):
    """A member read back: its post id and its exact bytes (to remove it).
    A tuple, not a dataclass: every home read decodes a page of them."""

    post_id: int
    member: bytes
    original_id: int = 0  # the reposted original, for a pure repost

    @property
    def content_id(self) -> int:
        """The post the reader is shown: the original for a pure repost."""
        return self.original_id or self.post_id


def home_key(user_id: int) -> str:
    # The hash tag pins the key to one Redis Cluster slot per user.
    return f"timeline:{{{user_id}}}"


def author_key(author_id: int) -> str:
    return f"authored:{{{author_id}}}"


def legacy_author_key(author_id: int) -> str:
    """An author index as kept before members sorted newest first (oldest
    first, the post id itself as key); TimelineStore moves any it finds."""
    return f"aidx:{{{author_id}}}"


def celebrity_cache_key(user_id: int) -> str:
    # Same hash tag as the user's home timeline: one slot, one script.
    return f"celebs:{{{user_id}}}"


def celebrity_generation_key(user_id: int) -> str:
    # Bumped whenever the user's cached celebrity list is forgotten; same slot.
    return f"celebsgen:{{{user_id}}}"


def seen_key(user_id: int) -> str:
    """Present while the user is active (read their timeline lately): only
    active users' timelines are materialized. Same slot as the timeline.
    Named apart from the mark kept before members sorted newest first
    (`seen:`): a reader active then is rebuilt in the new order, not read
    in the old."""
    return f"active:{{{user_id}}}"


def unfollowed_key(user_id: int, author_id: int) -> str:
    """Present for a while after the user unfollowed the author: deliveries
    of the author's posts to the user's timeline are dropped meanwhile. Same
    slot as the timeline."""
    return f"unfollowed:{{{user_id}}}:{author_id}"


def encode_id_list(ids: Iterable[int]) -> bytes:
    """Comma-separated decimal ids; b"" for none (distinct from a missing key)."""
    return ",".join(str(i) for i in ids).encode()


def decode_id_list(raw: bytes) -> list[int]:
    return [int(part) for part in raw.split(b",")] if raw else []


def author_fingerprint(author_id: int) -> bytes:
    return zlib.crc32(author_id.to_bytes(8, "big")).to_bytes(FINGERPRINT_BYTES, "big")


def post_prefix(post_id: int) -> bytes:
    """The post's key: the 8 bytes its members start with (newest first)."""
    return (_LARGEST_ID - post_id).to_bytes(POST_ID_BYTES, "big")


def _post_id(key: bytes) -> int:
    return _LARGEST_ID - int.from_bytes(key, "big")


def encode_member(post_id: int, author_id: int, original_id: int = 0) -> bytes:
    member = post_prefix(post_id) + author_fingerprint(author_id)
    return member + post_prefix(original_id) if original_id else member


def entry_member(entry: Entry) -> bytes:
    return encode_member(entry.post_id, entry.author_id, entry.original_id)


def member_forms(entry: Entry) -> list[bytes]:
    """Every member an entry may be stored as: a delete knows the original
    of a repost but not whether it was pure (a quote is stored plain), and
    members written before originals were stored are plain too."""
    plain = encode_member(entry.post_id, entry.author_id)
    return [plain, entry_member(entry)] if entry.original_id else [plain]


def decode_member(member: bytes) -> Stored:
    """The post id (and original, for a pure repost) of a member; ValueError for anything else."""
    if len(member) not in _MEMBER_LENGTHS:
        raise ValueError(f"not a timeline member: {member[:60]!r}")
    return _decoded(bytes(member))


_MEMBER_LENGTHS = (MEMBER_BYTES, REPOST_MEMBER_BYTES)


def _decoded(member: bytes) -> Stored:
    original_id = _post_id(member[MEMBER_BYTES:]) if len(member) == REPOST_MEMBER_BYTES else 0
    return Stored(_post_id(member[:POST_ID_BYTES]), member, original_id)


def lex_start(before_post_id: int | None) -> bytes:
    """ZRANGE BYLEX start bound: from the newest member, or from the newest
    strictly older than a post.

    `[<key of the id just below>` leaves out the cursor's own members too:
    they start with the cursor's key, which sorts just before that one.
    """
    if before_post_id is None:
        return b"-"
    return b"[" + post_prefix(max(before_post_id - 1, 0))


def merge_newest(sources: Iterable[Iterable[bytes]]) -> list[bytes]:
    """Union of several newest-first member lists: one member per post id,
    newest first, not yet decoded (a read decodes only the page it shows).

    A member's first 8 bytes are its post's key, so they tell members apart
    and order them. Members that do not decode are dropped rather than
    failing a read.
    """
    by_post: dict[bytes, bytes] = {}
    for members in sources:
        for member in members:
            if len(member) in _MEMBER_LENGTHS:
                by_post.setdefault(member[:POST_ID_BYTES], bytes(member))
    return [by_post[key] for key in sorted(by_post)]


@dataclass(frozen=True)
class MergeRound:
    """One round of the home-timeline read: what to hydrate and what comes next."""

    candidates: list[Stored]  # newest first, at most `need`
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
    candidates = [_decoded(member) for member in merged[:need]]
    has_more = len(merged) > need or any(len(page) >= per_source_limit for page in source_pages)
    next_cursor = candidates[-1].post_id if candidates else None
    return MergeRound(candidates=candidates, has_more=has_more and bool(candidates), next_cursor=next_cursor)


# -- each original once --------------------------------------------------------
#
# A home read shows an original once across every page: at its OLDEST
# occurrence among the sources the read merges (the timeline, the reader's
# own posts, followed celebrities' indexes), which is the original itself
# when it is there and otherwise the first repost of it that arrived. A
# later repost of it is left out while an earlier occurrence is still held
# and visible to the reader. The rule depends only on what the sources hold,
# never on where a page starts, so every page applies it alone and no cursor
# has to remember what earlier pages showed.


def earlier_range(repost: Stored) -> tuple[bytes, bytes]:
    """ZRANGE BYLEX bounds (min, max) of the members that could show the
    repost's original before it: from just older than the repost down to the
    original itself. Ids are time-ordered, so the original and every earlier
    repost of it lie in between."""
    return b"[" + post_prefix(repost.post_id - 1), b"(" + post_prefix(repost.original_id - 1)


def shows(member: Stored, original_id: int) -> bool:
    """Whether a member shows the original: the original itself or a pure repost of it."""
    return member.post_id == original_id or member.original_id == original_id


def oldest_per_original(reposts: Iterable[Stored]) -> list[Stored]:
    """The oldest pure repost of each original among `reposts`: the only ones
    whose earlier occurrences must be looked up in the sources (see
    with_siblings)."""
    oldest: dict[int, Stored] = {}
    for repost in sorted(r for r in reposts if r.original_id):
        oldest.setdefault(repost.original_id, repost)
    return list(oldest.values())


def with_siblings(reposts: Iterable[Stored], looked_up: dict[int, list[Stored]]) -> dict[int, list[Stored]]:
    """Earlier occurrences of every pure repost among `reposts`, from those
    looked up for the oldest of each original: a newer one's are the oldest
    one's, plus the older reposts of the same original among `reposts`
    (they come from the same sources). A page of many reposts of one
    original then costs one lookup, not one per repost."""
    by_original: dict[int, list[Stored]] = {}
    for repost in sorted(r for r in reposts if r.original_id):
        by_original.setdefault(repost.original_id, []).append(repost)
    out: dict[int, list[Stored]] = {}
    for siblings in by_original.values():
        base = looked_up.get(siblings[0].post_id, [])
        for i, repost in enumerate(siblings):
            earlier = base + siblings[:i]
            if earlier:
                out[repost.post_id] = earlier
    return out


def repeated_reposts(
    candidates: Iterable[Stored], earlier: dict[int, list[Stored]], visible: Callable[[int], bool]
) -> set[int]:
    """Post ids of the candidates to leave out: pure reposts whose original
    already shows earlier. `earlier` maps a repost's post id to the members
    found before it that show its original (any source); `visible(post_id)`
    says whether the reader is shown that post (live, its author not hidden).
    An earlier occurrence deleted or hidden from the reader does not count,
    so the next one takes its place."""
    out = set()
    for entry in candidates:
        if not entry.original_id:
            continue
        if any(shows(e, entry.original_id) and visible(e.post_id) for e in earlier.get(entry.post_id, ())):
            out.add(entry.post_id)
    return out
