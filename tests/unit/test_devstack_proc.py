"""devstack.proc starting a component with a timer slack: the process (and,
by inheritance, every thread it starts) runs with the slack asked for, under
the same pid devstack recorded (the wrapper execs the command)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from devstack import proc


def test_a_component_runs_with_the_timer_slack_it_asks_for():
    comp = proc.Component(
        name=f"slack-test-{secrets.token_hex(3)}", argv=["sleep", "30"], timer_slack_ns=300_000, stop_timeout=5
    )
    pid = proc.start(comp)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/comm").read_text().strip() != "sleep" and time.monotonic() < deadline:
            time.sleep(0.05)  # still the wrapper, about to exec
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
        assert int(Path(f"/proc/{pid}/timerslack_ns").read_text()) == 300_000
        assert proc.running_pid(comp) == pid
    finally:
        proc.stop(comp.name)
        comp.log_file.unlink(missing_ok=True)


def test_without_a_timer_slack_the_command_is_started_as_it_is():
    comp = proc.Component(name=f"slack-test-{secrets.token_hex(3)}", argv=["sleep", "30"], stop_timeout=5)
    pid = proc.start(comp)
    try:
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
        # Inherited unchanged from devstack (the kernel's 50 µs unless set higher up).
        assert Path(f"/proc/{pid}/timerslack_ns").read_text() == Path("/proc/self/timerslack_ns").read_text()
    finally:
        proc.stop(comp.name)
        comp.log_file.unlink(missing_ok=True)
