"""Products by id from the catalog, for readers that show product cards (posts'
tags, direct messages). Stock is not joined in (skip_stock): a page does not
wait for inventory; a client opening a product reads it from the catalog."""

from __future__ import annotations

from aviary.catalog.v1 import catalog_pb2
from services.kit.peers import clients
from services.kit.peers.lookup import PeerLookup

BATCH_GET_LIMIT = 200  # ids BatchGetProducts answers in one call


async def _batch_get(product_ids: list[int], timeout: float) -> list[tuple[int, catalog_pb2.Product]]:
    response = await clients.catalog().BatchGetProducts(
        catalog_pb2.BatchGetProductsRequest(product_ids=[str(i) for i in product_ids], skip_stock=True),
        timeout=timeout,
    )
    return [(int(p.id), p) for p in response.products]


def lookup(cache_seconds: float, max_entries: int) -> PeerLookup[catalog_pb2.Product]:
    """Products by id, reused for `cache_seconds` (`cached=False` asks afresh, for
    checking a write): one per servicer, built at start-up."""
    return PeerLookup(
        _batch_get,
        what="catalog BatchGetProducts",
        batch=BATCH_GET_LIMIT,
        ttl_seconds=cache_seconds,
        max_entries=max_entries,
    )
