"""SearchService: the indexer (post and product events -> OpenSearch) and the
public queries (hydrated through posts and catalog, never served from the
index alone, so a post deleted a moment ago is already gone from results)."""

from __future__ import annotations

import logging

import grpc
from google.protobuf.message import DecodeError
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import TransportError
from prometheus_client import Counter

from aviary.catalog.v1 import catalog_pb2
from aviary.events.v1 import events_pb2
from aviary.posts.v1 import posts_pb2
from aviary.search.v1 import search_pb2, search_pb2_grpc
from services.kit.peers import clients, safety
from services.kit.server import paging, startup
from services.kit.server.auth import optional_caller_id
from services.kit.server.errors import invalid_argument, unavailable
from services.kit.stores import redis_client
from services.kit.events.consumer import GATHER_SOON_MS, ConsumerLoop, PoisonRecord
from services.kit.events.kafka import CATALOG_TOPIC, POSTS_TOPIC
from services.search import bulk, documents, indices
from services.search.settings import SearchSettings

log = logging.getLogger(__name__)
# The client logs every request at INFO; keep only its warnings.
logging.getLogger("opensearch").setLevel(logging.WARNING)

CONSUMER_GROUP = "search"
INDEXED = Counter("aviary_search_indexed_total", "Index changes applied from events", ["index", "op", "result"])


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        self.os = AsyncOpenSearch(settings.opensearch_url, timeout=10)
        self.consumer = ConsumerLoop(
            settings.kafka_bootstrap,
            CONSUMER_GROUP,
            [POSTS_TOPIC, CATALOG_TOPIC],
            self.handle,
            # Side by side (one author's or product's events still in order),
            # so the records of a poll reach OpenSearch in one bulk request.
            parallel_topics=frozenset({POSTS_TOPIC, CATALOG_TOPIC}),
            gather_ms=GATHER_SOON_MS,
        )
        self.bulk = bulk.BulkWriter(self.os)
        # Authors hidden from the viewer (blocks, mutes) and gone accounts
        # (suspended or deleted: identity's set in Redis, for every viewer)
        # are left out of post results. Redis also carries each viewer's
        # hidden-authors version, so a block shows on the next search.
        self.redis = redis_client.client(settings)
        self.hidden_authors = safety.HiddenAuthors(self.redis, timeout=settings.rpc_timeout_seconds)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await startup.retry_until_up(self._create_indices, "opensearch")

    async def _create_indices(self) -> None:
        for name, body in (
            (documents.POSTS_INDEX, documents.POSTS_MAPPING),
            (documents.PRODUCTS_INDEX, documents.PRODUCTS_MAPPING),
        ):
            await indices.create_if_missing(self.os, name, body)
        # Dynamic settings also reach indices created by an older version.
        await self.os.indices.put_settings(
            index=documents.POSTS_INDEX, body={"index": {"refresh_interval": documents.POSTS_REFRESH_INTERVAL}}
        )

    async def stop(self) -> None:
        await self.os.close()
        await self.redis.aclose()
        await clients.close_all()

    async def consume(self) -> None:
        await self.consumer.run()

    # -- indexing (at-least-once, idempotent) ------------------------------------

    async def handle(self, topic: str, key: bytes | None, value: bytes) -> None:
        try:
            if topic == POSTS_TOPIC:
                await self._apply_post(events_pb2.PostEvent.FromString(value))
            elif topic == CATALOG_TOPIC:
                await self._apply_product(events_pb2.ProductEvent.FromString(value))
        except DecodeError as exc:
            raise PoisonRecord(f"unreadable {topic} record: {exc}") from exc

    async def _apply_post(self, event: events_pb2.PostEvent) -> None:
        kind = event.WhichOneof("kind")
        if kind == "created":
            doc = documents.post_document(event.created)
            if doc is not None:
                await self._put(documents.POSTS_INDEX, event.created.post_id, event.event_id, doc)
        elif kind == "deleted":
            await self._delete(documents.POSTS_INDEX, event.deleted.post_id, event.event_id)

    async def _apply_product(self, event: events_pb2.ProductEvent) -> None:
        if event.WhichOneof("kind") == "upserted":
            p = event.upserted
            await self._put(documents.PRODUCTS_INDEX, p.product_id, event.event_id, documents.product_document(p))

    async def _put(self, index: str, doc_id: int, event_id: int, doc: dict) -> None:
        # External versions (the event id, time-ordered): a replayed or late
        # older event can never overwrite a newer state or revive a deletion.
        outcome = await self.bulk.index(index, doc_id, event_id, doc)
        INDEXED.labels(index, "put", "ok" if outcome == bulk.INDEXED else "stale").inc()

    async def _delete(self, index: str, doc_id: int, event_id: int) -> None:
        outcome = await self.bulk.delete(index, doc_id, event_id)
        INDEXED.labels(index, "delete", "ok" if outcome == bulk.DELETED else "absent").inc()

    # -- queries -----------------------------------------------------------------

    async def SearchPosts(self, request, context):
        q = documents.check_query(request.q)
        size, offset = _page(request)
        viewer = optional_caller_id(context)
        # Gone accounts for everyone, plus the viewer's blocks and mutes.
        hidden = (await self.hidden_authors.of(viewer or 0)).ids()
        body = documents.posts_query(q, without_authors=hidden)
        ids, more = await self._ids(documents.POSTS_INDEX, body, offset, size)
        posts = await self._posts(ids, viewer)
        # The query cannot see what a post reposts or quotes: those are left
        # out here, so such a page may come back short, with a token that goes on.
        posts = [post for post in posts if not safety.hides_post(post, hidden)]
        return search_pb2.SearchPostsResponse(posts=posts, next_page_token=_next(offset, size, more))

    async def SearchProducts(self, request, context):
        q = documents.check_query(request.q)
        size, offset = _page(request)
        ids, more = await self._ids(documents.PRODUCTS_INDEX, documents.products_query(q), offset, size)
        products = await self._products(ids)
        return search_pb2.SearchProductsResponse(products=products, next_page_token=_next(offset, size, more))

    async def _ids(self, index: str, body: dict, offset: int, size: int) -> tuple[list[str], bool]:
        try:
            found = await self.os.search(index=index, body={**body, "from": offset, "size": size + 1, "_source": False})
        except TransportError as exc:
            log.warning("opensearch query failed", extra={"index": index, "error": str(exc)})
            raise unavailable("search is unavailable right now; try again shortly") from exc
        hits = [h["_id"] for h in found["hits"]["hits"]]
        return hits[:size], len(hits) > size

    async def _posts(self, ids: list[str], viewer: int | None) -> list[posts_pb2.Post]:
        if not ids:
            return []
        try:
            got = await clients.posts().BatchGetPosts(
                posts_pb2.BatchGetPostsRequest(post_ids=ids, viewer_id=str(viewer or "")),
                timeout=self.settings.rpc_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            raise unavailable(f"cannot load the matching posts right now ({exc.code().name})") from exc
        by_id = {p.id: p for p in got.posts}
        return [by_id[i] for i in ids if i in by_id]  # deleted posts are already gone

    async def _products(self, ids: list[str]) -> list[catalog_pb2.Product]:
        if not ids:
            return []
        try:
            got = await clients.catalog().BatchGetProducts(
                catalog_pb2.BatchGetProductsRequest(product_ids=ids), timeout=self.settings.rpc_timeout_seconds
            )
        except grpc.aio.AioRpcError as exc:
            raise unavailable(f"cannot load the matching products right now ({exc.code().name})") from exc
        by_id = {p.id: p for p in got.products}
        return [by_id[i] for i in ids if i in by_id and by_id[i].active]


def _page(request) -> tuple[int, int]:
    size = paging.page_size(request.page_size)
    offset = paging.int_cursor(request.page_token, "offset") or 0
    if offset + size > documents.MAX_OFFSET:
        raise invalid_argument("page_token", f"search reaches at most {documents.MAX_OFFSET} results deep")
    return size, offset


def _next(offset: int, size: int, more: bool) -> str:
    return paging.encode_token({"offset": offset + size}) if more and offset + size < documents.MAX_OFFSET else ""
