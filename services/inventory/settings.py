"""The inventory service's settings (AVIARY_INVENTORY_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, pg_dsn_setting, setting


@dataclass(frozen=True)
class InventorySettings(Settings):
    pg_dsn: str = pg_dsn_setting("inventory")
    reservation_ttl_seconds: int = setting(
        "AVIARY_INVENTORY_RESERVATION_TTL_SECONDS", 600, "How long a reservation is held when the request gives no TTL."
    )
    sweep_seconds: float = setting(
        "AVIARY_INVENTORY_SWEEP_SECONDS", 5.0, "How often expired held reservations are released."
    )
