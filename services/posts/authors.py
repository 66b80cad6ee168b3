"""Author summaries for hydrating posts: who each author is from identity,
their follow counts from graph and their post count from posts' own store,
asked side by side.

Asked for the counts, identity would call graph and then call posts back for
the post counts posts holds itself: one call more per summary, in series
behind identity's. Every post whose author is not in the summary cache pays
for that. The counts are never cached by identity either way, so the only
staleness is posts' own summary cache, as before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import grpc

from aviary.identity.v1 import identity_pb2
from services.kit.peers import clients
from services.kit.stores import cql
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

PostCounts = Callable[[list[int]], Awaitable[dict[int, int]]]


async def summaries(user_ids: list[int], post_counts: PostCounts, timeout: float) -> dict[int, identity_pb2.User]:
    """User summaries by id with their follower, following and post counts;
    ids identity does not know are absent. UNAVAILABLE (an ApiError) when
    identity cannot answer; without counts while graph or the post counts
    cannot, as identity's own summaries go out then."""
    users, counts = await asyncio.gather(
        clients.user_summaries(user_ids, timeout, counts=False), _counts(user_ids, post_counts, timeout)
    )
    for user_id, user in users.items():
        user.follower_count, user.following_count, user.post_count = counts.get(user_id, (0, 0, 0))
    return users


async def _counts(user_ids: list[int], post_counts: PostCounts, timeout: float) -> dict[int, tuple[int, int, int]]:
    """(followers, following, posts) per user; empty when either side failed."""
    try:
        return await clients.summary_counts(user_ids, post_counts, timeout)
    except (grpc.aio.AioRpcError, *cql.OUTAGES) as exc:
        log.warning("summary counts unavailable; authors go out without them", extra={"error": error_text(exc)})
        return {}
