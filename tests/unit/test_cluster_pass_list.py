from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _listed() -> list[str]:
    lines = (ROOT / "tests" / "on_redis_cluster.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_cluster_pass_runs_the_whole_end_to_end_suite_with_the_failover_last():
    listed = _listed()
    e2e = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "e2e").glob("test_*.py"))
    assert sorted(p for p in listed if p.startswith("tests/e2e/")) == e2e
    assert listed[-1] == "tests/e2e/test_redis_failover.py"


def test_every_listed_path_exists_once():
    listed = _listed()
    assert len(listed) == len(set(listed))
    assert [p for p in listed if not (ROOT / p).exists()] == []
