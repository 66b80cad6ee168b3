"""The input formats of the bulk loaders (python -m services.graph.load, services.timeline.load)."""

from __future__ import annotations

import pytest

from services.graph.load import celebrity_flags, parse_edges
from services.timeline.load import parse_user_ids


def test_edges_are_indexed_both_ways_and_repeats_count_once():
    edges = parse_edges(["# follower followee", "1 10", "2 10", "", "1 10", "1\t11", "  3   10  "])
    assert edges.followers == {10: [1, 2, 3], 11: [1]}
    assert edges.following == {1: [10, 11], 2: [10], 3: [10]}
    assert edges.count() == 4


@pytest.mark.parametrize(
    "line, problem",
    [
        ("1", "expected 'FOLLOWER_ID FOLLOWEE_ID'"),
        ("1 2 3", "expected 'FOLLOWER_ID FOLLOWEE_ID'"),
        ("1 x", "expected 'FOLLOWER_ID FOLLOWEE_ID'"),
        ("-1 2", "expected 'FOLLOWER_ID FOLLOWEE_ID'"),
        ("0 2", "positive 64-bit"),
        (f"1 {2**63}", "positive 64-bit"),
        ("5 5", "cannot follow themselves"),
    ],
)
def test_a_bad_edge_line_is_named(line, problem):
    with pytest.raises(ValueError) as err:
        parse_edges(["1 2", line], "edges.txt")
    assert "edges.txt:2" in str(err.value)
    assert problem in str(err.value)


def test_celebrity_flags_follow_graphs_rule():
    edges = parse_edges(["1 10", "2 10", "3 10", "1 11", "2 11"])
    assert celebrity_flags(edges, 2) == {10: True, 11: False}
    assert celebrity_flags(edges, 3) == {10: False, 11: False}


def test_user_ids_in_order_without_repeats():
    assert parse_user_ids(["# readers", "7", "", "3", "7", " 9 "]) == [7, 3, 9]


@pytest.mark.parametrize("line", ["x", "1 2", "0", str(2**63)])
def test_a_bad_user_id_line_is_named(line):
    with pytest.raises(ValueError, match="users.txt:2"):
        parse_user_ids(["1", line], "users.txt")
