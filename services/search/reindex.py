"""python -m services.search.reindex (`make reindex`): rebuilds the search
indices from the source of truth, the posts and catalog services.

In place and safe while the stack serves and the indexer keeps consuming:
documents already as exported are left alone, the others are written with an
external version that can never beat an event the export did not see
(`_version`), and only after a complete export are documents the export did
not return deleted, never those younger than the settle window. Prints one
JSON summary; exits 1 when a document failed or a step broke, 2 when an index
has an outdated mapping (rerun with --recreate). The steps, the flags and the
memory the sweep needs: services/search/README.md.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import bisect
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import AsyncIterator, Callable, Generic, TypeVar

import grpc
from opensearchpy import AsyncOpenSearch
from opensearchpy.helpers import async_scan, async_streaming_bulk

from aviary.catalog.v1 import catalog_pb2
from aviary.posts.v1 import posts_pb2
from services.kit import mesh
from services.kit.peers import clients
from services.kit.server import ids
from services.kit.settings import load
from services.kit.server.logs import setup_logging
from services.search import documents, indices
from services.search.settings import SearchSettings

log = logging.getLogger("services.search.reindex")

BULK_CHUNK = 500


class MappingMismatch(Exception):
    pass


@dataclass
class Tally:
    """What happened to one index; exported = indexed + already_current + skipped + failed."""

    name: str
    index: str
    exported: int = 0
    indexed: int = 0
    already_current: int = 0
    skipped: int = 0  # nothing to index (a pure repost has no text)
    failed: int = 0
    deleted_stale: int = 0
    changed_during_sweep: int = 0  # a stale candidate written or deleted meanwhile: left alone
    too_recent_to_judge: int = 0  # not exported, but younger than the settle window
    errors: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(message)


_Record = TypeVar("_Record")


@dataclass(frozen=True)
class Source(Generic[_Record]):
    """One index and where its truth comes from (records of one type)."""

    name: str
    index: str
    mapping: dict
    batches: Callable[[int, float], AsyncIterator[list[_Record]]]
    doc_id: Callable[[_Record], int]
    document: Callable[[_Record], dict | None]


async def _post_batches(batch_size: int, timeout: float) -> AsyncIterator[list]:
    stream = clients.posts().ExportPosts(posts_pb2.ExportPostsRequest(batch_size=batch_size), timeout=timeout)
    async for response in stream:
        yield list(response.posts)


async def _product_batches(batch_size: int, timeout: float) -> AsyncIterator[list]:
    stream = clients.catalog().ExportProducts(catalog_pb2.ExportProductsRequest(batch_size=batch_size), timeout=timeout)
    async for response in stream:
        yield list(response.products)


def sources(posts_index: str, products_index: str) -> list[Source]:
    return [
        Source(
            "posts", posts_index, documents.POSTS_MAPPING, _post_batches, lambda p: p.post_id, documents.post_document
        ),
        Source(
            "products",
            products_index,
            documents.PRODUCTS_MAPPING,
            _product_batches,
            lambda p: p.product_id,
            documents.product_document,
        ),
    ]


def version_floor(export_started_ms: int, settle_seconds: float) -> int:
    """The smallest id minted `settle_seconds` before the export started."""
    return ids.min_id_at(export_started_ms - int(settle_seconds * 1000))


def _version(entity_id: int, floor: int) -> int:
    """The external version a document from the export is written with.

    The indexer writes every event with its event id as the version, so the
    export's write must never beat an event carrying state the export did not
    see. Both terms are below every such event:
    - the entity's own id: it is minted before any event about the entity (a
      post's PostCreated and PostDeleted, a product's ProductUpserted all take
      their ids after the post or product id, from the same time-ordered ids);
    - the floor (an id minted `settle` before the export started): a change
      the export missed happened after the export read that row, so its event
      id was minted after the export started (for the catalog, inside the
      transaction that commits the change, so at most its duration earlier;
      the settle window covers that and clock skew).
    Taking the larger lets the export overwrite anything older than the
    floor: a product whose update never reached the index gets its current
    state, and a post document lost by hand is restored even while OpenSearch
    still remembers the delete (a tombstone keeps its version for
    index.gc_deletes, 60 s).

    Left open: a post read live by the export, deleted right after, with its
    delete applied and forgotten by OpenSearch (gc_deletes) before the export's
    write lands, is written back. Batches are written as soon as they are read
    (seconds), search results are hydrated through the posts service (which
    drops deleted posts), and the next reindex sweeps it.
    """
    return max(entity_id, floor)


# -- indices -------------------------------------------------------------------


async def ensure_index(client: AsyncOpenSearch, index: str, mapping: dict) -> None:
    if await indices.create_if_missing(client, index, mapping):
        return
    current = (await client.indices.get_mapping(index=index))[index]["mappings"]
    if current != mapping["mappings"]:
        raise MappingMismatch(
            f"index {index} has another mapping than services/search/documents.py: rerun with --recreate"
        )


async def recreate_index(client: AsyncOpenSearch, index: str, mapping: dict) -> None:
    """Drops and creates the index. The indexer keeps writing meanwhile and a
    write landing between the two calls auto-creates the index with a dynamic
    mapping: then it is dropped again."""
    for _ in range(5):
        await client.indices.delete(index=index, ignore_unavailable=True)
        if await indices.create(client, index, mapping):
            return
    raise RuntimeError(f"could not recreate {index}: something keeps creating it")


# -- export -> index -------------------------------------------------------------


async def index_export(
    client: AsyncOpenSearch, source: Source, floor: int, batch_size: int, timeout: float, tally: Tally
) -> array.array:
    """Streams the export into the index, batch by batch, writing only the
    documents that are missing or differ; returns the exported ids, sorted
    (for the sweep)."""
    exported = array.array("q")
    async for batch in source.batches(batch_size, timeout):
        wanted: dict[str, dict] = {}
        for entity in batch:
            entity_id = source.doc_id(entity)
            exported.append(entity_id)
            tally.exported += 1
            doc = source.document(entity)
            if doc is None:
                tally.skipped += 1
            else:
                wanted[str(entity_id)] = doc
        current = await _current_documents(client, source.index, list(wanted))
        actions = []
        for doc_id, doc in wanted.items():
            if current.get(doc_id) == doc:
                tally.already_current += 1  # the usual case: nothing to write
                continue
            actions.append(
                {
                    "_op_type": "index",
                    "_index": source.index,
                    "_id": doc_id,
                    "_source": doc,
                    "version": _version(int(doc_id), floor),
                    "version_type": "external_gte",
                }
            )
        await _bulk(client, actions, tally, _count_index_result)
    return array.array("q", sorted(exported))


async def _current_documents(client: AsyncOpenSearch, index: str, doc_ids: list[str]) -> dict[str, dict]:
    """The indexed documents among doc_ids (a real-time read: unrefreshed writes count)."""
    if not doc_ids:
        return {}
    got = await client.mget(index=index, body={"ids": doc_ids})
    return {d["_id"]: d["_source"] for d in got["docs"] if d.get("found")}


def _count_index_result(ok: bool, result: dict, tally: Tally) -> None:
    if ok:
        tally.indexed += 1
    elif result.get("status") == 409:  # the index holds this state or a newer one
        tally.already_current += 1
    else:
        tally.error(f"index {result.get('_id')}: {result.get('status')} {result.get('error')}")


async def _bulk(client: AsyncOpenSearch, actions: list[dict], tally: Tally, count) -> None:
    if not actions:
        return
    # max_retries: items refused with 429 (a busy node) are retried with backoff.
    async for ok, item in async_streaming_bulk(
        client, actions, chunk_size=BULK_CHUNK, raise_on_error=False, max_retries=3, initial_backoff=1
    ):
        ((_, result),) = item.items()
        count(ok, result, tally)


# -- sweep ---------------------------------------------------------------------


async def sweep(client: AsyncOpenSearch, source: Source, exported: array.array, floor: int, tally: Tally) -> None:
    """Deletes documents whose post or product the export did not return.

    Only ids below the floor are judged (see the module docstring). Each
    delete carries the version the scroll saw plus one, so a document written
    since is left alone (a conflict), and a replay of the event that put it
    there cannot bring it back while OpenSearch remembers the delete."""
    stale: list[dict] = []
    query = {"query": {"match_all": {}}, "_source": False, "version": True}
    async for hit in async_scan(client, index=source.index, query=query, size=1000):
        doc_id = _int_id(hit["_id"])
        if doc_id is not None and _contains(exported, doc_id):
            continue
        if doc_id is not None and doc_id >= floor:
            tally.too_recent_to_judge += 1
            continue
        stale.append(
            {
                "_op_type": "delete",
                "_index": source.index,
                "_id": hit["_id"],
                "version": hit["_version"] + 1,
                "version_type": "external_gte",
            }
        )
        if len(stale) >= BULK_CHUNK:
            await _bulk(client, stale, tally, _count_delete_result)
            stale = []
    await _bulk(client, stale, tally, _count_delete_result)


def _count_delete_result(ok: bool, result: dict, tally: Tally) -> None:
    if ok:
        tally.deleted_stale += 1
    elif result.get("status") in (404, 409):
        tally.changed_during_sweep += 1
    else:
        tally.error(f"delete {result.get('_id')}: {result.get('status')} {result.get('error')}")


def _int_id(doc_id: str) -> int | None:
    # Every document the services write has a decimal id; anything else is stale.
    return int(doc_id) if doc_id.isascii() and doc_id.isdigit() and len(doc_id) <= 19 else None


def _contains(sorted_ids: array.array, wanted: int) -> bool:
    at = bisect.bisect_left(sorted_ids, wanted)
    return at < len(sorted_ids) and sorted_ids[at] == wanted


# -- the command -----------------------------------------------------------------


async def rebuild(
    client: AsyncOpenSearch, source: Source, tally: Tally, *, settle_seconds: float, batch_size: int, timeout: float
) -> None:
    floor = version_floor(time.time_ns() // 1_000_000, settle_seconds)
    # A broken export raises here, before the sweep: only a complete export
    # may decide which documents are stale.
    exported = await index_export(client, source, floor, batch_size, timeout, tally)
    log.info(
        "export indexed",
        extra={
            "index": source.index,
            "exported": tally.exported,
            "indexed": tally.indexed,
            "already_current": tally.already_current,
        },
    )
    await sweep(client, source, exported, floor, tally)
    log.info("index swept", extra={"index": source.index, "deleted_stale": tally.deleted_stale})


async def run(args: argparse.Namespace, settings: SearchSettings) -> tuple[dict, int]:
    started = time.monotonic()
    client = AsyncOpenSearch(settings.opensearch_url, timeout=60)
    tallies: list[Tally] = []
    summary: dict = {"recreated": args.recreate}
    code = 0
    try:
        chosen = [s for s in sources(args.posts_index, args.products_index) if s.name in args.only]
        for source in chosen:
            if args.recreate:
                await recreate_index(client, source.index, source.mapping)
            else:
                await ensure_index(client, source.index, source.mapping)
        for source in chosen:
            tallies.append(Tally(name=source.name, index=source.index))
            await rebuild(
                client,
                source,
                tallies[-1],
                settle_seconds=args.settle_seconds,
                batch_size=args.batch_size,
                timeout=args.timeout,
            )
    except MappingMismatch as exc:
        summary["error"], code = str(exc), 2
    except grpc.aio.AioRpcError as exc:  # an export broke: report what was done so far
        log.warning("export failed", extra={"code": exc.code().name, "details": exc.details()})
        summary["error"], code = f"export failed: {exc.code().name}: {exc.details()}", 1
    except Exception as exc:  # OpenSearch (or anything else) broke
        log.exception("reindex failed")
        summary["error"], code = f"{type(exc).__name__}: {exc}", 1
    finally:
        await client.close()
        await clients.close_all()
    for tally in tallies:
        summary[tally.name] = {k: v for k, v in asdict(tally).items() if k != "name" and (k != "errors" or v)}
    for total in ("exported", "indexed", "already_current", "skipped", "deleted_stale", "failed"):
        summary[total] = sum(getattr(t, total) for t in tallies)
    summary["seconds"] = round(time.monotonic() - started, 2)
    if code == 0 and summary["failed"]:
        code = 1
    return summary, code


def parse_args(argv: list[str] | None, settings: SearchSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.search.reindex",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--recreate",
        action="store_true",
        help="drop and recreate the indices first (mapping changes); searches are "
        "incomplete until the export has refilled them",
    )
    parser.add_argument(
        "--only",
        choices=("posts", "products"),
        action="append",
        help="rebuild only this index (repeatable; default both)",
    )
    parser.add_argument("--posts-index", default=documents.POSTS_INDEX)
    parser.add_argument("--products-index", default=documents.PRODUCTS_INDEX)
    parser.add_argument(
        "--settle-seconds",
        type=float,
        # How long a write may take between minting its id and being committed,
        # plus clock skew between hosts: the posts service writes within its
        # Cassandra timeout (10 s), the catalog mints the event id inside a short
        # transaction. Anything younger is left to the indexer (it will arrive).
        default=settings.reindex_settle_seconds,
        help="ids younger than this before the start are left to the indexer by the sweep (default %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=500, help="export batch size, 1..1000")
    parser.add_argument("--timeout", type=float, default=3600.0, help="deadline of each export stream, seconds")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be 1..1000")
    if args.settle_seconds < 0:
        parser.error("--settle-seconds must be >= 0")
    args.only = args.only or ["posts", "products"]
    return args


def main(argv: list[str] | None = None) -> int:
    settings = load(SearchSettings)
    args = parse_args(argv, settings)
    setup_logging("search-reindex")
    # It reads the posts and products as the search service does.
    mesh.set_identity("search")
    logging.getLogger("opensearch").setLevel(logging.WARNING)
    summary, code = asyncio.run(run(args, settings))
    print(json.dumps(summary, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
