"""python -m services.feed: the mixed home feed (public GET /v1/feed) plus the
consumer that remembers deleted posts for the cached rankings."""

from aviary.feed.v1 import feed_pb2, feed_pb2_grpc
from services.feed.servicer import FeedServicer
from services.feed.settings import FeedSettings
from services.kit.server import service
from services.kit.settings import load, service_port


def main() -> None:
    settings = load(FeedSettings)
    servicer = FeedServicer(settings)
    service.run(
        service.Service(
            name="feed",
            port=service_port("feed"),
            servicers=[
                (
                    feed_pb2_grpc.add_FeedServiceServicer_to_server,
                    servicer,
                    feed_pb2.DESCRIPTOR.services_by_name["FeedService"].full_name,
                )
            ],
            on_start=[servicer.start],  # waits until Redis answers
            on_stop=[servicer.stop],
            background=[servicer.consume_deletions],  # post deletions -> cached pages drop them
        )
    )


if __name__ == "__main__":
    main()
