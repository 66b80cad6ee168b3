"""The orders service's settings (AVIARY_ORDERS_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, pg_dsn_setting, setting


@dataclass(frozen=True)
class OrdersSettings(Settings):
    pg_dsn: str = pg_dsn_setting("orders")
    pg_pool: int = setting("AVIARY_ORDERS_PG_POOL", 20, "PostgreSQL connections of the orders service.")
    lease_seconds: float = setting(
        "AVIARY_ORDERS_LEASE_SECONDS", 10.0, "A saga whose orchestrator stops renewing this lease is taken over."
    )
    reservation_ttl_seconds: int = setting(
        "AVIARY_ORDERS_RESERVATION_TTL_SECONDS", 600, "How long a checkout's stock hold lasts in inventory."
    )
    same_key_wait_seconds: float = setting(
        "AVIARY_ORDERS_SAME_KEY_WAIT_SECONDS",
        15.0,
        "How long a retry of a checkout key waits for the first one's saga.",
    )
    recovery_seconds: float = setting(
        "AVIARY_ORDERS_RECOVERY_SECONDS", 2.0, "How often the sweeps take over stale sagas and unfinished cancels."
    )
