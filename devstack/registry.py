"""Registry of known components (backends, and later the gRPC services / Envoy)."""

from __future__ import annotations

import importlib
import importlib.util
import os

from .proc import Component

REGISTRY: dict[str, Component] = {}

# Modules imported by load(); each registers its components at import time.
# Add e.g. "devstack.services" here, or list extra modules in DEVSTACK_MODULES (comma separated).
MODULES = ["devstack.backends", "devstack.tracing", "devstack.services", "devstack.web"]


def register(*comps: Component) -> None:
    """Add (or replace) components by name; registration order is display order."""
    for c in comps:
        REGISTRY[c.name] = c


def load() -> dict[str, Component]:
    extra = [m.strip() for m in os.environ.get("DEVSTACK_MODULES", "").split(",") if m.strip()]
    for mod in MODULES + extra:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)
    return REGISTRY


def select(names: list[str] | None = None, groups: list[str] | None = None) -> list[Component]:
    """Components by name and/or group; everything registered if neither is given."""
    load()
    names, groups = list(names or []), list(groups or [])
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise SystemExit(f"unknown component(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    if not names and not groups:
        return list(REGISTRY.values())
    return [c for c in REGISTRY.values() if c.name in names or c.group in groups]
