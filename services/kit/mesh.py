"""The mesh's mutual TLS and its allow-list.

With AVIARY_MESH_TLS on, every service serves its gRPC port over TLS and
asks each caller for a certificate signed by the mesh CA; the caller's
identity is that certificate's common name: a service's name, `envoy` (the
edge) or `operator` (people, with grpcurl). Which identities may call a
method (`rules`): a public method (one with an HTTP route), any identity of
the mesh; an internal one, the identities its service's manifest entry
allows (`internal`, else its `callers`).

Health (grpc.health.v1) alone is also answered in plaintext, on the health
port (the gRPC port + HEALTH_PORT_OFFSET), for probes that cannot present a
certificate (kubelet's); anything else asked there has no identity and is
refused.

Certificates live in one directory (AVIARY_MESH_CERT_DIR): `ca.pem`, and
`<identity>.pem` with `<identity>-key.pem` for each identity. A renewal that
rewrites them is taken up while running: by a server at its next handshake,
by a caller's channels within seconds (peers/clients.py), by Envoy through its
file-watched secrets (envoy/edge_config.py).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.api import annotations_pb2

from services.kit import manifest, settings
from services.kit.server.errors import ApiError, permission_denied, unauthenticated

log = logging.getLogger(__name__)

HEALTH_PORT_OFFSET = 2000
EDGE = "envoy"
OPERATOR = "operator"
# Methods answered to anyone, on either port.
OPEN_METHODS = ("/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch")
# Methods any identity of the mesh may call beside a service's own.
MESH_METHOD_PREFIXES = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")


_identity: str | None = None


def set_identity(name: str) -> None:
    """This process's identity in the mesh (its service's name), for the channels it opens."""
    global _identity
    _identity = name


def identity() -> str:
    if _identity is None:
        raise RuntimeError("mesh TLS is on but this process has no identity (mesh.set_identity)")
    return _identity


def identities() -> list[str]:
    """Every identity the mesh issues a certificate to."""
    return [*manifest.services(), EDGE, OPERATOR]


def health_port(port: int) -> int:
    return port + HEALTH_PORT_OFFSET


@dataclass(frozen=True)
class Files:
    """One identity's certificate, key and the mesh CA."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def of(cls, identity: str, cert_dir: Path | None = None) -> Files:
        base = cert_dir or settings.current().mesh_cert_dir
        return cls(base / "ca.pem", base / f"{identity}.pem", base / f"{identity}-key.pem")

    def read(self) -> tuple[bytes, bytes, bytes]:
        """The CA, the certificate and its key; refused when the key is not the certificate's
        (a renewal caught between writing the one and the other)."""
        missing = [str(p) for p in (self.ca, self.cert, self.key) if not p.exists()]
        if missing:
            raise RuntimeError(f"mesh TLS is on (AVIARY_MESH_TLS) but certificate files are missing: {missing}")
        ca, cert, key = self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()
        if not _key_fits(cert, key):
            raise RuntimeError(f"mesh TLS: {self.key} is not the key of {self.cert}")
        return ca, cert, key

    def version(self) -> tuple[tuple[int, int, int], ...]:
        """Changes when any of the files is replaced or rewritten (a renewal)."""
        stats = [p.stat() for p in (self.ca, self.cert, self.key)]
        return tuple((st.st_ino, st.st_mtime_ns, st.st_size) for st in stats)


def _key_fits(cert_pem: bytes, key_pem: bytes) -> bool:
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    cert_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    own_key = serialization.load_pem_private_key(key_pem, password=None).public_key()
    return cert_key.public_bytes(serialization.Encoding.DER, public) == own_key.public_bytes(
        serialization.Encoding.DER, public
    )


def server_credentials(identity: str, cert_dir: Path | None = None) -> grpc.ServerCredentials:
    """The server's side of the mesh. A renewed certificate (cert-manager rewrites
    the Secret's files) is taken up by the next handshake, without a restart."""
    files = Files.of(identity, cert_dir)
    seen = files.version()
    initial = _server_configuration(*files.read())

    def renewed() -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC before each handshake; None keeps the configuration it has.
        nonlocal seen
        try:
            now = files.version()
            if now == seen:
                return None
            configuration = _server_configuration(*files.read())
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("mesh certificate not reloaded: keeping the one in use", extra={"error": str(exc)})
            return None
        seen = now
        log.info("mesh certificate reloaded", extra={"identity": identity})
        return configuration

    # The stubs leave out that the fetcher may answer None (no change).
    return grpc.dynamic_ssl_server_credentials(initial, renewed, require_client_authentication=True)  # type: ignore[arg-type]


def _server_configuration(ca: bytes, cert: bytes, key: bytes) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)


def channel_credentials(identity: str, cert_dir: Path | None = None) -> grpc.ChannelCredentials:
    """The caller's side, as the files are now: gRPC cannot reload a channel's
    certificate, so callers open new channels after a renewal (peers/clients.py)."""
    ca, cert, key = Files.of(identity, cert_dir).read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def channel_options(target_service: str) -> list[tuple[str, str]]:
    """A service's certificate names the service (not an address): check that name."""
    return [("grpc.ssl_target_name_override", target_service)]


def peer_identity(context: grpc.aio.ServicerContext) -> str | None:
    """The caller's identity: its verified certificate's common name; None in plaintext."""
    names = list(context.auth_context().get("x509_common_name", ()))
    return names[0].decode() if names else None


# -- the allow-list --------------------------------------------------------------------


@functools.cache
def rules() -> dict[str, frozenset[str] | None]:
    """Each method's path (`/pkg.Service/Method`) -> the identities that may
    call it; None: any identity of the mesh."""
    out: dict[str, frozenset[str] | None] = {}
    for entry in manifest.services().values():
        named = set(entry.internal)
        for full_name in entry.grpc:
            for method in manifest.proto_service(full_name).methods:
                path = f"/{full_name}/{method.name}"
                if method.GetOptions().HasExtension(annotations_pb2.http):
                    out[path] = None
                else:
                    named.discard(method.name)
                    out[path] = frozenset(entry.internal.get(method.name, entry.callers))
        if named:
            raise ValueError(
                f"{manifest.MANIFEST.name}: [{entry.name}] internal names no internal method {sorted(named)}"
            )
    return out


def refusal(method: str, identity: str | None) -> ApiError | None:
    """Why `identity` may not call `method`, or None."""
    if method in OPEN_METHODS:
        return None
    if identity is None:
        return unauthenticated(f"{method} needs a client certificate signed by the mesh CA")
    if method.startswith(MESH_METHOD_PREFIXES):
        return None
    allowed = rules().get(method)
    if allowed is None or identity in allowed:
        return None
    return permission_denied(f"{identity} may not call {method} (allowed: {', '.join(sorted(allowed))})")
