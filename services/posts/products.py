"""Product tags on posts, through the catalog service (social and commerce meet
only by ids: posts stores product ids, the catalog owns the products).

- `check_product_ids`: CreatePost's product ids must name existing, active
  products. When the catalog cannot answer, a post with product tags is
  refused with UNAVAILABLE (unchecked ids are never stored); a post without
  tags never asks the catalog.
- `attach_products`: hydrated posts carry their Product (title, price, ...)
  in product_ids order, products the catalog no longer knows left out. Reads
  degrade: with the catalog down or slow, posts come back without `products`
  (product_ids are always there) rather than failing — social reads never
  depend on commerce being up.

Products change (price, title, active), so reads reuse what was fetched only
briefly (AVIARY_POSTS_PRODUCT_CACHE_SECONDS); the CreatePost check always asks
the catalog. Stock is not joined in (skip_stock): a timeline page does not
wait for inventory; a client opening a product reads it from the catalog.
"""

from __future__ import annotations

import logging

import grpc

from aviary.catalog.v1 import catalog_pb2
from aviary.posts.v1 import posts_pb2
from services.kit.peers import products
from services.kit.peers.engagement_overlay import with_originals
from services.kit.peers.lookup import PeerLookup
from services.kit.server.errors import invalid_argument, unavailable

log = logging.getLogger(__name__)


def product_lookup(cache_seconds: float) -> PeerLookup[catalog_pb2.Product]:
    """Products by id, reused for `cache_seconds`: one per servicer, built at start-up."""
    return products.lookup(cache_seconds, max_entries=50_000)


async def check_product_ids(lookup: PeerLookup[catalog_pb2.Product], product_ids: list[int], timeout: float) -> None:
    """INVALID_ARGUMENT naming product_ids[i] unless every id is an active product;
    UNAVAILABLE when the catalog cannot be asked right now."""
    if not product_ids:
        return
    seen: dict[int, int] = {}
    for i, product_id in enumerate(product_ids):
        if product_id in seen:
            raise invalid_argument(
                f"product_ids[{i}]", f"product {product_id} is already tagged at [{seen[product_id]}]"
            )
        seen[product_id] = i
    try:
        # Asked afresh, not from the cache: a write is checked by the owner of the data.
        found = await lookup.get(product_ids, timeout, cached=False)
    except grpc.aio.AioRpcError as exc:
        log.warning("catalog BatchGetProducts failed", extra={"code": exc.code().name, "details": exc.details()})
        raise unavailable(
            f"cannot check product_ids right now: the catalog can't be reached ({exc.code().name}); "
            "try again, or post without product tags"
        ) from exc
    for i, product_id in enumerate(product_ids):
        product = found.get(product_id)
        if product is None:
            raise invalid_argument(f"product_ids[{i}]", f"no such product {product_id}")
        if not product.active:
            raise invalid_argument(
                f"product_ids[{i}]", f"product {product_id} is not available (inactive); tag an active product"
            )


async def attach_products(lookup: PeerLookup[catalog_pb2.Product], posts: list[posts_pb2.Post], timeout: float) -> None:
    """Fills `products` of each post (and of an embedded reposted post) in product_ids order.

    Never fails: without the catalog, posts simply lack `products`."""
    await lookup.attach(with_originals(posts), "product_ids", "products", timeout)
