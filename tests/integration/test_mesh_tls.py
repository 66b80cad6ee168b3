"""The mesh's mutual TLS and allow-list (services/kit/mesh.py) on a kit
server of our own, with certificates from the devstack's CA maker: who may
call which method, by the certificate it presents; and, when the devstack
runs its mesh over TLS, the same refusals from a real service via grpcurl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import grpc
from cryptography import x509
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack import mesh_certs
from services.kit import manifest, mesh, settings
from services.kit.peers import clients
from services.kit.server.service import KitInterceptor
from services.kit.settings import service_addr
from tests.integration.support import free_port
from devstack.mesh_channels import grpcurl_flags, mesh_tls, served_serial

TIMEOUT = 10.0
REFUND = "/aviary.payments.v1.PaymentsService/RefundPayment"
ADVANCE = "/aviary.orders.v1.OrdersService/OperatorAdvanceDelivery"
GET_USER = "/aviary.identity.v1.IdentityService/GetUser"
HEALTH = "/grpc.health.v1.Health/Check"
SERVED = (REFUND, ADVANCE, GET_USER, HEALTH)


# The serial of each client certificate the test server was shown, in call order.
CLIENT_SERIALS: list[int] = []


async def _answer(request: bytes, context) -> bytes:
    for pem in context.auth_context().get("x509_pem_cert", ()):
        CLIENT_SERIALS.append(x509.load_pem_x509_certificate(pem).serial_number)
    return b""


@pytest.fixture
async def mesh_server(tmp_path: Path):
    """A kit server as `payments` over mutual TLS, answering the methods in
    SERVED with an empty message; certificates in tmp_path."""
    certs = tmp_path / "mesh"
    mesh_certs.ensure(certs, ["payments", "orders", "cart", mesh.EDGE, mesh.OPERATOR])
    handlers = {}
    for path in SERVED:
        service, method = path.lstrip("/").rsplit("/", 1)
        handlers.setdefault(service, {})[method] = grpc.unary_unary_rpc_method_handler(_answer)
    interceptor = KitInterceptor("payments", mesh_tls=True)
    interceptor.ready = True
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(s, m) for s, m in handlers.items()])
    port = free_port(also_free_at=mesh.HEALTH_PORT_OFFSET)
    _listen_with(server, port, certs)
    await server.start()
    yield certs, port
    await server.stop(None)


def _listen_with(server: grpc.aio.Server, port: int, certs: Path) -> None:
    server.add_secure_port(f"127.0.0.1:{port}", mesh.server_credentials("payments", certs))
    server.add_insecure_port(f"127.0.0.1:{mesh.health_port(port)}")


async def _call(channel: grpc.aio.Channel, path: str) -> grpc.StatusCode:
    call = channel.unary_unary(path, request_serializer=lambda m: m, response_deserializer=lambda b: b)
    try:
        await call(b"", timeout=TIMEOUT)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def _as(identity: str, certs: Path, port: int, path: str, *, expect_name: str = "payments") -> grpc.StatusCode:
    credentials = mesh.channel_credentials(identity, certs)
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{port}", credentials, options=mesh.channel_options(expect_name)
    ) as channel:
        return await _call(channel, path)


async def test_each_method_answers_only_the_identities_the_manifest_allows(mesh_server):
    certs, port = mesh_server
    assert await _as("orders", certs, port, REFUND) == grpc.StatusCode.OK
    assert await _as("cart", certs, port, REFUND) == grpc.StatusCode.PERMISSION_DENIED
    assert await _as(mesh.EDGE, certs, port, REFUND) == grpc.StatusCode.PERMISSION_DENIED
    assert await _as(mesh.OPERATOR, certs, port, ADVANCE) == grpc.StatusCode.OK
    assert await _as("orders", certs, port, ADVANCE) == grpc.StatusCode.PERMISSION_DENIED
    # A public method: any identity of the mesh.
    for identity in (mesh.EDGE, "cart", mesh.OPERATOR):
        assert await _as(identity, certs, port, GET_USER) == grpc.StatusCode.OK


async def test_a_refusal_names_the_caller_and_who_may_call(mesh_server):
    certs, port = mesh_server
    credentials = mesh.channel_credentials("cart", certs)
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{port}", credentials, options=mesh.channel_options("payments")
    ) as ch:
        call = ch.unary_unary(REFUND, request_serializer=lambda m: m, response_deserializer=lambda b: b)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"", timeout=TIMEOUT)
    assert caught.value.details() == f"cart may not call {REFUND} (allowed: orders)"


async def test_no_client_certificate_or_another_ca_is_refused_at_the_handshake(mesh_server, tmp_path):
    certs, port = mesh_server
    # TLS that trusts the mesh CA but shows no certificate of its own.
    bare = grpc.ssl_channel_credentials(root_certificates=(certs / "ca.pem").read_bytes())
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", bare, options=mesh.channel_options("payments")) as ch:
        assert await _call(ch, REFUND) == grpc.StatusCode.UNAVAILABLE
    # An "orders" certificate from a CA the mesh does not trust.
    rogue = tmp_path / "rogue"
    mesh_certs.ensure(rogue, ["orders"])
    forged = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.pem").read_bytes(),
        private_key=(rogue / "orders-key.pem").read_bytes(),
        certificate_chain=(rogue / "orders.pem").read_bytes(),
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", forged, options=mesh.channel_options("payments")) as ch:
        assert await _call(ch, REFUND) == grpc.StatusCode.UNAVAILABLE
    # Plaintext to the TLS port.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert await _call(ch, REFUND) == grpc.StatusCode.UNAVAILABLE


async def test_the_health_port_answers_health_alone_in_plaintext(mesh_server):
    _, port = mesh_server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.health_port(port)}") as ch:
        check = ch.unary_unary(
            HEALTH,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=lambda b: b,
        )
        await check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        assert await _call(ch, REFUND) == grpc.StatusCode.UNAUTHENTICATED
        assert await _call(ch, GET_USER) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_caller_checks_the_service_it_reached_is_the_one_it_meant(mesh_server):
    certs, port = mesh_server
    # The server shows a certificate naming payments: a caller that meant orders refuses it.
    assert await _as("orders", certs, port, GET_USER, expect_name="orders") == grpc.StatusCode.UNAVAILABLE


# -- renewals -------------------------------------------------------------------------------


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def _served(port: int, certs: Path) -> int:
    return served_serial("payments", f"127.0.0.1:{port}", cert_dir=certs)


async def test_a_renewed_server_certificate_is_shown_from_the_next_handshake(mesh_server):
    certs, port = mesh_server
    before = _serial(certs / "payments.pem")
    assert _served(port, certs) == before
    mesh_certs.renew(certs, ["payments"])
    renewed = _serial(certs / "payments.pem")
    assert renewed != before
    assert _served(port, certs) == renewed
    assert await _as("orders", certs, port, REFUND) == grpc.StatusCode.OK


async def test_a_key_that_is_not_the_certificates_keeps_the_certificate_in_use(mesh_server, tmp_path):
    certs, port = mesh_server
    before = _serial(certs / "payments.pem")
    # Half a renewal: another identity's key where payments' key was.
    shutil.copy(certs / "cart-key.pem", certs / "payments-key.pem")
    assert _served(port, certs) == before
    assert await _as("orders", certs, port, REFUND) == grpc.StatusCode.OK
    # The other half arrives: the next handshake shows the new certificate.
    mesh_certs.renew(certs, ["payments"])
    assert _served(port, certs) == _serial(certs / "payments.pem") != before


@pytest.fixture
async def orders_client(mesh_server, monkeypatch):
    """The kit's clients acting as orders, with payments at mesh_server."""
    certs, port = mesh_server
    monkeypatch.setenv("AVIARY_MESH_TLS", "1")
    monkeypatch.setenv("AVIARY_MESH_CERT_DIR", str(certs))
    monkeypatch.setenv("AVIARY_PAYMENTS_ADDR", f"127.0.0.1:{port}")
    monkeypatch.setattr(clients, "_channels", {})
    monkeypatch.setattr(clients, "_mesh_credentials", clients._MeshCredentials())
    monkeypatch.setattr(mesh, "_identity", "orders")
    settings.current.cache_clear()
    yield certs
    await clients.close_all()
    settings.current.cache_clear()


