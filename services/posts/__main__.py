"""python -m services.posts: the posts service plus its outbox relay."""

from aviary.posts.v1 import posts_pb2, posts_pb2_grpc
from services.kit.server import service
from services.kit.settings import load, service_port
from services.posts.servicer import PostsServicer
from services.posts.settings import PostsSettings


def main() -> None:
    settings = load(PostsSettings)
    servicer = PostsServicer(settings)
    service.run(
        service.Service(
            name="posts",
            port=service_port("posts"),
            servicers=[
                (
                    posts_pb2_grpc.add_PostsServiceServicer_to_server,
                    servicer,
                    posts_pb2.DESCRIPTOR.services_by_name["PostsService"].full_name,
                )
            ],
            on_start=[servicer.start],
            on_stop=[servicer.stop],
            background=[
                servicer.relay,
                servicer.evict_deleted,
                servicer.follow_profile_changes,
                servicer.remove_deleted_accounts,
            ],
        )
    )


if __name__ == "__main__":
    main()
