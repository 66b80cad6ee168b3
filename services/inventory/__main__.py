"""python -m services.inventory: stock and reservations, plus the expiry sweeper."""

from aviary.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from services.inventory.servicer import InventoryServicer
from services.inventory.settings import InventorySettings
from services.kit.server import service
from services.kit.settings import load, service_port


def main() -> None:
    settings = load(InventorySettings)
    servicer = InventoryServicer(settings)
    service.run(
        service.Service(
            name="inventory",
            port=service_port("inventory"),
            servicers=[
                (
                    inventory_pb2_grpc.add_InventoryServiceServicer_to_server,
                    servicer,
                    inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name,
                )
            ],
            on_start=[servicer.start],  # migrate the schema, connect
            on_stop=[servicer.stop],
            background=[servicer.sweep_expired],  # expired held reservations -> released
        )
    )


if __name__ == "__main__":
    main()
