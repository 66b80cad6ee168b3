"""PaymentProvider on the official Stripe SDK (stripe-mock in the local stack).

Async end to end: the SDK's `*_async` methods over its aiohttp client (its
httpx client, with anyio underneath, costs far more CPU per request:
bench/README.md, checkout). One
PaymentIntent per payment, created with capture_method=manual and confirmed at
once (authorize = hold); capture, cancel (void) and a Refund for the intent
follow. Every request carries our idempotency key and a short timeout, and the
SDK's own retries are off: retrying is the caller's decision, made with the
same key.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
import stripe

from services.payments.provider import Charge, ProviderResult, ProviderUnavailable
from services.payments.settings import PaymentsSettings

log = logging.getLogger(__name__)

# PaymentIntent statuses that mean the confirm did not leave money held.
# (A real Stripe answers requires_capture for a successful manual-capture
# confirm; stripe-mock answers a fixed fixture status for everything, so we
# do not insist on requires_capture - only refuse the statuses that are a
# clear "no".)
_NOT_HELD = {"canceled": "canceled", "requires_action": "authentication_required"}

# aiohttp errors raised before a single byte of the request left this process:
# the connection was refused, or not made in time. (A pooled connection the
# server had closed surfaces as ServerDisconnectedError: maybe processed.)
_NEVER_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


@dataclass(frozen=True)
class StripeSettings:
    api_key: str
    api_base: str
    timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: PaymentsSettings) -> "StripeSettings":
        return cls(
            api_key=settings.stripe_api_key,
            api_base=settings.stripe_api_base,
            timeout_seconds=settings.stripe_timeout_seconds,
        )


class StripeProvider:
    def __init__(self, settings: StripeSettings) -> None:
        self.settings = settings
        # The session (and its connection pool) is made on the first request,
        # inside the running event loop.
        self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=settings.timeout_seconds))
        self._client = stripe.StripeClient(
            settings.api_key,
            base_addresses={"api": settings.api_base},
            max_network_retries=0,
            http_client=self._http,
        )
        # Belt and braces over the client's own timeout (a request that
        # never starts, e.g. waiting for a pooled connection, is not under it).
        self._deadline = settings.timeout_seconds + 0.5

    async def authorize(self, charge: Charge, idempotency_key: str) -> ProviderResult:
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": charge.amount_minor,
            "currency": charge.currency.lower(),  # Stripe wants lower-case ISO codes
            "payment_method": charge.payment_method,
            "capture_method": "manual",
            "confirm": True,
            # Cards only, no redirects: a checkout cannot follow a 3DS redirect.
            # (The SDK's API version renamed payment_method_types to this.)
            "allowed_payment_method_types": ["card"],
            "metadata": dict(charge.metadata),
        }
        intent = await self._call(
            "authorize",
            self._client.v1.payment_intents.create_async(params=params, options={"idempotency_key": idempotency_key}),
        )
        if isinstance(intent, ProviderResult):  # refused
            return intent
        refusal = _NOT_HELD.get(getattr(intent, "status", ""))
        if refusal:
            return ProviderResult.refused(refusal, ref=intent.id)
        return ProviderResult.done(intent.id)

    async def capture(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        return await self._simple(
            "capture", self._client.v1.payment_intents.capture_async(ref, options={"idempotency_key": idempotency_key})
        )

    async def void(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        return await self._simple(
            "void", self._client.v1.payment_intents.cancel_async(ref, options={"idempotency_key": idempotency_key})
        )

    async def refund(self, charge: Charge, ref: str, idempotency_key: str) -> ProviderResult:
        return await self._simple(
            "refund",
            self._client.v1.refunds.create_async(
                params={"payment_intent": ref}, options={"idempotency_key": idempotency_key}
            ),
        )

    async def close(self) -> None:
        await self._http.close_async()

    async def _simple(self, operation: str, request) -> ProviderResult:
        answer = await self._call(operation, request)
        return answer if isinstance(answer, ProviderResult) else ProviderResult.done(answer.id)

    async def _call(self, operation: str, request):
        """Awaits one SDK request; a refusal comes back as a ProviderResult,
        everything that is not an answer raises ProviderUnavailable."""
        try:
            return await asyncio.wait_for(request, self._deadline)
        except asyncio.TimeoutError:
            raise ProviderUnavailable(f"Stripe did not answer {operation} within {self._deadline:.1f}s") from None
        except stripe.CardError as exc:
            return ProviderResult.refused(_decline_reason(exc))
        except stripe.IdempotencyError as exc:
            # Our key was reused with other parameters: a bug on our side, and
            # the provider did nothing with this request.
            log.error("Stripe refused an idempotency key", extra={"operation": operation, "error": str(exc)})
            return ProviderResult.refused("idempotency_error")
        except stripe.InvalidRequestError as exc:
            # e.g. an unknown payment method, or cancelling a captured intent.
            return ProviderResult.refused(exc.code or "invalid_request")
        except stripe.RateLimitError as exc:
            raise ProviderUnavailable(f"Stripe rate-limited {operation}", maybe_processed=False) from exc
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            # Our credentials are wrong: nothing was done, and nothing will be
            # until an operator fixes the key - an outage, as far as buyers go.
            log.error("Stripe rejected our credentials", extra={"operation": operation, "error": str(exc)})
            raise ProviderUnavailable(f"Stripe refused our credentials for {operation}", maybe_processed=False) from exc
        except stripe.APIConnectionError as exc:
            never_sent = isinstance(exc.__cause__, _NEVER_SENT)
            raise ProviderUnavailable(
                f"cannot reach Stripe for {operation} ({type(exc.__cause__).__name__})", maybe_processed=not never_sent
            ) from exc
        except stripe.APIError as exc:
            raise ProviderUnavailable(f"Stripe failed {operation} (HTTP {exc.http_status})") from exc
        except stripe.StripeError as exc:
            raise ProviderUnavailable(f"unexpected Stripe error on {operation}: {type(exc).__name__}") from exc


def _decline_reason(exc: stripe.CardError) -> str:
    """The most specific reason Stripe gave: decline_code ("insufficient_funds")
    over code ("card_declined")."""
    error = getattr(exc, "error", None)
    decline_code = getattr(error, "decline_code", None) if error is not None else None
    return decline_code or exc.code or "card_declined"
