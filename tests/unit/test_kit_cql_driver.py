"""Rows come back as the driver's namedtuples, one class per column list; schema
changes wait long and are sent again when a busy node does not answer."""

from __future__ import annotations

import pytest
from cassandra import OperationTimedOut
from cassandra.query import named_tuple_factory

from services.kit.stores import cql
from services.kit.stores.cql import named_rows


def test_rows_are_named_like_the_drivers():
    rows = named_rows(["post_id", "author_id"], [(1, 2), (3, 4)])
    assert [(r.post_id, r.author_id) for r in rows] == [(1, 2), (3, 4)]
    assert rows == named_tuple_factory(["post_id", "author_id"], [(1, 2), (3, 4)])


def test_one_class_serves_every_result_with_the_same_columns():
    first = named_rows(["a", "b"], [(1, 2)])
    second = named_rows(["a", "b"], [(3, 4)])
    other = named_rows(["a", "c"], [(5, 6)])
    assert type(first[0]) is type(second[0])
    assert type(other[0]) is not type(first[0]) and other[0].c == 6


def test_odd_column_names_are_cleaned_as_the_driver_does():
    (row,) = named_rows(["[applied]", "TTL(actor_instance)"], [(True, 5)])
    (driver_row,) = named_tuple_factory(["[applied]", "TTL(actor_instance)"], [(True, 5)])
    assert row._fields == driver_row._fields
    assert row == (True, 5)


def test_an_empty_result_is_an_empty_list():
    assert named_rows(["a"], []) == []


class _Answer:
    """The driver's ResponseFuture, settled at once with rows or an error."""

    def __init__(self, error: Exception | None):
        self.error = error

    def add_callbacks(self, on_rows, on_error) -> None:
        on_error(self.error) if self.error else on_rows([])


class _SlowNode:
    """A session whose first `timeouts` statements time out."""

    def __init__(self, timeouts: int):
        self.timeouts = timeouts
        self.sent: list[tuple[str, float]] = []

    def execute_async(self, query, params=None, timeout=None):
        self.sent.append((query, timeout))
        failing = len(self.sent) <= self.timeouts
        return _Answer(OperationTimedOut("Client request timeout") if failing else None)


@pytest.fixture
def no_pause(monkeypatch):
    monkeypatch.setattr(cql, "DDL_RETRY_PAUSE_SECONDS", 0.0)


async def test_a_schema_change_waits_long_and_is_sent_again_when_unanswered(no_pause):
    node = _SlowNode(timeouts=2)
    await cql.apply_schema(node, ["CREATE TABLE IF NOT EXISTS ks.t (k int PRIMARY KEY)"])
    assert [timeout for _, timeout in node.sent] == [cql.DDL_TIMEOUT_SECONDS] * 3
    assert cql.DDL_TIMEOUT_SECONDS > 10.0


async def test_a_schema_change_fails_the_start_after_its_last_attempt(no_pause):
    node = _SlowNode(timeouts=cql.DDL_ATTEMPTS)
    with pytest.raises(OperationTimedOut):
        await cql.ensure_keyspace(node, "ks", 1)
    assert len(node.sent) == cql.DDL_ATTEMPTS
