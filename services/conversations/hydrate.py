"""Media and product cards on messages, from their owners (media, catalog),
and the sender's summary (identity).

Reads degrade like posts': without the media service or the catalog a message
goes out with its ids but without `media` / `products`, never failing. A
send's product ids are checked afresh (existing, active); its media ids by
the kit's own-uploads rule (services.kit.peers.media). Product cards are
the catalog's Product, so a client opens and buys it like a tagged product
on a post. Identity leaves deleted accounts out of its answers: their
messages go out with a placeholder sender (DELETED_DISPLAY_NAME).
"""

from __future__ import annotations

import logging

import grpc

from aviary.conversations.v1 import conversations_pb2
from aviary.identity.v1 import identity_pb2
from services.kit.peers import clients, media, products
from services.kit.peers.lookup import PeerLookup
from services.kit.server.errors import invalid_argument, unavailable

log = logging.getLogger(__name__)

# How a deleted account's messages are shown to the others: no username
# (it is held for a while, then someone else's), this name.
DELETED_DISPLAY_NAME = "Deleted account"
# Ids per identity BatchGetUsers.
USER_BATCH = 100


def deleted_sender(sender_id: str) -> identity_pb2.User:
    return identity_pb2.User(id=sender_id, username="", display_name=DELETED_DISPLAY_NAME)


async def _fetch_users(user_ids: list[int], timeout: float) -> list[tuple[int, identity_pb2.User]]:
    response = await clients.identity().BatchGetUsers(
        identity_pb2.BatchGetUsersRequest(user_ids=[str(u) for u in user_ids]), timeout=timeout
    )
    return [(int(user.id), user) for user in response.users]


class Cards:
    def __init__(self, media_cache_seconds: float, product_cache_seconds: float, sender_cache_seconds: float) -> None:
        # Media never changes once uploaded; products do, so they are kept briefly.
        self.media = media.lookup(media_cache_seconds, max_entries=50_000)
        self.products = products.lookup(product_cache_seconds, max_entries=50_000)
        # Names change and accounts go: briefly too.
        self.senders: PeerLookup[identity_pb2.User] = PeerLookup(
            _fetch_users,
            what="identity BatchGetUsers",
            batch=USER_BATCH,
            ttl_seconds=sender_cache_seconds,
            max_entries=50_000,
        )

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
        """Fills `media` and `products` in id order, and `sender`. Never fails."""
        await self.media.attach(messages, "media_ids", "media", timeout)
        await self.products.attach(messages, "product_ids", "products", timeout)
        await self.attach_senders(messages, timeout)

    async def attach_senders(self, messages: list[conversations_pb2.Message], timeout: float) -> None:
        """The sender's summary; a sender identity does not answer is a
        deleted account (identity answers suspended ones). Without identity,
        messages go out without `sender`."""
        targets = [m for m in messages if not m.HasField("sender")]
        if not targets:
            return
        wanted = list(dict.fromkeys(int(m.sender_id) for m in targets))
        try:
            found = await self.senders.get(wanted, timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("identity BatchGetUsers failed; going out without senders", extra={"code": exc.code().name})
            return
        for message in targets:
            user = found.get(int(message.sender_id))
            message.sender.CopyFrom(user if user is not None else deleted_sender(message.sender_id))
