"""Rules for throttling log-ins and sign-ups; pure functions, no I/O.

Log-ins are throttled per account name and per client address, sign-ups per
client address. The counters live in Redis (store.AttemptStore), so every
identity replica sees the same ones.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.identity.settings import IdentitySettings

# IPv6 clients are counted per /64: one subscriber usually holds a whole /64.
_IPV6_PREFIX = 64


@dataclass(frozen=True)
class Limits:
    """Production defaults, also those of IdentitySettings; the devstack raises the
    per-address ones (devstack/services.py)."""

    # Log-in attempts an account name gets before each failure locks it.
    login_free_failures: int = 5
    # The first lock; each further failure doubles it, up to the cap, so a
    # guesser gets a handful of tries an hour and an owner waits minutes at most.
    login_backoff_base_seconds: float = 2.0
    login_backoff_cap_seconds: float = 300.0
    # A name's failures are forgotten after this long without an attempt.
    login_failure_memory_seconds: float = 900.0
    # Failed log-ins one client address may make per window, over all names.
    login_failures_per_address: int = 50
    login_address_window_seconds: float = 600.0
    # Sign-ups one client address may make per window.
    sign_ups_per_address: int = 10
    sign_up_window_seconds: float = 3600.0

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> Limits:
        return cls(
            login_free_failures=settings.login_free_failures,
            login_backoff_base_seconds=settings.login_backoff_base_seconds,
            login_backoff_cap_seconds=settings.login_backoff_cap_seconds,
            login_failure_memory_seconds=settings.login_failure_memory_seconds,
            login_failures_per_address=settings.login_failures_per_address,
            login_address_window_seconds=settings.login_address_window_seconds,
            sign_ups_per_address=settings.sign_ups_per_address,
            sign_up_window_seconds=settings.sign_up_window_seconds,
        )


def lock_seconds(failures: int, limits: Limits) -> float:
    """How long an account name is locked after its `failures`-th failure in a row."""
    if failures < limits.login_free_failures:
        return 0.0
    doublings = failures - limits.login_free_failures
    # Past 2**32 the cap has long been reached; this keeps the power small.
    if doublings > 32:
        return limits.login_backoff_cap_seconds
    return min(limits.login_backoff_cap_seconds, limits.login_backoff_base_seconds * 2**doublings)


def lock_schedule(limits: Limits) -> list[int]:
    """lock_seconds in milliseconds for the free-failures-th failure onwards,
    up to the first capped one (every later failure gets the last entry)."""
    schedule = []
    failures = max(limits.login_free_failures, 1)
    while True:
        lock = lock_seconds(failures, limits)
        schedule.append(max(1, round(lock * 1000)))
        if lock >= limits.login_backoff_cap_seconds or len(schedule) > 40:
            return schedule
        failures += 1


def retry_after_seconds(milliseconds: int) -> int:
    """Whole seconds to wait (Retry-After), never 0: a client retrying sooner would be refused again."""
    return max(1, math.ceil(milliseconds / 1000))


def account_key_id(username: str) -> str:
    """The name a log-in counter is kept under: any name at all, existing or
    not, so the answers never tell which accounts exist; hashed so an
    attacker's names never reach Redis keys, case-folded as usernames are."""
    return hashlib.sha256(username.casefold().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def address_bucket(address: str) -> str:
    """The unit per-address limits count: an IPv4 address, or an IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # Not from Envoy (which always sends an address): still one bucket per value.
        return "x" + hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/{_IPV6_PREFIX}", strict=False))
    return str(ip)
