"""Pure rules of the recommendations service: time decay, what an engagement
is worth, request limits, and how candidates from several sources become one
ranked list. No I/O here.

Decay without rewriting: an event at time t adds w * 2**((t - epoch) / h) to a
stored score (h the half-life). Stored scores only grow, so a read divides by
the same factor at "now": what comes out is sum(w * 2**((t - now) / h)), a
fresh like counting 1, one a half-life old 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from aviary.recommendations.v1 import recommendations_pb2
from services.kit.server.errors import invalid_argument

# Why a product is recommended: a RecommendationReason value.
Reason: TypeAlias = recommendations_pb2.RecommendationReason.ValueType
ENGAGED = recommendations_pb2.RECOMMENDATION_REASON_ENGAGED
FOLLOWED_SELLER = recommendations_pb2.RECOMMENDATION_REASON_FOLLOWED_SELLER
POPULAR = recommendations_pb2.RECOMMENDATION_REASON_POPULAR

# Request limits (from the proto).
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
DEFAULT_MAX_PRODUCTS, MAX_MAX_PRODUCTS = 50, 200
DEFAULT_MAX_AUTHORS, MAX_MAX_AUTHORS = 100, 500
# Catalog's BatchGetProducts takes at most this many ids.
MAX_HYDRATE = 200


@dataclass(frozen=True)
class Weights:
    """What one engagement adds to the user's product and author affinity."""

    product: float
    author: float


LIKE = Weights(product=1.0, author=1.0)
REPOST = Weights(product=2.0, author=2.0)
# A reply is engagement with the parent's author only (weaker than a like).
REPLY = Weights(product=0.0, author=0.5)
# Popularity: each unit bought counts this much; a like or repost of a tagged
# post counts its product weight.
ORDER_UNIT_POPULARITY = 5.0

# Ranking: each source contributes at most its weight, so tiers hold: a
# product the user engaged with (a single fresh like scores 2.0) ranks above
# one that is merely popular (at most 1.0 + 0.25 for being brand new).
ENGAGED_WEIGHT = 3.0
# Engagement strength at which the engaged contribution is half its weight.
ENGAGED_HALF_STRENGTH = 0.5
FOLLOWED_SELLER_WEIGHT = 1.5
POPULAR_WEIGHT = 1.0
NEWEST_WEIGHT = 0.25


@dataclass(frozen=True)
class Decay:
    epoch_ms: int
    half_life_ms: int

    def growth(self, t_ms: int) -> float:
        """The factor an event at t_ms is stored with."""
        return 2.0 ** ((t_ms - self.epoch_ms) / self.half_life_ms)

    def stored(self, weight: float, t_ms: int) -> float:
        return weight * self.growth(t_ms)

    def current(self, stored: float, now_ms: int) -> float:
        """A stored score as its value at now_ms (a fresh weight-1 event = 1.0)."""
        return stored / self.growth(now_ms)


@dataclass(frozen=True)
class EngagementRecord:
    """One engagement as remembered per user, so taking it back (unlike,
    deleted repost or reply) subtracts exactly what it added, whenever that
    happens. The deltas are kept as the exact strings Redis was given."""

    t_ms: int
    product_weight: float
    author_id: int
    product_ids: tuple[int, ...]
    product_delta: str
    author_delta: str

    def encode(self) -> str:
        products = ",".join(str(p) for p in self.product_ids)
        fields = (self.t_ms, repr(self.product_weight), self.author_id, products, self.product_delta, self.author_delta)
        return "|".join(str(f) for f in fields)

    @staticmethod
    def decode(raw: str | bytes) -> EngagementRecord:
        if isinstance(raw, bytes):
            raw = raw.decode()
        t_ms, product_weight, author_id, products, product_delta, author_delta = raw.split("|")
        return EngagementRecord(
            int(t_ms),
            float(product_weight),
            int(author_id),
            tuple(int(p) for p in products.split(",") if p),
            product_delta,
            author_delta,
        )


