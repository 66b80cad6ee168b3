"""The payment state machine as pure decisions (no I/O), so it can be unit-tested.

    PENDING --authorize--> AUTHORIZED --capture--> CAPTURED --refund--> REFUNDED
       |                       |
       +--> DECLINED           +--void--> VOIDED
       +--> VOIDED (nothing was ever sent, or it certainly never arrived)

Each operation on a payment in a given status either calls the provider,
returns the payment unchanged (the operation already happened: idempotent
retries), settles a PENDING authorization first, or is refused with a
message that says why (FAILED_PRECONDITION).
"""

from __future__ import annotations

import enum

PENDING = "PENDING"
AUTHORIZED = "AUTHORIZED"
DECLINED = "DECLINED"
CAPTURED = "CAPTURED"
VOIDED = "VOIDED"
REFUNDED = "REFUNDED"
STATUSES = (PENDING, AUTHORIZED, DECLINED, CAPTURED, VOIDED, REFUNDED)

# Ledger vocabulary.
AUTHORIZE, CAPTURE, VOID, REFUND = "AUTHORIZE", "CAPTURE", "VOID", "REFUND"
OPERATIONS = (AUTHORIZE, CAPTURE, VOID, REFUND)
SUCCEEDED, DECLINED_OUTCOME, FAILED = "SUCCEEDED", "DECLINED", "FAILED"
OUTCOMES = (SUCCEEDED, DECLINED_OUTCOME, FAILED)

# decline_reason of a payment that ended VOIDED because its authorization
# could not be sent: the buyer-facing "why" even though nobody declined.
NOT_SENT_REASON = "payment provider unavailable; nothing was charged"


class Action(enum.Enum):
    CALL_PROVIDER = "call_provider"
    UNCHANGED = "unchanged"
    # PENDING: the authorization's outcome must be learned (re-sent with the
    # same provider idempotency key) before anything else can happen.
    SETTLE_FIRST = "settle_first"
    # PENDING whose authorization was never sent: void without the provider.
    VOID_UNSENT = "void_unsent"


class TransitionRefused(Exception):
    """The operation makes no sense in the payment's status."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def authorize_action(status: str) -> Action:
    """An Authorize for a key whose payment already exists."""
    return Action.SETTLE_FIRST if status == PENDING else Action.UNCHANGED


def capture_action(status: str, payment_id: int) -> Action:
    if status == AUTHORIZED:
        return Action.CALL_PROVIDER
    if status == CAPTURED:
        return Action.UNCHANGED
    raise TransitionRefused(f"payment {payment_id} cannot be captured: {_why_not_capture(status)}")


def void_action(status: str, payment_id: int, *, authorization_sent: bool) -> Action:
    if status == AUTHORIZED:
        return Action.CALL_PROVIDER
    if status in (DECLINED, VOIDED):
        return Action.UNCHANGED
    if status == PENDING:
        return Action.SETTLE_FIRST if authorization_sent else Action.VOID_UNSENT
    if status == CAPTURED:
        raise TransitionRefused(f"payment {payment_id} cannot be voided: it was captured; refund it instead")
    raise TransitionRefused(f"payment {payment_id} cannot be voided: it was captured and already refunded")


def refund_action(status: str, payment_id: int) -> Action:
    if status == CAPTURED:
        return Action.CALL_PROVIDER
    if status == REFUNDED:
        return Action.UNCHANGED
    raise TransitionRefused(f"payment {payment_id} cannot be refunded: {_why_not_refund(status)}")


def status_after_authorize_unavailable(*, maybe_processed: bool, sent_before: bool) -> str:
    """Where a payment goes when its authorization got no answer.

    Only when neither this attempt nor any earlier one can have reached the
    provider do we know nothing was charged (VOIDED). Otherwise it stays
    PENDING until a re-send with the same key tells us."""
    return PENDING if (maybe_processed or sent_before) else VOIDED


def status_after(operation: str, ok: bool) -> str:
    """The status a provider answer moves a payment to."""
    if operation == AUTHORIZE:
        return AUTHORIZED if ok else DECLINED
    if not ok:
        raise ValueError("a refused capture/void/refund leaves the status as it was")
    return {CAPTURE: CAPTURED, VOID: VOIDED, REFUND: REFUNDED}[operation]


def _why_not_capture(status: str) -> str:
    return {
        PENDING: "its authorization is still pending; authorize (retry) or void it first",
        DECLINED: "it was declined, nothing is held to capture",
        VOIDED: "it was voided, nothing is held to capture",
        REFUNDED: "it was already captured and refunded",
    }.get(status, f"it is {status}")


def _why_not_refund(status: str) -> str:
    return {
        PENDING: "it was never captured (authorization pending)",
        AUTHORIZED: "it was only authorized, not captured; void it instead",
        DECLINED: "it was declined, nothing was charged",
        VOIDED: "it was voided, nothing was charged",
    }.get(status, f"it is {status}")
