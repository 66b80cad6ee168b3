"""The hidden-authors answer as read paths use it: who is hidden, and when a post is."""

from __future__ import annotations

import datetime

from aviary.graph.v1 import graph_pb2
from aviary.posts.v1 import posts_pb2
from services.kit.peers import safety

NOW = 1_800_000_000.0


def _hidden(blocking=(), blocked_by=(), muted_until=()) -> safety.Hidden:
    return safety.Hidden(blocking=frozenset(blocking), blocked_by=frozenset(blocked_by), muted_until=tuple(muted_until))


def test_blocked_either_way_and_actively_muted_users_are_hidden():
    hidden = _hidden(blocking=[1], blocked_by=[9], muted_until=[(2, None), (3, NOW + 10)])
    assert hidden.ids(NOW) == {1, 2, 3, 9}


def test_a_mute_is_over_at_its_end_time():
    hidden = _hidden(muted_until=[(3, NOW)])
    assert hidden.ids(NOW) == frozenset()
    assert hidden.ids(NOW - 1) == {3}


def test_a_post_is_hidden_by_its_author_or_the_author_it_reposts():
    ids = frozenset({7})
    own = posts_pb2.Post(id="10", author_id="7")
    repost = posts_pb2.Post(id="11", author_id="8", repost_of=posts_pb2.Post(id="10", author_id="7"))
    other = posts_pb2.Post(id="12", author_id="8", repost_of=posts_pb2.Post(id="9", author_id="6"))
    assert safety.hides_post(own, ids)
    assert safety.hides_post(repost, ids)
    assert not safety.hides_post(other, ids)


def test_the_reply_keeps_mute_end_times():
    end = datetime.datetime.fromtimestamp(NOW + 5, datetime.timezone.utc)
    reply = graph_pb2.GetHiddenAuthorsResponse(
        blocked_ids=[4], blocker_ids=[8], mutes=[graph_pb2.HiddenMute(user_id=5), graph_pb2.HiddenMute(user_id=6)]
    )
    reply.mutes[1].expires_at.FromDatetime(end)
    hidden = safety.from_reply(reply)
    assert hidden.ids(NOW) == {4, 5, 6, 8}
    assert hidden.ids(NOW + 5) == {4, 5, 8}
    assert hidden.blocked_by == {8}


def test_the_version_key_is_one_slot_per_viewer():
    assert safety.version_key(42) == "graph:hidden-version:{42}"
