"""Records other services own (media, products) as a reader needs them:
fetched by id in batches, through a short in-process cache, and attached to
hydrated messages (posts, direct messages) in the order each lists their ids."""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Generic, Iterable, TypeVar

import grpc

from services.kit.stores.cache import TtlCache

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

    async def attach(self, items: Iterable[Any], ids_field: str, out_field: str, timeout: float) -> None:
        """Fills `out_field` of each item in `ids_field` order. Never fails:
        without the owner, items go out without it."""
        targets = [p for p in items if getattr(p, ids_field) and not getattr(p, out_field)]
        if not targets:
            return
        wanted = list(dict.fromkeys(int(i) for p in targets for i in getattr(p, ids_field)))
        try:
            found = await self.get(wanted, timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning(
                f"{self.what} failed; going out without {out_field}",
                extra={"code": exc.code().name, "details": exc.details()},
            )
            return
        for post in targets:
            getattr(post, out_field).extend(found[int(i)] for i in getattr(post, ids_field) if int(i) in found)