async def test_a_caller_presents_its_renewed_certificate_on_new_channels(orders_client, monkeypatch):
    certs = orders_client
    monkeypatch.setattr(clients, "CERTIFICATE_CHECK_SECONDS", 0.0)
    CLIENT_SERIALS.clear()
    assert await _call(clients.channel("payments"), REFUND) == grpc.StatusCode.OK
    first = clients.channel("payments")
    # Half a renewal (a new key, the old certificate): the caller keeps what it has.
    shutil.copy(certs / "cart-key.pem", certs / "orders-key.pem")
    assert clients.channel("payments") is first
    assert await _call(clients.channel("payments"), REFUND) == grpc.StatusCode.OK
    mesh_certs.renew(certs, ["orders"])
    assert await _call(clients.channel("payments"), REFUND) == grpc.StatusCode.OK
    assert clients.channel("payments") is not first
    assert CLIENT_SERIALS == [CLIENT_SERIALS[0], CLIENT_SERIALS[0], _serial(certs / "orders.pem")]
    assert CLIENT_SERIALS[0] != CLIENT_SERIALS[2]


async def test_a_process_that_takes_another_identity_calls_as_that_one(orders_client):
    assert await _call(clients.channel("payments"), REFUND) == grpc.StatusCode.OK
    # Long before the certificate files are looked at again (as tests acting
    # as one service, then another, do).
    mesh.set_identity("cart")
    # Cart may not refund: the call went out with cart's certificate.
    assert await _call(clients.channel("payments"), REFUND) == grpc.StatusCode.PERMISSION_DENIED


