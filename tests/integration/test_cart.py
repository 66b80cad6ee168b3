"""Cart service against real Redis and the real catalog, over gRPC.

Three layers:
  * the store's Lua scripts straight against Redis (atomicity under
    concurrency, limits, expiry), with no catalog involved;
  * the running cart process's internal methods (GetUserCart,
    ClearCheckedOutItems once per checkout) on carts seeded in Redis;
  * the public methods with real products created through the catalog, plus
    second cart processes: one with a 2 s TTL, one whose catalog is unreachable.

Every test uses fresh random user ids (far above real Snowflake ids) and
deletes the keys it made.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from aviary.cart.v1 import cart_pb2, cart_pb2_grpc
from aviary.catalog.v1 import catalog_pb2
from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from services.cart.model import Line, cart_key, checkout_marker_key, encode_line
from services.cart.settings import CartSettings
from services.cart.store import CartStore
from services.kit.settings import Settings, load, service_addr
from tests import redis_clients
from tests.integration.support import free_port, stop_process, wait_serving

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("AVIARY_REDIS_URL", "redis://127.0.0.1:6379/0")
RPC_TIMEOUT = 15.0
DEFAULT_TTL = load(CartSettings).ttl_seconds  # the running service's
PASSWORD = "correct horse battery"


def random_user() -> int:
    return (1 << 62) + secrets.randbits(56)


def random_product() -> int:
    return (1 << 61) + secrets.randbits(56)


@pytest.fixture(scope="module")
def cart():
    channel = wait_serving(service_addr("cart"))
    yield cart_pb2_grpc.CartServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def identity():
    channel = wait_serving(service_addr("identity"))
    yield identity_pb2_grpc.IdentityServiceStub(channel)
    channel.close()


@pytest.fixture
def r():
    client = redis_clients.from_url(REDIS_URL)
    users: list[int] = []
    client.track_user = users.append
    yield client
    for user in users:
        keys = list(client.scan_iter(match=f"cart:{{{user}}}*"))
        if keys:
            client.delete(*keys)
    client.close()


def seed(r, user: int, lines: list[tuple[int, int]], currency: str = "USD", ttl: int = 3600) -> None:
    """A cart written in the store's layout, lines in the given order."""
    r.track_user(user)
    fields = {"_currency": currency, "_seq": len(lines)}
    fields.update({str(pid): encode_line(seq, qty) for seq, (pid, qty) in enumerate(lines, start=1)})
    r.hset(cart_key(user), mapping=fields)
    r.expire(cart_key(user), ttl)


def lines_of(cart: cart_pb2.Cart) -> list[tuple[str, int]]:
    return [(item.product_id, item.quantity) for item in cart.items]


