"""When ``switchboard run all`` starts a dead process again, and when it gives up."""

from __future__ import annotations

import pytest

from services.supervisor import GiveUp, Restart, RestartPolicy, after_crash

pytestmark = pytest.mark.unit
POLICY = RestartPolicy(
    first_delay_seconds=1.0, max_delay_seconds=8.0, max_failures=5, window_seconds=300.0
)


def test_a_first_crash_restarts_after_the_first_delay() -> None:
    assert after_crash(POLICY, (100.0,), 100.0) == Restart(1.0)


def test_the_delay_doubles_with_each_recent_crash_up_to_the_cap() -> None:
    assert after_crash(POLICY, (100.0, 101.0), 101.0) == Restart(2.0)
    assert after_crash(POLICY, (100.0, 101.0, 103.0), 103.0) == Restart(4.0)
    capped = RestartPolicy(first_delay_seconds=1.0, max_delay_seconds=3.0, max_failures=9)
    assert after_crash(capped, (1.0, 2.0, 3.0, 4.0), 4.0) == Restart(3.0)


def test_crashes_outside_the_window_are_forgiven() -> None:
    long_ago = (0.0, 10.0, 20.0, 30.0)
    assert after_crash(POLICY, (*long_ago, 1000.0), 1000.0) == Restart(1.0)


def test_a_process_that_keeps_crashing_stops_the_system_saying_why() -> None:
    decision = after_crash(POLICY, (100.0, 101.0, 103.0, 107.0, 115.0), 115.0)
    assert isinstance(decision, GiveUp)
    assert "5 crashes within 300s" in decision.reason
