from aviary.graph.v1 import graph_pb2, graph_pb2_grpc
from services.graph.servicer import GraphServicer
from services.graph.settings import GraphSettings
from services.kit.server import service
from services.kit.settings import load, service_port


def main() -> None:
    settings = load(GraphSettings)
    servicer = GraphServicer(settings)
    service.run(
        service.Service(
            name="graph",
            port=service_port("graph"),
            servicers=[
                (
                    graph_pb2_grpc.add_GraphServiceServicer_to_server,
                    servicer,
                    graph_pb2.DESCRIPTOR.services_by_name["GraphService"].full_name,
                )
            ],
            on_start=[servicer.start],  # connect, create keyspace + tables, prepare statements
            on_stop=[servicer.stop],
            # outbox -> Kafka; identity's account deletions -> edges, blocks and mutes removed
            background=[servicer.relay_outbox, servicer.consume_account_events, servicer.watch_redis_epoch],
        )
    )


if __name__ == "__main__":
    main()
