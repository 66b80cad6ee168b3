"""payments against the real running service, PostgreSQL and stripe-mock.

stripe-mock approves everything, so declines and outages come from the
service's fault-injecting wrapper (chosen by payment method; the devstack
runs payments with AVIARY_PAYMENTS_FAULT_INJECTION=1) and, for the real
outage, from really stopping stripe-mock. Tests that trip the circuit
breaker leave it closed again (a successful call) before they finish.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import psycopg
import pytest

from aviary.payments.v1 import payments_pb2 as pb
from aviary.payments.v1 import payments_pb2_grpc
from services.kit.settings import load
from services.payments.settings import PaymentsSettings
from tests.e2e.fanout_support import devstack, pid_info, process_gone
from devstack.mesh_channels import open_channel

pytestmark = pytest.mark.serial

PS = pb.PaymentStatus
# What the running service was started with (the same environment).
_SERVICE = load(PaymentsSettings)
OPEN_SECONDS = _SERVICE.breaker_open_seconds
BREAKER_FAILURES = _SERVICE.breaker_failures
FAULT_DELAY = _SERVICE.fault_delay_seconds
PG_DSN = _SERVICE.pg_dsn.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="module")
def payments():
    with open_channel("payments") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield payments_pb2_grpc.PaymentsServiceStub(channel)


def new_key() -> str:
    return f"test-{secrets.token_hex(8)}"


def new_buyer() -> str:
    return str(secrets.randbelow(10**15) + 1)


def authorize(
    payments, key=None, *, amount=1500, currency="USD", buyer="4242", method="pm_card_visa", timeout=15
) -> pb.Payment:
    return payments.AuthorizePayment(
        pb.AuthorizePaymentRequest(
            idempotency_key=key or new_key(),
            buyer_id=buyer,
            amount_minor=amount,
            currency=currency,
            payment_method=method,
            reference="integration test",
        ),
        timeout=timeout,
    )


def rpc_error(call, request, timeout=15) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(request, timeout=timeout)
    return err.value


def ledger(payments, payment_id: str) -> list[pb.LedgerEntry]:
    return list(payments.ListLedgerEntries(pb.ListLedgerEntriesRequest(payment_id=payment_id), timeout=10).entries)


def summary(entries) -> list[tuple[str, str]]:
    return [
        (
            pb.LedgerOperation.Name(e.operation).removeprefix("LEDGER_OPERATION_"),
            pb.LedgerOutcome.Name(e.outcome).removeprefix("LEDGER_OUTCOME_"),
        )
        for e in entries
    ]


def get(payments, payment_id="", key="") -> pb.Payment:
    return payments.GetPayment(pb.GetPaymentRequest(payment_id=payment_id, idempotency_key=key), timeout=10)


def provider_healthy(payments, timeout: float = OPEN_SECONDS + 15) -> pb.Payment:
    """Waits until a normal authorization goes through (the breaker closed,
    its failure count back to zero); returns that payment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            payment = authorize(payments)
            if payment.status == PS.PAYMENT_STATUS_AUTHORIZED:
                return payment
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


# -- the happy paths ---------------------------------------------------------------


