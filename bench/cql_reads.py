"""What reading a page of rows by key costs: one statement per row, side by
side (as posts and media read their cache misses before), against one `IN`
statement for the page (`cql.rows_by_key`, what they do now).

Reads --keys random posts by id from posts' own table on the devstack's
Cassandra, --pages times each way, the two ways alternating --rounds times.
Prints one JSON object: per way and round, CPU per page of this process
(the driver and its threads) and of Cassandra, from /proc, and wall time
per page p50/p95/p99 (ms).

    .venv/bin/python bench/cql_reads.py --keys 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

from loadgen import JIT_SUFFIX, component_pid, percentile, rounded, stack_cpu_seconds

from services.kit.settings import load_settings
from services.kit.stores import cql
from services.posts.store import POST_COLUMNS, KEYSPACE


def _cassandra_cpu_seconds() -> float:
    used = stack_cpu_seconds()
    return used["cassandra"] + used.get(f"cassandra{JIT_SUFFIX}", 0.0)


async def main(args: argparse.Namespace) -> dict:
    if component_pid("cassandra") is None:
        raise SystemExit("Cassandra is not running: make up first")
    session = await cql.connect(load_settings())
    one = session.prepare(f"SELECT {POST_COLUMNS} FROM {KEYSPACE}.posts WHERE post_id = ?")
    many = session.prepare(f"SELECT {POST_COLUMNS} FROM {KEYSPACE}.posts WHERE post_id IN ?")
    ids = [row.post_id for row in session.execute(f"SELECT post_id FROM {KEYSPACE}.posts LIMIT 5000")]
    if len(ids) < args.keys:
        raise SystemExit(f"posts holds {len(ids)} posts, fewer than --keys {args.keys}: seed some (make bench-social)")

    async def one_each(page: list[int]) -> None:
        await asyncio.gather(*(cql.execute(session, one, (post_id,)) for post_id in page))

    async def in_one(page: list[int]) -> None:
        await cql.rows_by_key(session, many, page, key_of=lambda row: row.post_id)

    runs = []
    try:
        for round_no in range(args.rounds):
            for way, read in (("statement_per_row", one_each), ("in", in_one)):
                for _ in range(20):  # warm the prepared statements and pages
                    await read(random.sample(ids, args.keys))
                walls = []
                client, server = time.process_time(), _cassandra_cpu_seconds()
                for _ in range(args.pages):
                    started = time.perf_counter()
                    await read(random.sample(ids, args.keys))
                    walls.append((time.perf_counter() - started) * 1000)
                client, server = time.process_time() - client, _cassandra_cpu_seconds() - server
                walls.sort()
                runs.append(
                    {
                        "round": round_no + 1,
                        "way": way,
                        "client_cpu_ms_per_page": rounded(client * 1000 / args.pages),
                        "cassandra_cpu_ms_per_page": rounded(server * 1000 / args.pages),
                        "wall_ms": {
                            q: rounded(percentile(walls, p)) for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
                        },
                    }
                )
    finally:
        session.cluster.shutdown()
    return {"keys": args.keys, "pages": args.pages, "runs": runs}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=20, help="rows per page (default 20)")
    ap.add_argument("--pages", type=int, default=300, help="pages read each way per round (default 300)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of both ways, alternating (default 2)")
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=2))
