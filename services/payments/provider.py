"""The payment provider interface: what payments needs from Stripe (or any other).

A provider call ends in one of three ways, and the difference matters:
  * a result that says it was done (authorized, captured, voided, refunded);
  * a result that says the provider refused (a decline) - a business answer,
    not an error;
  * ProviderUnavailable - we could not get an answer. Whether the provider
    acted is unknown unless `maybe_processed` is False (the request provably
    never reached it: connection refused, rate-limited, breaker open).
Every call carries an idempotency key, so re-sending it after an unknown
outcome can never act twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol


class ProviderUnavailable(Exception):
    """No answer from the provider: unreachable, timed out, 5xx, rate-limited."""

    def __init__(self, message: str, *, maybe_processed: bool = True) -> None:
        super().__init__(message)
        self.message = message
        # False only when the request certainly did not take effect, which
        # lets payments say "nothing was charged" with confidence.
        self.maybe_processed = maybe_processed


@dataclass(frozen=True)
class ProviderResult:
    """The provider's answer to one call."""

    ok: bool
    # The provider's object id (PaymentIntent / Refund), when it returned one.
    ref: str = ""
    # Why it refused, when ok is False (e.g. "card_declined").
    reason: str = ""

    @classmethod
    def done(cls, ref: str) -> "ProviderResult":
        return cls(ok=True, ref=ref)

    @classmethod
    def refused(cls, reason: str, ref: str = "") -> "ProviderResult":
        return cls(ok=False, ref=ref, reason=reason or "declined")


@dataclass(frozen=True)
class Charge:
    """What every call about one payment needs to know about it.

    The payment method rides along on capture/void/refund too: the provider
    itself ignores it there, but the fault-injecting wrapper chooses its
    fault by it."""

    payment_id: int
    amount_minor: int
    currency: str
    payment_method: str
    metadata: Mapping[str, str]


class PaymentProvider(Protocol):
    async def authorize(self, charge: Charge, idempotency_key: str) -> ProviderResult:
        """Holds charge.amount_minor on the payment method; ref is the intent id."""

    async def capture(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        """Moves the held money."""

    async def void(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        """Cancels an uncaptured authorization."""

    async def refund(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        """Gives a captured payment back in full; ref of the result is the refund id."""

    async def close(self) -> None:
        """Releases connections."""


def provider_idempotency_key(payment_id: int, operation: str) -> str:
    """One key per (payment, operation): a re-send after an unknown outcome
    is the same request to the provider, never a second one."""
    return f"aviary-pay-{payment_id}-{operation}"
