"""Fault injection: which payment method asks for which fault, and what the wrapper does."""

import asyncio
import time

import pytest
import stripe

from services.kit.settings import load
from services.payments.faults import Fault, FaultInjectingProvider, parse_fault
from services.payments.provider import Charge, ProviderResult, ProviderUnavailable
from services.payments.settings import PaymentsSettings
from services.payments.stripe_provider import StripeProvider, StripeSettings


@pytest.mark.parametrize(
    "method,fault",
    [
        ("pm_card_chargeDeclined", Fault.DECLINE_CARD),
        ("pm_card_visa_chargeDeclined", Fault.DECLINE_CARD),
        ("pm_card_chargeDeclinedInsufficientFunds", Fault.DECLINE_INSUFFICIENT_FUNDS),
        ("pm_fault_unavailable", Fault.UNAVAILABLE),
        ("pm_fault_timeout", Fault.TIMEOUT),
        ("pm_fault_timeout_once", Fault.TIMEOUT_ONCE),
        ("pm_fault_capture_unavailable", Fault.CAPTURE_UNAVAILABLE),
        ("pm_fault_slow", Fault.SLOW),
    ],
)
def test_fault_payment_methods(method, fault):
    assert parse_fault(method) is fault


@pytest.mark.parametrize("method", ["pm_card_visa", "pm_card_mastercard", "pm_1Nabc", "pm_fault_", "PM_FAULT_SLOW"])
def test_anything_else_is_no_fault(method):
    assert parse_fault(method) is None


def test_fault_injection_is_off_unless_explicitly_enabled():
    assert not load(PaymentsSettings, {}).fault_injection
    assert not load(PaymentsSettings, {"AVIARY_PAYMENTS_FAULT_INJECTION": "0"}).fault_injection
    assert load(PaymentsSettings, {"AVIARY_PAYMENTS_FAULT_INJECTION": "1"}).fault_injection


