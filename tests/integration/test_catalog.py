"""catalog over gRPC against the running stack: identity (roles), media, inventory,
PostgreSQL and Kafka; plus posts' product tags, and both services degrading
when the service they join from is unreachable (second processes pointed at a
dead address, so the shared stack is never disturbed).

Every test signs up fresh accounts, so it only ever sees its own products.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.api import httpbody_pb2

from aviary.catalog.v1 import catalog_pb2 as pb
from aviary.catalog.v1 import catalog_pb2_grpc
from aviary.events.v1 import events_pb2
from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from aviary.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from aviary.media.v1 import media_pb2, media_pb2_grpc
from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from services.kit.settings import service_addr
from services.kit.events.kafka import CATALOG_TOPIC
from tests.media_files import png
from tests.media_files import video as real_video
from tests.integration.support import TopicReader, free_port, stop_process, wait_serving

REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
TIMEOUT = 15.0


# -- plumbing -----------------------------------------------------------------------------


def _stub(name: str, stub_class):
    channel = wait_serving(service_addr(name))
    yield stub_class(channel)
    channel.close()


@pytest.fixture(scope="module")
def identity():
    yield from _stub("identity", identity_pb2_grpc.IdentityServiceStub)


@pytest.fixture(scope="module")
def catalog():
    yield from _stub("catalog", catalog_pb2_grpc.CatalogServiceStub)


@pytest.fixture(scope="module")
def inventory():
    yield from _stub("inventory", inventory_pb2_grpc.InventoryServiceStub)


@pytest.fixture(scope="module")
def media():
    yield from _stub("media", media_pb2_grpc.MediaServiceStub)


@pytest.fixture(scope="module")
def posts():
    yield from _stub("posts", posts_pb2_grpc.PostsServiceStub)


class Account:
    def __init__(self, response: identity_pb2.CreateAccountResponse) -> None:
        self.id = response.user.id
        self.auth = (("authorization", f"Bearer {response.access_token}"),)


def sign_up(identity, role: str = "") -> Account:
    return Account(
        identity.CreateAccount(
            identity_pb2.CreateAccountRequest(username=f"t_{secrets.token_hex(4)}", password=PASSWORD, role=role),
            timeout=TIMEOUT,
        )
    )


def create(catalog, seller: Account, **fields) -> pb.Product:
    request = {"title": "Blue mug", "price_minor": 1250, "currency": "USD", "stock": 5, **fields}
    return catalog.CreateProduct(pb.CreateProductRequest(**request), metadata=seller.auth, timeout=TIMEOUT)


def get(catalog, product_id: str) -> pb.Product:
    return catalog.GetProduct(pb.GetProductRequest(product_id=product_id), timeout=TIMEOUT)


def listed(catalog, seller: Account, page_size: int = 100) -> list[str]:
    response = catalog.ListProducts(pb.ListProductsRequest(seller_id=seller.id, page_size=page_size), timeout=TIMEOUT)
    return [p.id for p in response.products]


def upload(media, owner: Account, content_type: str = "image/png", data: bytes | None = None) -> str:
    return media.UploadMedia(
        media_pb2.UploadMediaRequest(file=httpbody_pb2.HttpBody(content_type=content_type, data=data or png())),
        metadata=owner.auth,
        timeout=TIMEOUT,
    ).media_id


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


# -- create ---------------------------------------------------------------------------------


def test_a_seller_creates_a_product_with_stock_and_reads_it_back(identity, catalog, media):
    seller = sign_up(identity, "seller")  # the role is case-insensitive
    images = [upload(media, seller), upload(media, seller)]
    before = time.time()
    created = create(
        catalog,
        seller,
        title="  Blue mug  ",
        description="Holds coffee.\nDishwasher safe.",
        price_minor=1250,
        currency="usd",
        media_ids=images,
        stock=7,
    )

    assert created.id.isdigit() and created.seller_id == seller.id
    assert created.title == "Blue mug"
    assert created.description == "Holds coffee.\nDishwasher safe."
    assert (created.price_minor, created.currency) == (1250, "USD")
    assert list(created.media_ids) == images
    assert created.stock == 7 and created.active
    assert before - 5 <= created.created_at.seconds <= time.time() + 5
    assert get(catalog, created.id) == created
    assert listed(catalog, seller) == [created.id]


def test_only_seller_accounts_can_create_products(identity, catalog):
    user = sign_up(identity)
    err = rpc_error(create, catalog, user)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "role SELLER" in err.details()
    assert listed(catalog, user) == []

    err = rpc_error(
        catalog.CreateProduct, pb.CreateProductRequest(title="x", price_minor=1, currency="USD"), timeout=TIMEOUT
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"title": ""}, "title: is required"),
        ({"title": "   "}, "title: is required"),
        ({"title": "x" * 121}, "title: must be at most 120 characters, got 121"),
        ({"title": "bell\x07"}, "title: must not contain control characters"),
        ({"description": "d" * 5001}, "description: must be at most 5000 characters"),
        ({"price_minor": 0}, "price_minor: must be 1..100,000,000"),
        ({"price_minor": 100_000_001}, "price_minor: must be 1..100,000,000"),
        ({"currency": ""}, "currency: is required"),
        ({"currency": "US"}, "currency: must be a 3-letter ISO 4217 code"),
        ({"currency": "US1"}, "currency: must be a 3-letter ISO 4217 code"),
        ({"currency": "USD\n"}, "currency: must be a 3-letter ISO 4217 code"),
        ({"stock": -1}, "stock: must be 0..1,000,000"),
        ({"stock": 1_000_001}, "stock: must be 0..1,000,000"),
        ({"media_ids": ["1"] * 9}, "media_ids: at most 8 items, got 9"),
        ({"media_ids": ["12", "x"]}, "media_ids[1]: must be a decimal 64-bit id"),
        ({"media_ids": ["12", "12"]}, "media_ids[1]: media 12 is listed more than once"),
        ({"media_ids": ["123456789"]}, "media_ids[0]: media 123456789 does not exist"),
    ],
)
def test_bad_products_are_invalid_argument_naming_the_field_and_nothing_is_written(identity, catalog, fields, expected):
    seller = sign_up(identity, "SELLER")
    err = rpc_error(create, catalog, seller, **fields)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(expected), err.details()
    assert listed(catalog, seller) == []


def test_product_images_must_be_the_sellers_own_images(identity, catalog, media):
    seller, other = sign_up(identity, "SELLER"), sign_up(identity)
    theirs = upload(media, other)
    err = rpc_error(create, catalog, seller, media_ids=[upload(media, seller), theirs])
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details().startswith(f"media_ids[1]: media {theirs} was uploaded by someone else")

    video = upload(media, seller, "video/mp4", real_video())
    err = rpc_error(create, catalog, seller, media_ids=[video])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == f"media_ids[0]: media {video} is video/mp4, not an image"
    assert listed(catalog, seller) == []


# -- update and restock -----------------------------------------------------------------------


def test_update_changes_only_the_fields_given(identity, catalog):
    seller = sign_up(identity, "SELLER")
    product = create(catalog, seller, description="first")
    updated = catalog.UpdateProduct(
        pb.UpdateProductRequest(product_id=product.id, price_minor=999), metadata=seller.auth, timeout=TIMEOUT
    )
    assert updated.price_minor == 999
    assert (updated.title, updated.description, updated.active, updated.stock) == ("Blue mug", "first", True, 5)

    # An empty description is a change, not an absence.
    updated = catalog.UpdateProduct(
        pb.UpdateProductRequest(product_id=product.id, title="Red mug", description=""),
        metadata=seller.auth,
        timeout=TIMEOUT,
    )
    assert (updated.title, updated.description, updated.price_minor) == ("Red mug", "", 999)
    assert get(catalog, product.id) == updated


def test_inactive_products_leave_listings_but_stay_readable(identity, catalog):
    seller = sign_up(identity, "SELLER")
    kept, hidden = create(catalog, seller), create(catalog, seller)
    off = catalog.UpdateProduct(
        pb.UpdateProductRequest(product_id=hidden.id, active=False), metadata=seller.auth, timeout=TIMEOUT
    )
    assert not off.active
    assert listed(catalog, seller) == [kept.id]
    assert get(catalog, hidden.id).active is False
    batch = catalog.BatchGetProducts(pb.BatchGetProductsRequest(product_ids=[hidden.id, kept.id]), timeout=TIMEOUT)
    assert [(p.id, p.active) for p in batch.products] == [(hidden.id, False), (kept.id, True)]

    catalog.UpdateProduct(
        pb.UpdateProductRequest(product_id=hidden.id, active=True), metadata=seller.auth, timeout=TIMEOUT
    )
    assert listed(catalog, seller) == [hidden.id, kept.id]


def test_only_the_products_seller_may_update_or_restock_it(identity, catalog):
    seller, other_seller = sign_up(identity, "SELLER"), sign_up(identity, "SELLER")
    product = create(catalog, seller)
    err = rpc_error(
        catalog.UpdateProduct,
        pb.UpdateProductRequest(product_id=product.id, title="mine now"),
        metadata=other_seller.auth,
        timeout=TIMEOUT,
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = rpc_error(
        catalog.RestockProduct,
        pb.RestockProductRequest(product_id=product.id, quantity=5, idempotency_key="k"),
        metadata=other_seller.auth,
        timeout=TIMEOUT,
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert get(catalog, product.id) == product


@pytest.mark.parametrize(
    "fields, code, expected",
    [
        ({}, grpc.StatusCode.INVALID_ARGUMENT, "nothing to change: set at least one of title, description"),
        ({"title": ""}, grpc.StatusCode.INVALID_ARGUMENT, "title: is required"),
        ({"price_minor": -5}, grpc.StatusCode.INVALID_ARGUMENT, "price_minor: must be 1..100,000,000"),
        ({"product_id": "nope"}, grpc.StatusCode.INVALID_ARGUMENT, "product_id: must be a decimal 64-bit id"),
        ({"product_id": "4242", "title": "x"}, grpc.StatusCode.NOT_FOUND, "product 4242 does not exist"),
    ],
)
def test_bad_updates_are_refused_and_change_nothing(identity, catalog, fields, code, expected):
    seller = sign_up(identity, "SELLER")
    product = create(catalog, seller)
    err = rpc_error(
        catalog.UpdateProduct,
        pb.UpdateProductRequest(**{"product_id": product.id, **fields}),
        metadata=seller.auth,
        timeout=TIMEOUT,
    )
    assert err.code() == code
    assert err.details().startswith(expected), err.details()
    assert get(catalog, product.id) == product


def test_restock_adds_once_per_idempotency_key(identity, catalog):
    seller = sign_up(identity, "SELLER")
    product = create(catalog, seller, stock=2)
    request = pb.RestockProductRequest(product_id=product.id, quantity=10, idempotency_key="truck-1")
    assert catalog.RestockProduct(request, metadata=seller.auth, timeout=TIMEOUT).stock == 12
    assert catalog.RestockProduct(request, metadata=seller.auth, timeout=TIMEOUT).stock == 12
    err = rpc_error(
        catalog.RestockProduct,
        pb.RestockProductRequest(product_id=product.id, quantity=11, idempotency_key="truck-1"),
        metadata=seller.auth,
        timeout=TIMEOUT,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("idempotency_key:")
    for bad, expected in [
        ({"quantity": 0}, "quantity: must be 1..1,000,000"),
        ({"idempotency_key": ""}, "idempotency_key: is required"),
    ]:
        fields = {"product_id": product.id, "quantity": 1, "idempotency_key": "truck-2", **bad}
        err = rpc_error(
            catalog.RestockProduct, pb.RestockProductRequest(**fields), metadata=seller.auth, timeout=TIMEOUT
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith(expected), err.details()
    assert get(catalog, product.id).stock == 12


# -- reads ------------------------------------------------------------------------------------


def test_stock_is_what_inventory_has_available(identity, catalog, inventory):
    seller = sign_up(identity, "SELLER")
    product = create(catalog, seller, stock=5)
    inventory.ReserveStock(
        inventory_pb2.ReserveStockRequest(
            reservation_id=f"test-{secrets.token_hex(8)}",
            items=[inventory_pb2.ReservationItem(product_id=product.id, quantity=3)],
        ),
        timeout=TIMEOUT,
    )
    assert get(catalog, product.id).stock == 2
    assert catalog.ListProducts(pb.ListProductsRequest(seller_id=seller.id), timeout=TIMEOUT).products[0].stock == 2
    batch = catalog.BatchGetProducts(pb.BatchGetProductsRequest(product_ids=[product.id]), timeout=TIMEOUT)
    assert batch.products[0].stock == 2
    skipped = catalog.BatchGetProducts(
        pb.BatchGetProductsRequest(product_ids=[product.id], skip_stock=True), timeout=TIMEOUT
    )
    assert skipped.products[0].stock == 0


def test_list_pages_newest_first_without_gaps_or_repeats(identity, catalog):
    seller, other = sign_up(identity, "SELLER"), sign_up(identity, "SELLER")
    made = [create(catalog, seller, title=f"item {i}").id for i in range(5)]
    create(catalog, other)
    seen, token, pages = [], "", 0
    while True:
        page = catalog.ListProducts(
            pb.ListProductsRequest(seller_id=seller.id, page_size=2, page_token=token), timeout=TIMEOUT
        )
        seen += [p.id for p in page.products]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(made))
    assert pages == 3
    # Without the seller filter the newest products of everyone come first.
    everyone = catalog.ListProducts(pb.ListProductsRequest(page_size=100), timeout=TIMEOUT).products
    ids = [int(p.id) for p in everyone]
    assert ids == sorted(ids, reverse=True)
    assert all(p.active for p in everyone)


@pytest.mark.parametrize(
    "request_, expected",
    [
        (pb.ListProductsRequest(page_token="garbage!"), "page_token: is malformed"),
        (pb.ListProductsRequest(page_size=-1), "page_size: must be between 0 and 100"),
        (pb.ListProductsRequest(seller_id="x1"), "seller_id: must be a decimal 64-bit id"),
    ],
)
def test_bad_list_requests_name_the_field(catalog, request_, expected):
    err = rpc_error(catalog.ListProducts, request_, timeout=TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(expected), err.details()


def test_get_of_an_unknown_product_is_not_found(catalog):
    err = rpc_error(catalog.GetProduct, pb.GetProductRequest(product_id="77"), timeout=TIMEOUT)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "product 77 does not exist" in err.details()


def test_batch_get_answers_in_request_order_leaving_unknown_ids_out(identity, catalog):
    seller = sign_up(identity, "SELLER")
    a, b = create(catalog, seller, title="a"), create(catalog, seller, title="b")
    batch = catalog.BatchGetProducts(pb.BatchGetProductsRequest(product_ids=[b.id, "77", a.id, b.id]), timeout=TIMEOUT)
    assert [p.title for p in batch.products] == ["b", "a"]
    err = rpc_error(catalog.BatchGetProducts, pb.BatchGetProductsRequest(product_ids=["1"] * 201), timeout=TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("product_ids: at most 200 items")


# -- events -----------------------------------------------------------------------------------


@pytest.fixture
def topic_reader():
    reader = TopicReader(CATALOG_TOPIC, events_pb2.ProductEvent)
    yield reader
    reader.close()


def test_create_and_update_publish_product_events_keyed_by_product(identity, catalog, topic_reader):
    seller = sign_up(identity, "SELLER")
    product = create(catalog, seller, title="Evented mug")
    catalog.UpdateProduct(
        pb.UpdateProductRequest(product_id=product.id, price_minor=777, active=False),
        metadata=seller.auth,
        timeout=TIMEOUT,
    )
    pid = int(product.id)
    records = topic_reader.wait_for(lambda e: e.upserted.product_id == pid, count=2)
    assert len(records) == 2, "expected the create and the update events within 20 s"
    created, updated = (topic_reader.event(r) for r in records)
    assert all(r.key == product.id.encode() for r in records)
    assert records[0].partition == records[1].partition and records[0].offset < records[1].offset
    assert 0 < created.event_id < updated.event_id
    assert (created.upserted.seller_id, created.upserted.title, created.upserted.price_minor) == (
        int(seller.id),
        "Evented mug",
        1250,
    )
    assert created.upserted.active and created.upserted.currency == "USD"
    assert (updated.upserted.price_minor, updated.upserted.active) == (777, False)
    assert updated.upserted.title == "Evented mug"
    assert updated.upserted.created_at == product.created_at


# -- product tags on posts --------------------------------------------------------------------


def test_posts_tag_active_products_and_show_them(identity, catalog, posts):
    seller, author = sign_up(identity, "SELLER"), sign_up(identity)
    mug, lamp = create(catalog, seller, title="Mug"), create(catalog, seller, title="Lamp")
    post = posts.CreatePost(
        posts_pb2.CreatePostRequest(text="look", product_ids=[lamp.id, mug.id]), metadata=author.auth, timeout=TIMEOUT
    )
    assert [p.title for p in post.products] == ["Lamp", "Mug"]
    assert post.products[0].seller_id == seller.id and post.products[0].price_minor == 1250
    fetched = posts.GetPost(posts_pb2.GetPostRequest(post_id=post.id), timeout=TIMEOUT)
    assert [p.id for p in fetched.products] == [lamp.id, mug.id]

    # A product made inactive later is still shown on existing posts ...
    catalog.UpdateProduct(
        pb.UpdateProductRequest(product_id=mug.id, active=False), metadata=seller.auth, timeout=TIMEOUT
    )
    # ... but cannot be tagged on new ones.
    err = rpc_error(
        posts.CreatePost,
        posts_pb2.CreatePostRequest(text="again", product_ids=[lamp.id, mug.id]),
        metadata=author.auth,
        timeout=TIMEOUT,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == f"product_ids[1]: product {mug.id} is not available (inactive); tag an active product"


def test_unknown_or_repeated_product_tags_are_refused_and_nothing_is_written(identity, catalog, posts):
    seller, author = sign_up(identity, "SELLER"), sign_up(identity)
    mug = create(catalog, seller)
    for product_ids, expected in [
        ([mug.id, "4242"], "product_ids[1]: no such product 4242"),
        ([mug.id, mug.id], f"product_ids[1]: product {mug.id} is already tagged"),
    ]:
        err = rpc_error(
            posts.CreatePost,
            posts_pb2.CreatePostRequest(text="tagged", product_ids=product_ids),
            metadata=author.auth,
            timeout=TIMEOUT,
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith(expected), err.details()
    own = posts.ListUserPosts(posts_pb2.ListUserPostsRequest(user_id=author.id), timeout=TIMEOUT)
    assert list(own.posts) == []


# -- degraded dependencies -------------------------------------------------------------------


def _second_process(module: str, port_env: str, extra_env: dict[str, str]):
    """Runs another `python -m services.<module>` on free ports with `extra_env`."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        port_env: str(port),
        "AVIARY_METRICS_PORT": str(metrics_port),
        "AVIARY_HEALTH_PORT": str(free_port()),
        "AVIARY_WORKER_ID": str(1000 + secrets.randbelow(24)),
        **extra_env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", module], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        channel = wait_serving(f"127.0.0.1:{port}", deadline_s=60.0, service=module.rsplit(".", 1)[1])
        yield channel
        channel.close()
    finally:
        stop_process(proc)


