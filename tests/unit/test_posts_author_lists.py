"""Authors' newest post ids as profile pages reuse them: a prefix of the list that stays one."""

from __future__ import annotations

from services.posts.author_lists import MAX_IDS_KEPT, READ_HORIZON_SECONDS, AuthorPostIds


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _lists(ttl: float = 300.0):
    clock = _Clock()
    return AuthorPostIds(ttl_seconds=ttl, clock=clock), clock


def test_a_copy_answers_pages_it_covers_and_nothing_beyond():
    lists, _ = _lists()
    lists.keep(7, [90, 80, 70], asked=3, read_started=lists.now())
    assert lists.page(7, None, 2) == [90, 80]
    assert lists.page(7, None, 3) == [90, 80, 70]
    assert lists.page(7, None, 4) is None, "the author may have older posts than the copy"
    assert lists.page(7, 85, 2) == [80, 70]
    assert lists.page(8, None, 2) is None


def test_a_read_that_found_fewer_than_asked_is_the_whole_list():
    lists, _ = _lists()
    lists.keep(7, [90, 80], asked=21, read_started=lists.now())
    assert lists.page(7, None, 21) == [90, 80]
    assert lists.page(7, 80, 21) == []


def test_posts_written_and_deleted_change_the_copy_in_place():
    lists, _ = _lists()
    lists.keep(7, [90, 80], asked=21, read_started=lists.now())
    lists.added(7, 95)
    lists.added(7, 95)  # its event, after the local write
    lists.removed(7, 80)
    assert lists.page(7, None, 21) == [95, 90]


def test_a_post_older_than_a_partial_copy_stays_out_of_it():
    # A repost completed late keeps the id it claimed earlier: inserting it
    # would skip the posts between the copy's end and it.
    lists, _ = _lists()
    lists.keep(7, [90, 80], asked=2, read_started=lists.now())
    lists.added(7, 50)
    assert lists.page(7, None, 2) == [90, 80]
    assert lists.page(7, None, 3) is None
    whole, _ = _lists()
    whole.keep(7, [90, 80], asked=5, read_started=whole.now())
    whole.added(7, 50)
    assert whole.page(7, None, 5) == [90, 80, 50]


def test_a_read_that_began_before_a_change_is_not_kept():
    lists, clock = _lists()
    started = lists.now()
    clock.t += 0.01
    lists.added(7, 95)  # lands while the read is out: the read may lack it
    clock.t += 0.01
    lists.keep(7, [90, 80], asked=21, read_started=started)
    assert lists.page(7, None, 2) is None
    lists.keep(7, [95, 90, 80], asked=21, read_started=lists.now())
    assert lists.page(7, None, 2) == [95, 90]


def test_a_slow_read_is_not_kept_even_after_changes_are_forgotten():
    lists, clock = _lists()
    started = lists.now()
    clock.t += READ_HORIZON_SECONDS + 1
    lists.keep(7, [90], asked=21, read_started=started)
    assert lists.page(7, None, 1) is None


def test_a_copy_is_bounded_and_stops_being_whole_when_trimmed():
    lists, _ = _lists()
    newest = list(range(1000, 1000 - MAX_IDS_KEPT, -1))
    lists.keep(7, newest, asked=MAX_IDS_KEPT + 5, read_started=lists.now())
    lists.added(7, 2000)
    assert lists.page(7, None, MAX_IDS_KEPT) == [2000] + newest[:-1]
    assert lists.page(7, None, MAX_IDS_KEPT + 1) is None


def test_a_copy_lapses_after_its_ttl():
    lists, clock = _lists(ttl=5)
    lists.keep(7, [90], asked=21, read_started=lists.now())
    clock.t += 6
    assert lists.page(7, None, 1) is None
