"""The devstack's mesh CA: a local certificate authority, made once, and a
certificate for every identity of the mesh (services/kit/mesh.py), in the
layout the kit reads (AVIARY_MESH_CERT_DIR): ca.pem, <identity>.pem and
<identity>-key.pem. The chart takes the same files from Secrets instead.

A service's certificate names the service (common name and DNS name): the
common name is its identity to the peers it calls, the DNS name what its
callers check it against."""

from __future__ import annotations

import datetime
import fcntl
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 3650


def ensure(cert_dir: Path, identities: list[str]) -> None:
    """The CA and a certificate for each identity, made only where missing."""
    _issue_all(cert_dir, identities, renew=False)


def renew(cert_dir: Path, identities: list[str]) -> None:
    """New keys and certificates for `identities` from the same CA, written over
    the old ones as cert-manager renews a Secret: the running mesh takes them up."""
    _issue_all(cert_dir, identities, renew=True)


def _issue_all(cert_dir: Path, identities: list[str], *, renew: bool) -> None:
    cert_dir.mkdir(parents=True, exist_ok=True)
    with open(cert_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ca_key, ca_cert = _ca(cert_dir)
        for identity in identities:
            held = (cert_dir / f"{identity}.pem").exists() and (cert_dir / f"{identity}-key.pem").exists()
            if renew or not held:
                _issue(cert_dir, identity, ca_key, ca_cert)


def _ca(cert_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = cert_dir / "ca-key.pem", cert_dir / "ca.pem"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aviary devstack mesh CA")])
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key))
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _issue(cert_dir: Path, identity: str, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)])
    cert = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(cert_dir / f"{identity}-key.pem", _key_pem(key))
    _write(cert_dir / f"{identity}.pem", cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes) -> None:
    """Written whole or not at all; keys readable by their owner only."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
