"""Current product facts (price, title, currency, active) from the catalog.

The cart stores product ids, quantities and the price each line was last
added at (for checkout's price-rise check); the prices it shows are read from
the catalog every time, and never guessed when it cannot answer.
"""

from __future__ import annotations

import logging
from typing import Iterable

import grpc

from aviary.catalog.v1 import catalog_pb2
from services.kit.peers import clients
from services.kit.server.errors import unavailable

log = logging.getLogger(__name__)


class CatalogReader:
    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds

    async def products(self, product_ids: Iterable[int], *, purpose: str) -> dict[int, catalog_pb2.Product]:
        """Products by id (inactive ones included; unknown ids absent), in one
        BatchGetProducts call without stock. Raises UNAVAILABLE, saying what
        could not be done (`purpose`), when the catalog cannot answer."""
        wanted = list(dict.fromkeys(product_ids))
        if not wanted:
            return {}
        request = catalog_pb2.BatchGetProductsRequest(product_ids=[str(p) for p in wanted], skip_stock=True)
        try:
            response = await clients.catalog().BatchGetProducts(request, timeout=self.timeout_seconds)
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "catalog BatchGetProducts failed",
                extra={"code": exc.code().name, "details": exc.details(), "products": len(wanted)},
            )
            raise unavailable(
                f"cannot {purpose}: the catalog is not answering right now ({exc.code().name}); try again shortly"
            ) from exc
        return {int(product.id): product for product in response.products}
