"""inventory over gRPC against the running service and PostgreSQL.

Every test stocks products under fresh ids and uses fresh reservation ids, so
runs never collide. The running service sweeps every AVIARY_INVENTORY_SWEEP_SECONDS
(5 s in the devstack).
"""

from __future__ import annotations

import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from aviary.inventory.v1 import inventory_pb2 as pb
from aviary.inventory.v1 import inventory_pb2_grpc
from services.kit.settings import service_addr
from services.kit.server.ids import IdGenerator
from devstack.mesh_channels import open_channel

HELD = pb.RESERVATION_STATE_HELD
COMMITTED = pb.RESERVATION_STATE_COMMITTED
RELEASED = pb.RESERVATION_STATE_RELEASED

_ids = IdGenerator(random.randrange(1024))


@pytest.fixture(scope="module")
def inventory():
    # Enough concurrent streams for the 200-buyer tests on one channel.
    with open_channel("inventory") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield inventory_pb2_grpc.InventoryServiceStub(channel)


def new_product(inventory, quantity: int) -> str:
    product_id = str(_ids.next_id())
    inventory.InitializeStock(pb.InitializeStockRequest(product_id=product_id, quantity=quantity), timeout=10)
    return product_id


def new_reservation_id() -> str:
    return f"test-{secrets.token_hex(8)}"


def stock(inventory, product_id: str) -> tuple[int, int, int]:
    (level,) = inventory.BatchGetStock(pb.BatchGetStockRequest(product_ids=[product_id]), timeout=10).levels
    return level.available, level.reserved, level.sold


def reserve(inventory, reservation_id: str, lines: list[tuple[str, int]], ttl: int = 0) -> pb.Reservation:
    return inventory.ReserveStock(
        pb.ReserveStockRequest(
            reservation_id=reservation_id,
            items=[pb.ReservationItem(product_id=p, quantity=q) for p, q in lines],
            ttl_seconds=ttl,
        ),
        timeout=30,
    )


def release_reservation(inventory, rid: str) -> pb.Reservation:
    return inventory.ReleaseReservation(pb.ReleaseReservationRequest(reservation_id=rid), timeout=10)


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(request, timeout=10)
    return err.value


def attempt(fn):
    """fn() -> (result, None) or (None, RpcError)."""
    try:
        return fn(), None
    except grpc.RpcError as exc:
        return None, exc


# -- no oversell -----------------------------------------------------------------------


