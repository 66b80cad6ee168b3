"""Log-in and sign-up throttling against real Redis and PostgreSQL: a second
identity process with low limits, asked directly over gRPC (as Envoy would,
with the client address in x-envoy-external-address) and through an Envoy of
its own rendered from envoy/envoy.yaml.tmpl, to show that a client cannot pick
the address it is counted under. A third identity process whose Redis is
unreachable shows that throttling fails open.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from pathlib import Path

import grpc
import httpx
import pytest

from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from services.kit.settings import SERVICE_PORTS
from tests.e2e.second_edge import second_edge
from tests.integration.support import free_port, second_process

PASSWORD = "correct horse battery"
SIGN_UPS_PER_ADDRESS = 3
FREE_FAILURES = 3
LOCK_SECONDS = 3
FAILURES_PER_ADDRESS = 6
LOW_LIMITS = {
    "AVIARY_IDENTITY_SIGN_UPS_PER_ADDRESS": str(SIGN_UPS_PER_ADDRESS),
    "AVIARY_IDENTITY_SIGN_UP_WINDOW_SECONDS": "120",
    "AVIARY_IDENTITY_LOGIN_FREE_FAILURES": str(FREE_FAILURES),
    "AVIARY_IDENTITY_LOGIN_BACKOFF_BASE_SECONDS": str(LOCK_SECONDS),
    "AVIARY_IDENTITY_LOGIN_BACKOFF_CAP_SECONDS": str(LOCK_SECONDS),
    "AVIARY_IDENTITY_LOGIN_FAILURES_PER_ADDRESS": str(FAILURES_PER_ADDRESS),
    "AVIARY_IDENTITY_LOGIN_ADDRESS_WINDOW_SECONDS": "120",
}


@pytest.fixture(scope="module")
def strict_identity(tmp_path_factory):
    """(stub, port) of an identity process with low limits."""
    tmp_path = tmp_path_factory.mktemp("strict_identity")
    with second_process("identity", tmp_path, "AVIARY_IDENTITY_PORT", **LOW_LIMITS) as process:
        yield identity_pb2_grpc.IdentityServiceStub(process.channel), process.port


@pytest.fixture
def strict(strict_identity):
    return strict_identity[0]


def new_address() -> str:
    """An IPv6 /64 of its own (documentation range), so runs never share counters."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::{secrets.randbelow(9000) + 1}"


def from_address(address: str):
    return (("x-envoy-external-address", address),)


def new_username() -> str:
    return f"th_{secrets.token_hex(5)}"


def call(method, request, address: str):
    """(status code, details, trailing metadata) of one call from `address`."""
    try:
        method(request, metadata=from_address(address), timeout=10)
        return grpc.StatusCode.OK, "", {}
    except grpc.RpcError as err:
        return err.code(), err.details(), dict(err.trailing_metadata() or ())


def sign_up(stub, username: str, address: str):
    return call(stub.CreateAccount, identity_pb2.CreateAccountRequest(username=username, password=PASSWORD), address)


def log_in(stub, username: str, password: str, address: str):
    return call(stub.CreateSession, identity_pb2.CreateSessionRequest(username=username, password=password), address)


# -- sign-up per address -------------------------------------------------------


