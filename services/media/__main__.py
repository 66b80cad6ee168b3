"""python -m services.media: the media service (uploads, metadata, public URLs)."""

from aviary.media.v1 import media_pb2, media_pb2_grpc
from services.kit.server import service
from services.kit.settings import load, service_port
from services.media.servicer import MediaServicer
from services.media.settings import MediaSettings


def main() -> None:
    settings = load(MediaSettings)
    servicer = MediaServicer(settings)
    service.run(
        service.Service(
            name="media",
            port=service_port("media"),
            servicers=[
                (
                    media_pb2_grpc.add_MediaServiceServicer_to_server,
                    servicer,
                    media_pb2.DESCRIPTOR.services_by_name["MediaService"].full_name,
                )
            ],
            on_start=[servicer.start],  # keyspace + table, bucket + public-read policy
            on_stop=[servicer.stop],
            # identity's account deletions -> the account's uploads removed
            background=[servicer.consume_account_events],
            # An upload is one message holding the whole file: room for the largest
            # allowed file and then some, so an oversized one gets our own clear
            # INVALID_ARGUMENT instead of gRPC's RESOURCE_EXHAUSTED.
            max_receive_message_bytes=servicer.limits.largest + 2 * 1024 * 1024,
        )
    )


if __name__ == "__main__":
    main()
