"""posts' view of media (services/posts/media.py) against a fake media service."""

from __future__ import annotations

import grpc
import pytest

from aviary.media.v1 import media_pb2
from aviary.posts.v1 import posts_pb2
from services.kit.peers import clients
from services.kit.server.errors import ApiError
from services.posts import media as post_media

AUTHOR = 111
OTHER = 222


class FakeMedia:
    def __init__(self, items: dict[int, int] | None = None, down: bool = False) -> None:
        self.items = items or {}  # media id -> owner id
        self.down = down
        self.calls: list[list[str]] = []

    async def BatchGetMedia(self, request, timeout=None):
        self.calls.append(list(request.media_ids))
        if self.down:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="connection refused"
            )
        return media_pb2.BatchGetMediaResponse(
            media=[
                media_pb2.Media(
                    media_id=i,
                    owner_id=str(self.items[int(i)]),
                    content_type="image/png",
                    url=f"http://edge/media/{i}.png",
                )
                for i in request.media_ids
                if int(i) in self.items
            ]
        )


@pytest.fixture
def fake(monkeypatch):
    service = FakeMedia()
    monkeypatch.setattr(clients, "media", lambda: service)
    return service


@pytest.fixture
def lookup():
    return post_media.media_lookup(cache_seconds=60)


async def _refused(media_ids, author=AUTHOR) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await post_media.check_media_ids(media_ids, author, timeout=1.0)
    return caught.value


async def test_own_media_pass_and_nothing_is_asked_without_media(fake):
    fake.items = {1: AUTHOR, 2: AUTHOR}
    await post_media.check_media_ids([], AUTHOR, timeout=1.0)
    assert fake.calls == []
    await post_media.check_media_ids([2, 1], AUTHOR, timeout=1.0)


async def test_unknown_media_is_invalid_argument_naming_media_ids(fake):
    fake.items = {1: AUTHOR}
    err = await _refused([1, 99])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.message.startswith("media_ids[1]: media 99 ")


async def test_someone_elses_media_is_permission_denied(fake):
    fake.items = {1: AUTHOR, 2: OTHER}
    err = await _refused([1, 2])
    assert err.code == grpc.StatusCode.PERMISSION_DENIED
    assert err.message.startswith("media_ids[1]: media 2 ")


async def test_the_same_media_twice_is_refused(fake):
    fake.items = {1: AUTHOR}
    err = await _refused([1, 1])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "more than once" in err.message


async def test_media_service_down_means_unavailable_not_unchecked(fake, lookup):
    fake.items = {1: AUTHOR}
    await post_media.attach_media(lookup, [posts_pb2.Post(id="1", media_ids=["1"])], timeout=1.0)  # now cached
    fake.down = True
    err = await _refused([1])  # a write is never checked against the cache
    assert err.code == grpc.StatusCode.UNAVAILABLE


async def test_attach_fills_media_in_media_ids_order_including_reposted_posts(fake, lookup):
    fake.items = {1: AUTHOR, 2: AUTHOR, 3: OTHER}
    first = posts_pb2.Post(id="10", media_ids=["2", "1"])
    plain = posts_pb2.Post(id="11")
    quote = posts_pb2.Post(id="12", media_ids=["404"])
    quote.repost_of.CopyFrom(posts_pb2.Post(id="13", media_ids=["3"]))
    await post_media.attach_media(lookup, [first, plain, quote], timeout=1.0)
    assert [m.media_id for m in first.media] == ["2", "1"]
    assert [m.url for m in first.media] == ["http://edge/media/2.png", "http://edge/media/1.png"]
    assert list(plain.media) == []
    assert list(quote.media) == []  # unknown id: left out
    assert [m.media_id for m in quote.repost_of.media] == ["3"]
    assert len(fake.calls) == 1  # one call for every post


async def test_attach_uses_the_cache_for_media_seen_before(fake, lookup):
    fake.items = {1: AUTHOR}
    await post_media.attach_media(lookup, [posts_pb2.Post(id="1", media_ids=["1"])], timeout=1.0)
    await post_media.attach_media(lookup, [posts_pb2.Post(id="2", media_ids=["1"])], timeout=1.0)
    assert fake.calls == [["1"]]


async def test_attach_degrades_to_posts_without_media_when_the_service_is_down(fake, lookup):
    fake.down = True
    post = posts_pb2.Post(id="1", media_ids=["1"])
    await post_media.attach_media(lookup, [post], timeout=1.0)
    assert list(post.media_ids) == ["1"] and list(post.media) == []
