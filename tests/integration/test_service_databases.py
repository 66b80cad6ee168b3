"""A database per bounded context: every service that keeps state in
PostgreSQL reaches its own database with its own role, and no other's."""

from __future__ import annotations

import itertools

import psycopg
import pytest
from sqlalchemy.engine import make_url

from devstack.backends import service_databases, service_pg_dsn

SERVICES = service_databases()


def _plain(dsn: str) -> str:
    return dsn.replace("postgresql+psycopg://", "postgresql://")


def test_identity_and_every_commerce_service_has_a_database_of_its_own():
    assert {"identity", "catalog", "inventory", "payments", "orders", "moderation"} <= set(SERVICES)
    urls = [make_url(service_pg_dsn(name)) for name in SERVICES]
    assert len({url.database for url in urls}) == len(SERVICES)
    assert len({url.username for url in urls}) == len(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_reaches_its_own_database_and_its_schema_is_there(service):
    with psycopg.connect(_plain(service_pg_dsn(service)), connect_timeout=3) as conn:
        schemas = {row[0] for row in conn.execute("SELECT schema_name FROM information_schema.schemata")}
    assert service in schemas


@pytest.mark.parametrize(("service", "other"), list(itertools.permutations(SERVICES, 2)))
def test_a_service_cannot_connect_to_anothers_database(service, other):
    theirs = make_url(service_pg_dsn(other)).database
    trespass = make_url(service_pg_dsn(service)).set(drivername="postgresql", database=theirs)
    with pytest.raises(psycopg.OperationalError, match="permission denied|CONNECT privilege"):
        psycopg.connect(trespass.render_as_string(hide_password=False), connect_timeout=3)