def _start_cart_process(extra_env: dict[str, str]):
    port = free_port()
    # Every port it listens on is a free one (its health port is otherwise the gRPC port + 2000).
    env = {
        **os.environ,
        "AVIARY_CART_PORT": str(port),
        "AVIARY_METRICS_PORT": str(free_port()),
        "AVIARY_HEALTH_PORT": str(free_port()),
        **extra_env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cart"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port


@pytest.fixture(scope="module")
def short_ttl_cart():
    """A second cart process whose carts expire 2 s after their last change."""
    proc, port = _start_cart_process({"AVIARY_CART_TTL_SECONDS": "2"})
    try:
        channel = wait_serving(f"127.0.0.1:{port}", deadline_s=60.0, service="cart")
        yield cart_pb2_grpc.CartServiceStub(channel)
        channel.close()
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def cart_without_catalog():
    """A second cart process whose catalog address leads nowhere."""
    proc, port = _start_cart_process(
        {"AVIARY_CATALOG_ADDR": f"127.0.0.1:{free_port()}", "AVIARY_CART_CATALOG_TIMEOUT_SECONDS": "1"}
    )
    try:
        channel = wait_serving(f"127.0.0.1:{port}", deadline_s=60.0, service="cart")
        yield cart_pb2_grpc.CartServiceStub(channel)
        channel.close()
    finally:
        stop_process(proc)


# -- the store's scripts against Redis ----------------------------------------------------


@pytest.fixture
async def store(r):
    stores: list[CartStore] = []

    def make(*, ttl_seconds: int = 3600, max_lines: int = 50) -> CartStore:
        made = CartStore(
            Settings(redis_url=REDIS_URL),
            ttl_seconds=ttl_seconds,
            max_lines=max_lines,
            max_line_quantity=100,
            checkout_marker_ttl_seconds=3600,
        )
        stores.append(made)
        return made

    yield make
    for made in stores:
        await made.close()


async def test_concurrent_adds_lose_no_unit_and_never_pass_the_line_limit(store, r):
    s, user, product = store(), random_user(), random_product()
    r.track_user(user)
    replies = await asyncio.gather(*(s.add(user, product, 1, "USD", 500) for _ in range(60)))
    assert all(reply.status == "ok" for reply in replies)
    assert (await s.read(user)).quantity_of(product) == 60
    # 60 more single units race for the 40 left on the line: exactly 40 win.
    replies = await asyncio.gather(*(s.add(user, product, 1, "USD", 500) for _ in range(60)))
    assert sum(reply.status == "ok" for reply in replies) == 40
    refused = [reply for reply in replies if reply.status == "line_full"]
    assert len(refused) == 20 and {reply.detail for reply in refused} == {"100"}
    assert (await s.read(user)).quantity_of(product) == 100


async def test_concurrent_adds_of_different_products_never_exceed_max_lines(store, r):
    s, user = store(max_lines=5), random_user()
    r.track_user(user)
    products = [random_product() for _ in range(20)]
    replies = await asyncio.gather(*(s.add(user, p, 1, "USD", 500) for p in products))
    assert sum(reply.status == "ok" for reply in replies) == 5
    assert {reply.detail for reply in replies if reply.status != "ok"} == {"5"}
    assert len((await s.read(user)).lines) == 5
    # Adding to a line already there is still fine when the cart is full.
    kept = (await s.read(user)).lines[0].product_id
    assert (await s.add(user, kept, 2, "USD", 500)).status == "ok"


async def test_lines_stay_in_insertion_order_through_changes(store, r):
    s, user = store(), random_user()
    r.track_user(user)
    a, b, c = (random_product() for _ in range(3))
    # Ids chosen so that numeric order differs from insertion order.
    for product in (c, a, b):
        await s.add(user, product, 1, "USD", 500)
    await s.add(user, c, 3, "USD", 500)
    await s.update(user, a, 7)
    state = (await s.remove(user, b)).state
    assert [(line.product_id, line.quantity) for line in state.lines] == [(c, 4), (a, 7)]
    await s.add(user, b, 1, "USD", 500)  # re-added: now the newest line
    assert (await s.read(user)).product_ids == [c, a, b]


async def test_a_line_keeps_the_price_it_was_last_added_at(store, r):
    s, user, kept, bought = store(), random_user(), random_product(), random_product()
    r.track_user(user)
    await s.add(user, kept, 2, "USD", 1000)
    await s.add(user, bought, 3, "USD", 250)
    await s.update(user, kept, 5)  # a quantity change is not agreeing to another price
    assert r.hget(cart_key(user), str(kept)) == b"1:5:1000"
    await s.clear_checked_out(user, f"co-{secrets.token_hex(4)}", [(bought, 1)])
    assert r.hget(cart_key(user), str(bought)) == b"2:2:250"
    # Adding again records today's price on the whole line.
    state = (await s.add(user, kept, 1, "USD", 1200)).state
    assert [(line.quantity, line.added_price_minor) for line in state.lines] == [(6, 1200), (2, 250)]
    # A line stored before prices were recorded keeps working, and gets one when added to.
    r.hset(cart_key(user), str(kept), encode_line(1, 4))
    await s.update(user, kept, 3)
    assert (await s.read(user)).lines[0].added_price_minor is None
    assert (await s.add(user, kept, 1, "USD", 900)).state.lines[0] == Line(kept, 4, 1, 900)


async def test_currency_mismatch_refused_atomically_and_freed_when_cart_empties(store, r):
    s, user, usd, eur = store(), random_user(), random_product(), random_product()
    r.track_user(user)
    await s.add(user, usd, 1, "USD", 500)
    reply = await s.add(user, eur, 1, "EUR", 500)
    assert (reply.status, reply.detail) == ("currency", "USD")
    assert reply.state.product_ids == [usd]
    await s.remove(user, usd)
    assert not r.exists(cart_key(user))  # the last line took the cart (and its currency) with it
    assert (await s.add(user, eur, 1, "EUR", 500)).status == "ok"
    assert (await s.read(user)).currency == "EUR"


async def test_update_of_absent_line_changes_nothing_and_remove_is_idempotent(store, r):
    s, user, here, absent = store(), random_user(), random_product(), random_product()
    r.track_user(user)
    await s.add(user, here, 2, "USD", 500)
    assert (await s.update(user, absent, 5)).status == "missing"
    assert (await s.read(user)).product_ids == [here]
    assert (await s.remove(user, absent)).status == "absent"
    assert (await s.remove(user, here)).status == "ok"
    assert (await s.remove(user, here)).status == "absent"
    assert (await s.read(user)).lines == []
    assert not r.exists(cart_key(user))


async def test_every_change_renews_the_ttl(store, r):
    s, user, product = store(ttl_seconds=1000), random_user(), random_product()
    r.track_user(user)
    await s.add(user, product, 1, "USD", 500)
    r.expire(cart_key(user), 10)
    await s.update(user, product, 3)
    assert 990 <= r.ttl(cart_key(user)) <= 1000
    r.expire(cart_key(user), 10)
    await s.add(user, product, 1, "USD", 500)
    assert 990 <= r.ttl(cart_key(user)) <= 1000
    state = await s.read(user)
    assert 990_000 - 5_000 <= state.ttl_ms <= 1_000_000


async def test_cart_expires_and_reads_empty(store, r):
    s, user, product = store(ttl_seconds=1), random_user(), random_product()
    r.track_user(user)
    await s.add(user, product, 1, "USD", 500)
    assert (await s.read(user)).product_ids == [product]
    await asyncio.sleep(1.6)
    state = await s.read(user)
    assert state.lines == [] and state.ttl_ms is None


# -- internal methods of the running process ------------------------------------------------


def test_get_user_cart_of_unknown_user_is_empty(cart):
    user = random_user()
    got = cart.GetUserCart(cart_pb2.GetUserCartRequest(user_id=str(user)), timeout=RPC_TIMEOUT)
    assert got.user_id == str(user)
    assert list(got.items) == [] and got.currency == ""
    assert not got.HasField("expires_at")


def test_get_user_cart_returns_raw_lines_oldest_first_with_expiry(cart, r):
    user, a, b = random_user(), random_product(), random_product()
    seed(r, user, [(b, 2), (a, 5)], currency="EUR", ttl=3600)
    got = cart.GetUserCart(cart_pb2.GetUserCartRequest(user_id=str(user)), timeout=RPC_TIMEOUT)
    assert lines_of(got) == [(str(b), 2), (str(a), 5)]
    assert got.currency == "EUR" and got.total_minor == 0
    assert all(item.unit_price_minor == 0 and item.title == "" for item in got.items)
    remaining = got.expires_at.ToSeconds() - time.time()
    assert 3590 <= remaining <= 3601


def test_clear_checked_out_items_runs_once_per_checkout(cart, r):
    user, a, b, c = random_user(), random_product(), random_product(), random_product()
    seed(r, user, [(a, 3), (b, 2), (c, 1)])
    checkout = f"co-{secrets.token_hex(6)}"
    bought = [cart_pb2.CartItem(product_id=str(a), quantity=1), cart_pb2.CartItem(product_id=str(b), quantity=2)]
    after = cart.ClearCheckedOutItems(
        cart_pb2.ClearCheckedOutItemsRequest(user_id=str(user), checkout_id=checkout, items=bought), timeout=RPC_TIMEOUT
    )
    # a: 3 - 1 left; b bought out entirely, so gone; c not bought, stays.
    assert lines_of(after) == [(str(a), 2), (str(c), 1)]
    assert r.ttl(checkout_marker_key(user, checkout)) > 0

    # The buyer adds more of a meanwhile; the checkout's retry must not take it again.
    r.hset(cart_key(user), str(a), encode_line(1, 4))
    again = cart.ClearCheckedOutItems(
        cart_pb2.ClearCheckedOutItemsRequest(user_id=str(user), checkout_id=checkout, items=bought), timeout=RPC_TIMEOUT
    )
    assert lines_of(again) == [(str(a), 4), (str(c), 1)]

    # Another checkout is another matter.
    other = cart.ClearCheckedOutItems(
        cart_pb2.ClearCheckedOutItemsRequest(user_id=str(user), checkout_id=checkout + "-2", items=bought),
        timeout=RPC_TIMEOUT,
    )
    assert lines_of(other) == [(str(a), 3), (str(c), 1)]


def test_clear_checked_out_items_concurrent_retries_take_lines_once(cart, r):
    user, a = random_user(), random_product()
    seed(r, user, [(a, 10)])
    request = cart_pb2.ClearCheckedOutItemsRequest(
        user_id=str(user),
        checkout_id=f"co-{secrets.token_hex(6)}",
        items=[cart_pb2.CartItem(product_id=str(a), quantity=3)],
    )
    futures = [cart.ClearCheckedOutItems.future(request, timeout=RPC_TIMEOUT) for _ in range(20)]
    for future in futures:
        future.result()
    got = cart.GetUserCart(cart_pb2.GetUserCartRequest(user_id=str(user)), timeout=RPC_TIMEOUT)
    assert lines_of(got) == [(str(a), 7)]


def test_clearing_every_line_deletes_the_cart(cart, r):
    user, a = random_user(), random_product()
    seed(r, user, [(a, 2)])
    after = cart.ClearCheckedOutItems(
        cart_pb2.ClearCheckedOutItemsRequest(
            user_id=str(user), checkout_id="co-all", items=[cart_pb2.CartItem(product_id=str(a), quantity=2)]
        ),
        timeout=RPC_TIMEOUT,
    )
    assert list(after.items) == [] and not after.HasField("expires_at")
    assert not r.exists(cart_key(user))


def test_clear_on_an_expired_cart_still_marks_the_checkout(cart, r):
    user, a = random_user(), random_product()
    r.track_user(user)
    request = cart_pb2.ClearCheckedOutItemsRequest(
        user_id=str(user), checkout_id="co-late", items=[cart_pb2.CartItem(product_id=str(a), quantity=1)]
    )
    assert list(cart.ClearCheckedOutItems(request, timeout=RPC_TIMEOUT).items) == []
    assert r.exists(checkout_marker_key(user, "co-late"))
    assert not r.exists(cart_key(user))


@pytest.mark.parametrize(
    "request_fields, field",
    [
        ({"user_id": "abc", "checkout_id": "c", "items": [{"product_id": "1", "quantity": 1}]}, "user_id"),
        ({"user_id": "5", "checkout_id": "", "items": [{"product_id": "1", "quantity": 1}]}, "checkout_id"),
        ({"user_id": "5", "checkout_id": "c", "items": []}, "items"),
        ({"user_id": "5", "checkout_id": "c", "items": [{"product_id": "x", "quantity": 1}]}, "items[0].product_id"),
        (
            {
                "user_id": "5",
                "checkout_id": "c",
                "items": [{"product_id": "1", "quantity": 1}, {"product_id": "2", "quantity": 0}],
            },
            "items[1].quantity",
        ),
    ],
)
def test_clear_checked_out_items_bad_input_names_the_field_and_writes_nothing(cart, r, request_fields, field):
    fields = dict(request_fields)
    items = [cart_pb2.CartItem(**item) for item in fields.pop("items")]
    with pytest.raises(grpc.RpcError) as err:
        cart.ClearCheckedOutItems(cart_pb2.ClearCheckedOutItemsRequest(items=items, **fields), timeout=RPC_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}: ")
    if fields["user_id"].isdigit() and fields["checkout_id"]:
        assert not r.exists(checkout_marker_key(int(fields["user_id"]), fields["checkout_id"]))


def test_get_user_cart_bad_user_id(cart):
    with pytest.raises(grpc.RpcError) as err:
        cart.GetUserCart(cart_pb2.GetUserCartRequest(user_id="-3"), timeout=RPC_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("user_id: ")


@pytest.mark.parametrize(
    "call, message",
    [
        ("GetCart", cart_pb2.GetCartRequest()),
        ("AddCartItem", cart_pb2.AddCartItemRequest(product_id="1", quantity=1)),
        ("UpdateCartItem", cart_pb2.UpdateCartItemRequest(product_id="1", quantity=1)),
        ("RemoveCartItem", cart_pb2.RemoveCartItemRequest(product_id="1")),
    ],
)
def test_public_methods_need_a_token(cart, call, message):
    with pytest.raises(grpc.RpcError) as err:
        getattr(cart, call)(message, timeout=RPC_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- public methods with real catalog products --------------------------------------------------


def _account(identity, role: str = "") -> tuple[str, tuple]:
    resp = identity.CreateAccount(
        identity_pb2.CreateAccountRequest(username=f"c_{secrets.token_hex(5)}", password=PASSWORD, role=role),
        timeout=RPC_TIMEOUT,
    )
    return resp.user.id, (("authorization", f"Bearer {resp.access_token}"),)


@pytest.fixture(scope="module")
def seller(identity):
    return _account(identity, "SELLER")


@pytest.fixture
def buyer(identity, r):
    user_id, auth = _account(identity)
    r.track_user(int(user_id))
    return user_id, auth


def make_product(catalog, seller, *, price: int = 1250, currency: str = "USD", title: str = "") -> catalog_pb2.Product:
    _, auth = seller
    return catalog.CreateProduct(
        catalog_pb2.CreateProductRequest(
            title=title or f"thing {secrets.token_hex(3)}", price_minor=price, currency=currency, stock=100
        ),
        metadata=auth,
        timeout=RPC_TIMEOUT,
    )


def add(cart, who, product_id: str, quantity: int) -> cart_pb2.Cart:
    return cart.AddCartItem(
        cart_pb2.AddCartItemRequest(product_id=product_id, quantity=quantity), metadata=who[1], timeout=RPC_TIMEOUT
    )


def get(cart, who) -> cart_pb2.Cart:
    return cart.GetCart(cart_pb2.GetCartRequest(), metadata=who[1], timeout=RPC_TIMEOUT)


def test_add_prices_from_the_catalog_and_get_joins_current_prices(cart, catalog, seller, buyer):
    mug, pen = make_product(catalog, seller, price=1250, title="mug"), make_product(catalog, seller, price=199)
    add(cart, buyer, mug.id, 2)
    shown = add(cart, buyer, pen.id, 3)
    assert shown.user_id == buyer[0] and shown.currency == "USD"
    assert [(i.product_id, i.quantity, i.unit_price_minor, i.available) for i in shown.items] == [
        (mug.id, 2, 1250, True),
        (pen.id, 3, 199, True),
    ]
    assert shown.items[0].title == "mug"
    assert shown.total_minor == 2 * 1250 + 3 * 199
    assert abs(shown.expires_at.ToSeconds() - (time.time() + DEFAULT_TTL)) < 30

    catalog.UpdateProduct(
        catalog_pb2.UpdateProductRequest(product_id=mug.id, price_minor=1500), metadata=seller[1], timeout=RPC_TIMEOUT
    )
    catalog.UpdateProduct(
        catalog_pb2.UpdateProductRequest(product_id=pen.id, active=False), metadata=seller[1], timeout=RPC_TIMEOUT
    )
    now = get(cart, buyer)
    assert [(i.unit_price_minor, i.available) for i in now.items] == [(1500, True), (199, False)]
    assert now.total_minor == 2 * 1500  # the deactivated line does not count


def test_add_unknown_inactive_and_other_currency_products_is_refused(cart, catalog, seller, buyer):
    usd = make_product(catalog, seller, currency="USD")
    eur = make_product(catalog, seller, currency="EUR")
    gone = make_product(catalog, seller)
    catalog.UpdateProduct(
        catalog_pb2.UpdateProductRequest(product_id=gone.id, active=False), metadata=seller[1], timeout=RPC_TIMEOUT
    )
    add(cart, buyer, usd.id, 1)

    unknown = str(random_product())
    with pytest.raises(grpc.RpcError) as err:
        add(cart, buyer, unknown, 1)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == f"product {unknown} not found"

    with pytest.raises(grpc.RpcError) as err:
        add(cart, buyer, gone.id, 1)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    with pytest.raises(grpc.RpcError) as err:
        add(cart, buyer, eur.id, 1)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "EUR" in err.value.details() and "USD" in err.value.details()

    assert lines_of(get(cart, buyer)) == [(usd.id, 1)]


def test_line_holds_at_most_100(cart, catalog, seller, buyer):
    product = make_product(catalog, seller)
    add(cart, buyer, product.id, 98)
    with pytest.raises(grpc.RpcError) as err:
        add(cart, buyer, product.id, 3)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "quantity: a line may hold at most 100 (it has 98)"
    assert add(cart, buyer, product.id, 2).items[0].quantity == 100


def test_update_and_remove(cart, catalog, seller, buyer):
    a, b = make_product(catalog, seller, price=100), make_product(catalog, seller, price=10)
    add(cart, buyer, a.id, 1)
    add(cart, buyer, b.id, 1)
    updated = cart.UpdateCartItem(
        cart_pb2.UpdateCartItemRequest(product_id=a.id, quantity=9), metadata=buyer[1], timeout=RPC_TIMEOUT
    )
    assert lines_of(updated) == [(a.id, 9), (b.id, 1)] and updated.total_minor == 910

    with pytest.raises(grpc.RpcError) as err:
        cart.UpdateCartItem(
            cart_pb2.UpdateCartItemRequest(product_id=str(random_product()), quantity=2),
            metadata=buyer[1],
            timeout=RPC_TIMEOUT,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    for _ in range(2):  # idempotent
        removed = cart.RemoveCartItem(
            cart_pb2.RemoveCartItemRequest(product_id=a.id), metadata=buyer[1], timeout=RPC_TIMEOUT
        )
        assert lines_of(removed) == [(b.id, 1)]


def test_another_user_neither_sees_nor_changes_my_cart(cart, catalog, seller, identity, r):
    me, other = _account(identity), _account(identity)
    r.track_user(int(me[0]))
    r.track_user(int(other[0]))
    product = make_product(catalog, seller)
    add(cart, me, product.id, 4)

    assert list(get(cart, other).items) == []
    # Their changes, even naming my product, land in their own cart only.
    cart.RemoveCartItem(cart_pb2.RemoveCartItemRequest(product_id=product.id), metadata=other[1], timeout=RPC_TIMEOUT)
    with pytest.raises(grpc.RpcError) as err:
        cart.UpdateCartItem(
            cart_pb2.UpdateCartItemRequest(product_id=product.id, quantity=1), metadata=other[1], timeout=RPC_TIMEOUT
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    add(cart, other, product.id, 1)

    mine = get(cart, me)
    assert mine.user_id == me[0] and lines_of(mine) == [(product.id, 4)]
    theirs = get(cart, other)
    assert theirs.user_id == other[0] and lines_of(theirs) == [(product.id, 1)]


def test_short_ttl_cart_expires_and_reads_empty(short_ttl_cart, catalog, seller, buyer, r):
    product = make_product(catalog, seller)
    added = add(short_ttl_cart, buyer, product.id, 1)
    assert 0 < added.expires_at.ToMilliseconds() - time.time() * 1000 <= 2_100
    assert 0 < r.pttl(cart_key(int(buyer[0]))) <= 2_000
    time.sleep(1.2)
    add(short_ttl_cart, buyer, product.id, 1)  # a change renews the 2 s
    time.sleep(1.2)
    assert lines_of(get(short_ttl_cart, buyer)) == [(product.id, 2)]
    time.sleep(2.3)
    expired = get(short_ttl_cart, buyer)
    assert list(expired.items) == [] and not expired.HasField("expires_at")


def test_catalog_unreachable_means_unavailable_never_guessed_prices(cart_without_catalog, r, identity):
    who = _account(identity)
    user = int(who[0])
    # An empty cart needs no prices.
    assert list(get(cart_without_catalog, who).items) == []
    seed(r, user, [(random_product(), 2)])
    with pytest.raises(grpc.RpcError) as err:
        get(cart_without_catalog, who)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "catalog" in err.value.details()
    # An add cannot check the product: refused before anything is written.
    with pytest.raises(grpc.RpcError) as err:
        add(cart_without_catalog, who, str(random_product()), 1)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(r.hgetall(cart_key(user))) == 3  # _currency, _seq and the one seeded line
