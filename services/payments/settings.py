"""The payments service's settings (AVIARY_PAYMENTS_*, AVIARY_STRIPE_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, pg_dsn_setting, setting
from services.payments.validation import STRIPE_TEST_METHODS


@dataclass(frozen=True)
class PaymentsSettings(Settings):
    pg_dsn: str = pg_dsn_setting("payments")
    stripe_api_key: str = setting(
        "AVIARY_STRIPE_API_KEY", "sk_test_devstack", "Stripe secret key (a test key locally)."
    )
    stripe_api_base: str = setting(
        "AVIARY_STRIPE_API_BASE", "http://127.0.0.1:12111", "Where the Stripe API is reached (stripe-mock locally)."
    )
    stripe_timeout_seconds: float = setting(
        "AVIARY_STRIPE_TIMEOUT_SECONDS", 2.0, "Deadline of one provider request (the SDK does not retry)."
    )
    # A plain string, not a comma-list field: empty must stay empty ("any"),
    # not fall back to the default.
    accepted_methods: str = setting(
        "AVIARY_PAYMENTS_ACCEPTED_METHODS",
        ",".join(STRIPE_TEST_METHODS),
        "Payment methods accepted, comma-separated; empty: any well-formed provider id (production).",
        shown="Stripe's test payment methods",
    )
    fault_injection: bool = setting(
        "AVIARY_PAYMENTS_FAULT_INJECTION", False, "Test-only fault-injecting provider wrapper; never in production."
    )
    fault_delay_seconds: float = setting(
        "AVIARY_PAYMENTS_FAULT_DELAY_SECONDS", 3.0, "How long pm_fault_slow delays a provider call."
    )
    breaker_failures: int = setting(
        "AVIARY_PAYMENTS_BREAKER_FAILURES", 3, "Consecutive provider failures that open the circuit breaker."
    )
    breaker_open_seconds: float = setting(
        "AVIARY_PAYMENTS_BREAKER_OPEN_SECONDS", 5.0, "How long the open breaker fails calls fast before a probe."
    )
    lock_timeout_seconds: float = setting(
        "AVIARY_PAYMENTS_LOCK_TIMEOUT_SECONDS", 15.0, "Longest wait for a payment's lock held by another caller."
    )
    pg_pool_size: int = setting(
        "AVIARY_PAYMENTS_PG_POOL_SIZE", 20, "PostgreSQL connections (one is held for each provider call)."
    )
    pg_marker_pool_size: int = setting(
        "AVIARY_PAYMENTS_PG_MARKER_POOL_SIZE", 5, "Connections of the separate pool committing sent-request markers."
    )
