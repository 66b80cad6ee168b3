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

from aviary.conversations.v1 import conversations_pb2
from services.kit.peers import media, products
from services.kit.server.errors import invalid_argument, unavailable

log = logging.getLogger(__name__)


class Cards:
    def __init__(self, media_cache_seconds: float, product_cache_seconds: float) -> None:
        # Media never changes once uploaded; products do, so they are kept briefly.
        self.media = media.lookup(media_cache_seconds, max_entries=50_000)
        self.products = products.lookup(product_cache_seconds, max_entries=50_000)

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
            found = await self.products.get(product_ids, timeout, cached=False)
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
        await self.media.attach(messages, "media_ids", "media", timeout)
        await self.products.attach(messages, "product_ids", "products", timeout)
