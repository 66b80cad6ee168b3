"""The cart service's settings (AVIARY_CART_*), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class CartSettings(Settings):
    ttl_seconds: int = setting(
        "AVIARY_CART_TTL_SECONDS", 7 * 86_400, "Abandoned carts expire this long after their last change."
    )
    max_lines: int = setting("AVIARY_CART_MAX_LINES", 50, "Lines (distinct products) one cart may hold.")
    checkout_marker_ttl_seconds: int = setting(
        "AVIARY_CART_CHECKOUT_MARKER_TTL_SECONDS",
        7 * 86_400,
        "How long a checkout is remembered as taken out of the cart: longer than any checkout keeps retrying.",
    )
    catalog_timeout_seconds: float = setting(
        "AVIARY_CART_CATALOG_TIMEOUT_SECONDS",
        2.0,
        "Deadline of the catalog call pricing a cart: short, so a slow catalog fails fast with UNAVAILABLE.",
    )

    def __post_init__(self) -> None:
        if self.ttl_seconds <= 0 or self.max_lines <= 0 or self.checkout_marker_ttl_seconds <= 0:
            raise ValueError(
                "AVIARY_CART_TTL_SECONDS, AVIARY_CART_MAX_LINES and "
                "AVIARY_CART_CHECKOUT_MARKER_TTL_SECONDS must be positive"
            )
