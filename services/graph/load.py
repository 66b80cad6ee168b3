"""Bulk follow edges: an operator and benchmark tool.

    python -m services.graph.load EDGES [--threshold N]          # write the edges
    python -m services.graph.load EDGES --flags-only --threshold N
    python -m services.graph.load EDGES --delete

EDGES is a file (or - for stdin) with one follow per line, "FOLLOWER_ID
FOLLOWEE_ID" (decimal user ids separated by blanks); blank lines and lines
starting with # are skipped, a repeated edge counts once. The edges are
written as FollowUser leaves them: both edge rows, both counts, and the
followee's celebrity flag at --threshold. No follow events are published, so
nothing is backfilled or notified, and caches of user summaries catch up
within their TTL. Meant for a benchmark graph or an empty keyspace: the counts
are increments and the flags come from the file's counts, so the users must
not have edges already. Loading the same file twice counts every edge twice;
--delete first.

--flags-only sets the followees' celebrity flags at --threshold again (after
the service's threshold changed). --delete removes everything graph keeps for
every user the file names, both directions, not only the listed edges, and
their flags: for undoing a load of users that have no other edges. Follower
lists graph processes keep in memory are invalidated either way. Prints one
JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable, TextIO

from services.graph import rules, store
from services.kit.settings import load_settings

MAX_ID = 2**63 - 1


@dataclass
class Edges:
    """Follow edges both ways: followee -> followers and follower -> followees."""

    followers: dict[int, list[int]] = field(default_factory=dict)
    following: dict[int, list[int]] = field(default_factory=dict)

    def count(self) -> int:
        return sum(len(f) for f in self.followers.values())


def parse_edges(lines: Iterable[str], source: str = "input") -> Edges:
    """The edges of an EDGES file, repeats dropped; ValueError naming the bad line."""
    followers: dict[int, dict[int, None]] = {}
    following: dict[int, dict[int, None]] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
            raise ValueError(f"{source}:{number}: expected 'FOLLOWER_ID FOLLOWEE_ID', got {line[:60]!r}")
        follower, followee = int(parts[0]), int(parts[1])
        if not (0 < follower <= MAX_ID and 0 < followee <= MAX_ID):
            raise ValueError(f"{source}:{number}: user ids are positive 64-bit integers, got {line[:60]!r}")
        if follower == followee:
            raise ValueError(f"{source}:{number}: a user cannot follow themselves ({follower})")
        followers.setdefault(followee, {})[follower] = None
        following.setdefault(follower, {})[followee] = None
    return Edges(
        followers={u: list(f) for u, f in followers.items()},
        following={u: list(f) for u, f in following.items()},
    )


def celebrity_flags(edges: Edges, threshold: int) -> dict[int, bool]:
    """Each followee's flag as graph sets it for its follower count."""
    return {user: rules.is_celebrity(len(f), threshold) for user, f in edges.followers.items()}


def _open(path: str) -> TextIO:
    return sys.stdin if path == "-" else open(path, encoding="utf-8")


def _log(msg: str) -> None:
    print(f"graph load: {msg}", file=sys.stderr, flush=True)


async def run(edges: Edges, args) -> dict:
    settings = load_settings()
    graph = store.GraphStore(settings)
    out: dict = {"edges": edges.count(), "followees": len(edges.followers), "followers": len(edges.following)}
    try:
        if not args.flags_only:
            session = await store.bulk_session(settings)
            try:
                if args.delete:
                    _log(f"deleting the lists and counts of {len(edges.followers) + len(edges.following)} users")
                    out["deleted"] = await asyncio.to_thread(
                        store.bulk_delete_users,
                        session,
                        list(edges.followers),
                        list(edges.following),
                        concurrency=args.concurrency,
                    )
                else:
                    _log(f"writing {out['edges']} edges")
                    out["load"] = await asyncio.to_thread(
                        store.bulk_write_edges,
                        session,
                        edges.followers,
                        edges.following,
                        batch_rows=args.batch_rows,
                        concurrency=args.concurrency,
                    )
            finally:
                await asyncio.to_thread(session.cluster.shutdown)
        flags = dict.fromkeys(edges.followers, False) if args.delete else celebrity_flags(edges, args.threshold)
        await graph.set_celebrities(flags)
        out["celebrities"] = {"threshold": None if args.delete else args.threshold, "flagged": sum(flags.values())}
        if not args.flags_only:
            # Lists changed under any copy a running graph keeps (see follower_lists.py).
            version = f"load:{secrets.token_hex(8)}"
            await graph.mark_followers_changed(dict.fromkeys(edges.followers, version))
            out["follower_lists_invalidated"] = len(edges.followers)
    finally:
        await graph.stop()
    return out


def main(argv: list[str] | None = None) -> None:
    settings = load_settings()
    p = argparse.ArgumentParser(
        prog="python -m services.graph.load",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("edges", help="file of 'FOLLOWER_ID FOLLOWEE_ID' lines (- for stdin)")
    p.add_argument(
        "--threshold",
        type=int,
        default=settings.fanout_threshold,
        help="celebrity above this many followers; pass the running graph's AVIARY_FANOUT_THRESHOLD "
        "(default: this process's, %(default)s)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--flags-only", action="store_true", help="only set the followees' celebrity flags again")
    mode.add_argument("--delete", action="store_true", help="delete everything kept for the users in the file")
    p.add_argument(
        "--batch-rows",
        type=int,
        default=80,
        help="rows per batch; 80 stays under Cassandra's 5 KiB batch warning (default %(default)s)",
    )
    p.add_argument("--concurrency", type=int, default=128, help="requests in flight (default %(default)s)")
    args = p.parse_args(argv)
    if args.threshold < 0 or args.batch_rows < 1 or args.concurrency < 1:
        p.error("--threshold must be >= 0, --batch-rows and --concurrency >= 1")
    started = time.perf_counter()
    try:
        with _open(args.edges) as f:
            edges = parse_edges(f, args.edges)
    except (OSError, ValueError) as exc:
        p.error(str(exc))
    parse_s = round(time.perf_counter() - started, 1)
    result = asyncio.run(run(edges, args))
    result["parse_s"] = parse_s
    print(json.dumps(result))


if __name__ == "__main__":
    main()
