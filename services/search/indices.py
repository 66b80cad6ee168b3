"""Creating the search indices, shared by the service's start-up and the
reindex command; either may race another process doing the same."""

from __future__ import annotations

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import RequestError


async def create(client: AsyncOpenSearch, index: str, body: dict) -> bool:
    """Creates the index; False when it already exists (someone else made it first)."""
    try:
        await client.indices.create(index=index, body=body)
        return True
    except RequestError as exc:
        if "resource_already_exists" not in str(exc):
            raise
        return False


async def create_if_missing(client: AsyncOpenSearch, index: str, body: dict) -> bool:
    """True when this call created the index."""
    if await client.indices.exists(index=index):
        return False
    return await create(client, index, body)