def test_200_concurrent_buyers_of_10_units_get_exactly_10_reservations(inventory):
    product = new_product(inventory, 10)
    reservation_ids = [new_reservation_id() for _ in range(200)]
    with ThreadPoolExecutor(max_workers=200) as pool:
        outcomes = list(pool.map(lambda rid: attempt(lambda: reserve(inventory, rid, [(product, 1)])), reservation_ids))

    held = [r for r, err in outcomes if err is None]
    refused = [err for r, err in outcomes if err is not None]
    assert len(held) == 10
    assert all(r.state == HELD for r in held)
    assert len(refused) == 190
    assert {err.code() for err in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert all(f"product {product} has only 0 left" in err.details() for err in refused)
    assert stock(inventory, product) == (0, 10, 0)
    # The refused ids hold nothing and were not recorded.
    refused_ids = [rid for rid, (r, err) in zip(reservation_ids, outcomes) if err is not None]
    err = rpc_error(inventory.GetReservation, pb.GetReservationRequest(reservation_id=refused_ids[0]))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_concurrent_multi_line_reservations_in_any_line_order_neither_deadlock_nor_oversell(inventory):
    a, b, c = (new_product(inventory, 30) for _ in range(3))

    def one_buyer(_):
        lines = [(a, 2), (b, 1), (c, 3)]
        random.shuffle(lines)  # lines arrive in any order; the service locks in one order
        return attempt(lambda: reserve(inventory, new_reservation_id(), lines))

    with ThreadPoolExecutor(max_workers=100) as pool:
        outcomes = list(pool.map(one_buyer, range(100)))

    held = [r for r, err in outcomes if err is None]
    codes = {err.code() for _, err in outcomes if err is not None}
    assert codes == {grpc.StatusCode.FAILED_PRECONDITION}  # short, never a deadlock or timeout
    # c runs out first: 30 // 3 == 10 buyers.
    assert len(held) == 10
    assert stock(inventory, a) == (10, 20, 0)
    assert stock(inventory, b) == (20, 10, 0)
    assert stock(inventory, c) == (0, 30, 0)


def test_a_short_line_rolls_the_whole_reservation_back(inventory):
    plenty, scarce = new_product(inventory, 50), new_product(inventory, 2)
    rid = new_reservation_id()
    err = rpc_error(
        inventory.ReserveStock,
        pb.ReserveStockRequest(
            reservation_id=rid,
            items=[
                pb.ReservationItem(product_id=plenty, quantity=5),
                pb.ReservationItem(product_id=scarce, quantity=3),
            ],
        ),
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == f"items[1]: product {scarce} has only 2 left, 3 requested"
    assert stock(inventory, plenty) == (50, 0, 0)
    assert stock(inventory, scarce) == (2, 0, 0)
    assert rpc_error(inventory.GetReservation, pb.GetReservationRequest(reservation_id=rid)).code() == (
        grpc.StatusCode.NOT_FOUND
    )
    # The id was not burnt: once there is stock, the same id reserves.
    inventory.AddStock(pb.AddStockRequest(product_id=scarce, quantity=1, idempotency_key="restock-1"), timeout=10)
    assert reserve(inventory, rid, [(plenty, 5), (scarce, 3)]).state == HELD
    assert stock(inventory, scarce) == (0, 3, 0)


def test_reserving_an_unstocked_product_fails_naming_it(inventory):
    known = new_product(inventory, 5)
    unknown = str(_ids.next_id())
    err = rpc_error(
        inventory.ReserveStock,
        pb.ReserveStockRequest(
            reservation_id=new_reservation_id(),
            items=[
                pb.ReservationItem(product_id=known, quantity=1),
                pb.ReservationItem(product_id=unknown, quantity=1),
            ],
        ),
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"items[1]: product {unknown} is not stocked" == err.details()
    assert stock(inventory, known) == (5, 0, 0)


# -- idempotency -----------------------------------------------------------------------


def test_a_retried_reservation_returns_the_first_and_takes_stock_once(inventory):
    product = new_product(inventory, 10)
    rid = new_reservation_id()
    first = reserve(inventory, rid, [(product, 3)])
    again = reserve(inventory, rid, [(product, 3)])
    assert again == first
    assert stock(inventory, product) == (7, 3, 0)
    assert inventory.GetReservation(pb.GetReservationRequest(reservation_id=rid), timeout=10) == first


def test_concurrent_retries_of_one_reservation_take_stock_once(inventory):
    product = new_product(inventory, 10)
    rid = new_reservation_id()
    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lambda _: attempt(lambda: reserve(inventory, rid, [(product, 4)])), range(20)))
    assert [err for _, err in outcomes if err is not None] == []
    results = [r for r, _ in outcomes]
    assert all(r == results[0] for r in results)
    assert results[0].state == HELD
    assert stock(inventory, product) == (6, 4, 0)


def test_initialize_stock_is_idempotent(inventory):
    product = new_product(inventory, 5)
    level = inventory.InitializeStock(pb.InitializeStockRequest(product_id=product, quantity=99), timeout=10)
    assert (level.available, level.reserved, level.sold) == (5, 0, 0)


def test_add_stock_adds_once_per_key(inventory):
    product = new_product(inventory, 5)
    request = pb.AddStockRequest(product_id=product, quantity=7, idempotency_key="delivery-42")
    assert inventory.AddStock(request, timeout=10).available == 12
    assert inventory.AddStock(request, timeout=10).available == 12
    other = pb.AddStockRequest(product_id=product, quantity=1, idempotency_key="delivery-43")
    assert inventory.AddStock(other, timeout=10).available == 13

    reused = rpc_error(
        inventory.AddStock, pb.AddStockRequest(product_id=product, quantity=8, idempotency_key="delivery-42")
    )
    assert reused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reused.details().startswith("idempotency_key: was already used to add 7 units")
    assert stock(inventory, product) == (13, 0, 0)


def test_concurrent_add_stock_with_one_key_adds_once(inventory):
    product = new_product(inventory, 0)
    request = pb.AddStockRequest(product_id=product, quantity=5, idempotency_key="same")
    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(lambda _: attempt(lambda: inventory.AddStock(request, timeout=10)), range(10)))
    assert [err for _, err in outcomes if err is not None] == []
    assert stock(inventory, product) == (5, 0, 0)


