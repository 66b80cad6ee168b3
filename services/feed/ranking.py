"""How the mixed feed orders what it shows: pure functions, no I/O.

A post's score blends three signals, each scaled to 0..1 so the weights say
how much each matters:
- recency: halves every `half_life_seconds` (a fresh post starts at 1);
- author affinity: how much the reader engages with the author, relative to
  the author they engage with most (from the recommendations service);
- engagement: likes, reposts (x2) and replies on a log scale, so a post with
  1,000 likes is not a thousand times better than one with one.
Products are not scored against posts: they sit at every `every`-th slot in
the order recommendations ranked them, so the ratio stays steady however the
posts score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, Sequence, TypeVar

T = TypeVar("T")
U = TypeVar("U")

# Engagement at which the engagement signal saturates (reaches 1.0).
ENGAGEMENT_SATURATION = 1000


@dataclass(frozen=True)
class Weights:
    recency: float = 1.0
    affinity: float = 0.6
    engagement: float = 0.4
    half_life_seconds: float = 3 * 3600.0


@dataclass(frozen=True)
class PostSignals:
    """What ranking needs to know about one post."""

    post_id: int
    author_id: int
    age_seconds: float
    likes: int = 0
    reposts: int = 0
    replies: int = 0


def recency(age_seconds: float, half_life_seconds: float) -> float:
    return 0.5 ** (max(age_seconds, 0.0) / half_life_seconds)


def engagement(likes: int, reposts: int, replies: int) -> float:
    weighted = max(likes, 0) + 2 * max(reposts, 0) + max(replies, 0)
    return min(1.0, math.log1p(weighted) / math.log1p(ENGAGEMENT_SATURATION))


def normalised_affinities(pairs: Iterable[tuple[int, float]]) -> dict[int, float]:
    """author -> 0..1, the closest author at 1.0; non-positive scores dropped."""
    positive = {author: score for author, score in pairs if score > 0}
    if not positive:
        return {}
    top = max(positive.values())
    return {author: score / top for author, score in positive.items()}


def post_score(post: PostSignals, affinity: dict[int, float], weights: Weights) -> float:
    return (
        weights.recency * recency(post.age_seconds, weights.half_life_seconds)
        + weights.affinity * affinity.get(post.author_id, 0.0)
        + weights.engagement * engagement(post.likes, post.reposts, post.replies)
    )


def rank(posts: Sequence[PostSignals], affinity: dict[int, float], weights: Weights) -> list[PostSignals]:
    """Best first; equal scores newest first (ids are time-ordered), so the
    order is total and a rebuild of the same inputs gives the same feed."""
    return sorted(posts, key=lambda p: (-post_score(p, affinity, weights), -p.post_id))


def oldest_of_each(items: Sequence[T], key: Callable[[T], Hashable]) -> list[T]:
    """Newest-first items with one per key: the oldest (last) of those
    sharing it, in their order. The home timeline shows an original once,
    at its oldest occurrence; this keeps a ranking built from several
    timeline pages to that even where the timeline could not (it serves
    pages straight from the posts store while its Redis is down)."""
    last = {key(item): i for i, item in enumerate(items)}
    return [item for i, item in enumerate(items) if last[key(item)] == i]


def checked_every(every: int, name: str = "every") -> int:
    """The product ratio: 0 (no products) or a product every 2nd item or rarer."""
    if every < 0 or every == 1:
        raise ValueError(f"{name} must be 0 (no products) or at least 2, got {every}")
    return every


def interleave(posts: Sequence[T], products: Sequence[U], every: int) -> list[T | U]:
    """Posts in order with a product at every `every`-th position (1-based:
    every=5 puts products 5th, 10th, ...). Stops with the posts: a product is
    only ever shown between posts, never as a tail of products alone; when
    the products run out, the rest is posts. every=0 turns products off."""
    checked_every(every)
    out: list[T | U] = []
    remaining = iter(products)
    for post in posts:
        out.append(post)
        if every and (len(out) + 1) % every == 0:
            product = next(remaining, None)
            if product is not None:
                out.append(product)
    return out
