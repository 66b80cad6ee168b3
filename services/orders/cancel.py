"""Finishing a buyer's cancel: stock back to inventory, then the money back.

The cancel itself is decided in one transaction (store.request_cancel): the
order is CANCELLED, its OrderCancelled event queued and its cancel_state
REQUESTED. From there each effect is persisted with the state it reaches
(REQUESTED -> RESTOCKED -> DONE), and both are idempotent at the peer
(ReleaseReservation on the checkout's reservation, RefundPayment on its
payment), so whoever finds a cancel unfinished (the request that made it,
or the recovery sweep once its lease ran out) runs the rest again safely: a
crash can delay a refund or a restock, never leave one without the other.
"""

from __future__ import annotations

import logging

import grpc
from prometheus_client import Counter

from aviary.inventory.v1 import inventory_pb2
from aviary.payments.v1 import payments_pb2
from services.kit.peers import clients
from services.orders import model
from services.orders.store import CancelJob, OrdersStore

log = logging.getLogger(__name__)

CANCELS = Counter("aviary_order_cancels_total", "Buyer cancels finished or left for the sweep", ["outcome"])

PS = payments_pb2.PaymentStatus


class RefundNotConfirmed(Exception):
    """The payment did not come back REFUNDED; the sweep asks again."""


class Canceller:
    def __init__(self, store: OrdersStore, *, rpc_timeout: float) -> None:
        self.store = store
        self.timeout = rpc_timeout
        self._steps = {model.CANCEL_REQUESTED: self._restock, model.CANCEL_RESTOCKED: self._refund}

    async def finish(self, job: CancelJob) -> bool:
        """Runs the cancel's remaining effects; False when a peer could not do
        its part now (the lease runs out and the sweep tries again)."""
        try:
            while job.state in model.CANCEL_UNFINISHED:
                moved = await self._steps[job.state](job)
                # None: someone else moved it meanwhile; carry on from where it is.
                current = moved or await self.store.cancel_job(job.order_id)
                assert current is not None, "an order, once written, is never deleted"
                job = current
        except (grpc.aio.AioRpcError, RefundNotConfirmed) as exc:
            CANCELS.labels("pending").inc()
            log.warning(
                "order cancel left for the recovery sweep",
                extra={"order_id": job.order_id, "state": job.state, "error": _describe(exc)},
            )
            return False
        CANCELS.labels("done").inc()
        return True

    async def _restock(self, job: CancelJob) -> CancelJob | None:
        # Releasing a committed reservation returns its sold units to stock, once.
        await clients.inventory().ReleaseReservation(
            inventory_pb2.ReleaseReservationRequest(reservation_id=job.reservation_id), timeout=self.timeout
        )
        return await self.store.move_cancel(job, model.CANCEL_RESTOCKED, detail=job.reservation_id)

    async def _refund(self, job: CancelJob) -> CancelJob | None:
        payment = await clients.payments().RefundPayment(
            payments_pb2.RefundPaymentRequest(payment_id=job.payment_id or ""), timeout=self.timeout
        )
        if payment.status != PS.PAYMENT_STATUS_REFUNDED:
            raise RefundNotConfirmed(f"payment {payment.id} is {PS.Name(payment.status)}")
        return await self.store.move_cancel(
            job, model.CANCEL_DONE, detail=f"payment {payment.id}", payment_status=PS.Name(payment.status)
        )


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc)