def test_add_stock_to_an_unknown_product_is_not_found(inventory):
    err = rpc_error(
        inventory.AddStock, pb.AddStockRequest(product_id=str(_ids.next_id()), quantity=1, idempotency_key="k")
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


# -- commit and release ----------------------------------------------------------------


def test_commit_sells_the_held_units_and_is_idempotent(inventory):
    product = new_product(inventory, 10)
    rid = new_reservation_id()
    reserve(inventory, rid, [(product, 4)])
    committed = inventory.CommitReservation(pb.CommitReservationRequest(reservation_id=rid), timeout=10)
    assert committed.state == COMMITTED
    assert stock(inventory, product) == (6, 0, 4)
    again = inventory.CommitReservation(pb.CommitReservationRequest(reservation_id=rid), timeout=10)
    assert again.state == COMMITTED
    assert stock(inventory, product) == (6, 0, 4)


def test_releasing_a_committed_reservation_gives_the_units_back_once(inventory):
    product = new_product(inventory, 10)
    rid = new_reservation_id()
    reserve(inventory, rid, [(product, 4)])
    inventory.CommitReservation(pb.CommitReservationRequest(reservation_id=rid), timeout=10)
    for _ in range(3):
        released = inventory.ReleaseReservation(pb.ReleaseReservationRequest(reservation_id=rid), timeout=10)
        assert released.state == RELEASED
        assert released.release_reason == "released"
        assert stock(inventory, product) == (10, 0, 0)


def test_releasing_a_held_reservation_gives_the_units_back_and_it_cannot_be_committed(inventory):
    product = new_product(inventory, 10)
    rid = new_reservation_id()
    reserve(inventory, rid, [(product, 6)])
    inventory.ReleaseReservation(pb.ReleaseReservationRequest(reservation_id=rid), timeout=10)
    inventory.ReleaseReservation(pb.ReleaseReservationRequest(reservation_id=rid), timeout=10)
    assert stock(inventory, product) == (10, 0, 0)

    err = rpc_error(inventory.CommitReservation, pb.CommitReservationRequest(reservation_id=rid))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "was released" in err.details()
    # A retried ReserveStock with the released id does not take stock again.
    assert reserve(inventory, rid, [(product, 6)]).state == RELEASED
    assert stock(inventory, product) == (10, 0, 0)


def test_concurrent_commits_and_releases_leave_consistent_stock(inventory):
    product = new_product(inventory, 40)
    rids = [new_reservation_id() for _ in range(20)]
    for rid in rids:
        reserve(inventory, rid, [(product, 2)])

    def commit(rid):
        return attempt(lambda: inventory.CommitReservation(pb.CommitReservationRequest(reservation_id=rid), timeout=10))

    def release(rid):
        return attempt(lambda: release_reservation(inventory, rid))

    calls = [(commit, rid) for rid in rids] + [(release, rid) for rid in rids]
    random.shuffle(calls)
    with ThreadPoolExecutor(max_workers=40) as pool:
        outcomes = list(pool.map(lambda call: call[0](call[1]), calls))
    for _, err in outcomes:
        assert err is None or err.code() == grpc.StatusCode.FAILED_PRECONDITION
    # Whatever the interleaving, every reservation ends released and every unit is back.
    for rid in rids:
        assert inventory.GetReservation(pb.GetReservationRequest(reservation_id=rid), timeout=10).state == RELEASED
    assert stock(inventory, product) == (40, 0, 0)


def test_commit_or_get_of_an_unknown_reservation_is_not_found(inventory):
    rid = new_reservation_id()
    assert rpc_error(inventory.CommitReservation, pb.CommitReservationRequest(reservation_id=rid)).code() == (
        grpc.StatusCode.NOT_FOUND
    )
    assert rpc_error(inventory.GetReservation, pb.GetReservationRequest(reservation_id=rid)).code() == (
        grpc.StatusCode.NOT_FOUND
    )


def test_releasing_an_unknown_reservation_leaves_a_tombstone_a_late_reserve_cannot_pass(inventory):
    product = new_product(inventory, 5)
    rid = new_reservation_id()
    tomb = inventory.ReleaseReservation(pb.ReleaseReservationRequest(reservation_id=rid), timeout=10)
    assert tomb.state == RELEASED
    assert tomb.release_reason == "released before reserve"
    late = reserve(inventory, rid, [(product, 2)])
    assert late.state == RELEASED
    assert late.release_reason == "released before reserve"
    assert stock(inventory, product) == (5, 0, 0)


def test_release_racing_the_reserve_of_the_same_id_never_loses_units(inventory):
    product = new_product(inventory, 100)
    rids = [new_reservation_id() for _ in range(30)]
    calls = [("reserve", rid) for rid in rids] + [("release", rid) for rid in rids]
    random.shuffle(calls)

    def run(call):
        kind, rid = call
        if kind == "reserve":
            return attempt(lambda: reserve(inventory, rid, [(product, 1)]))
        return attempt(lambda: release_reservation(inventory, rid))

    with ThreadPoolExecutor(max_workers=60) as pool:
        outcomes = list(pool.map(run, calls))
    assert [err for _, err in outcomes if err is not None] == []
    # Each id either was reserved then released, or tombstoned first: all units are back.
    for rid in rids:
        assert inventory.GetReservation(pb.GetReservationRequest(reservation_id=rid), timeout=10).state == RELEASED
    assert stock(inventory, product) == (100, 0, 0)


# -- expiry ----------------------------------------------------------------------------


def wait_for_state(inventory, rid: str, state, within: float) -> pb.Reservation:
    deadline = time.monotonic() + within
    while True:
        found = inventory.GetReservation(pb.GetReservationRequest(reservation_id=rid), timeout=10)
        if found.state == state or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def test_the_sweeper_releases_expired_reservations(inventory):
    product = new_product(inventory, 10)
    rid = new_reservation_id()
    held = reserve(inventory, rid, [(product, 3)], ttl=1)
    assert held.state == HELD
    assert 0 < held.expire_time.seconds - time.time() <= 2
    keep = new_reservation_id()
    reserve(inventory, keep, [(product, 2)], ttl=600)
    assert stock(inventory, product) == (5, 5, 0)

    # Expiry after 1 s, then the next sweep (every 5 s in the devstack).
    swept = wait_for_state(inventory, rid, RELEASED, within=15)
    assert swept.state == RELEASED
    assert swept.release_reason == "expired"
    assert stock(inventory, product) == (8, 2, 0)
    assert inventory.GetReservation(pb.GetReservationRequest(reservation_id=keep), timeout=10).state == HELD


def test_committing_an_expired_reservation_fails_and_releases_it(inventory):
    product = new_product(inventory, 10)
    rid = new_reservation_id()
    reserve(inventory, rid, [(product, 3)], ttl=1)
    time.sleep(1.2)
    # Expired: whether the commit or the sweeper releases it first, the commit fails.
    err = rpc_error(inventory.CommitReservation, pb.CommitReservationRequest(reservation_id=rid))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expired" in err.details()
    found = inventory.GetReservation(pb.GetReservationRequest(reservation_id=rid), timeout=10)
    assert (found.state, found.release_reason) == (RELEASED, "expired")
    assert stock(inventory, product) == (10, 0, 0)


# -- reads -----------------------------------------------------------------------------


def test_batch_get_stock_answers_in_request_order_without_unknown_products(inventory):
    a, b = new_product(inventory, 1), new_product(inventory, 2)
    unknown = str(_ids.next_id())
    levels = inventory.BatchGetStock(pb.BatchGetStockRequest(product_ids=[b, unknown, a, b]), timeout=10).levels
    assert [(lv.product_id, lv.available) for lv in levels] == [(b, 2), (a, 1)]


# -- validation ------------------------------------------------------------------------


def _reserve_request(**overrides) -> pb.ReserveStockRequest:
    fields = {
        "reservation_id": new_reservation_id(),
        "items": [pb.ReservationItem(product_id="1", quantity=1)],
    }
    fields.update(overrides)
    return pb.ReserveStockRequest(**fields)


def _items(*quantities, product_ids=None):
    product_ids = product_ids or [str(1000 + i) for i in range(len(quantities))]
    return [pb.ReservationItem(product_id=p, quantity=q) for p, q in zip(product_ids, quantities)]


@pytest.mark.parametrize(
    "request_, expected",
    [
        (_reserve_request(reservation_id=""), "reservation_id: is required"),
        (_reserve_request(reservation_id="x" * 129), "reservation_id: must be at most 128"),
        (_reserve_request(reservation_id="has space"), "reservation_id: must be printable ASCII"),
        (_reserve_request(items=[]), "items: must hold at least one line"),
        (_reserve_request(items=_items(*[1] * 51)), "items: at most 50 lines, got 51"),
        (_reserve_request(items=_items(1, 1, 0)), "items[2].quantity: must be 1..1000, got 0"),
        (_reserve_request(items=_items(1001)), "items[0].quantity: must be 1..1000, got 1001"),
        (_reserve_request(items=_items(1, product_ids=["abc"])), "items[0].product_id: must be a decimal 64-bit id"),
        (
            _reserve_request(items=_items(1, 1, product_ids=["7", "7"])),
            "items[1].product_id: product 7 is already on line 0",
        ),
        (_reserve_request(ttl_seconds=3601), "ttl_seconds: must be 1..3600, got 3601"),
        (_reserve_request(ttl_seconds=-1), "ttl_seconds: must be 1..3600, got -1"),
    ],
)
def test_bad_reservations_are_invalid_argument_naming_the_field(inventory, request_, expected):
    err = rpc_error(inventory.ReserveStock, request_)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(expected), err.details()


@pytest.mark.parametrize(
    "method, request_, expected",
    [
        ("InitializeStock", pb.InitializeStockRequest(product_id="", quantity=1), "product_id: is required"),
        ("InitializeStock", pb.InitializeStockRequest(product_id="5", quantity=-1), "quantity: must be 0..1000000"),
        (
            "InitializeStock",
            pb.InitializeStockRequest(product_id="5", quantity=1_000_001),
            "quantity: must be 0..1000000",
        ),
        (
            "AddStock",
            pb.AddStockRequest(product_id="5", quantity=0, idempotency_key="k"),
            "quantity: must be 1..1000000",
        ),
        ("AddStock", pb.AddStockRequest(product_id="5", quantity=1), "idempotency_key: is required"),
        ("BatchGetStock", pb.BatchGetStockRequest(product_ids=["1"] * 501), "product_ids: at most 500 items"),
        ("BatchGetStock", pb.BatchGetStockRequest(product_ids=["1", "-2"]), "product_ids[1]: must be a decimal"),
        ("CommitReservation", pb.CommitReservationRequest(), "reservation_id: is required"),
        ("ReleaseReservation", pb.ReleaseReservationRequest(), "reservation_id: is required"),
        ("GetReservation", pb.GetReservationRequest(), "reservation_id: is required"),
    ],
)
def test_bad_stock_requests_are_invalid_argument_naming_the_field(inventory, method, request_, expected):
    err = rpc_error(getattr(inventory, method), request_)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(expected), err.details()


# -- metrics ---------------------------------------------------------------------------


def _outcomes() -> dict[str, float]:
    import httpx

    host, port = service_addr("inventory").rsplit(":", 1)
    text = httpx.get(f"http://{host}:{int(port) + 1000}/metrics", timeout=5).text
    counts = {}
    for line in text.splitlines():
        if line.startswith("aviary_inventory_reservations_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('outcome="')[1].split('"')[0]] = float(value)
    return counts


def test_reservation_outcomes_are_counted(inventory):
    product = new_product(inventory, 1)
    before = _outcomes()
    rid = new_reservation_id()
    reserve(inventory, rid, [(product, 1)])
    reserve(inventory, rid, [(product, 1)])
    rpc_error(
        inventory.ReserveStock,
        pb.ReserveStockRequest(
            reservation_id=new_reservation_id(), items=[pb.ReservationItem(product_id=product, quantity=1)]
        ),
    )
    inventory.CommitReservation(pb.CommitReservationRequest(reservation_id=rid), timeout=10)
    after = _outcomes()
    # At least: other clients may reserve at the same time.
    for outcome in ("held", "replayed", "short", "committed"):
        assert after.get(outcome, 0) >= before.get(outcome, 0) + 1, outcome
