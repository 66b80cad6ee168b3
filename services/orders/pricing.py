"""What a buyer agreed to pay, and whether a checkout's catalog prices keep to it.

A buyer agrees to a price by sending the total they were shown
(expected_total_minor), or else by having added each line at a price no
lower than today's (the cart records the price at add time). Anything else
stops the checkout before stock is held or money moves: FAILED_PRECONDITION
(HTTP 412) naming the new total, which is also in the details for programs.
"""

from __future__ import annotations

from typing import Mapping

import grpc
from google.rpc import error_details_pb2

from services.orders import model
from services.orders.model import Failure, Line

ERROR_DOMAIN = "orders.aviary"
PRICE_CHANGED = "PRICE_CHANGED"


def refusal(
    lines: list[Line], currency: str, added_prices: Mapping[int, int | None], expected_total_minor: int | None
) -> Failure | None:
    """Why the buyer has not agreed to pay for `lines` (priced from the
    catalog), or None when they have."""
    total = model.total(lines)
    if expected_total_minor is not None:
        if total == expected_total_minor:
            return None
        return _price_changed(
            f"your cart now totals {total} {currency} minor units, not the {expected_total_minor} you expected",
            total,
            currency,
            [_violation("expected_total_minor", f"expected {expected_total_minor}, the cart totals {total}")],
        )
    rises = [
        (line, added_prices[line.product_id])
        for line in lines
        if _rose(line.unit_price_minor, added_prices.get(line.product_id))
    ]
    if not rises:
        return None
    named = "; ".join(
        f"{line.title!r} (product {line.product_id}) from {added} to {line.unit_price_minor}" for line, added in rises
    )
    return _price_changed(
        f"prices rose since you added them to your cart: {named}; your cart now totals {total} {currency} minor units",
        total,
        currency,
        [
            _violation(f"products/{line.product_id}", f"unit price rose from {added} to {line.unit_price_minor}")
            for line, added in rises
        ],
    )


def _rose(price_now: int, added: int | None) -> bool:
    # A line carted before prices were recorded has nothing to compare with.
    return added is not None and price_now > added


def _price_changed(
    what: str, total: int, currency: str, violations: list[error_details_pb2.PreconditionFailure.Violation]
) -> Failure:
    message = f"{what}: nothing was charged. To pay the new total, check out again with expected_total_minor {total}"
    info = error_details_pb2.ErrorInfo(
        reason=PRICE_CHANGED, domain=ERROR_DOMAIN, metadata={"totalMinor": str(total), "currency": currency}
    )
    # Nothing was held or charged, so the same key may run again.
    return Failure(
        grpc.StatusCode.FAILED_PRECONDITION,
        message,
        retryable=True,
        details=(info, error_details_pb2.PreconditionFailure(violations=violations)),
    )


def _violation(subject: str, description: str) -> error_details_pb2.PreconditionFailure.Violation:
    return error_details_pb2.PreconditionFailure.Violation(type=PRICE_CHANGED, subject=subject, description=description)