def test_sign_ups_per_address_are_limited_and_a_refused_one_writes_nothing(strict):
    address = new_address()
    for _ in range(SIGN_UPS_PER_ADDRESS):
        assert sign_up(strict, new_username(), address)[0] == grpc.StatusCode.OK
    refused_name = new_username()
    code, details, _ = sign_up(strict, refused_name, address)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.startswith("too many sign-ups from your network address; try again in ")
    with pytest.raises(grpc.RpcError) as err:
        strict.LookupUser(identity_pb2.LookupUserRequest(username=refused_name), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # Another address is not held back by the first one's sign-ups.
    assert sign_up(strict, new_username(), new_address())[0] == grpc.StatusCode.OK


def test_bad_sign_ups_do_not_use_up_the_address_allowance(strict):
    address = new_address()
    for _ in range(SIGN_UPS_PER_ADDRESS + 2):
        code, details, _ = call(
            strict.CreateAccount,
            identity_pb2.CreateAccountRequest(username=new_username(), password="12345678"),
            address,
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("password: ")
    assert sign_up(strict, new_username(), address)[0] == grpc.StatusCode.OK


# -- log-in per account --------------------------------------------------------


def test_failures_lock_the_name_but_not_other_accounts_on_the_same_address(strict):
    address = new_address()
    victim, bystander = new_username(), new_username()
    assert sign_up(strict, victim, new_address())[0] == grpc.StatusCode.OK
    assert sign_up(strict, bystander, new_address())[0] == grpc.StatusCode.OK

    answers = [log_in(strict, victim, f"wrong guess {i}", address) for i in range(FREE_FAILURES + 3)]
    assert [a[0] for a in answers[:FREE_FAILURES]] == [grpc.StatusCode.UNAUTHENTICATED] * FREE_FAILURES
    for code, details, trailers in answers[FREE_FAILURES:]:
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details.startswith("too many failed log-ins for this username; try again in ")
    # While the name is locked, even the right password is not checked.
    assert log_in(strict, victim, PASSWORD, address)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The same address logs in to another account at once.
    assert log_in(strict, bystander, PASSWORD, address)[0] == grpc.StatusCode.OK


def test_after_the_lock_the_right_password_works_and_clears_the_failures(strict):
    address = new_address()
    username = new_username()
    assert sign_up(strict, username, address)[0] == grpc.StatusCode.OK
    for i in range(FREE_FAILURES):
        assert log_in(strict, username, f"wrong guess {i}", address)[0] == grpc.StatusCode.UNAUTHENTICATED
    code, details, _ = log_in(strict, username, PASSWORD, address)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    wait_s = int(details.rsplit("try again in ", 1)[1].split()[0])
    assert 1 <= wait_s <= LOCK_SECONDS
    time.sleep(wait_s)
    assert log_in(strict, username, PASSWORD, address)[0] == grpc.StatusCode.OK
    # The success forgot the failures: a typo now is just a typo.
    assert log_in(strict, username, "one typo", address)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert log_in(strict, username, PASSWORD, address)[0] == grpc.StatusCode.OK


def test_a_name_without_an_account_is_answered_exactly_like_one_with_an_account(strict):
    existing, ghost = new_username(), new_username()
    assert sign_up(strict, existing, new_address())[0] == grpc.StatusCode.OK
    attempts = FREE_FAILURES + 2
    real = [log_in(strict, existing, "wrong guess", new_address())[:2] for _ in range(attempts)]
    made_up = [log_in(strict, ghost, "wrong guess", new_address())[:2] for _ in range(attempts)]
    assert real[0] == made_up[0] == (grpc.StatusCode.UNAUTHENTICATED, "username or password is incorrect")
    # The same answers in the same order; only the seconds to wait may differ.
    assert [(code, details.split(";")[0]) for code, details in made_up] == [
        (code, details.split(";")[0]) for code, details in real
    ]


# -- log-in failures per address ----------------------------------------------


def test_many_failures_from_one_address_block_its_log_ins_but_not_other_addresses(strict):
    address = new_address()
    username = new_username()
    assert sign_up(strict, username, new_address())[0] == grpc.StatusCode.OK
    # Each guess at a different name: no single name reaches its own limit.
    for _ in range(FAILURES_PER_ADDRESS):
        assert log_in(strict, new_username(), "wrong guess", address)[0] == grpc.StatusCode.UNAUTHENTICATED
    code, details, _ = log_in(strict, username, PASSWORD, address)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.startswith("too many failed log-ins from your network address; try again in ")
    assert log_in(strict, username, PASSWORD, new_address())[0] == grpc.StatusCode.OK


def test_a_successful_log_in_does_not_count_against_the_address(strict):
    address = new_address()
    username = new_username()
    assert sign_up(strict, username, new_address())[0] == grpc.StatusCode.OK
    for _ in range(FAILURES_PER_ADDRESS + 3):
        assert log_in(strict, username, PASSWORD, address)[0] == grpc.StatusCode.OK


# -- through Envoy: the address is Envoy's, not the client's say-so -------------


@contextlib.contextmanager
def _edge(identity_port: int, trusted_hops: int, tmp_path: Path):
    """Base URL of a second Envoy trusting `trusted_hops` proxies' X-Forwarded-For,
    whose identity cluster is the strict identity process, every other cluster
    the devstack's."""
    services = {**SERVICE_PORTS, "identity": identity_port}
    with second_edge(tmp_path, service_ports=services, xff_trusted_hops=trusted_hops) as envoy:
        _wait_edge_serves_identity(envoy.url)
        yield envoy.url


@pytest.fixture(scope="module")
def edge_to_strict_identity(strict_identity, tmp_path_factory):
    """An Envoy that trusts no proxy in front of it, as the devstack's."""
    with _edge(strict_identity[1], 0, tmp_path_factory.mktemp("edge")) as base:
        yield base


def _wait_edge_serves_identity(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            # A lookup of a name nobody has: 404 once Envoy reaches the identity cluster.
            if httpx.get(f"{base}/v1/users:lookup", params={"username": "nobody_here"}, timeout=2).status_code == 404:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("the test's Envoy never reached the strict identity process")


def loopback_client(base: str) -> httpx.Client:
    """A client connecting from a loopback address of its own (127.x.y.z)."""
    source = f"127.{secrets.randbelow(250) + 1}.{secrets.randbelow(256)}.{secrets.randbelow(250) + 2}"
    return httpx.Client(base_url=base, timeout=15, transport=httpx.HTTPTransport(local_address=source))


def test_spoofed_address_headers_do_not_escape_the_sign_up_limit(edge_to_strict_identity):
    with loopback_client(edge_to_strict_identity) as client:
        answers = []
        for i in range(SIGN_UPS_PER_ADDRESS + 1):
            spoofed = {
                "X-Forwarded-For": f"203.0.113.{i + 1}, 198.51.100.{i + 1}",
                "X-Envoy-External-Address": f"192.0.2.{i + 1}",
            }
            answers.append(
                client.post("/v1/accounts", headers=spoofed, json={"username": new_username(), "password": PASSWORD})
            )
    assert [r.status_code for r in answers[:SIGN_UPS_PER_ADDRESS]] == [200] * SIGN_UPS_PER_ADDRESS, answers[0].text
    refused = answers[-1]
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["code"] == 8 and body["message"].startswith("too many sign-ups from your network address")
    # The client is told when to come back, as a header and in the body.
    assert 1 <= int(refused.headers["retry-after"]) <= 120
    assert any(d.get("@type", "").endswith("google.rpc.RetryInfo") for d in body.get("details", []))
    # A client on another address signs up as usual.
    with loopback_client(edge_to_strict_identity) as other:
        assert other.post("/v1/accounts", json={"username": new_username(), "password": PASSWORD}).status_code == 200


def test_a_locked_name_answers_429_with_retry_after_through_envoy(edge_to_strict_identity):
    with loopback_client(edge_to_strict_identity) as client:
        username = new_username()
        assert client.post("/v1/accounts", json={"username": username, "password": PASSWORD}).status_code == 200
        answers = [
            client.post("/v1/sessions", json={"username": username, "password": "wrong guess"})
            for _ in range(FREE_FAILURES + 1)
        ]
    assert [r.status_code for r in answers] == [401] * FREE_FAILURES + [429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= LOCK_SECONDS


def test_behind_one_trusted_proxy_the_client_is_the_entry_it_appended(strict_identity, tmp_path):
    with _edge(strict_identity[1], 1, tmp_path) as base, loopback_client(base) as client:

        def sign_up_via(forwarded_for: str) -> int:
            return client.post(
                "/v1/accounts",
                headers={"X-Forwarded-For": forwarded_for},
                json={"username": new_username(), "password": PASSWORD},
            ).status_code

        # The proxy appended a different client each time: none reaches the limit.
        net = f"2001:db8:{secrets.token_hex(2)}"  # documentation addresses, a /64 each
        assert [sign_up_via(f"{net}:{i + 1}::1") for i in range(SIGN_UPS_PER_ADDRESS + 1)] == [200] * (
            SIGN_UPS_PER_ADDRESS + 1
        )
        # One client, whatever it writes left of the proxy's entry, is one client.
        one = f"{net}:ffff::1"
        answers = [sign_up_via(f"6.6.6.{i}, {one}") for i in range(SIGN_UPS_PER_ADDRESS + 1)]
        assert answers == [200] * SIGN_UPS_PER_ADDRESS + [429]


# -- Redis unreachable: throttling fails open ------------------------------------


def test_log_in_and_sign_up_work_while_the_counters_are_unreachable(tmp_path):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with second_process(
        "identity", tmp_path, "AVIARY_IDENTITY_PORT", **LOW_LIMITS, AVIARY_REDIS_URL=dead_redis
    ) as process:
        stub = identity_pb2_grpc.IdentityServiceStub(process.channel)
        address = new_address()
        username = new_username()
        for _ in range(SIGN_UPS_PER_ADDRESS + 1):
            assert sign_up(stub, new_username(), address)[0] == grpc.StatusCode.OK
        assert sign_up(stub, username, address)[0] == grpc.StatusCode.OK
        assert log_in(stub, username, PASSWORD, address)[0] == grpc.StatusCode.OK
        assert log_in(stub, username, "wrong guess", address)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert "attempt counters unreachable" in process.log_path.read_text()
