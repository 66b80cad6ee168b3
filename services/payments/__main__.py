"""python -m services.payments: payments, the ledger, and the only caller of the payment provider."""

from aviary.payments.v1 import payments_pb2, payments_pb2_grpc
from services.kit.server import service
from services.kit.settings import load, service_port
from services.payments.servicer import PaymentsServicer
from services.payments.settings import PaymentsSettings


def main() -> None:
    settings = load(PaymentsSettings)
    servicer = PaymentsServicer(settings)
    service.run(
        service.Service(
            name="payments",
            port=service_port("payments"),
            servicers=[
                (
                    payments_pb2_grpc.add_PaymentsServiceServicer_to_server,
                    servicer,
                    payments_pb2.DESCRIPTOR.services_by_name["PaymentsService"].full_name,
                )
            ],
            on_start=[servicer.start],  # migrate the `payments` schema, open the pools
            on_stop=[servicer.stop],
            background=[servicer.consume_account_events],  # deleted buyers' payments anonymised
        )
    )


if __name__ == "__main__":
    main()
