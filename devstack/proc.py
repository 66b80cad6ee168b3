"""Generic process management for devstack components.

A :class:`Component` describes one long-running local process (a backend such as
Redis, or one of the project's gRPC services).  The helpers here start it
detached (own session / process group, output to ``.devstack/logs/<name>.log``),
record it in ``.devstack/run/<name>.pid``, wait for real readiness, report
status and stop it again (signal, grace period, SIGKILL of the process group).

Nothing here is specific to a backend; see ``devstack.backends`` for examples.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from . import config

Check = Callable[[], object]  # returns truthy when ready; may raise; may be a coroutine function
Hook = Callable[[], object]

_LOG_ROTATE_BYTES = 20 * 1024 * 1024
_print_lock = threading.Lock()
_children: dict[int, subprocess.Popen] = {}


class DevstackError(RuntimeError):
    """A component failed to start / become ready (message includes the log tail)."""


@dataclass(eq=False)
class Component:
    """One managed process.

    name:          unique id; also names the log, pid file, data and conf dirs.
    argv:          command line (list) or a zero-arg callable returning it (evaluated at start).
    port:          main port (status display, "port already in use" check); None if none.
    extra_ports:   more ports the process binds (also checked before start).
    env:           extra environment variables (merged over os.environ).
    cwd:           working directory (default: repo root).
    ready:         zero-arg check (function or coroutine function): truthy => ready.
                   Exceptions and falsy results mean "not ready yet".  Called repeatedly
                   during startup and once by `status`; keep each call short (<= ~3 s).
    prepare:       zero-arg hook run before each start (write configs, initdb, ...).
    post_ready:    zero-arg hook run after readiness on every `up` (must be idempotent).
    ready_timeout: seconds to wait for readiness.
    stop_signal:   first signal sent on stop (SIGTERM; SIGINT for PostgreSQL fast shutdown).
    signal_group:  send stop_signal to the whole process group (True) or only the main pid.
    stop_timeout:  grace period before SIGKILL of the process group.
    tier:          start order: lower tiers start (and become ready) first, stop last.
    group:         free-form group used by the CLI (`up --backends` selects group "backends").
    user:          run as this OS user (only applied when devstack runs as root).
    timer_slack_ns: Linux timer slack for the process and every thread it creates
                   (prctl PR_SET_TIMERSLACK, kept across exec); None keeps the
                   kernel default (50 µs). Lets the kernel coalesce the wake-ups
                   of threads that poll with very short timed sleeps.
    """

    name: str
    argv: Sequence[str] | Callable[[], Sequence[str]]
    port: int | None = None
    extra_ports: Sequence[int] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | str | None = None
    ready: Check | None = None
    prepare: Hook | None = None
    post_ready: Hook | None = None
    ready_timeout: float = 60.0
    stop_signal: int = signal.SIGTERM
    signal_group: bool = True
    stop_timeout: float = 20.0
    tier: int = 1
    group: str = "services"
    user: str | None = None
    timer_slack_ns: int | None = None

    @property
    def log_file(self) -> Path:
        return config.LOGS / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return config.RUN / f"{self.name}.pid"

    @property
    def data_dir(self) -> Path:
        return config.DATA / self.name

    @property
    def conf_dir(self) -> Path:
        return config.CONF / self.name


@dataclass
class Status:
    name: str
    port: int | None
    running: bool
    ready: bool
    pid: int | None

    def line(self) -> str:
        port = str(self.port) if self.port else "-"
        state = "running" if self.running else "stopped"
        ready = "yes" if self.ready else "no"
        pid = str(self.pid) if self.pid else "-"
        return f"{self.name:<12} port={port:<6} {state:<8} ready={ready:<4} pid={pid}"


# ----------------------------------------------------------------------------- output


def say(msg: str) -> None:
    with _print_lock:
        print(msg, flush=True)


def tail_log(name: str, lines: int = 40) -> str:
    path = config.LOGS / f"{name}.log"
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


# ----------------------------------------------------------------------------- /proc helpers


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, pgrp, starttime) of a process, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    # rest[0]=state (field 3), rest[2]=pgrp (field 5), rest[19]=starttime (field 22)
    return rest[0], int(rest[2]), int(rest[19])


def proc_alive(pid: int, starttime: int | None = None) -> bool:
    """True if pid exists, is not a zombie and (if given) has the recorded start time."""
    child = _children.get(pid)
    if child is not None:
        child.poll()  # reap our own exited children
    st = _proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return starttime is None or st[2] == starttime


def group_members(pgid: int, min_starttime: int = 0) -> list[int]:
    """Live (non-zombie) processes in process group pgid started no earlier than min_starttime."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _proc_stat(int(entry))
        if st and st[1] == pgid and st[0] not in ("Z", "X") and st[2] >= min_starttime:
            out.append(int(entry))
    return out


