"""payments applies identity's AccountDeleted (group payments-accounts): the
buyer's payments keep their amounts, statuses and ledger for the books, with
buyer_id 0; later voids and refunds (by id or key) still work.

A deletion's effect is seen through GetPayment, which shows the buyer. That a
redelivery has been applied is known from a later event on the same key (so
the same partition): a deletion of a marker buyer, published after it.
"""

from __future__ import annotations

import secrets

import grpc
import psycopg
import pytest

from aviary.payments.v1 import payments_pb2 as pb
from aviary.payments.v1 import payments_pb2_grpc
from tests.integration.account_events import account_deleted, publish, wait_until
from devstack.mesh_channels import open_channel
from tests.integration.test_payments import (
    PG_DSN,
    authorize,
    get,
    ledger,
    new_buyer,
    new_key,
    provider_healthy,
    rpc_error,
)

PS = pb.PaymentStatus


@pytest.fixture(scope="module")
def payments():
    with open_channel("payments") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield payments_pb2_grpc.PaymentsServiceStub(channel)


def anonymised(payments, payment_id: str):
    def check():
        return get(payments, payment_id=payment_id).buyer_id == "0"

    check.__name__ = f"payment {payment_id} has buyer 0"
    return check


def delete_and_wait(payments, buyer: str, key: str | None = None) -> None:
    """Publishes the buyer's deletion (keyed by `key`, default theirs), then
    a marker buyer's behind it on the same key, and waits for the marker's
    payment to lose its buyer: everything before it has been applied."""
    publish(account_deleted(buyer), key=key or buyer)
    marker = new_buyer()
    marker_payment = authorize(payments, buyer=marker)
    publish(account_deleted(marker), key=key or buyer)
    wait_until(anonymised(payments, marker_payment.id))


def test_a_deleted_buyers_payments_lose_the_buyer_once_and_others_keep_theirs(payments):
    provider_healthy(payments)
    buyer, other = new_buyer(), new_buyer()
    captured = authorize(payments, buyer=buyer, amount=1200)
    captured = payments.CapturePayment(pb.CapturePaymentRequest(payment_id=captured.id), timeout=15)
    held = authorize(payments, buyer=buyer, amount=700)
    others = authorize(payments, buyer=other, amount=800)
    ledger_before = {p.id: ledger(payments, p.id) for p in (captured, held)}

    delete_and_wait(payments, buyer)
    for before in (captured, held):
        after = get(payments, payment_id=before.id)
        assert after.buyer_id == "0"
        # Only the buyer went: the amount, status and history stay for the books.
        assert (after.amount_minor, after.status, after.provider_ref, after.idempotency_key) == (
            before.amount_minor,
            before.status,
            before.provider_ref,
            before.idempotency_key,
        )
        assert ledger(payments, before.id) == ledger_before[before.id]
    assert get(payments, payment_id=others.id).buyer_id == other

    # A redelivery finds nothing left to change.
    rows_before = _rows(captured.id, held.id, others.id)
    delete_and_wait(payments, buyer)
    assert _rows(captured.id, held.id, others.id) == rows_before
    assert {p.id: ledger(payments, p.id) for p in (captured, held)} == ledger_before


def test_a_deleted_buyers_payments_can_still_be_voided_refunded_and_retried_by_key(payments):
    provider_healthy(payments)
    buyer = new_buyer()
    key = new_key()
    to_refund = authorize(payments, key, buyer=buyer, amount=1300)
    payments.CapturePayment(pb.CapturePaymentRequest(payment_id=to_refund.id), timeout=15)
    to_void = authorize(payments, buyer=buyer, amount=600)

    delete_and_wait(payments, buyer)
    refunded = payments.RefundPayment(pb.RefundPaymentRequest(payment_id=to_refund.id), timeout=15)
    assert (refunded.status, refunded.buyer_id) == (PS.PAYMENT_STATUS_REFUNDED, "0")
    voided = payments.VoidPayment(pb.VoidPaymentRequest(payment_id=to_void.id), timeout=15)
    assert (voided.status, voided.buyer_id) == (PS.PAYMENT_STATUS_VOIDED, "0")
    # The checkout that made it may retry its key with the buyer it knew.
    again = authorize(payments, key, buyer=buyer, amount=1300)
    assert (again.id, again.status) == (to_refund.id, PS.PAYMENT_STATUS_REFUNDED)
    # The key still names one payment: another amount is refused as before.
    err = rpc_error(
        payments.AuthorizePayment,
        pb.AuthorizePaymentRequest(
            idempotency_key=key, buyer_id=buyer, amount_minor=1301, currency="USD", payment_method="pm_card_visa"
        ),
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_an_authorization_out_when_the_buyer_is_deleted_keeps_the_buyer_until_it_settles(payments):
    # The resend must repeat the first request (the buyer is in its metadata).
    provider_healthy(payments)
    buyer, key = new_buyer(), new_key()
    request = pb.AuthorizePaymentRequest(
        idempotency_key=key, buyer_id=buyer, amount_minor=902, currency="USD", payment_method="pm_fault_timeout_once"
    )
    assert rpc_error(payments.AuthorizePayment, request).code() == grpc.StatusCode.UNAVAILABLE
    pending = get(payments, key=key)
    assert pending.status == PS.PAYMENT_STATUS_PENDING

    delete_and_wait(payments, buyer)
    assert get(payments, key=key).buyer_id == buyer
    settled = payments.AuthorizePayment(request, timeout=15)
    assert (settled.id, settled.status, settled.buyer_id) == (pending.id, PS.PAYMENT_STATUS_AUTHORIZED, "0")
    voided = payments.VoidPayment(pb.VoidPaymentRequest(payment_id=pending.id), timeout=15)
    assert (voided.status, voided.buyer_id) == (PS.PAYMENT_STATUS_VOIDED, "0")


def test_a_pending_payment_never_sent_loses_the_buyer_and_is_voided_without_the_provider(payments):
    buyer, key, payment_id = new_buyer(), new_key(), secrets.randbelow(2**62) + 2**40
    with psycopg.connect(PG_DSN) as conn:
        conn.execute(
            """INSERT INTO payments.payments (id, idempotency_key, buyer_id, amount_minor, currency,
                        payment_method, status) VALUES (%s, %s, %s, 300, 'USD', 'pm_card_visa', 'PENDING')""",
            (payment_id, key, int(buyer)),
        )
    delete_and_wait(payments, buyer)
    assert get(payments, payment_id=str(payment_id)).buyer_id == "0"
    voided = payments.VoidPayment(pb.VoidPaymentRequest(payment_id=str(payment_id)), timeout=10)
    assert (voided.status, voided.buyer_id) == (PS.PAYMENT_STATUS_VOIDED, "0")


def test_a_payment_written_after_the_deletion_loses_the_buyer_when_it_settles(payments):
    # An authorization that raced the deletion (orders had not applied it yet).
    provider_healthy(payments)
    buyer = new_buyer()
    delete_and_wait(payments, buyer)
    late = authorize(payments, buyer=buyer)
    assert (late.status, late.buyer_id) == (PS.PAYMENT_STATUS_AUTHORIZED, "0")


def _rows(*payment_ids: str) -> list[tuple]:
    with psycopg.connect(PG_DSN) as conn:
        return conn.execute(
            "SELECT id, buyer_id, status, updated_at FROM payments.payments WHERE id = ANY(%s) ORDER BY id",
            ([int(p) for p in payment_ids],),
        ).fetchall()
