"""64-bit time-ordered ids (Snowflake layout) and id parsing at the API edge.

Layout: 41 bits of milliseconds since EPOCH_MS | 10 bits worker | 12 bits sequence.
Ids sort by creation time, which timelines and paging rely on.
"""

from __future__ import annotations

import threading
import time

from services.kit.server.errors import invalid_argument

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
MAX_ID = (1 << 63) - 1


class IdGenerator:
    """Thread-safe Snowflake generator; waits out clock steps backwards."""

    def __init__(self, worker_id: int) -> None:
        if not 0 <= worker_id <= MAX_WORKER:
            raise ValueError(f"worker_id must be in 0..{MAX_WORKER}")
        self.worker_id = worker_id
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def next_id(self) -> int:
        with self._lock:
            now = _now_ms()
            if now < self._last_ms:
                # Clock went backwards: never reuse a timestamp we already issued.
                now = self._last_ms
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:
                    while now <= self._last_ms:
                        time.sleep(0.0001)
                        now = _now_ms()
            else:
                self._sequence = 0
            self._last_ms = now
            return (
                ((now - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)) | (self.worker_id << SEQUENCE_BITS) | self._sequence
            )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def timestamp_ms(id_: int) -> int:
    """Creation time (unix ms) encoded in an id."""
    return (id_ >> (WORKER_BITS + SEQUENCE_BITS)) + EPOCH_MS


def min_id_at(unix_ms: int) -> int:
    """The smallest id minted at `unix_ms`: ids below it were minted earlier."""
    return max(0, unix_ms - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)


def parse_id(value: str, field: str) -> int:
    """A client-sent id string -> int, or INVALID_ARGUMENT naming the field."""
    if value is None or value == "":
        raise invalid_argument(field, "is required")
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise invalid_argument(field, f"must be a decimal 64-bit id, got {value[:40]!r}")
    parsed = int(value)
    if parsed <= 0 or parsed > MAX_ID:
        raise invalid_argument(field, f"must be a decimal 64-bit id, got {value[:40]!r}")
    return parsed


def parse_optional_id(value: str, field: str) -> int:
    """Like parse_id, but an empty value means 0 (not set)."""
    return 0 if value in ("", None) else parse_id(value, field)


def parse_ids(values, field: str, *, max_items: int) -> list[int]:
    if len(values) > max_items:
        raise invalid_argument(field, f"at most {max_items} items, got {len(values)}")
    return [parse_id(v, f"{field}[{i}]") for i, v in enumerate(values)]
