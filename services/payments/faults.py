"""Test-only fault injection in front of the real provider.

stripe-mock approves everything, so declines, timeouts and outages are
simulated here, chosen by the payment method string so each test picks the
fault per call (see _FAULTS_BY_METHOD). Enabled only by AVIARY_PAYMENTS_FAULT_INJECTION=1 (the
devstack sets it; production never does). Any payment method that names no
fault goes straight to the real provider unchanged.

The wrapper sits inside the circuit breaker, so injected outages trip it
exactly like real ones.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from dataclasses import replace

from services.payments.provider import Charge, PaymentProvider, ProviderResult, ProviderUnavailable

log = logging.getLogger(__name__)

# How many "answer already lost once" keys pm_fault_timeout_once remembers.
_LOST_ANSWERS_MAX = 10_000

# What the real provider gets instead of a fault-only payment method: a card
# it approves.
PASS_THROUGH_METHOD = "pm_card_visa"


class Fault(enum.Enum):
    DECLINE_CARD = "card_declined"
    DECLINE_INSUFFICIENT_FUNDS = "insufficient_funds"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    TIMEOUT_ONCE = "timeout_once"
    CAPTURE_UNAVAILABLE = "capture_unavailable"
    SLOW = "slow"


_FAULTS_BY_METHOD = {
    # Stripe's own test payment methods for declines: on real Stripe test
    # mode they decline by themselves; stripe-mock needs us to.
    "pm_card_chargeDeclined": Fault.DECLINE_CARD,
    "pm_card_visa_chargeDeclined": Fault.DECLINE_CARD,
    "pm_card_chargeDeclinedInsufficientFunds": Fault.DECLINE_INSUFFICIENT_FUNDS,
    # Ours.
    "pm_fault_unavailable": Fault.UNAVAILABLE,
    "pm_fault_timeout": Fault.TIMEOUT,
    "pm_fault_timeout_once": Fault.TIMEOUT_ONCE,
    "pm_fault_capture_unavailable": Fault.CAPTURE_UNAVAILABLE,
    "pm_fault_slow": Fault.SLOW,
}

_DECLINES = {Fault.DECLINE_CARD: "card_declined", Fault.DECLINE_INSUFFICIENT_FUNDS: "insufficient_funds"}


def payment_methods() -> frozenset[str]:
    """Every payment method that names a fault."""
    return frozenset(_FAULTS_BY_METHOD)


def parse_fault(payment_method: str) -> Fault | None:
    """The fault a payment method asks for, or None for a normal one."""
    return _FAULTS_BY_METHOD.get(payment_method)


class FaultInjectingProvider:
    """Wraps a real provider; simulates the fault the payment method names."""

    def __init__(self, inner: PaymentProvider, *, timeout_seconds: float, slow_delay_seconds: float) -> None:
        self.inner = inner
        # An injected timeout waits as long as a real provider request may.
        self.timeout_seconds = timeout_seconds
        self.slow_delay_seconds = slow_delay_seconds
        # Provider idempotency keys whose first answer pm_fault_timeout_once
        # already lost (per process: enough for a test against one replica).
        self._lost_once: OrderedDict[str, None] = OrderedDict()

    async def authorize(self, charge: Charge, idempotency_key: str) -> ProviderResult:
        fault = parse_fault(charge.payment_method)
        if fault in _DECLINES:
            return ProviderResult.refused(_DECLINES[fault])
        if fault is Fault.UNAVAILABLE:
            # Simulates "could not connect": the request never left.
            raise ProviderUnavailable("injected fault: provider unreachable", maybe_processed=False)
        if fault is Fault.TIMEOUT:
            # Simulates a request sent and never answered: outcome unknown.
            await asyncio.sleep(self.timeout_seconds)
            raise ProviderUnavailable(f"injected fault: no answer within {self.timeout_seconds:.1f}s")
        await self._maybe_slow(fault)
        result = await self.inner.authorize(_real(charge, fault), idempotency_key)
        if fault is Fault.TIMEOUT_ONCE and self._first_time(idempotency_key):
            # The provider did it, but the answer never reaches us: the case
            # only a re-send with the same idempotency key can settle.
            await asyncio.sleep(self.timeout_seconds)
            raise ProviderUnavailable(f"injected fault: answer lost after {self.timeout_seconds:.1f}s")
        return result

    async def capture(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        fault = parse_fault(charge.payment_method)
        if fault is Fault.CAPTURE_UNAVAILABLE:
            raise ProviderUnavailable("injected fault: provider unreachable on capture", maybe_processed=False)
        await self._maybe_slow(fault)
        return await self.inner.capture(_real(charge, fault), ref, idempotency_key)

    async def void(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        fault = parse_fault(charge.payment_method)
        await self._maybe_slow(fault)
        return await self.inner.void(_real(charge, fault), ref, idempotency_key)

    async def refund(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        fault = parse_fault(charge.payment_method)
        await self._maybe_slow(fault)
        return await self.inner.refund(_real(charge, fault), ref, idempotency_key)

    async def close(self) -> None:
        await self.inner.close()

    def _first_time(self, idempotency_key: str) -> bool:
        if idempotency_key in self._lost_once:
            return False
        self._lost_once[idempotency_key] = None
        while len(self._lost_once) > _LOST_ANSWERS_MAX:
            self._lost_once.popitem(last=False)
        return True

    async def _maybe_slow(self, fault: Fault | None) -> None:
        if fault is Fault.SLOW:
            await asyncio.sleep(self.slow_delay_seconds)


def _real(charge: Charge, fault: Fault | None) -> Charge:
    """The charge as the real provider should see it: fault-only payment
    methods become a card it approves."""
    if fault is None:
        return charge
    return replace(charge, payment_method=PASS_THROUGH_METHOD)
