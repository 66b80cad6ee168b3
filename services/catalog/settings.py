"""The catalog service's settings (AVIARY_CATALOG_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, pg_dsn_setting, setting


@dataclass(frozen=True)
class CatalogSettings(Settings):
    pg_dsn: str = pg_dsn_setting("catalog")
    stock_timeout_seconds: float = setting(
        "AVIARY_CATALOG_STOCK_TIMEOUT_SECONDS",
        1.0,
        "Deadline of a read's stock lookup in inventory; past it products show stock 0.",
    )