def engagement_record(
    weights: Weights, t_ms: int, user_id: int, author_id: int, product_ids: list[int], affinity: Decay
) -> EngagementRecord | None:
    """The record of one engagement, or None when it carries no signal (no
    products to weigh and no other author: engaging with oneself says nothing)."""
    author = author_id if author_id and author_id != user_id and weights.author > 0 else 0
    products = tuple(dict.fromkeys(product_ids)) if weights.product > 0 else ()
    if not author and not products:
        return None
    product_delta = repr(affinity.stored(weights.product, t_ms)) if products else "0"
    author_delta = repr(affinity.stored(weights.author, t_ms)) if author else "0"
    return EngagementRecord(t_ms, weights.product, author, products, product_delta, author_delta)


def engagement_popularity(record: EngagementRecord, popularity: Decay) -> float:
    """What an engagement adds to each of its products' global popularity
    (the same number when it is taken back, since it depends on the record only)."""
    return popularity.stored(record.product_weight, record.t_ms)


def order_popularity(quantity: int, t_ms: int, popularity: Decay) -> float:
    return popularity.stored(ORDER_UNIT_POPULARITY * max(quantity, 1), t_ms)


# -- request limits --------------------------------------------------------------


def check_user_id(value: int) -> int:
    if value == 0:
        raise invalid_argument("user_id", "is required")
    if value < 0:
        raise invalid_argument("user_id", f"must be a positive 64-bit id, got {value}")
    return value


# -- ranking -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Candidates by source, with current (decayed) values, best first."""

    engaged: list[tuple[int, float]]  # product, engagement strength now
    followed: list[tuple[int, int]]  # product of a followed seller, created (unix ms)
    popular: list[tuple[int, float]]  # product, popularity now
    newest: list[tuple[int, int]]  # active product, created (unix ms)


@dataclass(frozen=True)
class Candidate:
    product_id: int
    score: float
    reason: Reason


def rank(sources: Sources, excluded: set[int], limit: int, now_ms: int, newest_half_life_ms: int) -> list[Candidate]:
    """Merges the sources: each product's score is the sum of its
    contributions, its reason the largest one; bought (or inactive) products
    are left out. Best first, ties to the newer product (the larger id)."""
    contributions: dict[int, dict[Reason, float]] = {}

    def add(product: int, reason: Reason, value: float) -> None:
        if product in excluded or value <= 0:
            return
        by_reason = contributions.setdefault(product, {})
        by_reason[reason] = by_reason.get(reason, 0.0) + value

    for product, strength in sources.engaged:
        add(product, ENGAGED, ENGAGED_WEIGHT * strength / (strength + ENGAGED_HALF_STRENGTH) if strength > 0 else 0)
    for product, _created in sources.followed:
        add(product, FOLLOWED_SELLER, FOLLOWED_SELLER_WEIGHT)
    top = max((p for _, p in sources.popular), default=0.0)
    for product, popularity in sources.popular:
        add(product, POPULAR, POPULAR_WEIGHT * popularity / top if top > 0 else 0)
    for product, created_ms in sources.newest:
        age = max(0, now_ms - created_ms)
        add(product, POPULAR, NEWEST_WEIGHT * 2.0 ** (-age / newest_half_life_ms))

    ranked = [
        Candidate(product, sum(by_reason.values()), _strongest(by_reason))
        for product, by_reason in contributions.items()
    ]
    ranked.sort(key=lambda c: (-c.score, -c.product_id))
    return ranked[:limit]


def _strongest(by_reason: dict[Reason, float]) -> Reason:
    if len(by_reason) == 1:
        return next(iter(by_reason))
    # On a tie the more personal reason wins (ENGAGED < FOLLOWED_SELLER < POPULAR in value).
    return min(by_reason, key=lambda reason: (-by_reason[reason], reason))


def author_affinities(raw: list[tuple[int, float]], decay: Decay, now_ms: int) -> list[tuple[int, float]]:
    """Stored author scores as current values, closest first (nothing non-positive)."""
    current = [(author, decay.current(score, now_ms)) for author, score in raw]
    return sorted(((a, s) for a, s in current if s > 0), key=lambda item: (-item[1], item[0]))
