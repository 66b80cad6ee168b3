"""PaymentsService: the gRPC surface over the payment flows."""

from __future__ import annotations

import logging

from google.protobuf.timestamp_pb2 import Timestamp

from aviary.events.v1 import events_pb2
from aviary.payments.v1 import payments_pb2, payments_pb2_grpc
from services.kit.events.account_deletions import AccountDeletions
from services.kit.server import startup
from services.kit.server.errors import invalid_argument, not_found
from services.kit.server.ids import IdGenerator
from services.payments import faults, validation
from services.payments.breaker import GuardedProvider
from services.payments.flows import PaymentFlows
from services.payments.provider import PaymentProvider
from services.payments.settings import PaymentsSettings
from services.payments.store import LedgerRecord, PaymentRecord, PaymentsStore
from services.payments.stripe_provider import StripeProvider, StripeSettings

log = logging.getLogger(__name__)

ACCOUNTS_GROUP = "payments-accounts"


def build_provider(settings: PaymentsSettings) -> GuardedProvider:
    """Stripe, behind the fault injector when (and only when) test config
    asks for it, behind the circuit breaker."""
    provider: PaymentProvider = StripeProvider(StripeSettings.from_settings(settings))
    if settings.fault_injection:
        provider = faults.FaultInjectingProvider(
            provider,
            timeout_seconds=settings.stripe_timeout_seconds,
            slow_delay_seconds=settings.fault_delay_seconds,
        )
    return GuardedProvider.from_settings(provider, settings)


def accepted_methods(settings: PaymentsSettings) -> validation.AcceptedMethods:
    """AVIARY_PAYMENTS_ACCEPTED_METHODS, a comma list (default: Stripe's test
    methods, as the devstack wants; empty in production: any well-formed id,
    the provider decides), plus the fault injector's methods while it is on."""
    extra = faults.payment_methods() if settings.fault_injection else ()
    return validation.AcceptedMethods.parse(settings.accepted_methods, extra)


class PaymentsServicer(payments_pb2_grpc.PaymentsServiceServicer):
    def __init__(self, settings: PaymentsSettings) -> None:
        self.settings = settings
        self.ids = IdGenerator(settings.worker_id)
        self.store = PaymentsStore(settings, self.ids)
        self.provider = build_provider(settings)
        self.accepted = accepted_methods(settings)
        self.flows = PaymentFlows(self.store, self.provider, self.ids)
        self.account_deletions = AccountDeletions(settings.kafka_bootstrap, ACCOUNTS_GROUP, self._on_account_deleted)

    async def start(self) -> None:
        # The SDK logs every request at INFO.
        logging.getLogger("stripe").setLevel(logging.WARNING)
        if self.settings.fault_injection:
            log.warning("payment fault injection is ON (test configuration; never in production)")
        log.info(
            "payment methods accepted",
            extra={"accepted": ",".join(sorted(self.accepted.only)) or "any well-formed provider id"},
        )
        await startup.retry_until_up(self.store.start, "postgresql")

    async def stop(self) -> None:
        await self.provider.close()
        await self.store.stop()

    async def consume_account_events(self) -> None:
        """Background job: identity's AccountDeleted -> the buyer's payments anonymised."""
        await self.account_deletions.run()

    async def _on_account_deleted(self, event: events_pb2.AccountEvent) -> None:
        user = event.deleted.user_id
        anonymised = await self.store.forget_buyer(user)
        # Most deleted accounts never paid for anything: only a change is worth a line.
        (log.info if anonymised else log.debug)(
            "deleted account's payments anonymised", extra={"user_id": user, "payments_anonymised": anonymised}
        )

    # -- RPCs ----------------------------------------------------------------------

    async def AuthorizePayment(self, request, context):
        payment = await self.flows.authorize(validation.authorize_input(request, self.accepted))
        return payment_message(payment)

    async def CheckPaymentMethod(self, request, context):
        problem = self.accepted.problem(request.payment_method)
        return payments_pb2.CheckPaymentMethodResponse(accepted=problem is None, problem=problem or "")

    async def CapturePayment(self, request, context):
        return payment_message(await self.flows.capture(validation.payment_id(request.payment_id)))

    async def VoidPayment(self, request, context):
        return payment_message(await self.flows.void(validation.payment_id(request.payment_id)))

    async def RefundPayment(self, request, context):
        return payment_message(await self.flows.refund(validation.payment_id(request.payment_id)))

    async def GetPayment(self, request, context):
        if request.payment_id:
            payment_id = validation.payment_id(request.payment_id)
            payment = await self.store.get(payment_id)
            if payment is None:
                raise not_found(f"payment {payment_id} does not exist")
        elif request.idempotency_key:
            key = validation.idempotency_key(request.idempotency_key)
            payment = await self.store.get_by_key(key)
            if payment is None:
                raise not_found(f"no payment has idempotency_key {key[:80]!r}")
        else:
            raise invalid_argument("payment_id", "give payment_id or idempotency_key")
        return payment_message(payment)

    async def ListLedgerEntries(self, request, context):
        payment_id = validation.payment_id(request.payment_id)
        entries = await self.store.ledger_entries(payment_id)
        if not entries and await self.store.get(payment_id) is None:
            raise not_found(f"payment {payment_id} does not exist")
        return payments_pb2.ListLedgerEntriesResponse(entries=[ledger_message(e) for e in entries])


def payment_message(p: PaymentRecord) -> payments_pb2.Payment:
    return payments_pb2.Payment(
        id=str(p.id),
        idempotency_key=p.idempotency_key,
        buyer_id=str(p.buyer_id),
        amount_minor=p.amount_minor,
        currency=p.currency,
        status=payments_pb2.PaymentStatus.Value(f"PAYMENT_STATUS_{p.status}"),
        provider_ref=p.provider_ref,
        decline_reason=p.decline_reason,
        create_time=_timestamp(p.created_at),
        update_time=_timestamp(p.updated_at),
    )


def ledger_message(e: LedgerRecord) -> payments_pb2.LedgerEntry:
    return payments_pb2.LedgerEntry(
        id=str(e.id),
        payment_id=str(e.payment_id),
        operation=payments_pb2.LedgerOperation.Value(f"LEDGER_OPERATION_{e.operation}"),
        outcome=payments_pb2.LedgerOutcome.Value(f"LEDGER_OUTCOME_{e.outcome}"),
        amount_minor=e.amount_minor,
        provider_idempotency_key=e.provider_idempotency_key,
        provider_ref=e.provider_ref,
        detail=e.detail,
        create_time=_timestamp(e.created_at),
    )


def _timestamp(value) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts
