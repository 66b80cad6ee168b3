"""Post record -> public message, and the short-lived post row cache."""

from __future__ import annotations

from aviary.identity.v1 import identity_pb2
from services.posts.cache import PostCache
from services.posts.model import PostProtos, PostRecord, to_proto


def _record(post_id: int = 42, **overrides) -> PostRecord:
    fields = dict(post_id=post_id, author_id=7, text="hi #there", created_at_ms=1_717_171_717_123)
    fields.update(overrides)
    return PostRecord(**fields)


# -- to_proto -----------------------------------------------------------------------


def test_ids_are_decimal_strings_and_unset_refs_are_empty():
    post = to_proto(_record(media_ids=(1, 2), product_ids=(9_000_000_000_000_000_001,)), None)
    assert post.id == "42" and post.author_id == "7"
    assert list(post.media_ids) == ["1", "2"]
    assert list(post.product_ids) == ["9000000000000000001"]
    assert post.reply_to_id == "" and post.repost_of_id == ""
    assert not post.HasField("author")


def test_refs_hashtags_mentions_and_author_are_copied():
    author = identity_pb2.User(id="7", username="ann")
    post = to_proto(_record(reply_to_id=5, hashtags=("there",), mentions=("bob",)), author)
    assert post.reply_to_id == "5"
    assert list(post.hashtags) == ["there"] and list(post.mentions) == ["bob"]
    assert post.author.username == "ann"


def test_kept_protos_are_what_to_proto_builds_and_never_shared():
    protos = PostProtos(max_entries=10)
    record, author = _record(media_ids=(3,), hashtags=("there",)), identity_pb2.User(id="7", username="ann")
    first = protos.to_proto(record, author)
    assert first == to_proto(record, author)
    # A page's copy gets counts written into it: the next page must not see them.
    first.like_count = 5
    first.author.display_name = "changed"
    again = protos.to_proto(record, None)
    assert again == to_proto(record, None) and again.like_count == 0 and not again.HasField("author")


def test_a_record_read_again_is_built_again():
    protos = PostProtos(max_entries=10)
    assert protos.to_proto(_record(text="before"), None).text == "before"
    # Same post id, another record object (the row read again once the cache
    # let it go): what was kept for the old object is not used.
    assert protos.to_proto(_record(text="after"), None).text == "after"


def test_kept_protos_are_bounded():
    protos = PostProtos(max_entries=3)
    records = [_record(post_id=i, text=f"post {i}") for i in range(10)]
    for record in records:
        protos.to_proto(record, None)
    assert len(protos._built) <= 3
    assert [protos.to_proto(r, None).text for r in records] == [f"post {i}" for i in range(10)]


def test_created_at_keeps_milliseconds():
    post = to_proto(_record(), None)
    assert post.created_at.ToMilliseconds() == 1_717_171_717_123
    assert post.like_count == 0 and not post.liked_by_me


# -- PostCache ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_cached_rows_expire_after_the_ttl():
    clock = FakeClock()
    cache = PostCache(ttl_seconds=1.0, clock=clock)
    cache.put(_record(), read_started=clock())
    clock.t += 0.79  # rows lapse spread over the last fifth of the ttl
    assert cache.get(42) is not None
    clock.t += 0.22
    assert cache.get(42) is None


def test_invalidate_drops_at_once_and_blocks_a_stale_concurrent_read():
    clock = FakeClock()
    cache = PostCache(ttl_seconds=1.0, clock=clock)
    cache.put(_record(), read_started=clock())
    read_started = clock()  # a reader starts before the delete ...
    clock.t += 0.01
    cache.invalidate(42)
    assert cache.get(42) is None
    cache.put(_record(), read_started=read_started)  # ... and finishes after it
    assert cache.get(42) is None
    clock.t += 0.01
    cache.put(_record(), read_started=clock())  # a later read may cache again
    assert cache.get(42) is not None


def test_deleted_rows_are_never_cached():
    cache = PostCache(ttl_seconds=1.0, clock=FakeClock())
    cache.put(_record(deleted=True), read_started=100.0)
    assert cache.get(42) is None


def test_cache_is_bounded_and_evicts_the_oldest():
    clock = FakeClock()
    cache = PostCache(ttl_seconds=1.0, max_entries=3, clock=clock)
    for post_id in range(1, 6):
        cache.put(_record(post_id), read_started=clock())
    assert len(cache) == 3
    assert cache.get(1) is None and cache.get(2) is None and cache.get(5) is not None


def test_zero_ttl_disables_the_cache():
    cache = PostCache(ttl_seconds=0, clock=FakeClock())
    cache.put(_record(), read_started=100.0)
    assert cache.get(42) is None
