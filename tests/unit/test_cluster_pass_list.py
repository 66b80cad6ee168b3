from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _listed() -> list[str]:
    lines = (ROOT / "tests" / "on_redis_cluster.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_cluster_pass_ends_with_the_failover():
    """The failover leaves a killed master back as a replica: nothing runs after it."""
    assert _listed()[-1] == "tests/e2e/test_redis_failover.py"


def test_every_listed_path_exists_once():
    listed = _listed()
    assert len(listed) == len(set(listed))
    assert [p for p in listed if not (ROOT / p).exists()] == []
