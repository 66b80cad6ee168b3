"""tests/run.sh runs the suite on two processes, then the tests marked serial
alone: a test that stops, pauses or kills a component every test shares, or
counts a running service's metrics, would fail or break the tests beside it."""

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# fanout_support's devstack() stops and restarts components, signal_service()
# pauses one, counter_value() reads a running service's counters.
DISRUPTS_THE_STACK = re.compile(r"\b(devstack|signal_service|counter_value)\(|\bos\.killpg\(")


def _modules_on_the_stack() -> list[Path]:
    return sorted(p for lane in ("integration", "e2e", "browser") for p in (TESTS / lane).glob("test_*.py"))


def test_every_module_that_disrupts_the_stack_is_marked_serial():
    disrupting = [p for p in _modules_on_the_stack() if DISRUPTS_THE_STACK.search(p.read_text())]
    assert len(disrupting) >= 10, "the pattern no longer finds the fault tests"
    unmarked = [p.relative_to(TESTS).as_posix() for p in disrupting if "pytest.mark.serial" not in p.read_text()]
    assert unmarked == []


def test_the_run_script_runs_the_serial_tests_alone_after_the_rest():
    script = (TESTS / "run.sh").read_text()
    parallel = script.index('-m "not serial"')
    alone = script.index("-m serial")
    assert parallel < alone
    assert "-n " not in script[alone : script.index("\n", alone)]