@pytest.fixture
def catalog_without_inventory():
    """A second catalog process whose inventory address leads nowhere."""
    for channel in _second_process(
        "services.catalog", "AVIARY_CATALOG_PORT", {"AVIARY_INVENTORY_ADDR": f"127.0.0.1:{free_port()}"}
    ):
        yield catalog_pb2_grpc.CatalogServiceStub(channel)


@pytest.fixture
def posts_without_catalog():
    """A second posts process whose catalog address leads nowhere."""
    for channel in _second_process(
        "services.posts", "AVIARY_POSTS_PORT", {"AVIARY_CATALOG_ADDR": f"127.0.0.1:{free_port()}"}
    ):
        yield posts_pb2_grpc.PostsServiceStub(channel)


def test_catalog_reads_answer_with_stock_0_while_inventory_is_unreachable(identity, catalog, catalog_without_inventory):
    seller = sign_up(identity, "SELLER")
    product = create(catalog, seller, stock=9)
    alone = catalog_without_inventory
    started = time.monotonic()
    got = alone.GetProduct(pb.GetProductRequest(product_id=product.id), timeout=TIMEOUT)
    page = alone.ListProducts(pb.ListProductsRequest(seller_id=seller.id), timeout=TIMEOUT)
    batch = alone.BatchGetProducts(pb.BatchGetProductsRequest(product_ids=[product.id]), timeout=TIMEOUT)
    assert time.monotonic() - started < 5.0
    assert (got.title, got.stock) == (product.title, 0)
    assert [(p.id, p.stock) for p in page.products] == [(product.id, 0)]
    assert [(p.id, p.stock) for p in batch.products] == [(product.id, 0)]

    # Writes that need inventory fail cleanly and write nothing.
    err = rpc_error(create, alone, seller, title="never stored")
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "inventory" in err.details()
    assert listed(catalog, seller) == [product.id]


