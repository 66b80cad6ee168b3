"""Rows come back as the driver's namedtuples, one class per column list."""

from __future__ import annotations

from cassandra.query import named_tuple_factory

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
