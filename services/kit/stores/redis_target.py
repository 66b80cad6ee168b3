"""Where Redis is and how to reach it, read once from AVIARY_REDIS_URL for both
clients (redis-py's pool and the bulk path), so they never disagree on TLS.

    redis://[[user]:password@]host[:port][/db]
    rediss://...[?ssl_ca_certs=PATH&ssl_certfile=PATH&ssl_keyfile=PATH
                 &ssl_cert_reqs=required|optional|none&ssl_check_hostname=true|false]
    redis+cluster://[[user]:password@]host:port[,host:port...]   (Redis Cluster)
    rediss+cluster://...[?the rediss:// options]

A cluster URL names some of the cluster's nodes (any will do: the rest are
learnt from them) and no database (a cluster has only database 0).

Anything else (unix sockets, unknown options, TLS options on a plaintext URL,
files that are not there) is refused at start-up with a message naming it,
rather than half-honoured at the first command.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.asyncio.connection import Connection, RedisSSLContext, SSLConnection

from services.kit.settings import SettingError

ENV = "AVIARY_REDIS_URL"
_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_CERT_REQS = ("required", "optional", "none")
_CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class RedisTarget:
    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # The rediss:// options, in redis-py's names; None for plaintext.
    tls: dict[str, Any] | None = None
    # Redis Cluster: the nodes the URL names (host and port are the first).
    cluster_nodes: tuple[tuple[str, int], ...] = ()

    @property
    def cluster(self) -> bool:
        return bool(self.cluster_nodes)

    def cluster_kwargs(self) -> dict[str, Any]:
        """Arguments for redis.asyncio.RedisCluster (start-up nodes come apart)."""
        kwargs: dict[str, Any] = {"username": self.username, "password": self.password}
        if self.tls is not None:
            kwargs |= {"ssl": True, **self.tls}
        return kwargs

    def pool_kwargs(self) -> dict[str, Any]:
        """Connection arguments for a redis.asyncio connection pool."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "connection_class": SSLConnection if self.tls is not None else Connection,
        }
        return kwargs | (self.tls or {})

    def ssl_context(self) -> ssl.SSLContext | None:
        """The same TLS settings as an SSLContext, built by redis-py's own rules."""
        if self.tls is None:
            return None
        return RedisSSLContext(
            keyfile=self.tls.get("ssl_keyfile"),
            certfile=self.tls.get("ssl_certfile"),
            cert_reqs=self.tls["ssl_cert_reqs"],
            ca_certs=self.tls.get("ssl_ca_certs"),
            check_hostname=self.tls["ssl_check_hostname"],
        ).get()


def parse(url: str) -> RedisTarget:
    """The target a URL names; SettingError saying what is wrong otherwise."""
    parts = urlsplit(url)
    if parts.scheme in _CLUSTER_SCHEMES:
        return _parse_cluster(url)
    if parts.scheme not in ("redis", "rediss"):
        _refuse(
            url,
            f"scheme {parts.scheme or '(none)'!r} is not supported: use redis://, rediss://, "
            "redis+cluster:// or rediss+cluster://",
        )
    if not parts.hostname:
        _refuse(url, "it names no host")
    try:
        port = parts.port or 6379
    except ValueError:
        _refuse(url, "its port is not a number from 1 to 65535")
    tls = _tls_or_none(url, parts.scheme, parts.query, tls_scheme="rediss")
    return RedisTarget(
        host=parts.hostname,
        port=port,
        db=_db(url, parts.path),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


def _parse_cluster(url: str) -> RedisTarget:
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    nodes = tuple(_cluster_node(url, node) for node in hosts.split(","))
    if _db(url, parts.path) != 0:
        _refuse(url, "a Redis Cluster has only database 0")
    tls = _tls_or_none(url, parts.scheme, parts.query, tls_scheme="rediss+cluster")
    return RedisTarget(
        host=nodes[0][0],
        port=nodes[0][1],
        username=unquote(username) if username else None,
        password=unquote(password) if password else None,
        tls=tls,
        cluster_nodes=nodes,
    )


def _cluster_node(url: str, node: str) -> tuple[str, int]:
    host, _, port = node.rpartition(":")
    if not host:
        _refuse(url, f"cluster node {node!r} is not host:port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        _refuse(url, f"cluster node {node!r}: its port is not a number from 1 to 65535")
    return host.strip("[]"), int(port)


def _db(url: str, path: str) -> int:
    number = path.strip("/") or "0"
    if not number.isdigit():
        _refuse(url, f"database {number!r} is not a number")
    return int(number)


def _tls_or_none(url: str, scheme: str, query: str, *, tls_scheme: str) -> dict[str, Any] | None:
    """The TLS options of a `tls_scheme` URL; None for its plaintext twin, which takes no options."""
    options = dict(parse_qsl(query, keep_blank_values=True))
    if scheme == tls_scheme:
        return _tls_options(url, options)
    if options:
        _refuse(
            url, f"option {sorted(options)[0]!r} is not supported on {scheme}:// (TLS options need {tls_scheme}://)"
        )
    return None


def _tls_options(url: str, options: dict[str, str]) -> dict[str, Any]:
    unknown = sorted(set(options) - {*_FILES, "ssl_cert_reqs", "ssl_check_hostname"})
    if unknown:
        _refuse(
            url,
            f"option {unknown[0]!r} is not supported (known: {', '.join((*_FILES, 'ssl_cert_reqs', 'ssl_check_hostname'))})",
        )
    for name in _FILES:
        if name in options and not Path(options[name]).is_file():
            _refuse(url, f"{name} {options[name]!r} is not a readable file")
    if ("ssl_certfile" in options) != ("ssl_keyfile" in options):
        _refuse(url, "a client certificate needs both ssl_certfile and ssl_keyfile")
    cert_reqs = options.get("ssl_cert_reqs", "required")
    if cert_reqs not in _CERT_REQS:
        _refuse(url, f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, got {cert_reqs!r}")
    check_hostname = options.get("ssl_check_hostname", "true").lower()
    if check_hostname not in _BOOLEANS:
        _refuse(url, f"ssl_check_hostname must be true or false, got {check_hostname!r}")
    tls: dict[str, Any] = {name: options[name] for name in _FILES if name in options}
    # A server certificate is verified unless the URL says otherwise.
    tls["ssl_cert_reqs"] = cert_reqs
    tls["ssl_check_hostname"] = _BOOLEANS[check_hostname] and cert_reqs != "none"
    return tls


def _refuse(url: str, why: str) -> NoReturn:
    shown = urlsplit(url)._replace(netloc=urlsplit(url).netloc.rpartition("@")[2]).geturl()
    raise SettingError(f"environment variable {ENV} ({shown}): {why}")
