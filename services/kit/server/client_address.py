"""The client's address, found the way Envoy finds it.

Envoy runs with `use_remote_address: true` and `xff_num_trusted_hops` from
ENVOY_XFF_TRUSTED_HOPS (0 unless load balancers that append to
X-Forwarded-For stand in front of it). It appends the peer it saw to
X-Forwarded-For, and sets x-envoy-external-address to the client address it
trusts, overwriting any copy the client sent (verified by
tests/integration/test_identity_throttle.py; Envoy keeps a client's copy only
from addresses an internal_address_config calls internal, and ours has none).
Everything left of the trusted entry in X-Forwarded-For was written by the
client and means nothing.
"""

from __future__ import annotations

from typing import Iterable, Mapping
from urllib.parse import unquote

from services.kit import settings

EXTERNAL_ADDRESS = "x-envoy-external-address"
FORWARDED_FOR = "x-forwarded-for"


def trusted_hops() -> int:
    """How many proxies in front of Envoy append to X-Forwarded-For (Envoy's xff_num_trusted_hops)."""
    return settings.current().xff_trusted_hops


def from_forwarded_for(forwarded_for: str, hops: int) -> str | None:
    """The client in an X-Forwarded-For that Envoy appended its peer to: the
    (hops + 1)-th entry from the right, or Envoy's peer (the rightmost) when
    there are fewer entries, as Envoy itself decides."""
    entries = [entry.strip() for entry in forwarded_for.split(",")]
    entries = [entry for entry in entries if entry]
    if not entries:
        return None
    return entries[-(hops + 1)] if len(entries) > hops else entries[-1]


def from_headers(headers: Mapping[str, str], hops: int) -> str | None:
    """The client address of a request Envoy forwarded (lower-case header
    names): Envoy's own verdict when it sent one, else X-Forwarded-For."""
    external = headers.get(EXTERNAL_ADDRESS, "").strip()
    if external:
        return external
    return from_forwarded_for(headers.get(FORWARDED_FOR, ""), hops)


def from_metadata(metadata: Iterable[tuple[str, str | bytes]], hops: int) -> str | None:
    """from_headers for gRPC invocation metadata (Envoy forwards headers as metadata)."""
    wanted: dict[str, str] = {}
    for key, value in metadata:
        if key in (EXTERNAL_ADDRESS, FORWARDED_FOR) and isinstance(value, str):
            # Several X-Forwarded-For lines are one list, in order.
            wanted[key] = f"{wanted[key]},{value}" if key in wanted else value
    return from_headers(wanted, hops)


def from_peer(peer: str) -> str:
    """The host of a gRPC peer string ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000"),
    for callers that did not come through Envoy."""
    _, _, rest = peer.partition(":")
    rest = unquote(rest)  # gRPC writes IPv6 brackets as %5B and %5D
    host = rest.rsplit(":", 1)[0] if rest.count(":") else rest
    return host.strip("[]") or peer