def test_authorize_capture_refund_moves_the_money_and_writes_one_ledger_entry_per_call(payments):
    key, buyer = new_key(), new_buyer()
    authorized = authorize(payments, key, amount=2599, currency="eur", buyer=buyer)
    assert authorized.status == PS.PAYMENT_STATUS_AUTHORIZED
    assert (authorized.idempotency_key, authorized.buyer_id) == (key, buyer)
    assert (authorized.amount_minor, authorized.currency) == (2599, "EUR")
    assert authorized.provider_ref.startswith("pi_")
    assert int(authorized.id) > 0 and authorized.create_time.seconds > 0

    captured = payments.CapturePayment(pb.CapturePaymentRequest(payment_id=authorized.id), timeout=10)
    assert captured.status == PS.PAYMENT_STATUS_CAPTURED
    refunded = payments.RefundPayment(pb.RefundPaymentRequest(payment_id=authorized.id), timeout=10)
    assert refunded.status == PS.PAYMENT_STATUS_REFUNDED
    assert refunded.provider_ref == authorized.provider_ref
    assert refunded.update_time.ToNanoseconds() >= captured.update_time.ToNanoseconds()

    entries = ledger(payments, authorized.id)
    assert summary(entries) == [("AUTHORIZE", "SUCCEEDED"), ("CAPTURE", "SUCCEEDED"), ("REFUND", "SUCCEEDED")]
    assert [e.provider_idempotency_key for e in entries] == [
        f"aviary-pay-{authorized.id}-{op}" for op in ("authorize", "capture", "refund")
    ]
    assert all(e.payment_id == authorized.id and e.amount_minor == 2599 for e in entries)
    assert entries[0].provider_ref == authorized.provider_ref
    assert entries[2].provider_ref.startswith("re_")  # the refund's own id
    assert get(payments, authorized.id).status == PS.PAYMENT_STATUS_REFUNDED


def test_repeating_capture_and_refund_returns_the_payment_unchanged_without_calling_the_provider(payments):
    payment = authorize(payments)
    first = payments.CapturePayment(pb.CapturePaymentRequest(payment_id=payment.id), timeout=10)
    again = payments.CapturePayment(pb.CapturePaymentRequest(payment_id=payment.id), timeout=10)
    assert again == first
    payments.RefundPayment(pb.RefundPaymentRequest(payment_id=payment.id), timeout=10)
    again = payments.RefundPayment(pb.RefundPaymentRequest(payment_id=payment.id), timeout=10)
    assert again.status == PS.PAYMENT_STATUS_REFUNDED
    assert summary(ledger(payments, payment.id)) == [
        ("AUTHORIZE", "SUCCEEDED"),
        ("CAPTURE", "SUCCEEDED"),
        ("REFUND", "SUCCEEDED"),
    ]


