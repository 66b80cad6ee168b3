"""The circuit breaker's state machine (injected clock) and the guard around a provider."""

import asyncio

import pytest

from services.payments.breaker import BreakerOpen, BreakerState, CircuitBreaker, GuardedProvider, Permit
from services.payments.provider import Charge, ProviderResult, ProviderUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock, failures=3, open_seconds=5.0) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=failures, open_seconds=open_seconds, clock=clock)


def fail(b: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        permit = b.try_acquire()
        assert permit is not None
        b.record_failure(permit)


def test_it_stays_closed_below_the_threshold_and_successes_reset_the_count():
    b = breaker(Clock())
    fail(b, 2)
    assert b.state is BreakerState.CLOSED
    b.record_success(b.try_acquire())
    fail(b, 2)  # 2 again, not 4: only consecutive failures count
    assert b.state is BreakerState.CLOSED
    assert b.try_acquire() is Permit.CALL


def test_it_opens_after_consecutive_failures_and_refuses_until_the_open_time_passed():
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    assert b.state is BreakerState.OPEN
    assert b.try_acquire() is None
    clock.now += 4.9
    assert b.try_acquire() is None
    clock.now += 0.1
    assert b.state is BreakerState.HALF_OPEN


def test_half_open_lets_exactly_one_probe_through():
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 5
    assert b.try_acquire() is Permit.PROBE
    assert b.try_acquire() is None  # while the probe is out
    assert b.try_acquire() is None


def test_a_probe_that_gets_an_answer_closes_it():
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 5
    probe = b.try_acquire()
    b.record_success(probe)
    assert b.state is BreakerState.CLOSED
    assert b.try_acquire() is Permit.CALL
    fail(b, 2)
    assert b.state is BreakerState.CLOSED  # the count started again from zero


def test_a_failed_probe_opens_it_again_for_a_full_period():
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 6
    probe = b.try_acquire()
    clock.now += 1
    b.record_failure(probe)
    assert b.state is BreakerState.OPEN
    clock.now += 4.9
    assert b.try_acquire() is None
    clock.now += 0.1
    assert b.try_acquire() is Permit.PROBE


def test_a_probe_that_ended_without_an_answer_lets_the_next_caller_probe():
    clock = Clock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 5
    probe = b.try_acquire()
    b.release(probe)
    assert b.try_acquire() is Permit.PROBE


def test_releasing_an_ordinary_call_does_not_free_the_probe_slot():
    clock = Clock()
    b = breaker(clock)
    early = b.try_acquire()  # started while closed
    fail(b, 3)
    clock.now += 5
    assert b.try_acquire() is Permit.PROBE
    b.release(early)
    assert b.try_acquire() is None


def test_a_late_success_of_a_call_from_before_the_outage_does_not_close_it():
    clock = Clock()
    b = breaker(clock)
    slow = b.try_acquire()  # started while all was well
    fail(b, 3)
    b.record_success(slow)
    assert b.state is BreakerState.OPEN
    assert b.try_acquire() is None


def test_a_threshold_below_one_is_rejected():
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0, open_seconds=1)


# -- the guard ---------------------------------------------------------------------

CHARGE = Charge(payment_id=1, amount_minor=100, currency="USD", payment_method="pm_card_visa", metadata={})


class ScriptedProvider:
    """Answers each call with the next scripted result or exception."""

    def __init__(self, *script) -> None:
        self.script = list(script)
        self.calls = 0

    async def _next(self):
        self.calls += 1
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    async def authorize(self, charge, key):
        return await self._next()

    async def capture(self, charge, ref, key):
        return await self._next()

    async def void(self, charge, ref, key):
        return await self._next()

    async def refund(self, charge, ref, key):
        return await self._next()

    async def close(self):
        pass


async def test_the_guard_fails_fast_without_calling_the_provider_once_open():
    clock = Clock()
    inner = ScriptedProvider(*[ProviderUnavailable("down")] * 3)
    guard = GuardedProvider(inner, breaker(clock))
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            await guard.authorize(CHARGE, "k")
    with pytest.raises(BreakerOpen) as err:
        await guard.capture(CHARGE, "pi_1", "k2")
    assert inner.calls == 3
    assert err.value.maybe_processed is False
    assert "nothing was charged" in str(err.value)


async def test_a_decline_counts_as_an_answer():
    clock = Clock()
    inner = ScriptedProvider(
        ProviderUnavailable("x"),
        ProviderUnavailable("x"),
        ProviderResult.refused("card_declined"),
        ProviderUnavailable("x"),
        ProviderUnavailable("x"),
        ProviderResult.done("pi_2"),
    )
    guard = GuardedProvider(inner, breaker(clock))
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await guard.authorize(CHARGE, "k")
    assert (await guard.authorize(CHARGE, "k")).reason == "card_declined"
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await guard.authorize(CHARGE, "k")
    assert (await guard.authorize(CHARGE, "k")).ref == "pi_2"
    assert guard.breaker.state is BreakerState.CLOSED


async def test_a_cancelled_probe_frees_the_probe_slot():
    clock = Clock()
    b = breaker(clock, failures=1)
    fail(b, 1)
    clock.now += 5

    class Hanging(ScriptedProvider):
        async def authorize(self, charge, key):
            await asyncio.sleep(60)

    guard = GuardedProvider(Hanging(), b)
    task = asyncio.ensure_future(guard.authorize(CHARGE, "k"))
    await asyncio.sleep(0.01)
    assert b.try_acquire() is None  # the probe is out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.try_acquire() is Permit.PROBE
