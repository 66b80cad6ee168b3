"""Fills the engagement fields of hydrated posts from the engagement service.

Posts and timeline both show posts with like/repost/reply/quote counts and
the viewer's liked_by_me and reposted_by_me. The counts belong to
engagement; this reads them once per page (for the posts and any reposted
originals inside them) from the hashes engagement keeps in Redis
(engagement_reads), or asks engagement when those cannot vouch for the
page, and copies the answer in. When engagement cannot answer, the posts
are still served, with the engagement fields left at zero: a missing number
is better than a page that fails.
"""

from __future__ import annotations

import logging
from typing import Iterable

import grpc

from aviary.engagement.v1 import engagement_pb2
from aviary.posts.v1 import posts_pb2
from services.kit import settings
from services.kit.peers import engagement_reads, engagement_stream

log = logging.getLogger(__name__)

MAX_BATCH = 200


def with_originals(posts: Iterable[posts_pb2.Post]) -> list[posts_pb2.Post]:
    """Each post followed by the post it embeds (a repost's or quote's original), if any."""
    out = []
    for post in posts:
        out.append(post)
        if post.HasField("repost_of"):
            out.append(post.repost_of)
    return out


async def apply(
    posts: list[posts_pb2.Post], viewer_id: int | None, reads: engagement_reads.EngagementReads | None = None
) -> bool:
    """Overlays counts, liked_by_me and reposted_by_me in place; False when
    engagement failed. `reads`: the process's, when it has Redis."""
    targets = with_originals(posts)
    if not targets:
        return True
    post_ids = list(dict.fromkeys(p.id for p in targets))[:MAX_BATCH]
    # Either answer has PostEngagement's field names.
    found: list[engagement_reads.Engagement] | list[engagement_pb2.PostEngagement] | None = (
        await reads.read(post_ids, viewer_id or 0) if reads is not None else None
    )
    if found is None:
        found = await _ask_engagement(post_ids, viewer_id)
    if found is None:
        return False
    by_id = {e.post_id: e for e in found}
    for post in targets:
        answer = by_id.get(post.id)
        if answer is not None:
            post.like_count = answer.like_count
            post.repost_count = answer.repost_count
            post.reply_count = answer.reply_count
            post.quote_count = answer.quote_count
            post.liked_by_me = answer.liked_by_me
            post.reposted_by_me = answer.reposted_by_me
    return True


async def _ask_engagement(post_ids: list[str], viewer_id: int | None) -> list[engagement_pb2.PostEngagement] | None:
    batch = engagement_pb2.BatchGetEngagementRequest(post_ids=post_ids, viewer_id=str(viewer_id or ""))
    # Shorter than a call's deadline: a page without counts beats a page that
    # waits, and a swamped engagement does not hold every reader's call open.
    timeout = settings.current().engagement_overlay_seconds
    try:
        reply = await engagement_stream.batches().get(batch, timeout)
    except grpc.aio.AioRpcError as exc:
        log.warning(
            "engagement unavailable; serving posts without counts",
            extra={"code": exc.code().name, "details": exc.details()},
        )
        return None
    except engagement_stream.BatchFailed as exc:
        log.warning(
            "engagement failed the batch; serving posts without counts",
            extra={"code": exc.code.name, "details": exc.message},
        )
        return None
    except TimeoutError:
        log.warning("engagement did not answer in time; serving posts without counts", extra={"timeout": timeout})
        return None
    return list(reply.engagements)
