"""tests/run.sh runs the suite on two processes, then the tests marked serial
alone: a test that stops, pauses or kills a component every test shares, or
counts a running service's metrics, would fail or break the tests beside it."""

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# fanout_support's devstack() stops and restarts components, signal_service()
# pauses one, counter_value() reads a running service's counters.
DISRUPTS_THE_STACK = re.compile(r"\b(devstack|signal_service|counter_value)\(|\bos\.killpg\(")
# Modules that read a service's /metrics page and may still run beside other
# tests, with why. Any other such module compares a running service's
# counters, which the tests beside it move too: it must be serial.
METRICS_READS_IN_PARALLEL = {
    "integration/test_inventory.py": "asserts at least one more of each outcome",
    "integration/test_posts_profile_copies.py": "reads the posts process it started itself",
    "integration/test_posts_written_rows.py": "reads the posts process it started itself",
}


def _modules_on_the_stack() -> list[Path]:
    return sorted(p for lane in ("integration", "e2e", "browser") for p in (TESTS / lane).glob("test_*.py"))


def test_every_module_that_disrupts_the_stack_is_marked_serial():
    disrupting = [p for p in _modules_on_the_stack() if DISRUPTS_THE_STACK.search(p.read_text())]
    assert len(disrupting) >= 10, "the pattern no longer finds the fault tests"
    unmarked = [p.relative_to(TESTS).as_posix() for p in disrupting if "pytest.mark.serial" not in p.read_text()]
    assert unmarked == []


def test_every_module_that_reads_a_services_metrics_is_serial_or_says_why_it_need_not_be():
    reading = {p.relative_to(TESTS).as_posix(): p.read_text() for p in _modules_on_the_stack()}
    reading = {name: text for name, text in reading.items() if "/metrics" in text}
    assert {"integration/test_graph.py", "integration/test_posts.py"} <= set(reading), "the pattern finds no reader"
    unmarked = [n for n, text in reading.items() if "pytest.mark.serial" not in text]
    assert sorted(set(unmarked) - set(METRICS_READS_IN_PARALLEL)) == []
    assert sorted(set(METRICS_READS_IN_PARALLEL) - set(unmarked)) == [], "a listed module no longer needs its place"


def test_the_run_script_runs_the_serial_tests_alone_after_the_rest():
    script = (TESTS / "run.sh").read_text()
    parallel = script.index('-m "not serial"')
    alone = script.index("-m serial")
    assert parallel < alone
    assert "-n " not in script[alone : script.index("\n", alone)]
