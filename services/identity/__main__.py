from aviary.identity.v1 import identity_pb2, identity_pb2_grpc
from services.identity.servicer import IdentityServicer
from services.kit.server import service
from services.identity.settings import IdentitySettings
from services.kit.settings import load, service_port


def main() -> None:
    settings = load(IdentitySettings)
    servicer = IdentityServicer(settings)
    service.run(
        service.Service(
            name="identity",
            port=service_port("identity"),
            servicers=[
                (
                    identity_pb2_grpc.add_IdentityServiceServicer_to_server,
                    servicer,
                    identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
                )
            ],
            on_start=[servicer.start],
            on_stop=[servicer.stop],
            background=[
                servicer.follow_profile_changes,
                servicer.sweep_expired_sessions,
                servicer.relay,  # outbox -> identity.events.v1
                servicer.publish_gone_accounts,
                servicer.free_held_usernames,
            ],
        )
    )


if __name__ == "__main__":
    main()
