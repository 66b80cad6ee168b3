"""Product images, checked through the media service (catalog never reads its store).

Same rule as posts' media check (the media service is asked afresh, the ids
must be the caller's own uploads, UNAVAILABLE when it cannot answer), plus:
product media must be images. posts' check lives in services/posts and cannot
be imported from here (no service imports another's internals); see the
report asking for one shared kit function.
"""

from __future__ import annotations

import logging

import grpc

from aviary.media.v1 import media_pb2
from services.kit import clients
from services.kit.errors import invalid_argument, permission_denied, unavailable

log = logging.getLogger(__name__)


async def check_images(media_ids: list[int], owner_id: int, timeout: float) -> None:
    """INVALID_ARGUMENT / PERMISSION_DENIED naming media_ids[i] unless every id is an
    image the owner uploaded; UNAVAILABLE when the media service cannot answer."""
    if not media_ids:
        return
    try:
        response = await clients.media().BatchGetMedia(
            media_pb2.BatchGetMediaRequest(media_ids=[str(i) for i in media_ids]), timeout=timeout
        )
    except grpc.aio.AioRpcError as exc:
        log.warning("media BatchGetMedia failed", extra={"code": exc.code().name, "details": exc.details()})
        raise unavailable(f"cannot check media_ids right now (media service: {exc.code().name}); try again") from exc
    found = {int(m.media_id): m for m in response.media}
    for i, media_id in enumerate(media_ids):
        media = found.get(media_id)
        field = f"media_ids[{i}]"
        if media is None:
            raise invalid_argument(field, f"media {media_id} does not exist; upload the image first (POST /v1/media)")
        if media.owner_id != str(owner_id):
            raise permission_denied(f"{field}: media {media_id} was uploaded by someone else; use your own images")
        if not media.content_type.startswith("image/"):
            raise invalid_argument(field, f"media {media_id} is {media.content_type}, not an image")
