"""Bulk activity marks for many readers: an operator and benchmark tool.

    python -m services.timeline.load USERS [--ttl-days 7]   # mark them active
    python -m services.timeline.load USERS --delete         # forget their timelines

USERS is a file (or - for stdin) of user ids, one decimal id per line; blank
lines and lines starting with # are skipped. Marking a user active is what a
read of their timeline does, without the rebuild: fanout then delivers to them.
Meant for readers whose timeline would be empty anyway (new or synthetic users,
before their followees post), in a benchmark or an empty Redis. --delete
removes every key the timeline service keeps for those readers. Both are
idempotent. Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Iterable, TextIO

from services.kit.settings import load
from services.timeline.settings import TimelineSettings
from services.timeline.store import TimelineStore

# Users per Redis round trip: large enough to keep Redis busy, small enough
# that one reply buffer stays a few hundred kilobytes.
CHUNK = 5000


def parse_user_ids(lines: Iterable[str], source: str = "input") -> list[int]:
    """The ids of a USERS file, in order, without repeats; ValueError naming the bad line."""
    seen: dict[int, None] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            user_id = int(line)
        except ValueError:
            raise ValueError(f"{source}:{number}: not a user id: {line[:60]!r}") from None
        if not 0 < user_id < 2**63:
            raise ValueError(f"{source}:{number}: a user id is a positive 64-bit integer, got {user_id}")
        seen[user_id] = None
    return list(seen)


def _open(path: str) -> TextIO:
    return sys.stdin if path == "-" else open(path, encoding="utf-8")


async def run(settings: TimelineSettings, user_ids: list[int], *, delete: bool, ttl_seconds: int) -> dict:
    store = TimelineStore(settings)
    started = time.perf_counter()
    try:
        for start in range(0, len(user_ids), CHUNK):
            chunk = user_ids[start : start + CHUNK]
            if delete:
                await store.forget_users(chunk)
            else:
                await store.mark_many_active(chunk, ttl_seconds)
    finally:
        await store.close()
    out: dict = {"users": len(user_ids), "seconds": round(time.perf_counter() - started, 2)}
    if delete:
        out["deleted"] = len(user_ids)
    else:
        out.update({"marked_active": len(user_ids), "ttl_s": ttl_seconds})
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m services.timeline.load",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("users", help="file of user ids, one per line (- for stdin)")
    p.add_argument("--ttl-days", type=float, default=7.0, help="how long the marks last (default %(default)s)")
    p.add_argument("--delete", action="store_true", help="delete the users' timelines and marks instead")
    args = p.parse_args(argv)
    settings = load(TimelineSettings)
    if args.ttl_days <= 0:
        p.error("--ttl-days must be positive")
    try:
        with _open(args.users) as f:
            user_ids = parse_user_ids(f, args.users)
    except (OSError, ValueError) as exc:
        p.error(str(exc))
    action = "deleting the timelines of" if args.delete else "marking active"
    print(f"timeline load: {action} {len(user_ids)} users", file=sys.stderr, flush=True)
    result = asyncio.run(run(settings, user_ids, delete=args.delete, ttl_seconds=int(args.ttl_days * 86_400)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
