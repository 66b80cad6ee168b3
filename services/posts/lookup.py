"""Records other services own (media, products) as posts need them: fetched
by id in batches, through a short in-process cache, and attached to hydrated
posts in the order the post lists their ids."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Generic, TypeVar

import grpc

from aviary.posts.v1 import posts_pb2
from services.kit.stores.cache import TtlCache
from services.kit.peers.engagement_overlay import with_originals

log = logging.getLogger(__name__)

T = TypeVar("T")
# fetch(ids, timeout) -> (id, record) pairs for the ids the owner knows.
BatchFetch = Callable[[list[int], float], Awaitable[list[tuple[int, T]]]]


class PeerLookup(Generic[T]):
    def __init__(self, fetch: BatchFetch, *, what: str, batch: int, ttl_seconds: float, max_entries: int) -> None:
        self.fetch = fetch
        self.what = what  # the call, for logs
        self.batch = batch
        self.cache: TtlCache[int, T] = TtlCache(ttl_seconds=ttl_seconds, max_entries=max_entries)

    async def get(self, ids: list[int], timeout: float, *, cached: bool = True) -> dict[int, T]:
        """Records by id (cache first unless `cached` is False); unknown ids are absent.

        Raises grpc.aio.AioRpcError."""
        found, missing = self.cache.get_many(ids) if cached else ({}, list(ids))
        for start in range(0, len(missing), self.batch):
            fetched = dict(await self.fetch(missing[start : start + self.batch], timeout))
            self.cache.put_many(fetched.items())
            found.update(fetched)
        return found

    async def attach(self, posts: list[posts_pb2.Post], ids_field: str, out_field: str, timeout: float) -> None:
        """Fills `out_field` of each post (and of an embedded reposted post) in
        `ids_field` order. Never fails: without the owner, posts go out without it."""
        targets = [p for p in with_originals(posts) if getattr(p, ids_field) and not getattr(p, out_field)]
        if not targets:
            return
        wanted = list(dict.fromkeys(int(i) for p in targets for i in getattr(p, ids_field)))
        try:
            found = await self.get(wanted, timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning(
                f"{self.what} failed; posts go out without {out_field}",
                extra={"code": exc.code().name, "details": exc.details()},
            )
            return
        for post in targets:
            getattr(post, out_field).extend(found[int(i)] for i in getattr(post, ids_field) if int(i) in found)