def port_open(port: int, host: str = config.HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- pid files


def read_pidinfo(name: str) -> dict | None:
    path = config.RUN / f"{name}.pid"
    try:
        info = json.loads(path.read_text())
        int(info["pid"])
        return info
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        # legacy / garbage pid file: treat a bare number as a pid
        try:
            pid = int(path.read_text().split()[0])
            return {"pid": pid, "pgid": pid, "starttime": None, "name": name}
        except Exception:
            return {"pid": 0, "pgid": 0, "starttime": None, "name": name}


def running_pid(comp_or_name: Component | str) -> int | None:
    """Pid of the component's process if it is alive, else None."""
    name = comp_or_name if isinstance(comp_or_name, str) else comp_or_name.name
    info = read_pidinfo(name)
    if not info or not info.get("pid"):
        return None
    pid = int(info["pid"])
    return pid if proc_alive(pid, info.get("starttime")) else None


def _call(fn: Callable[[], object]) -> object:
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(fn())
    result = fn()
    if inspect.isawaitable(result):

        async def _await():
            return await result

        return asyncio.run(_await())
    return result


def check_ready(comp: Component) -> bool:
    """One readiness probe; never raises."""
    if comp.ready is None:
        return running_pid(comp) is not None
    try:
        return bool(_call(comp.ready))
    except Exception:
        return False


# ----------------------------------------------------------------------------- start / wait


def _open_log(comp: Component):
    config.LOGS.mkdir(parents=True, exist_ok=True)
    try:
        if comp.log_file.stat().st_size > _LOG_ROTATE_BYTES:
            comp.log_file.replace(comp.log_file.with_suffix(".log.1"))
    except FileNotFoundError:
        pass
    f = open(comp.log_file, "ab", buffering=0)
    f.write(f"\n===== devstack: starting {comp.name} at {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n".encode())
    return f


# Sets the timer slack, then becomes the command (same pid). A wrapper rather
# than a preexec_fn: devstack starts components from several threads, and a
# preexec_fn after fork may deadlock on a lock another thread held.
_WITH_TIMER_SLACK = (
    "import ctypes, os, sys; PR_SET_TIMERSLACK = 29; "
    "ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, int(sys.argv[1]), 0, 0, 0); "
    "os.execvp(sys.argv[2], sys.argv[2:])"
)


def start(comp: Component) -> int:
    """Start comp detached unless it already runs; returns its pid.  Does not wait."""
    pid = running_pid(comp)
    if pid:
        return pid
    for port in [p for p in [comp.port, *comp.extra_ports] if p]:
        if port_open(port):
            raise DevstackError(
                f"{comp.name}: port {port} is already in use by a process devstack did not start "
                f"(check with `ss -ltnp | grep :{port}`, or set another port via env)"
            )
    config.RUN.mkdir(parents=True, exist_ok=True)
    comp.pid_file.unlink(missing_ok=True)
    if comp.prepare is not None:
        _call(comp.prepare)
    argv = list(comp.argv() if callable(comp.argv) else comp.argv)
    if comp.timer_slack_ns:
        argv = [sys.executable, "-c", _WITH_TIMER_SLACK, str(comp.timer_slack_ns), *argv]
    env = dict(os.environ)
    env.update({k: str(v) for k, v in comp.env.items()})
    kwargs: dict = {}
    if comp.user and os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam(comp.user)
        kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        env.update(HOME=pw.pw_dir, USER=comp.user, LOGNAME=comp.user)
    with _open_log(comp) as log:
        log.write(("argv: " + " ".join(argv) + "\n").encode())
        proc = subprocess.Popen(
            argv,
            cwd=str(comp.cwd or config.REPO),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            **kwargs,
        )
    _children[proc.pid] = proc
    st = _proc_stat(proc.pid)
    info = {
        "name": comp.name,
        "pid": proc.pid,
        "pgid": proc.pid,
        "starttime": st[2] if st else None,
        "port": comp.port,
        "stop_signal": int(comp.stop_signal),
        "signal_group": comp.signal_group,
        "stop_timeout": comp.stop_timeout,
        "tier": comp.tier,
        "argv": argv,
        "started_at": time.time(),
    }
    tmp = comp.pid_file.with_suffix(".pid.tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(comp.pid_file)
    return proc.pid


def wait_ready(comp: Component, timeout: float | None = None) -> float:
    """Poll comp.ready until it succeeds; returns seconds waited.

    Raises DevstackError (with the log tail) if the process dies or the timeout passes."""
    timeout = comp.ready_timeout if timeout is None else timeout
    t0 = time.monotonic()
    delay = 0.1
    while True:
        if running_pid(comp) is None:
            raise DevstackError(
                f"{comp.name}: process exited during startup; last log lines ({comp.log_file}):\n{tail_log(comp.name)}"
            )
        if check_ready(comp):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise DevstackError(
                f"{comp.name}: not ready after {timeout:.0f}s; last log lines ({comp.log_file}):\n{tail_log(comp.name)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


class _FileLock:
    """flock on .devstack/run/<name>.lock so concurrent `up`s do not start a component twice."""

    def __init__(self, name: str):
        self.path = config.RUN / f"{name}.lock"

    def __enter__(self):
        import fcntl

        config.RUN.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock


def ensure_up(comp: Component) -> str:
    """Start comp if needed, wait until ready, run post_ready.  Returns a one-line summary.
    Safe to call concurrently from several processes (per-component file lock)."""
    t0 = time.monotonic()
    with _FileLock(comp.name):
        waited = time.monotonic() - t0
        msg = _ensure_up(comp, t0)
    return msg + (f" (waited {waited:.1f}s for another devstack process)" if waited > 0.5 else "")


def _ensure_up(comp: Component, t0: float) -> str:
    pid = running_pid(comp)
    if pid and check_ready(comp):
        what = f"already running (pid {pid})"
    else:
        if pid:
            what = f"was starting (pid {pid})"
        else:
            pid = start(comp)
            what = f"started (pid {pid})"
        wait_ready(comp)
    if comp.post_ready is not None:
        _call(comp.post_ready)
    return f"{comp.name}: {what}, ready in {time.monotonic() - t0:.1f}s"


_RESERVED_PORTS_FILE = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def _port_ranges(text: str) -> set[int]:
    ports: set[int] = set()
    for part in text.replace("\n", "").split(","):
        if part.strip():
            low, _, high = part.strip().partition("-")
            ports.update(range(int(low), int(high or low) + 1))
    return ports


def reserve_ports(ports: Iterable[int | None]) -> None:
    """Takes the stack's listen ports out of the kernel's ephemeral range.

    The gRPC ports (50051...) and metrics ports (51051...) sit inside Linux's
    default ephemeral range (32768-60999). An outgoing connection (a service
    to Kafka, say) can get one of them as its local port; while it lives, or
    lingers in TIME-WAIT for a minute after, a service cannot bind there and
    fails at start-up with "Address already in use". Reserved ports are never
    handed out as ephemeral ones. Needs root; otherwise a warning.
    """
    wanted = {p for p in ports if p}
    try:
        current = _port_ranges(_RESERVED_PORTS_FILE.read_text())
        if wanted <= current:
            return
        _RESERVED_PORTS_FILE.write_text(",".join(str(p) for p in sorted(current | wanted)))
    except OSError as exc:
        say(
            f"warning: could not reserve ports {sorted(wanted)} from the ephemeral range ({exc}); "
            "a start can then fail with 'Address already in use'"
        )


def up(comps: Iterable[Component], *, verbose: bool = True) -> bool:
    """Bring up components tier by tier, in parallel within a tier.  Returns True if all ready."""
    comps = list(comps)
    reserve_ports(p for c in comps for p in (c.port, *c.extra_ports))
    ok = True
    for tier in sorted({c.tier for c in comps}):
        batch = [c for c in comps if c.tier == tier]
        with ThreadPoolExecutor(max_workers=max(1, len(batch))) as pool:
            futures = {pool.submit(ensure_up, c): c for c in batch}
            for fut, comp in futures.items():
                try:
                    msg = fut.result()
                    if verbose:
                        say(msg)
                except Exception as exc:  # noqa: BLE001 - report every failure
                    ok = False
                    say(f"{comp.name}: FAILED: {exc}")
        if not ok:
            break
    return ok


# ----------------------------------------------------------------------------- stop


def _wait_gone(pids_fn: Callable[[], list[int]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not pids_fn():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def stop(name: str, timeout: float | None = None) -> str:
    """Stop a component by name using its pid file.  Safe if nothing runs / pid file is stale."""
    info = read_pidinfo(name)
    if info is None:
        return f"{name}: not running"
    pid = int(info.get("pid") or 0)
    pgid = int(info.get("pgid") or pid)
    st = info.get("starttime")
    pidfile = config.RUN / f"{name}.pid"
    if pid <= 0:
        pidfile.unlink(missing_ok=True)
        return f"{name}: removed unreadable pid file"
    lead_alive = proc_alive(pid, st)
    min_start = int(st) if st is not None else 0

    def members() -> list[int]:
        m = group_members(pgid, min_start) if (st is not None or lead_alive) else []
        if lead_alive and proc_alive(pid, st) and pid not in m:
            m.append(pid)
        return m

    if not members():
        pidfile.unlink(missing_ok=True)
        return f"{name}: not running (removed stale pid file)"
    grace = float(info.get("stop_timeout") or 20.0) if timeout is None else timeout
    sig = int(info.get("stop_signal") or signal.SIGTERM)
    t0 = time.monotonic()
    try:
        if lead_alive and info.get("signal_group", True):
            os.killpg(pgid, sig)
        elif lead_alive:
            os.kill(pid, sig)
        else:
            for p in members():
                os.kill(p, signal.SIGTERM)
    except ProcessLookupError:
        pass
    how = "stopped"
    if not _wait_gone(members, grace):
        how = f"killed (no exit after {grace:.0f}s)"
        for p in members():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if lead_alive:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _wait_gone(members, 10)
    child = _children.pop(pid, None)
    if child is not None:
        child.poll()
    pidfile.unlink(missing_ok=True)
    return f"{name}: {how} (pid {pid}) in {time.monotonic() - t0:.1f}s"


def recorded_names() -> list[str]:
    """Names of all components that have a pid file (whatever their registry)."""
    if not config.RUN.is_dir():
        return []
    return sorted(p.stem for p in config.RUN.glob("*.pid"))


def down(names: Iterable[str] | None = None, *, verbose: bool = True) -> None:
    """Stop components (default: every component with a pid file), highest tier first,
    in parallel within a tier."""
    names = list(names) if names is not None else recorded_names()
    tiers: dict[int, list[str]] = {}
    for name in names:
        info = read_pidinfo(name) or {}
        tiers.setdefault(int(info.get("tier") or 0), []).append(name)
    if not tiers and verbose:
        say("nothing running")
    for tier in sorted(tiers, reverse=True):
        batch = tiers[tier]
        with ThreadPoolExecutor(max_workers=max(1, len(batch))) as pool:
            for msg in pool.map(stop, batch):
                if verbose:
                    say(msg)


# ----------------------------------------------------------------------------- status


def status(comps: Iterable[Component]) -> list[Status]:
    comps = list(comps)

    def one(c: Component) -> Status:
        pid = running_pid(c)
        ready = bool(pid) and check_ready(c)
        return Status(c.name, c.port, bool(pid), ready, pid)

    with ThreadPoolExecutor(max_workers=max(1, len(comps))) as pool:
        return list(pool.map(one, comps))


def reset_data(names: Iterable[str] | None = None) -> None:
    """Delete data dirs (all of .devstack/data by default).  Caller must stop things first."""
    if names is None:
        shutil.rmtree(config.DATA, ignore_errors=True)
    else:
        for n in names:
            shutil.rmtree(config.DATA / n, ignore_errors=True)


# ----------------------------------------------------------------------------- readiness helpers


def tcp_check(port: int, host: str = config.HOST) -> Check:
    """Readiness check: something accepts TCP connections on host:port."""
    return lambda: port_open(port, host)


def grpc_health_check(port: int, service: str = "", host: str = config.HOST, timeout: float = 2.0) -> Check:
    """Readiness check: grpc.health.v1 Health/Check returns SERVING."""

    def check() -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(f"{host}:{port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            # types-grpcio-health-checking declares HealthStub without its methods.
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)  # type: ignore[attr-defined]
            return resp.status == health_pb2.HealthCheckResponse.SERVING

    return check


def http_check(url: str, timeout: float = 2.0) -> Check:
    """Readiness check: GET url answers 2xx (e.g. Envoy admin http://127.0.0.1:9901/ready)."""

    def check() -> bool:
        import urllib.request

        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 300

    return check


def python_service(
    name: str,
    module: str,
    port: int,
    *,
    env: Mapping[str, str] | None = None,
    ready: Check | None = None,
    args: Sequence[str] = (),
    tier: int = 1,
    group: str = "services",
    ready_timeout: float = 30.0,
) -> Component:
    """A `python -m <module>` process from the repo venv, ready when gRPC health says SERVING."""
    return Component(
        name=name,
        argv=[sys.executable, "-u", "-m", module, *args],
        port=port,
        env={"PYTHONUNBUFFERED": "1", **(env or {})},
        cwd=config.REPO,
        ready=ready or grpc_health_check(port),
        ready_timeout=ready_timeout,
        tier=tier,
        group=group,
    )
