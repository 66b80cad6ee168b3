"""Channels into the devstack's mesh from outside its services (the tests,
bench/). With mesh TLS on (AVIARY_MESH_TLS), each method is called with the
certificate of an identity the allow-list lets call it (the edge's for a
public method, else the first allowed caller), unless the caller names one
(`as_`); the tests of the allow-list itself name theirs."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from services.kit import mesh
from services.kit.settings import service_addr

from .services import MESH_CERT_DIR as CERT_DIR
from .services import MESH_TLS


def mesh_tls() -> bool:
    """Whether the devstack runs its mesh over TLS."""
    return MESH_TLS


def identity_for(method: str) -> str:
    """An identity allowed to call `method` (a full path)."""
    allowed = mesh.rules().get(method)
    if method.startswith("/grpc.") or allowed is None:
        return mesh.EDGE
    return sorted(allowed)[0]


def grpcurl_flags(service: str, identity: str | None = mesh.OPERATOR) -> list[str]:
    """grpcurl's flags to reach `service` as `identity` (None: no certificate of one's own)."""
    if not mesh_tls():
        return ["-plaintext"]
    flags = ["-cacert", str(CERT_DIR / "ca.pem"), "-servername", service]
    if identity is not None:
        files = mesh.Files.of(identity, CERT_DIR)
        flags += ["-cert", str(files.cert), "-key", str(files.key)]
    return flags


def served_serial(service: str, addr: str | None = None, *, cert_dir: Path = CERT_DIR) -> int:
    """The serial number of the certificate `service` shows a new connection
    (made as the operator, whom any mesh server lets finish the handshake)."""
    host, port = (addr or service_addr(service)).rsplit(":", 1)
    files = mesh.Files.of(mesh.OPERATOR, cert_dir)
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(files.cert, files.key)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=service) as tls:
            der = tls.getpeercert(binary_form=True)
    if der is None:
        raise RuntimeError(f"{service} at {addr} showed no certificate")
    return x509.load_der_x509_certificate(der).serial_number


def open_channel(
    service: str, *, aio: bool = False, as_: str | None = None, addr: str | None = None, options=()
) -> Any:
    """A channel to `service` (sync, or grpc.aio), closed like any channel;
    `addr`: another instance of it than the devstack's."""
    addr = addr or service_addr(service)
    new = grpc.aio if aio else grpc
    if not mesh_tls():
        return new.insecure_channel(addr, options=list(options))

    def secure(identity: str):
        credentials = mesh.channel_credentials(identity, CERT_DIR)
        return new.secure_channel(addr, credentials, options=[*options, *mesh.channel_options(service)])

    if as_ is not None:
        return secure(as_)
    return _Routed(secure, aio)


class _Routed:
    """A channel that sends each method over a channel of an identity allowed to call it."""

    def __init__(self, secure, aio: bool) -> None:
        self._secure = secure
        self._aio = aio
        self._by_identity: dict[str, Any] = {}

    def _for(self, method: str):
        identity = identity_for(method if isinstance(method, str) else method.decode())
        channel = self._by_identity.get(identity)
        if channel is None:
            channel = self._by_identity[identity] = self._secure(identity)
        return channel

    def unary_unary(self, method, *args, **kwargs):
        return self._for(method).unary_unary(method, *args, **kwargs)

    def unary_stream(self, method, *args, **kwargs):
        return self._for(method).unary_stream(method, *args, **kwargs)

    def stream_unary(self, method, *args, **kwargs):
        return self._for(method).stream_unary(method, *args, **kwargs)

    def stream_stream(self, method, *args, **kwargs):
        return self._for(method).stream_stream(method, *args, **kwargs)

    def _any(self):
        return self._for("/grpc.health.v1.Health/Check")

    # grpc.channel_ready_future and the aio channel's readiness.
    def subscribe(self, callback, try_to_connect=False):
        self._any().subscribe(callback, try_to_connect)

    def unsubscribe(self, callback):
        self._any().unsubscribe(callback)

    async def channel_ready(self):
        await self._any().channel_ready()

    def close(self, *args):
        channels, self._by_identity = list(self._by_identity.values()), {}
        if not self._aio:
            for channel in channels:
                channel.close()
            return None
        return _close_all(channels)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
        return False


async def _close_all(channels) -> None:
    for channel in channels:
        await channel.close()
