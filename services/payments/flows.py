"""What each RPC does to a payment: decide (rules), call the provider (under
the payment's lock), record the outcome in the ledger, and say what happened.

Inside a unit of work the provider's answer is written down first and the
RPC's error, if any, raised only after the commit: a FAILED ledger entry must
survive the UNAVAILABLE it explains.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from services.kit.server.errors import ApiError, failed_precondition, not_found, unavailable
from services.kit.server.ids import IdGenerator
from services.payments import rules
from services.payments.provider import (
    Charge,
    PaymentProvider,
    ProviderResult,
    ProviderUnavailable,
    provider_idempotency_key,
)
from services.payments.store import LockedPayment, PaymentBusy, PaymentRecord, PaymentsStore
from services.payments.validation import AuthorizeInput

log = logging.getLogger(__name__)

# A deleted account's payments keep this in place of the buyer.
ANONYMISED_BUYER = 0
# Stripe metadata values are at most 500 characters.
_METADATA_VALUE_MAX = 500

Work = Callable[[LockedPayment], Awaitable[ApiError | None]]


class PaymentFlows:
    def __init__(self, store: PaymentsStore, provider: PaymentProvider, ids: IdGenerator) -> None:
        self.store = store
        self.provider = provider
        self.ids = ids

    # -- operations ----------------------------------------------------------------

    async def authorize(self, request: AuthorizeInput) -> PaymentRecord:
        payment, created = await self.store.create_or_get(self.ids.next_id(), request)
        if not created:
            _check_same_request(payment, request)
            if rules.authorize_action(payment.status) is rules.Action.UNCHANGED:
                return payment  # the first call's answer; no lock, no provider
        return await self._locked(payment.id, self._authorize_locked)

    async def capture(self, payment_id: int) -> PaymentRecord:
        return await self._locked(payment_id, self._capture_locked)

    async def void(self, payment_id: int) -> PaymentRecord:
        return await self._locked(payment_id, self._void_locked)

    async def refund(self, payment_id: int) -> PaymentRecord:
        return await self._locked(payment_id, self._refund_locked)

    # -- units of work (the payment's lock is held) ----------------------------------

    async def _authorize_locked(self, unit: LockedPayment) -> ApiError | None:
        if rules.authorize_action(unit.payment.status) is rules.Action.UNCHANGED:
            return None  # someone else settled it while we waited for the lock
        return await self._send_authorization(unit)

    async def _capture_locked(self, unit: LockedPayment) -> ApiError | None:
        p = unit.payment
        if rules.capture_action(p.status, p.id) is rules.Action.UNCHANGED:
            return None
        return await self._call(unit, rules.CAPTURE, self.provider.capture)

    async def _void_locked(self, unit: LockedPayment) -> ApiError | None:
        p = unit.payment
        action = rules.void_action(p.status, p.id, authorization_sent=p.authorization_sent)
        if action is rules.Action.UNCHANGED:
            return None
        if action is rules.Action.VOID_UNSENT:
            # No request ever left for it: nothing can be held, nothing to ask.
            await unit.record(
                operation=rules.VOID,
                outcome=rules.SUCCEEDED,
                provider_idempotency_key=provider_idempotency_key(p.id, "void"),
                detail="authorization never sent; voided without calling the provider",
                status=rules.VOIDED,
            )
            return None
        if action is rules.Action.SETTLE_FIRST:
            error = await self._send_authorization(unit)
            if error is not None:
                return error
            if unit.payment.status != rules.AUTHORIZED:
                return None  # declined after all: nothing held, nothing to void
        return await self._call(unit, rules.VOID, self.provider.void)

    async def _refund_locked(self, unit: LockedPayment) -> ApiError | None:
        p = unit.payment
        if rules.refund_action(p.status, p.id) is rules.Action.UNCHANGED:
            return None
        return await self._call(unit, rules.REFUND, self.provider.refund)

    # -- provider calls ------------------------------------------------------------------

    async def _send_authorization(self, unit: LockedPayment) -> ApiError | None:
        """Sends (or re-sends, with the same provider key) the authorization
        of a PENDING payment and records the answer."""
        p = unit.payment
        key = provider_idempotency_key(p.id, "authorize")
        sent_before = p.authorization_sent
        await unit.mark_authorization_sent()
        try:
            result = await self.provider.authorize(_charge(p), key)
        except ProviderUnavailable as exc:
            status = rules.status_after_authorize_unavailable(
                maybe_processed=exc.maybe_processed, sent_before=sent_before
            )
            nothing_charged = status == rules.VOIDED
            await unit.record(
                operation=rules.AUTHORIZE,
                outcome=rules.FAILED,
                provider_idempotency_key=key,
                detail=exc.message,
                status=status,
                decline_reason=rules.NOT_SENT_REASON if nothing_charged else None,
            )
            log.warning(
                "authorization got no answer", extra={"payment_id": p.id, "error": exc.message, "status": status}
            )
            if nothing_charged:
                return unavailable(rules.NOT_SENT_REASON)
            return unavailable(
                f"payment provider unavailable; the outcome of payment {p.id}'s authorization is unknown "
                "and it stays PENDING: retry with the same idempotency key, or void it"
            )
        if result.ok:
            await unit.record(
                operation=rules.AUTHORIZE,
                outcome=rules.SUCCEEDED,
                provider_idempotency_key=key,
                provider_ref=result.ref,
                status=rules.AUTHORIZED,
                payment_provider_ref=result.ref,
            )
        else:
            await unit.record(
                operation=rules.AUTHORIZE,
                outcome=rules.DECLINED_OUTCOME,
                provider_idempotency_key=key,
                provider_ref=result.ref,
                detail=result.reason,
                status=rules.DECLINED,
                decline_reason=result.reason,
                payment_provider_ref=result.ref,
            )
        log.info(
            "payment authorization answered",
            extra={"payment_id": p.id, "status": unit.payment.status, "decline_reason": result.reason},
        )
        return None

    async def _call(
        self, unit: LockedPayment, operation: str, call: Callable[[Charge, str, str], Awaitable[ProviderResult]]
    ) -> ApiError | None:
        """Capture, void or refund: one provider call, one ledger entry."""
        p = unit.payment
        verb = operation.lower()
        key = provider_idempotency_key(p.id, verb)
        try:
            result = await call(_charge(p), p.provider_ref, key)
        except ProviderUnavailable as exc:
            await unit.record(
                operation=operation, outcome=rules.FAILED, provider_idempotency_key=key, detail=exc.message
            )
            return unavailable(
                f"payment provider unavailable; payment {p.id} is still {p.status} - retrying is safe "
                f"(the same provider idempotency key is sent)"
            )
        if not result.ok:
            await unit.record(
                operation=operation,
                outcome=rules.DECLINED_OUTCOME,
                provider_idempotency_key=key,
                provider_ref=result.ref,
                detail=result.reason,
            )
            return failed_precondition(
                f"the payment provider refused to {verb} payment {p.id} ({result.reason}); it is still {p.status}"
            )
        await unit.record(
            operation=operation,
            outcome=rules.SUCCEEDED,
            provider_idempotency_key=key,
            provider_ref=result.ref,
            status=rules.status_after(operation, True),
        )
        log.info("payment updated", extra={"payment_id": p.id, "operation": verb, "status": unit.payment.status})
        return None

    # -- plumbing ----------------------------------------------------------------------

    async def _locked(self, payment_id: int, work: Work) -> PaymentRecord:
        """Runs `work` under the payment's lock, shielded from the caller's
        cancellation: once a provider call may start, its outcome is always
        written down, even if the client stopped waiting."""

        async def unit() -> PaymentRecord:
            try:
                async with self.store.locked(payment_id) as locked:
                    error = await work(locked)
                    payment = locked.payment
            except LookupError:
                raise not_found(f"payment {payment_id} does not exist") from None
            except rules.TransitionRefused as exc:
                raise failed_precondition(exc.message) from None
            except PaymentBusy:
                raise unavailable(f"payment {payment_id} is busy with another call; try again") from None
            if error is not None:
                raise error
            return payment

        task = asyncio.ensure_future(unit())
        task.add_done_callback(_retrieve_exception)
        return await asyncio.shield(task)


def _check_same_request(payment: PaymentRecord, request: AuthorizeInput) -> None:
    """A key names one payment: reusing it for another one is a caller bug.
    An anonymised payment (buyer 0: the account was deleted) matches any
    buyer, so the checkout that made it can still settle it."""
    buyer = request.buyer_id if payment.buyer_id == ANONYMISED_BUYER else payment.buyer_id
    differs = [
        name
        for name, ours, theirs in (
            ("amount_minor", payment.amount_minor, request.amount_minor),
            ("currency", payment.currency, request.currency),
            ("buyer_id", buyer, request.buyer_id),
        )
        if ours != theirs
    ]
    if differs:
        raise failed_precondition(
            f"idempotency_key {request.idempotency_key[:80]!r} was already used for payment {payment.id} "
            f"with a different {', '.join(differs)}; use a new key for a new payment"
        )


def _charge(p: PaymentRecord) -> Charge:
    return Charge(
        payment_id=p.id,
        amount_minor=p.amount_minor,
        currency=p.currency,
        payment_method=p.payment_method,
        metadata={
            "aviary_payment_id": str(p.id),
            "aviary_buyer_id": str(p.buyer_id),
            "aviary_reference": p.reference[:_METADATA_VALUE_MAX],
        },
    )


def _retrieve_exception(task: asyncio.Task) -> None:
    # The awaiting RPC may have been cancelled; its error is already logged
    # or was an ApiError meant for that caller - keep asyncio quiet about it.
    if not task.cancelled():
        task.exception()
