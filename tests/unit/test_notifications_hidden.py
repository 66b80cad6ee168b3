"""Notifications shown to a recipient who blocks or mutes some of the actors."""

from __future__ import annotations

from dataclasses import dataclass

from services.notifications import rules


@dataclass(frozen=True)
class _Row:
    notification_id: int
    actor_ids: tuple[int, ...]
    actor_count: int


def test_a_group_of_hidden_actors_only_is_dropped():
    assert rules.without_hidden_actors([_Row(1, (7,), 1)], frozenset({7})) == []


def test_hidden_actors_leave_a_group_the_others_keep():
    [row] = rules.without_hidden_actors([_Row(1, (7, 8, 9), 5)], frozenset({7}))
    assert row.actor_ids == (8, 9)
    assert row.actor_count == 4


def test_rows_without_hidden_actors_and_actorless_rows_stay():
    rows = [_Row(1, (8,), 1), _Row(2, (), 0)]
    assert rules.without_hidden_actors(rows, frozenset({7})) == rows
