"""rediss:// end to end: a Redis serving only TLS (started here from the
devstack's redis-server with a CA made for the test), reached by the kit's
pooled client, its live pub/sub and the bulk path, all from one URL; a server
whose certificate the URL's CA did not sign is refused."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.exceptions import ConnectionError as RedisConnectionError

from services.kit.events.live import LiveHub
from services.kit.settings import Settings, load
from services.kit.stores import redis_client
from services.kit.stores.redis_bulk import BulkRedis

PASSWORD = "tls-test-secret"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _certificate(subject: str, key, issuer_name: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _make_pki(directory: Path) -> None:
    """ca.pem signs server.pem; stranger.pem is a CA that signed nothing here."""
    for name in ("ca", "stranger"):
        key = _key()
        _write(directory / name, key, _certificate(f"test {name}", key, f"test {name}", key, ca=True))
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    server_key = _key()
    _write(directory / "server", server_key, _certificate("redis", server_key, "test ca", ca_key, ca=False))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory) -> Iterator[tuple[int, Path]]:
    directory = tmp_path_factory.mktemp("redis-tls")
    _make_pki(directory)
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
        + ["--tls-cert-file", str(directory / "server.pem"), "--tls-key-file", str(directory / "server.key")]
        + ["--tls-ca-cert-file", str(directory / "ca.pem"), "--tls-auth-clients", "no"]
        + ["--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert server.poll() is None, "redis-server with TLS did not start"
            assert time.monotonic() < deadline, "redis-server with TLS did not listen within 10 s"
            time.sleep(0.05)
        yield port, directory
    finally:
        server.terminate()
        server.wait(10)


def _url(port: int, ca: Path) -> str:
    return f"rediss://:{PASSWORD}@127.0.0.1:{port}/2?ssl_ca_certs={ca}"


async def test_the_pooled_client_and_live_pub_sub_work_over_tls(tls_redis):
    port, directory = tls_redis
    client = redis_client.client(load(Settings, {"AVIARY_REDIS_URL": _url(port, directory / "ca.pem")}))
    hub = LiveHub(client)
    try:
        await client.set("tls:probe", b"over tls")
        assert await client.get("tls:probe") == b"over tls"
        assert (await client.client_info())["db"] == 2
        async with hub.listen(["live:{tls}"]) as queue:
            await client.publish("live:{tls}", b"pushed")
            assert await queue.get() == b"pushed"
    finally:
        await hub.close()
        await client.aclose()


async def test_the_bulk_path_works_over_tls_in_the_same_database(tls_redis):
    port, directory = tls_redis
    url = _url(port, directory / "ca.pem")
    bulk, client = BulkRedis(url), redis_client.client(load(Settings, {"AVIARY_REDIS_URL": url}))
    try:
        replies = await bulk.execute([("SET", "tls:bulk", "1"), ("INCR", "tls:bulk"), ("GET", "tls:bulk")])
        assert replies == [b"OK", 2, b"2"]
        assert await bulk.eval_each("return redis.call('INCR', KEYS[1])", [(1, "tls:bulk")], idempotent=False) == [3]
        assert await client.get("tls:bulk") == b"3"  # the same server and database as the pool
    finally:
        await bulk.close()
        await client.aclose()


async def test_a_server_the_urls_ca_did_not_sign_is_refused(tls_redis):
    port, directory = tls_redis
    url = _url(port, directory / "stranger.pem")
    client = redis_client.client(load(Settings, {"AVIARY_REDIS_URL": url}))
    try:
        with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.ping()
    finally:
        await client.aclose()
    bulk = BulkRedis(url)
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        await bulk.execute([("PING",)])
    await bulk.close()
