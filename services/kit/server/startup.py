"""Start-up against backends that may still be coming up next to the service."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


async def retry_until_up(start: Callable[[], Awaitable[object]], what: str, *, give_up_after: float = 120.0) -> None:
    """Calls start() until it succeeds, backing off 0.5 s .. 5 s; re-raises
    its error once give_up_after seconds would be exceeded. start() must be
    safe to call again after a failure."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + give_up_after
    delay = 0.5
    while True:
        try:
            await start()
            return
        except Exception as exc:
            if loop.time() + delay > give_up:
                raise
            log.warning(f"{what} not reachable yet; retrying", extra={"error": str(exc)[:300]})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
