"""Media and product cards on messages, from their owners (media, catalog).

Reads degrade like posts': without the media service or the catalog a message
goes out with its ids but without `media` / `products`, never failing. A
send's product ids are checked afresh (existing, active); its media ids by
the kit's own-uploads rule (services.kit.peers.media). Product cards are
the catalog's Product, so a client opens and buys it like a tagged product
on a post.
"""

from __future__ import annotations

import logging

import grpc

from aviary.catalog.v1 import catalog_pb2
from aviary.conversations.v1 import conversations_pb2
from aviary.media.v1 import media_pb2
from services.kit.peers import clients, media
from services.kit.server.errors import invalid_argument, unavailable
from services.kit.stores.cache import TtlCache

log = logging.getLogger(__name__)

BATCH = 200  # ids BatchGetProducts answers in one call


class Cards:
    def __init__(self, media_cache_seconds: float, product_cache_seconds: float) -> None:
        # Media never changes once uploaded; products do, so they are kept briefly.
        self.media: TtlCache[int, media_pb2.Media] = TtlCache(ttl_seconds=media_cache_seconds, max_entries=50_000)
        self.products: TtlCache[int, catalog_pb2.Product] = TtlCache(
            ttl_seconds=product_cache_seconds, max_entries=50_000
        )

    async def _products(self, ids: list[int], timeout: float, *, cached: bool = True) -> dict[int, catalog_pb2.Product]:
        found, missing = self.products.get_many(ids) if cached else ({}, list(ids))
        for start in range(0, len(missing), BATCH):
            response = await clients.catalog().BatchGetProducts(
                catalog_pb2.BatchGetProductsRequest(
                    product_ids=[str(i) for i in missing[start : start + BATCH]], skip_stock=True
                ),
                timeout=timeout,
            )
            fetched = {int(p.id): p for p in response.products}
            self.products.put_many(fetched.items())
            found.update(fetched)
        return found

    async def _media(self, ids: list[int], timeout: float) -> dict[int, media_pb2.Media]:
        found, missing = self.media.get_many(ids)
        if missing:
            fetched = await media.fetch(missing, timeout)
            self.media.put_many(fetched.items())
            found.update(fetched)
        return found

    async def check_products(self, product_ids: list[int], timeout: float) -> None:
        """INVALID_ARGUMENT naming product_ids[i] unless every id is a distinct
        active product; UNAVAILABLE when the catalog cannot answer."""
        if not product_ids:
            return
        seen: dict[int, int] = {}
        for i, product_id in enumerate(product_ids):
            if product_id in seen:
                raise invalid_argument(f"product_ids[{i}]", f"product {product_id} is already at [{seen[product_id]}]")
            seen[product_id] = i
        try:
            found = await self._products(product_ids, timeout, cached=False)
        except grpc.aio.AioRpcError as exc:
            log.warning("catalog BatchGetProducts failed", extra={"code": exc.code().name})
            raise unavailable(f"cannot check product_ids right now (catalog: {exc.code().name}); try again") from exc
        for i, product_id in enumerate(product_ids):
            product = found.get(product_id)
            if product is None:
                raise invalid_argument(f"product_ids[{i}]", f"no such product {product_id}")
            if not product.active:
                raise invalid_argument(f"product_ids[{i}]", f"product {product_id} is not available (inactive)")

    async def attach(self, messages: list[conversations_pb2.Message], timeout: float) -> None:
        """Fills `media` and `products` in id order. Never fails."""
        media_ids = list(dict.fromkeys(int(i) for m in messages for i in m.media_ids))
        product_ids = list(dict.fromkeys(int(i) for m in messages for i in m.product_ids))
        media_found: dict[int, media_pb2.Media] = {}
        products_found: dict[int, catalog_pb2.Product] = {}
        try:
            if media_ids:
                media_found = await self._media(media_ids, timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("media BatchGetMedia failed; messages go out without media", extra={"code": exc.code().name})
        try:
            if product_ids:
                products_found = await self._products(product_ids, timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("catalog failed; messages go out without products", extra={"code": exc.code().name})
        for m in messages:
            m.media.extend(media_found[int(i)] for i in m.media_ids if int(i) in media_found)
            m.products.extend(products_found[int(i)] for i in m.product_ids if int(i) in products_found)