def test_authorize_then_void_releases_the_hold_and_nothing_can_follow(payments):
    payment = authorize(payments)
    voided = payments.VoidPayment(pb.VoidPaymentRequest(payment_id=payment.id), timeout=10)
    assert voided.status == PS.PAYMENT_STATUS_VOIDED
    assert payments.VoidPayment(pb.VoidPaymentRequest(payment_id=payment.id), timeout=10) == voided

    err = rpc_error(payments.CapturePayment, pb.CapturePaymentRequest(payment_id=payment.id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "voided" in err.details()
    err = rpc_error(payments.RefundPayment, pb.RefundPaymentRequest(payment_id=payment.id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION

    entries = ledger(payments, payment.id)
    assert summary(entries) == [("AUTHORIZE", "SUCCEEDED"), ("VOID", "SUCCEEDED")]
    assert entries[1].provider_idempotency_key == f"aviary-pay-{payment.id}-void"


def test_invalid_transitions_are_failed_precondition_with_a_reason(payments):
    authorized = authorize(payments)
    err = rpc_error(payments.RefundPayment, pb.RefundPaymentRequest(payment_id=authorized.id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "void it instead" in err.details()

    captured = authorize(payments)
    payments.CapturePayment(pb.CapturePaymentRequest(payment_id=captured.id), timeout=10)
    err = rpc_error(payments.VoidPayment, pb.VoidPaymentRequest(payment_id=captured.id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "refund it instead" in err.details()
    # Nothing was written for the refused operations.
    assert summary(ledger(payments, authorized.id)) == [("AUTHORIZE", "SUCCEEDED")]
    assert summary(ledger(payments, captured.id)) == [("AUTHORIZE", "SUCCEEDED"), ("CAPTURE", "SUCCEEDED")]


# -- declines ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,reason",
    [
        ("pm_card_chargeDeclined", "card_declined"),
        ("pm_card_visa_chargeDeclined", "card_declined"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_a_decline_is_a_declined_payment_not_an_error_and_cannot_be_captured(payments, method, reason):
    key = new_key()
    declined = authorize(payments, key, method=method)
    assert declined.status == PS.PAYMENT_STATUS_DECLINED
    assert declined.decline_reason == reason
    # The same key gives the same answer, without asking again.
    assert authorize(payments, key, method=method) == declined

    err = rpc_error(payments.CapturePayment, pb.CapturePaymentRequest(payment_id=declined.id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "declined" in err.details()
    # Voiding what holds nothing is a no-op that succeeds (saga compensation).
    assert (
        payments.VoidPayment(pb.VoidPaymentRequest(payment_id=declined.id), timeout=10).status
        == PS.PAYMENT_STATUS_DECLINED
    )
    entries = ledger(payments, declined.id)
    assert summary(entries) == [("AUTHORIZE", "DECLINED")]
    assert entries[0].detail == reason


# -- idempotency and concurrency -------------------------------------------------------


def test_the_same_key_returns_the_first_payment(payments):
    key, buyer = new_key(), new_buyer()
    first = authorize(payments, key, buyer=buyer, amount=700)
    assert authorize(payments, key, buyer=buyer, amount=700) == first
    assert get(payments, key=key) == first
    assert get(payments, first.id) == first
    assert len(ledger(payments, first.id)) == 1


@pytest.mark.parametrize("method", ["pm_card_visa", "pm_fault_slow"])
def test_five_concurrent_authorizations_with_one_key_make_one_payment_and_one_provider_call(payments, method):
    # pm_fault_slow holds the provider call open for seconds, so all five
    # certainly arrive while the first one is still talking to the provider.
    key, buyer = new_key(), new_buyer()
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: authorize(payments, key, buyer=buyer, amount=1234, method=method), range(5)))
    assert {r.id for r in results} == {results[0].id}
    assert all(r.status == PS.PAYMENT_STATUS_AUTHORIZED for r in results)
    assert {r.provider_ref for r in results} == {results[0].provider_ref}
    entries = ledger(payments, results[0].id)
    assert summary(entries) == [("AUTHORIZE", "SUCCEEDED")]
    with psycopg.connect(PG_DSN) as conn:
        count = conn.execute("SELECT count(*) FROM payments.payments WHERE idempotency_key = %s", (key,)).fetchone()
    assert count == (1,)


@pytest.mark.parametrize("change", [{"amount": 1501}, {"currency": "EUR"}, {"buyer": "777"}])
def test_a_key_reused_for_a_different_payment_is_failed_precondition(payments, change):
    key = new_key()
    first = authorize(payments, key, amount=1500, currency="USD", buyer="4242")
    err = rpc_error(
        payments.AuthorizePayment,
        pb.AuthorizePaymentRequest(
            idempotency_key=key,
            buyer_id=change.get("buyer", "4242"),
            amount_minor=change.get("amount", 1500),
            currency=change.get("currency", "USD"),
            payment_method="pm_card_visa",
        ),
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already used" in err.details() and first.id in err.details()
    assert get(payments, key=key) == first
    assert len(ledger(payments, first.id)) == 1


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields,named",
    [
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"buyer_id": "not-a-number"}, "buyer_id"),
        ({"amount_minor": 0}, "amount_minor"),
        ({"amount_minor": 100_000_000_001}, "amount_minor"),
        ({"currency": "DOLLARS"}, "currency"),
        ({"payment_method": ""}, "payment_method"),
        ({"payment_method": "pm_bogus_xyz"}, "payment_method"),
    ],
)
def test_bad_authorize_input_is_invalid_argument_naming_the_field_and_writes_nothing(payments, fields, named):
    request = dict(
        idempotency_key=new_key(), buyer_id="4242", amount_minor=100, currency="USD", payment_method="pm_card_visa"
    )
    request.update(fields)
    err = rpc_error(payments.AuthorizePayment, pb.AuthorizePaymentRequest(**request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{named}:")
    if request["idempotency_key"]:
        assert (
            rpc_error(payments.GetPayment, pb.GetPaymentRequest(idempotency_key=request["idempotency_key"])).code()
            == grpc.StatusCode.NOT_FOUND
        )


@pytest.mark.parametrize(
    "method, accepted",
    [
        ("pm_card_visa", True),
        ("pm_card_amex", True),
        ("pm_card_chargeDeclined", True),
        # Fault injection is on in the devstack, so its methods are accepted too.
        ("pm_fault_slow", True),
        ("pm_bogus_xyz", False),
        ("pm_fault_nonexistent", False),
        ("tok_visa", False),
        ("", False),
    ],
)
def test_check_payment_method_answers_what_authorize_would_take(payments, method, accepted):
    answer = payments.CheckPaymentMethod(pb.CheckPaymentMethodRequest(payment_method=method), timeout=5)
    assert answer.accepted is accepted
    assert bool(answer.problem) is not accepted and not answer.problem.startswith("payment_method")


def test_bad_or_unknown_payment_ids(payments):
    for call, request_type in (
        (payments.CapturePayment, pb.CapturePaymentRequest),
        (payments.VoidPayment, pb.VoidPaymentRequest),
        (payments.RefundPayment, pb.RefundPaymentRequest),
        (payments.ListLedgerEntries, pb.ListLedgerEntriesRequest),
    ):
        err = rpc_error(call, request_type(payment_id="abc"))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("payment_id:")
        err = rpc_error(call, request_type(payment_id="12345"))
        assert err.code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(payments.GetPayment, pb.GetPaymentRequest())
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = rpc_error(payments.GetPayment, pb.GetPaymentRequest(idempotency_key=new_key()))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_the_ledger_is_append_only_in_the_database(payments):
    payment = authorize(payments)
    with psycopg.connect(PG_DSN) as conn:
        for statement in (
            "UPDATE payments.ledger SET detail = 'x' WHERE payment_id = %s",
            "DELETE FROM payments.ledger WHERE payment_id = %s",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement, (int(payment.id),))
            conn.rollback()
    assert summary(ledger(payments, payment.id)) == [("AUTHORIZE", "SUCCEEDED")]


# -- unknown outcomes ----------------------------------------------------------------------


def test_a_capture_that_gets_no_answer_is_unavailable_and_can_be_retried(payments):
    provider_healthy(payments)
    payment = authorize(payments, method="pm_fault_capture_unavailable")
    assert payment.status == PS.PAYMENT_STATUS_AUTHORIZED
    err = rpc_error(payments.CapturePayment, pb.CapturePaymentRequest(payment_id=payment.id))
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert get(payments, payment.id).status == PS.PAYMENT_STATUS_AUTHORIZED
    # The saga gives up and compensates: the void goes through.
    voided = payments.VoidPayment(pb.VoidPaymentRequest(payment_id=payment.id), timeout=10)
    assert voided.status == PS.PAYMENT_STATUS_VOIDED
    entries = ledger(payments, payment.id)
    assert summary(entries) == [("AUTHORIZE", "SUCCEEDED"), ("CAPTURE", "FAILED"), ("VOID", "SUCCEEDED")]
    assert "capture" in entries[1].detail


def test_a_lost_authorization_answer_stays_pending_and_the_retry_settles_it_with_the_same_provider_key(payments):
    provider_healthy(payments)
    key = new_key()
    started = time.monotonic()
    err = rpc_error(
        payments.AuthorizePayment,
        pb.AuthorizePaymentRequest(
            idempotency_key=key,
            buyer_id="4242",
            amount_minor=900,
            currency="USD",
            payment_method="pm_fault_timeout_once",
        ),
    )
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "unknown" in err.details()
    assert time.monotonic() - started < 10
    pending = get(payments, key=key)
    assert pending.status == PS.PAYMENT_STATUS_PENDING  # it may have been authorized: we do not know

    settled = authorize(payments, key, amount=900, method="pm_fault_timeout_once")
    assert settled.id == pending.id
    assert settled.status == PS.PAYMENT_STATUS_AUTHORIZED
    entries = ledger(payments, pending.id)
    assert summary(entries) == [("AUTHORIZE", "FAILED"), ("AUTHORIZE", "SUCCEEDED")]
    assert {e.provider_idempotency_key for e in entries} == {f"aviary-pay-{pending.id}-authorize"}


def test_voiding_a_pending_payment_settles_it_first(payments):
    provider_healthy(payments)
    key = new_key()
    err = rpc_error(
        payments.AuthorizePayment,
        pb.AuthorizePaymentRequest(
            idempotency_key=key,
            buyer_id="4242",
            amount_minor=901,
            currency="USD",
            payment_method="pm_fault_timeout_once",
        ),
    )
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    pending = get(payments, key=key)
    voided = payments.VoidPayment(pb.VoidPaymentRequest(payment_id=pending.id), timeout=15)
    assert voided.status == PS.PAYMENT_STATUS_VOIDED
    assert summary(ledger(payments, pending.id)) == [
        ("AUTHORIZE", "FAILED"),
        ("AUTHORIZE", "SUCCEEDED"),
        ("VOID", "SUCCEEDED"),
    ]


def test_a_pending_payment_whose_authorization_never_left_is_voided_without_the_provider(payments):
    # What a process that died between creating the payment and sending its
    # authorization leaves behind.
    key, payment_id = new_key(), secrets.randbelow(2**62) + 2**40
    with psycopg.connect(PG_DSN) as conn:
        conn.execute(
            """INSERT INTO payments.payments (id, idempotency_key, buyer_id, amount_minor, currency,
                        payment_method, status) VALUES (%s, %s, 4242, 300, 'USD', 'pm_card_visa', 'PENDING')""",
            (payment_id, key),
        )
    voided = payments.VoidPayment(pb.VoidPaymentRequest(payment_id=str(payment_id)), timeout=10)
    assert voided.status == PS.PAYMENT_STATUS_VOIDED
    [entry] = ledger(payments, str(payment_id))
    assert summary([entry]) == [("VOID", "SUCCEEDED")]
    assert "never sent" in entry.detail and entry.provider_ref == ""


def test_a_payments_process_killed_mid_authorization_leaves_a_pending_payment_the_retry_settles(payments):
    provider_healthy(payments)
    key = new_key()
    info = pid_info("payments")
    assert info is not None, "payments is not running"
    with ThreadPoolExecutor(1) as pool:
        # pm_fault_slow keeps the authorization in flight for seconds.
        call = pool.submit(authorize, payments, key, amount=555, method="pm_fault_slow")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with psycopg.connect(PG_DSN) as conn:
                row = conn.execute(
                    "SELECT authorization_sent_at IS NOT NULL FROM payments.payments WHERE idempotency_key = %s", (key,)
                ).fetchone()
            if row == (True,):
                break
            time.sleep(0.05)
        assert row == (True,), "the authorization never started"
        try:
            os.killpg(info["pgid"], signal.SIGKILL)
            deadline = time.monotonic() + 10
            while not process_gone(info["pid"]) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            devstack("up", "payments")
        with pytest.raises(grpc.RpcError):
            call.result()
    with open_channel("payments") as channel:
        fresh = payments_pb2_grpc.PaymentsServiceStub(channel)
        pending = get(fresh, key=key)
        assert pending.status == PS.PAYMENT_STATUS_PENDING
        assert ledger(fresh, pending.id) == []  # the dead process recorded nothing
        settled = authorize(fresh, key, amount=555, method="pm_fault_slow")
        assert settled.id == pending.id and settled.status == PS.PAYMENT_STATUS_AUTHORIZED
        entries = ledger(fresh, pending.id)
    assert summary(entries) == [("AUTHORIZE", "SUCCEEDED")]
    assert entries[0].provider_idempotency_key == f"aviary-pay-{pending.id}-authorize"


# -- outages and the circuit breaker ---------------------------------------------------------


def _authorize_unavailable(payments, key: str, method: str) -> tuple[grpc.RpcError, float]:
    started = time.monotonic()
    err = rpc_error(
        payments.AuthorizePayment,
        pb.AuthorizePaymentRequest(
            idempotency_key=key, buyer_id="4242", amount_minor=100, currency="USD", payment_method=method
        ),
    )
    return err, time.monotonic() - started


def _open_the_breaker(payments) -> float:
    """Sends bursts of unreachable-provider authorizations until a normal
    one fails fast; returns when that was. Bursts, because other clients of
    the shared stack may succeed in between and reset the consecutive count."""
    for _ in range(5):
        keys = [new_key() for _ in range(2 * BREAKER_FAILURES)]
        with ThreadPoolExecutor(len(keys)) as pool:
            errors = list(pool.map(lambda k: _authorize_unavailable(payments, k, "pm_fault_unavailable")[0], keys))
        for key, err in zip(keys, errors):
            assert err.code() == grpc.StatusCode.UNAVAILABLE
            assert err.details() == "payment provider unavailable; nothing was charged"
            # The request never reached the provider: certainly nothing charged.
            failed = get(payments, key=key)
            assert failed.status == PS.PAYMENT_STATUS_VOIDED
            assert "nothing was charged" in failed.decline_reason
            assert summary(ledger(payments, failed.id)) == [("AUTHORIZE", "FAILED")]
        try:
            authorize(payments)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                return time.monotonic()
            raise
    pytest.fail("the breaker never opened")


def test_an_unreachable_provider_opens_the_breaker_and_calls_fail_fast_until_it_closes(payments):
    provider_healthy(payments)
    opened_at = _open_the_breaker(payments)

    # Open: a normal card fails at once, without a provider call.
    key = new_key()
    err, elapsed = _authorize_unavailable(payments, key, "pm_card_visa")
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert err.details() == "payment provider unavailable; nothing was charged"
    assert elapsed < 1.0
    rejected = get(payments, key=key)
    assert rejected.status == PS.PAYMENT_STATUS_VOIDED
    [entry] = ledger(payments, rejected.id)
    assert summary([entry]) == [("AUTHORIZE", "FAILED")] and "nothing was charged" in entry.detail
    # Compensation works during the outage: voiding it needs no provider.
    assert (
        payments.VoidPayment(pb.VoidPaymentRequest(payment_id=rejected.id), timeout=5).status
        == PS.PAYMENT_STATUS_VOIDED
    )
    # A retry of the same key is the same (voided) payment, not a second one.
    assert authorize(payments, key, amount=100).id == rejected.id

    # Still open a little later...
    time.sleep(max(0.0, OPEN_SECONDS / 2 - (time.monotonic() - opened_at)))
    err, _ = _authorize_unavailable(payments, new_key(), "pm_card_visa")
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    # ...and closed again once the open time has passed (the first caller
    # after it probes; another client's probe may be the one in flight).
    time.sleep(max(0.0, OPEN_SECONDS - (time.monotonic() - opened_at)))
    assert provider_healthy(payments, timeout=5).status == PS.PAYMENT_STATUS_AUTHORIZED


def test_stopping_stripe_mock_fails_authorizations_fast_and_they_recover_after_it_is_back(payments):
    provider_healthy(payments)
    devstack("down", "stripe-mock")
    try:
        outcomes = []
        for _ in range(BREAKER_FAILURES + 2):
            key = new_key()
            started = time.monotonic()
            err = rpc_error(
                payments.AuthorizePayment,
                pb.AuthorizePaymentRequest(
                    idempotency_key=key,
                    buyer_id="4242",
                    amount_minor=100,
                    currency="USD",
                    payment_method="pm_card_visa",
                ),
            )
            outcomes.append((err.code(), err.details(), time.monotonic() - started, get(payments, key=key)))
    finally:
        devstack("up", "stripe-mock")

    for code, details, elapsed, payment in outcomes:
        assert code == grpc.StatusCode.UNAVAILABLE
        assert details == "payment provider unavailable; nothing was charged"
        assert elapsed < 3.0, outcomes
        # A refused connection never carried the request: nothing was charged.
        assert payment.status == PS.PAYMENT_STATUS_VOIDED
    # Once stripe-mock is back and the breaker's open time has passed, a normal authorization works.
    assert provider_healthy(payments, timeout=OPEN_SECONDS + 20).status == PS.PAYMENT_STATUS_AUTHORIZED
