"""Pieces the load generators share: percentiles and setup calls over the public API.

Imported by the bench scripts, which run as `python bench/<name>.py` (so this
directory is on the import path).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import AsyncIterator

import aiohttp

from devstack import config as devstack_config


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank q-quantile of already sorted values; None for none."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def child_us_per_call(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Runs one measuring child process; its last line is JSON with us_per_call."""
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])["us_per_call"]


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


# Sessions whose access tokens fresh_tokens keeps fresh: (headers, [refresh token]).
_SESSIONS: list[tuple[dict[str, str], list[str]]] = []
# Refresh this long before an access token expires, and a few at a time.
_REFRESH_MARGIN = 0.6
_REFRESH_CONCURRENCY = 32


def signed_in(body: dict) -> dict[str, str]:
    """The request headers for a sign-up's or log-in's answer. Inside
    fresh_tokens they are updated in place with refreshed tokens, so a run may
    outlive the access token (15 minutes by default)."""
    auth = {"Authorization": f"Bearer {body['accessToken']}"}
    if body.get("refreshToken"):
        _SESSIONS.append((auth, [body["refreshToken"]]))
    return auth


@contextlib.asynccontextmanager
async def fresh_tokens(client: aiohttp.ClientSession, lifetime_seconds: float = 900.0) -> AsyncIterator[None]:
    """Refreshes every signed_in session well before its access token expires, while the body runs."""
    task = asyncio.create_task(_keep_fresh(client, lifetime_seconds * _REFRESH_MARGIN))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _keep_fresh(client: aiohttp.ClientSession, period: float) -> None:
    gate = asyncio.Semaphore(_REFRESH_CONCURRENCY)

    async def refresh(auth: dict[str, str], token: list[str]) -> None:
        async with gate:
            body = await seed_call(client, "POST", "/v1/sessions:refresh", json={"refreshToken": token[0]})
        auth["Authorization"] = f"Bearer {body['accessToken']}"
        token[0] = body["refreshToken"]

    while True:
        await asyncio.sleep(period)
        await asyncio.gather(*(refresh(auth, token) for auth, token in list(_SESSIONS)))


async def wait_for_consumers(client: aiohttp.ClientSession, *, timeout: float = 240.0, host: str = "127.0.0.1") -> dict:
    """Waits until every Kafka consumer in the stack has caught up, so a
    measurement starts from the steady state rather than while the services
    are still digesting the bench's own seed (its posts, follows and likes
    fan out, get indexed, counted and turned into notifications for a minute
    or more after the seeding calls have returned).

    Reads `aviary_kafka_consumer_lag` from every service's Prometheus
    endpoint (gRPC port + 1000). The services refresh it every few seconds,
    so the stack counts as caught up after two zero readings 6 s apart.
    Returns {"seconds", "caught_up", "max_lag_seen"}.
    """
    from services.kit.settings import SERVICE_PORTS

    started = time.perf_counter()
    max_seen = zero_since = None
    while time.perf_counter() - started < timeout:
        lag = 0.0
        for port in SERVICE_PORTS.values():
            try:
                async with client.get(f"http://{host}:{port + 1000}/metrics") as r:
                    text = await r.text() if r.status == 200 else ""
            except aiohttp.ClientError:
                continue  # a service without metrics here: nothing to wait for
            lag += sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("aviary_kafka_consumer_lag{")
            )
        max_seen = lag if max_seen is None else max(max_seen, lag)
        now = time.perf_counter()
        if lag > 0:
            zero_since = None
        elif zero_since is None:
            zero_since = now
        elif now - zero_since >= 6.0:
            return {"seconds": round(now - started, 1), "caught_up": True, "max_lag_seen": max_seen}
        await asyncio.sleep(1.0)
    return {"seconds": round(time.perf_counter() - started, 1), "caught_up": False, "max_lag_seen": max_seen}


# The key of a JVM component's JIT compiling in stack_cpu_seconds().
JIT_SUFFIX = ":jit"


