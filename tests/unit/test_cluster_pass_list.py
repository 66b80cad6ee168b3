import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAILOVER = "tests/e2e/test_redis_failover.py"


def _listed() -> list[str]:
    lines = (ROOT / "tests" / "on_redis_cluster.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_whole_end_to_end_suite_runs_on_the_cluster():
    assert "tests/e2e" in _listed()


def test_the_cluster_pass_ends_with_the_failover():
    """The failover leaves a killed master back as a replica: nothing runs after it."""
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *_listed()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    tests = [line for line in collected.stdout.splitlines() if "::" in line]
    failover = [i for i, test in enumerate(tests) if test.startswith(FAILOVER)]
    assert failover, collected.stdout[-2000:]
    assert failover == list(range(len(tests) - len(failover), len(tests)))


def test_every_listed_path_exists_once():
    listed = _listed()
    assert len(listed) == len(set(listed))
    assert [p for p in listed if not (ROOT / p).exists()] == []
