"""Fail fast while the provider is known to be down.

A per-process circuit breaker: after `failure_threshold` consecutive
ProviderUnavailable answers it opens, and for `open_seconds` every call fails
at once without touching the network. Then it lets exactly one probe through
(half-open): a probe that gets any answer (even a decline) closes it, a
probe that fails opens it again for another `open_seconds`.

Per process on purpose: each replica learns about an outage from its own
calls within a few requests, with no shared state to go stale.
"""

from __future__ import annotations

import enum
import logging
import time
from typing import Callable

from prometheus_client import Gauge, Histogram

from services.payments.rules import NOT_SENT_REASON
from services.payments.provider import Charge, PaymentProvider, ProviderResult, ProviderUnavailable
from services.payments.settings import PaymentsSettings

log = logging.getLogger(__name__)

# What a caller refused by the open breaker is told.
BREAKER_MESSAGE = NOT_SENT_REASON

PROVIDER_LATENCY = Histogram(
    "aviary_payments_provider_seconds",
    "Payment provider call latency by operation and outcome: succeeded, declined, failed "
    "(no answer), rejected (failed fast by the open breaker), error (cancelled or our bug)",
    ["operation", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
)
BREAKER_STATE = Gauge("aviary_payments_breaker_state", "Provider circuit breaker: 0 closed, 1 half-open, 2 open")


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class BreakerOpen(ProviderUnavailable):
    """Refused without calling the provider: certainly nothing happened."""

    def __init__(self) -> None:
        super().__init__(BREAKER_MESSAGE, maybe_processed=False)


class Permit(enum.Enum):
    """What try_acquire granted: an ordinary call, or the half-open probe."""

    CALL = "call"
    PROBE = "probe"


class CircuitBreaker:
    """The state machine alone; `clock` is injectable for tests."""

    def __init__(
        self, *, failure_threshold: int, open_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        BREAKER_STATE.set(self._state)

    @property
    def state(self) -> BreakerState:
        """The state as a caller arriving now would find it."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.open_seconds:
            return BreakerState.HALF_OPEN
        return self._state

    def try_acquire(self) -> Permit | None:
        """May a call go to the provider now? None: fail fast. In half-open
        exactly one caller gets the PROBE permit until it reports back."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit.CALL
        if state is BreakerState.OPEN or self._probe_in_flight:
            return None
        self._set(BreakerState.HALF_OPEN)
        self._probe_in_flight = True
        return Permit.PROBE

    def record_success(self, permit: Permit) -> None:
        """The provider answered (done or refused): it is reachable.

        Only the probe closes an open breaker: an ordinary call that started
        before the breaker opened and succeeds late is stale evidence."""
        if permit is Permit.PROBE:
            self._probe_in_flight = False
            log.info("payment provider reachable again; circuit closed")
            self._failures = 0
            self._set(BreakerState.CLOSED)
        elif self._state is BreakerState.CLOSED:
            self._failures = 0

    def record_failure(self, permit: Permit) -> None:
        """The provider could not be reached (ProviderUnavailable)."""
        self._failures += 1
        if permit is Permit.PROBE:
            self._probe_in_flight = False
        if permit is Permit.PROBE or self._failures >= self.failure_threshold:
            if self._state is not BreakerState.OPEN:
                log.warning(
                    "payment provider unavailable; circuit open",
                    extra={"consecutive_failures": self._failures, "open_seconds": self.open_seconds},
                )
            # A failure while already open (a call that started before it
            # opened) restarts the open period: the outage is still going on.
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def release(self, permit: Permit) -> None:
        """A call ended without telling us anything about the provider (it
        was cancelled, or our own code failed): let another probe go."""
        if permit is Permit.PROBE:
            self._probe_in_flight = False

    def _set(self, state: BreakerState) -> None:
        self._state = state
        BREAKER_STATE.set(state)


class GuardedProvider:
    """The provider behind the breaker, with latency metrics per operation
    and outcome (succeeded / declined / failed / rejected)."""

    def __init__(self, inner: PaymentProvider, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    @classmethod
    def from_settings(cls, inner: PaymentProvider, settings: PaymentsSettings) -> "GuardedProvider":
        return cls(
            inner,
            CircuitBreaker(failure_threshold=settings.breaker_failures, open_seconds=settings.breaker_open_seconds),
        )

    async def authorize(self, charge: Charge, idempotency_key: str) -> ProviderResult:
        return await self._guard("authorize", lambda: self.inner.authorize(charge, idempotency_key))

    async def capture(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        return await self._guard("capture", lambda: self.inner.capture(charge, ref, idempotency_key))

    async def void(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        return await self._guard("void", lambda: self.inner.void(charge, ref, idempotency_key))

    async def refund(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        return await self._guard("refund", lambda: self.inner.refund(charge, ref, idempotency_key))

    async def close(self) -> None:
        await self.inner.close()

    async def _guard(self, operation: str, call) -> ProviderResult:
        started = time.perf_counter()
        permit = self.breaker.try_acquire()
        if permit is None:
            PROVIDER_LATENCY.labels(operation, "rejected").observe(time.perf_counter() - started)
            raise BreakerOpen()
        outcome = "error"
        try:
            result = await call()
            outcome = "succeeded" if result.ok else "declined"
            self.breaker.record_success(permit)
            return result
        except ProviderUnavailable as exc:
            outcome = "failed"
            self.breaker.record_failure(permit)
            log.warning(
                "payment provider call failed",
                extra={"operation": operation, "error": exc.message, "maybe_processed": exc.maybe_processed},
            )
            raise
        finally:
            if outcome == "error":
                self.breaker.release(permit)
            PROVIDER_LATENCY.labels(operation, outcome).observe(time.perf_counter() - started)
