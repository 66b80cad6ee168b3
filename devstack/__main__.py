"""CLI: python -m devstack {up,down,status,reset,logs,renew-certs}."""

from __future__ import annotations

import argparse
import sys
import time

from . import config, proc, registry


def _selection(args) -> list[proc.Component]:
    groups = list(args.group or [])
    if getattr(args, "backends", False):
        groups.append("backends")
    return registry.select(args.names, groups)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devstack", description="Aviary local dev stack")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd, help_ in (("up", "start components and wait until they are ready"), ("status", "show components")):
        p = sub.add_parser(cmd, help=help_)
        p.add_argument("--backends", action="store_true", help="redis, postgres, kafka, cassandra, objectstore")
        p.add_argument("--group", action="append", help="select a component group (repeatable)")
        p.add_argument("names", nargs="*", help="component names (default: all registered)")
    sub.choices["up"].add_argument("--no-seed", action="store_true", help="do not seed the demo data")
    sub.choices["status"].add_argument(
        "--check", action="store_true", help="exit non-zero unless every selected component is ready"
    )
    p = sub.add_parser("down", help="stop everything devstack started (or the named components)")
    p.add_argument("--group", action="append", help="stop a component group (repeatable)")
    p.add_argument("names", nargs="*")
    sub.add_parser("reset", help="down + delete .devstack/data")
    p = sub.add_parser("logs", help="print the tail of a component's log")
    p.add_argument("name")
    p.add_argument("-n", type=int, default=60)
    sub.add_parser("renew-certs", help="new mesh certificates for every identity (the running stack takes them up)")
    args = ap.parse_args(argv)

    if args.cmd == "up":
        comps = _selection(args)
        t0 = time.monotonic()
        ok = proc.up(comps)
        proc.say(f"up: {'all ready' if ok else 'FAILED'} in {time.monotonic() - t0:.1f}s")
        if not ok:
            return 1
        whole_stack = not args.names and not args.group and not args.backends
        if whole_stack and not args.no_seed:
            from . import seed

            seed.seed_demo()
            seed.print_examples()
        return 0
    if args.cmd == "status":
        comps = _selection(args)
        known = {c.name for c in comps}
        if not args.names and not args.group and not args.backends:
            # also show unregistered things that still have a pid file
            for name in proc.recorded_names():
                if name not in known:
                    info = proc.read_pidinfo(name) or {}
                    comps.append(proc.Component(name=name, argv=[], port=info.get("port")))
        statuses = proc.status(comps)
        for st in statuses:
            print(st.line())
        if args.check:
            return 0 if statuses and all(st.ready for st in statuses) else 1
        return 0
    if args.cmd == "down":
        chosen = args.names + [c.name for c in registry.select([], args.group)] if args.group else args.names
        proc.down(chosen or None)
        return 0
    if args.cmd == "reset":
        proc.down()
        proc.reset_data()
        proc.say(f"reset: deleted {config.DATA}")
        return 0
    if args.cmd == "renew-certs":
        from .services import MESH_CERT_DIR, renew_mesh_certs

        renew_mesh_certs()
        proc.say(f"renew-certs: new certificates in {MESH_CERT_DIR}")
        return 0
    if args.cmd == "logs":
        print(proc.tail_log(args.name, args.n))
        return 0
    return 2


def _entry() -> int:
    try:
        return main()
    except BrokenPipeError:  # e.g. `python -m devstack status | head -1`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(_entry())
