"""AVIARY_REDIS_URL as both Redis clients read it (services/kit/stores/redis_target.py)."""

from __future__ import annotations

import ssl

import pytest
from redis.asyncio.connection import Connection, SSLConnection

from services.kit.settings import SettingError
from services.kit.stores.redis_target import parse


def test_a_plain_url_with_credentials_and_a_database():
    target = parse("redis://app:s%3Dcret@redis.example:6380/3")
    assert (target.host, target.port, target.db, target.username, target.password) == (
        "redis.example",
        6380,
        3,
        "app",
        "s=cret",
    )
    assert target.tls is None and target.ssl_context() is None
    assert target.pool_kwargs()["connection_class"] is Connection


def test_rediss_verifies_the_server_by_default(tmp_path):
    target = parse("rediss://redis.example")
    assert target.port == 6379
    assert target.pool_kwargs()["connection_class"] is SSLConnection
    assert target.pool_kwargs()["ssl_cert_reqs"] == "required"
    context = target.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_rediss_options_reach_both_clients(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("placeholder")
    target = parse(f"rediss://10.0.0.5:6380/0?ssl_ca_certs={ca}&ssl_check_hostname=false")
    assert target.pool_kwargs()["ssl_ca_certs"] == str(ca)
    assert target.pool_kwargs()["ssl_check_hostname"] is False
    assert parse("rediss://h?ssl_cert_reqs=none").tls == {"ssl_cert_reqs": "none", "ssl_check_hostname": False}


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("unix:///run/redis.sock", "scheme 'unix' is not supported"),
        ("redis+sentinel://h", "scheme 'redis+sentinel' is not supported"),
        ("redis:///0", "names no host"),
        ("redis://h:99999", "port is not a number"),
        ("redis://h/zero", "database 'zero' is not a number"),
        ("redis://h?ssl_ca_certs=/ca.pem", "TLS options need rediss://"),
        ("rediss://h?ssl_verify=yes", "option 'ssl_verify' is not supported"),
        ("rediss://h?ssl_ca_certs=/nowhere/ca.pem", "ssl_ca_certs '/nowhere/ca.pem' is not a readable file"),
        ("rediss://h?ssl_cert_reqs=strict", "ssl_cert_reqs must be one of required, optional, none"),
        ("rediss://h?ssl_check_hostname=maybe", "ssl_check_hostname must be true or false"),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_it(url, named):
    with pytest.raises(SettingError, match="AVIARY_REDIS_URL") as refused:
        parse(url)
    assert named in str(refused.value)


def test_a_client_certificate_needs_its_key(tmp_path):
    cert = tmp_path / "client.pem"
    cert.write_text("placeholder")
    with pytest.raises(SettingError, match="needs both ssl_certfile and ssl_keyfile"):
        parse(f"rediss://h?ssl_certfile={cert}")


def test_the_password_is_not_repeated_in_the_message():
    with pytest.raises(SettingError) as refused:
        parse("redis://user:hunter2@h/x")
    assert "hunter2" not in str(refused.value)


def test_a_cluster_url_names_its_seed_nodes_and_credentials():
    target = parse("redis+cluster://app:s%3Dcret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002")
    assert target.cluster and target.cluster_nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002))
    assert (target.host, target.port, target.db) == ("10.0.0.1", 7000, 0)
    assert target.cluster_kwargs() == {"username": "app", "password": "s=cret"}
    assert not parse("redis://h").cluster


def test_a_tls_cluster_url_takes_the_rediss_options(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("placeholder")
    kwargs = parse(f"rediss+cluster://h:7000?ssl_ca_certs={ca}").cluster_kwargs()
    assert kwargs["ssl"] is True and kwargs["ssl_ca_certs"] == str(ca) and kwargs["ssl_cert_reqs"] == "required"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis+cluster://h", "cluster node 'h' is not host:port"),
        ("redis+cluster://h:7000,", "cluster node '' is not host:port"),
        ("redis+cluster://h:70000", "port is not a number"),
        ("redis+cluster://h:7000/2", "a Redis Cluster has only database 0"),
        ("redis+cluster://h:7000?ssl_ca_certs=/ca.pem", "TLS options need rediss+cluster://"),
        ("rediss+cluster://h:7000?ssl_verify=yes", "option 'ssl_verify' is not supported"),
    ],
)
def test_what_a_cluster_url_cannot_honour_is_refused(url, named):
    with pytest.raises(SettingError, match="AVIARY_REDIS_URL") as refused:
        parse(url)
    assert named in str(refused.value)