def test_posts_with_product_tags_read_fine_while_the_catalog_is_unreachable(
    identity, catalog, posts, posts_without_catalog
):
    seller, author = sign_up(identity, "SELLER"), sign_up(identity)
    mug = create(catalog, seller, title="Mug")
    tagged = posts.CreatePost(
        posts_pb2.CreatePostRequest(text="with mug", product_ids=[mug.id]), metadata=author.auth, timeout=TIMEOUT
    )

    alone = posts_without_catalog
    started = time.monotonic()
    read = alone.GetPost(posts_pb2.GetPostRequest(post_id=tagged.id), timeout=TIMEOUT)
    assert time.monotonic() - started < 3.0
    assert read.text == "with mug" and list(read.product_ids) == [mug.id]
    assert list(read.products) == []  # degraded: ids without details

    # Posting without tags does not need the catalog; posting with tags does.
    plain = alone.CreatePost(posts_pb2.CreatePostRequest(text="no tags"), metadata=author.auth, timeout=TIMEOUT)
    assert plain.text == "no tags"
    err = rpc_error(
        alone.CreatePost,
        posts_pb2.CreatePostRequest(text="tags", product_ids=[mug.id]),
        metadata=author.auth,
        timeout=TIMEOUT,
    )
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "catalog can't be reached" in err.details()
    own = posts.ListUserPosts(posts_pb2.ListUserPostsRequest(user_id=author.id), timeout=TIMEOUT)
    assert [p.text for p in own.posts] == ["no tags", "with mug"]
