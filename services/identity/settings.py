"""The identity service's settings (AVIARY_IDENTITY_*), read once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

from services.identity.throttle import Limits
from services.kit.settings import Settings, pg_dsn_setting, setting

# The throttle's production defaults live with their reasons in throttle.Limits.
_LIMITS = Limits()


@dataclass(frozen=True)
class IdentitySettings(Settings):
    pg_dsn: str = pg_dsn_setting("identity")
    hash_workers: int = setting(
        "AVIARY_IDENTITY_HASH_WORKERS",
        lambda s: min(4, os.cpu_count() or 1),
        "Threads hashing passwords (Argon2id) in parallel.",
        shown="min(4, CPUs)",
    )
    hash_queue: int = setting(
        "AVIARY_IDENTITY_HASH_QUEUE", 64, "Password hashes that may wait for a thread; beyond, UNAVAILABLE at once."
    )
    # RFC 9106's second recommended profile (argon2-cffi's defaults): about 0.1 s
    # and 64 MiB a hash. Stored hashes name their own cost, and a log-in
    # rehashes a password whose hash was made at another one.
    hash_time_cost: int = setting("AVIARY_IDENTITY_HASH_TIME_COST", 3, "Argon2id passes over memory per hash.")
    hash_memory_kib: int = setting("AVIARY_IDENTITY_HASH_MEMORY_KIB", 65_536, "Argon2id memory per hash, in KiB.")
    hash_parallelism: int = setting("AVIARY_IDENTITY_HASH_PARALLELISM", 4, "Argon2id lanes per hash.")
    user_cache_seconds: float = setting(
        "AVIARY_IDENTITY_USER_CACHE_SECONDS", 60.0, "How long a user summary for hydration is reused."
    )
    user_cache_entries: int = setting("AVIARY_IDENTITY_USER_CACHE_ENTRIES", 50_000, "User summaries kept in memory.")
    login_free_failures: int = setting(
        "AVIARY_IDENTITY_LOGIN_FREE_FAILURES",
        _LIMITS.login_free_failures,
        "Failed log-ins an account name gets before each further failure locks it.",
    )
    login_backoff_base_seconds: float = setting(
        "AVIARY_IDENTITY_LOGIN_BACKOFF_BASE_SECONDS",
        _LIMITS.login_backoff_base_seconds,
        "The first lock of an account name; each further failure doubles it.",
    )
    login_backoff_cap_seconds: float = setting(
        "AVIARY_IDENTITY_LOGIN_BACKOFF_CAP_SECONDS",
        _LIMITS.login_backoff_cap_seconds,
        "The longest lock of an account name.",
    )
    login_failure_memory_seconds: float = setting(
        "AVIARY_IDENTITY_LOGIN_FAILURE_MEMORY_SECONDS",
        _LIMITS.login_failure_memory_seconds,
        "A name's failed log-ins are forgotten after this long without an attempt.",
    )
    login_failures_per_address: int = setting(
        "AVIARY_IDENTITY_LOGIN_FAILURES_PER_ADDRESS",
        _LIMITS.login_failures_per_address,
        "Failed log-ins one client address may make per window, over all names (raised on the devstack).",
    )
    login_address_window_seconds: float = setting(
        "AVIARY_IDENTITY_LOGIN_ADDRESS_WINDOW_SECONDS",
        _LIMITS.login_address_window_seconds,
        "The window of AVIARY_IDENTITY_LOGIN_FAILURES_PER_ADDRESS.",
    )
    sign_ups_per_address: int = setting(
        "AVIARY_IDENTITY_SIGN_UPS_PER_ADDRESS",
        _LIMITS.sign_ups_per_address,
        "Sign-ups one client address may make per window (raised on the devstack).",
    )
    sign_up_window_seconds: float = setting(
        "AVIARY_IDENTITY_SIGN_UP_WINDOW_SECONDS",
        _LIMITS.sign_up_window_seconds,
        "The window of AVIARY_IDENTITY_SIGN_UPS_PER_ADDRESS.",
    )
    refresh_token_seconds: int = setting(
        "AVIARY_IDENTITY_REFRESH_TOKEN_SECONDS",
        30 * 24 * 3600,
        "A refresh token works this long after it was issued; a session unused for longer must log in again.",
    )
    refresh_reissue_seconds: float = setting(
        "AVIARY_IDENTITY_REFRESH_REISSUE_SECONDS",
        30.0,
        "A retired refresh token whose successor was never used gets a new one this long after the refresh"
        " (its answer was lost); past it, or once the successor was used, presenting it revokes the session.",
    )
    session_sweep_seconds: float = setting(
        "AVIARY_IDENTITY_SESSION_SWEEP_SECONDS",
        3600.0,
        "How often expired sessions (and their refresh tokens) are deleted.",
    )
    username_hold_seconds: int = setting(
        "AVIARY_IDENTITY_USERNAME_HOLD_SECONDS",
        30 * 24 * 3600,
        "A deleted account's username cannot be taken for this long; then the sweep frees it.",
    )
    username_sweep_seconds: float = setting(
        "AVIARY_IDENTITY_USERNAME_SWEEP_SECONDS",
        3600.0,
        "How often the usernames of accounts deleted longer than the hold ago are freed.",
    )

    def __post_init__(self) -> None:
        # Argon2's own bounds, checked here so a bad value stops start-up, not the first sign-up.
        if self.hash_time_cost < 1 or self.hash_parallelism < 1 or self.hash_memory_kib < 8 * self.hash_parallelism:
            raise ValueError(
                "AVIARY_IDENTITY_HASH_TIME_COST and AVIARY_IDENTITY_HASH_PARALLELISM must be at least 1, and "
                "AVIARY_IDENTITY_HASH_MEMORY_KIB at least 8 KiB per lane"
            )
