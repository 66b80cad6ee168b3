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

from aviary.graph.v1 import graph_pb2
from aviary.identity.v1 import identity_pb2
from services.kit.peers import clients
from services.kit.stores import cql
from services.kit.server.logs import error_text

log = logging.getLogger(__name__)

# Ids per BatchGetFollowStats call and per post-count query (graph's and
# BatchGetAuthorStats' limit).
COUNTS_BATCH = 200

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
    chunks = [user_ids[at : at + COUNTS_BATCH] for at in range(0, len(user_ids), COUNTS_BATCH)]
    try:
        answers = await asyncio.gather(*(_counts_of(chunk, post_counts, timeout) for chunk in chunks))
    except (grpc.aio.AioRpcError, *cql.OUTAGES) as exc:
        log.warning("summary counts unavailable; authors go out without them", extra={"error": error_text(exc)})
        return {}
    return {user_id: counts for answer in answers for user_id, counts in answer.items()}


async def _counts_of(user_ids: list[int], post_counts: PostCounts, timeout: float) -> dict[int, tuple[int, int, int]]:
    follows, posts = await asyncio.gather(
        clients.graph().BatchGetFollowStats(
            graph_pb2.BatchGetFollowStatsRequest(user_ids=[str(u) for u in user_ids]), timeout=timeout
        ),
        post_counts(user_ids),
    )
    return {int(s.user_id): (s.follower_count, s.following_count, posts.get(int(s.user_id), 0)) for s in follows.stats}
