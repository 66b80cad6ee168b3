"""Pieces the load generators share: percentiles and setup calls over the public API.

Imported by the bench scripts, which run as `python bench/<name>.py` (so this
directory is on the import path).
"""
from __future__ import annotations

import asyncio
import json

import aiohttp


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank q-quantile of already sorted values; None for none."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


async def seed_call(client: aiohttp.ClientSession, method: str, path: str, *, tries: int = 20, **kwargs) -> dict:
    """A setup call: waits out 429s (sign-up is anonymous, so it shares the
    per-address bucket with anything else on this machine); any other non-2xx fails the run."""
    for _ in range(tries):
        async with client.request(method, path, **kwargs) as r:
            status, body, retry_after = r.status, await r.read(), r.headers.get("Retry-After", "1")
        if status == 429:
            await asyncio.sleep(float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 1.0)
            continue
        if not 200 <= status < 300:
            raise SystemExit(f"seed {method} {path} -> {status}: {body[:300].decode(errors='replace')}")
        return json.loads(body) if body else {}
    raise SystemExit(f"seed {method} {path}: still rate limited after {tries} tries")