def stack_cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each devstack component: its whole process
    group (a service's threads), by the pid files the devstack keeps, and the
    processes it started in groups of their own (PostgreSQL's backends: each
    starts a session), by their parent. A JVM's JIT compiler threads count
    apart, as "<component>:jit": warm-up, which goes on for an hour after
    `make up` and is not what a request costs a warm stack."""
    groups = {}
    for pidfile in devstack_config.RUN.glob("*.pid"):
        try:
            groups[int(json.loads(pidfile.read_text())["pgid"])] = pidfile.stem
        except (OSError, ValueError, KeyError, TypeError):
            continue
    tick = os.sysconf("SC_CLK_TCK")
    processes: dict[int, tuple[int, int, float]] = {}  # pid -> parent, group, CPU seconds
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        # With the children it has reaped (cutime, cstime): a child that ends
        # mid-run (Redis's snapshot writer, a PostgreSQL backend) leaves its
        # CPU there, not in a process of its own.
        used_ticks = sum(int(f) for f in fields[11:15])
        processes[int(stat.parent.name)] = (int(fields[1]), int(fields[2]), used_ticks / tick)

    def component(pid: int) -> str | None:
        for _ in range(8):  # up the parents, a few at most
            if pid not in processes:
                return None
            parent, group, _cpu = processes[pid]
            if group in groups:
                return groups[group]
            pid = parent
        return None

    used: dict[str, float] = {}
    for pid, (_parent, _group, cpu) in processes.items():
        name = component(pid)
        if name is None:
            continue
        compiling = _jit_compiler_seconds(pid, tick)
        used[name] = used.get(name, 0.0) + cpu - compiling
        if compiling:
            used[f"{name}{JIT_SUFFIX}"] = used.get(f"{name}{JIT_SUFFIX}", 0.0) + compiling
    return used


def _jit_compiler_seconds(pid: int, tick: int) -> float:
    """CPU seconds a JVM's JIT compiler threads ("C1/C2 CompilerThread") have used; 0 for other processes."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "java":
            return 0.0
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    ticks = 0
    for task in tasks:
        try:
            if "CompilerThre" not in (task / "comm").read_text():  # comm is cut at 15 characters
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        ticks += int(fields[11]) + int(fields[12])
    return ticks / tick


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds one process (all its threads) has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def component_pid(name: str) -> int | None:
    """The pid of the running devstack component `name`, from its pid file."""
    try:
        return int(json.loads((devstack_config.RUN / f"{name}.pid").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def component_env(name: str, var: str) -> str | None:
    """`var` as the running component `name` has it (None: unset, or not running)."""
    pid = component_pid(name)
    if pid is None:
        return None
    try:
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            key, _, value = item.partition(b"=")
            if key.decode() == var:
                return value.decode()
    except OSError:
        return None
    return None


def stack_fanout_threshold() -> str:
    """The fanout threshold graph and fanout run with: the stack's, which
    need not be this process's environment."""
    found = {name: component_env(name, "AVIARY_FANOUT_THRESHOLD") for name in ("graph", "fanout")}
    if found["graph"] != found["fanout"]:
        return ", ".join(f"{name} {value or '3 (devstack default)'}" for name, value in found.items())
    return found["graph"] or "3 (devstack default)"


async def idle_cores(seconds: float) -> dict[str, float] | None:
    """Each component's CPU (cores) over `seconds` with no load; None for 0 seconds."""
    if seconds <= 0:
        return None
    before = stack_cpu_seconds()
    await asyncio.sleep(seconds)
    after = stack_cpu_seconds()
    return {name: (after[name] - before.get(name, 0.0)) / seconds for name in after}


def cpu_ms_per_request(
    before: dict[str, float],
    after: dict[str, float],
    requests: int,
    idle: dict[str, float] | None = None,
    seconds: float = 0.0,
) -> dict:
    """Stack CPU between two stack_cpu_seconds() readings, per request: the
    total and each component's share (largest first, those under 0.05 ms left
    out). A process that exited in between counts only up to its exit.

    With `idle` (idle_cores) and the `seconds` between the readings, the same
    net of what the stack burns with no load (consumers polling, Cassandra,
    OpenSearch): that is not the requests'. Each component is net of its own
    idle, so Kafka's idle fetches are not counted as a post's cost; and the
    total without the JVMs' JIT compiling too, the figure of a warm stack."""
    per = {name: (after[name] - before.get(name, 0.0)) * 1000 / max(requests, 1) for name in after}
    cpu = {"total": round(sum(per.values()), 2), "by_component": _largest(per)}
    if idle is None:
        return cpu
    idle_ms = {name: cores * seconds * 1000 / max(requests, 1) for name, cores in idle.items()}
    net = {name: ms - idle_ms.get(name, 0.0) for name, ms in per.items()}
    jit_net = sum(ms for name, ms in net.items() if name.endswith(JIT_SUFFIX))
    return {
        **cpu,
        "idle_cores": round(sum(idle.values()), 3),
        "total_net_of_idle": round(sum(net.values()), 2),
        "total_net_of_idle_and_jit": round(sum(net.values()) - jit_net, 2),
        "by_component_net_of_idle": _largest(net),
    }


def _largest(ms_by_component: dict[str, float]) -> dict[str, float]:
    """Largest first, rounded, those under 0.05 ms left out."""
    ordered = sorted(ms_by_component.items(), key=lambda kv: -kv[1])
    return {name: round(ms, 2) for name, ms in ordered if ms >= 0.05}
