"""The internal export streams the search reindex reads, against the running
posts and catalog services: PostsService.ExportPosts (every live post, paged
through Cassandra) and CatalogService.ExportProducts (every product, inactive
ones included, keyset-paged in id order). Data is created through Envoy."""

from __future__ import annotations

import secrets

import grpc
import pytest

from aviary.catalog.v1 import catalog_pb2
from aviary.posts.v1 import posts_pb2
from tests.e2e.commerce import create_product, sign_up_seller
from tests.e2e.edge import post, sign_up

STREAM_TIMEOUT = 120.0


def test_export_posts_streams_live_posts_in_bounded_batches_without_deleted_ones(http, posts):
    author = sign_up(http, "xp")
    tag = f"x{secrets.token_hex(4)}"
    live = post(http, author, f"exported #{tag}")
    deleted = post(http, author, "not exported")
    assert http.delete(f"/v1/posts/{deleted['id']}", headers=author.auth).status_code == 200

    seen: dict[int, object] = {}
    for batch in posts.ExportPosts(posts_pb2.ExportPostsRequest(batch_size=1000), timeout=STREAM_TIMEOUT):
        assert 0 < len(batch.posts) <= 1000
        for p in batch.posts:
            assert p.post_id not in seen, f"post {p.post_id} exported twice"
            seen[p.post_id] = p

    assert int(deleted["id"]) not in seen
    exported = seen[int(live["id"])]
    assert exported.author_id == int(author.id) and exported.text == f"exported #{tag}"
    assert list(exported.hashtags) == [tag]
    assert exported.created_at.ToJsonString().startswith(live["createdAt"][:19])


@pytest.mark.parametrize("batch_size", [-1, 1001])
def test_export_batch_sizes_out_of_range_are_refused_naming_the_field(posts, catalog, batch_size):
    for call in (
        lambda: list(posts.ExportPosts(posts_pb2.ExportPostsRequest(batch_size=batch_size), timeout=10)),
        lambda: list(catalog.ExportProducts(catalog_pb2.ExportProductsRequest(batch_size=batch_size), timeout=10)),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith("batch_size")


def test_export_products_pages_every_product_in_id_order_inactive_ones_included(http, catalog):
    seller = sign_up_seller(http)
    active = create_product(http, seller, stock=1, title=f"Active {secrets.token_hex(3)}")
    hidden = create_product(http, seller, stock=1, title=f"Hidden {secrets.token_hex(3)}")
    r = http.patch(f"/v1/products/{hidden['id']}", headers=seller.auth, json={"active": False})
    assert r.status_code == 200, r.text

    batches = list(catalog.ExportProducts(catalog_pb2.ExportProductsRequest(batch_size=7), timeout=STREAM_TIMEOUT))
    assert len(batches) >= 2 and all(0 < len(b.products) <= 7 for b in batches)
    exported = [p for b in batches for p in b.products]
    ids = [p.product_id for p in exported]
    assert ids == sorted(set(ids))  # id order, each once, across the keyset pages
    by_id = {p.product_id: p for p in exported}
    assert by_id[int(active["id"])].active is True and by_id[int(active["id"])].title == active["title"]
    assert by_id[int(hidden["id"])].active is False
    assert by_id[int(hidden["id"])].seller_id == int(seller.id)
