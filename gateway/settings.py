"""The gateway's settings (rate limits, port), read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.settings import Settings, setting


@dataclass(frozen=True)
class GatewaySettings(Settings):
    port: int = setting("AVIARY_GATEWAY_PORT", 8081, "The gateway's HTTP port (Envoy's ext_authz calls it).")
    user_reads_per_sec: float = setting(
        "AVIARY_RATE_USER_READS_PER_SEC", 50.0, "Reads a signed-in user may make a second."
    )
    user_read_burst: int = setting("AVIARY_RATE_USER_READ_BURST", 100, "Reads a signed-in user may make at once.")
    user_writes_per_sec: float = setting(
        "AVIARY_RATE_USER_WRITES_PER_SEC", 20.0, "Writes a signed-in user may make a second."
    )
    user_write_burst: int = setting("AVIARY_RATE_USER_WRITE_BURST", 100, "Writes a signed-in user may make at once.")
    ip_reads_per_sec: float = setting(
        "AVIARY_RATE_IP_READS_PER_SEC", 200.0, "Anonymous reads per client address a second."
    )
    ip_read_burst: int = setting("AVIARY_RATE_IP_READ_BURST", 400, "Anonymous reads per client address at once.")
    ip_writes_per_sec: float = setting(
        "AVIARY_RATE_IP_WRITES_PER_SEC", 100.0, "Anonymous writes per client address a second."
    )
    ip_write_burst: int = setting("AVIARY_RATE_IP_WRITE_BURST", 300, "Anonymous writes per client address at once.")
    rate_lease_most: int = setting(
        "AVIARY_RATE_LEASE_MOST",
        10,
        "Allowances a gateway takes from a subject's shared bucket at once and spends without asking Redis "
        "(never more than a quarter of what the bucket holds); 1 asks Redis on every request.",
    )
    rate_lease_seconds: float = setting(
        "AVIARY_RATE_LEASE_SECONDS", 5.0, "Allowances taken ahead and not spent within this long are dropped."
    )
    rate_exempt_username_prefix: str = setting(
        "AVIARY_RATE_EXEMPT_USERNAME_PREFIX",
        "",
        "Users whose name starts with this are not rate limited (the devstack's API fuzz accounts); unset in production.",
    )
