"""pytest imports a test module outside a package by its basename: two such
files with one name (tests/unit and tests/integration) stop the whole run at
collection. tests/e2e is a package, so its names may repeat the others'."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_names_are_unique_across_folders():
    loose = [p for p in TESTS.rglob("test_*.py") if not (p.parent / "__init__.py").exists()]
    names = Counter(p.name for p in loose)
    assert [name for name, n in names.items() if n > 1] == []