# -- the devstack's own services, with grpcurl --------------------------------------------


def _grpcurl(*args: str) -> subprocess.CompletedProcess:
    gobin = os.environ.get("GOBIN") or str(Path.home() / "go" / "bin")
    binary = shutil.which("grpcurl") or str(Path(gobin) / "grpcurl")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30)


needs_mesh = pytest.mark.skipif(not mesh_tls(), reason="the devstack runs with AVIARY_MESH_TLS=0")


@needs_mesh
def test_grpcurl_to_an_internal_method_needs_an_allowed_certificate():
    addr = service_addr("payments")
    method = "aviary.payments.v1.PaymentsService/GetPayment"
    body = json.dumps({"idempotencyKey": "mesh-test-none"})

    without = _grpcurl(*grpcurl_flags("payments", None), "-d", body, addr, method)
    assert without.returncode != 0
    plaintext = _grpcurl("-plaintext", "-d", body, addr, method)
    assert plaintext.returncode != 0
    cart = _grpcurl(*grpcurl_flags("payments", "cart"), "-d", body, addr, method)
    assert "PermissionDenied" in cart.stderr and "cart may not call" in cart.stderr, cart.stderr
    orders = _grpcurl(*grpcurl_flags("payments", "orders"), "-d", body, addr, method)
    # Past the allow-list: payments itself answers (no such payment).
    assert "NotFound" in orders.stderr, orders.stderr
    # Health alone answers in plaintext, on the health port (no reflection there either).
    health_addr = f"127.0.0.1:{mesh.health_port(manifest.service('payments').port)}"
    with grpc.insecure_channel(health_addr) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    assert "Unauthenticated" in _grpcurl("-plaintext", health_addr, "list").stderr