class Recording:
    """The 'real' provider: approves everything, remembers what it was sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    async def authorize(self, charge, key):
        self.calls.append(("authorize", charge.payment_method, key))
        return ProviderResult.done("pi_real")

    async def capture(self, charge, ref, key):
        self.calls.append(("capture", charge.payment_method, key))
        return ProviderResult.done(ref)

    async def void(self, charge, ref, key):
        self.calls.append(("void", charge.payment_method, key))
        return ProviderResult.done(ref)

    async def refund(self, charge, ref, key):
        self.calls.append(("refund", charge.payment_method, key))
        return ProviderResult.done("re_real")

    async def close(self):
        pass


def charge(method: str) -> Charge:
    return Charge(payment_id=7, amount_minor=500, currency="USD", payment_method=method, metadata={})


@pytest.fixture
def real():
    return Recording()


@pytest.fixture
def wrapper(real):
    return FaultInjectingProvider(real, timeout_seconds=0.05, slow_delay_seconds=0.05)


async def test_a_normal_method_passes_straight_through_unchanged(wrapper, real):
    assert (await wrapper.authorize(charge("pm_card_mastercard"), "k1")).ref == "pi_real"
    await wrapper.capture(charge("pm_card_mastercard"), "pi_real", "k2")
    assert real.calls == [("authorize", "pm_card_mastercard", "k1"), ("capture", "pm_card_mastercard", "k2")]


@pytest.mark.parametrize(
    "method,reason",
    [
        ("pm_card_chargeDeclined", "card_declined"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
async def test_declines_never_reach_the_provider(wrapper, real, method, reason):
    result = await wrapper.authorize(charge(method), "k")
    assert not result.ok and result.reason == reason
    assert real.calls == []


async def test_unavailable_is_certainly_not_processed(wrapper, real):
    with pytest.raises(ProviderUnavailable) as err:
        await wrapper.authorize(charge("pm_fault_unavailable"), "k")
    assert err.value.maybe_processed is False
    assert real.calls == []


async def test_timeout_waits_the_provider_timeout_and_leaves_the_outcome_unknown(wrapper, real):
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as err:
        await wrapper.authorize(charge("pm_fault_timeout"), "k")
    assert time.monotonic() - started >= 0.05
    assert err.value.maybe_processed is True


async def test_timeout_once_loses_only_the_first_answer_of_a_key(wrapper, real):
    with pytest.raises(ProviderUnavailable) as err:
        await wrapper.authorize(charge("pm_fault_timeout_once"), "k")
    assert err.value.maybe_processed is True
    assert (await wrapper.authorize(charge("pm_fault_timeout_once"), "k")).ok
    # The provider got it both times (same key), as a real pm_card_visa.
    assert real.calls == [("authorize", "pm_card_visa", "k")] * 2
    with pytest.raises(ProviderUnavailable):
        await wrapper.authorize(charge("pm_fault_timeout_once"), "other-key")


async def test_capture_unavailable_authorizes_then_fails_the_capture_only(wrapper, real):
    c = charge("pm_fault_capture_unavailable")
    assert (await wrapper.authorize(c, "k1")).ok
    with pytest.raises(ProviderUnavailable):
        await wrapper.capture(c, "pi_real", "k2")
    assert (await wrapper.void(c, "pi_real", "k3")).ok
    assert [call[0] for call in real.calls] == ["authorize", "void"]
    assert {call[1] for call in real.calls} == {"pm_card_visa"}


async def test_slow_delays_every_call_then_reaches_the_provider():
    real = Recording()
    wrapper = FaultInjectingProvider(real, timeout_seconds=1, slow_delay_seconds=0.2)
    c = charge("pm_fault_slow")
    for call in (wrapper.authorize(c, "k"), wrapper.capture(c, "pi", "k"), wrapper.refund(c, "pi", "k")):
        started = time.monotonic()
        assert (await call).ok
        assert time.monotonic() - started >= 0.2
    assert len(real.calls) == 3


# -- Stripe error mapping ------------------------------------------------------------


@pytest.fixture
async def stripe_provider():
    provider = StripeProvider(StripeSettings(api_key="sk_test_x", api_base="http://127.0.0.1:9", timeout_seconds=0.5))
    yield provider
    await provider.close()


async def _raising(exc):
    raise exc


async def _never():
    await asyncio.sleep(60)


async def test_card_errors_are_declines_with_the_most_specific_reason(stripe_provider):
    body = {"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}}
    exc = stripe.CardError("declined", None, "card_declined", json_body=body, http_status=402)
    result = await stripe_provider._call("authorize", _raising(exc))
    assert result == ProviderResult.refused("insufficient_funds")


async def test_invalid_requests_are_refusals(stripe_provider):
    exc = stripe.InvalidRequestError("no such intent", "intent", code="resource_missing", http_status=404)
    result = await stripe_provider._call("capture", _raising(exc))
    assert not result.ok and result.reason == "resource_missing"


@pytest.mark.parametrize(
    "exc,maybe",
    [
        (stripe.APIError("boom", http_status=500), True),
        (stripe.APIError("conflict", http_status=409), True),
        (stripe.RateLimitError("slow down", http_status=429), False),
        (stripe.AuthenticationError("bad key", http_status=401), False),
    ],
)
async def test_server_errors_and_rate_limits_are_unavailable(stripe_provider, exc, maybe):
    with pytest.raises(ProviderUnavailable) as err:
        await stripe_provider._call("authorize", _raising(exc))
    assert err.value.maybe_processed is maybe


async def test_a_refused_connection_is_unavailable_and_certainly_not_processed(stripe_provider):
    # Port 9 (discard) is closed on loopback: the connection is refused.
    with pytest.raises(ProviderUnavailable) as err:
        await stripe_provider.authorize(charge("pm_card_visa"), "k")
    assert err.value.maybe_processed is False


async def test_no_answer_within_the_deadline_is_unavailable_with_unknown_outcome(stripe_provider):
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as err:
        await stripe_provider._call("authorize", _never())
    assert time.monotonic() - started < 2
    assert err.value.maybe_processed is True
