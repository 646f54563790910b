"""What the Docker plugin's host event monitor remembers from the events it is fed, and when it wakes waiters.

The events are handed to the monitor directly (the stream itself is the integration tests' business).
The wait test was checked against a ``wait_for_change`` that did not look at ``watching``: it slept
its whole timeout through an end recorded before it took the lock.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from docker_executor.monitor import HostEvents


def live_monitor() -> tuple[HostEvents, int]:
    """Return a monitor that believes its stream is open, with no thread (nothing calls live_epoch)."""
    monitor = HostEvents("h", lambda: None, filters={}, call_timeout=1.0)  # type: ignore[arg-type, return-value]
    monitor._opened(continued=False)  # what the stream's thread does once the engine answers
    return monitor, monitor._epoch


def event(action: str, container: str, at: float, **attributes: str) -> dict[str, Any]:
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"ID": container, "Attributes": attributes},
        "id": container,
        "timeNano": int(at * 1e9),
    }


class CountingCondition:
    """The monitor's condition, with its sleeps counted (what the test asserts, instead of a duration)."""

    def __init__(self, condition: threading.Condition) -> None:
        self._condition = condition
        self.waits = 0

    def __enter__(self) -> bool:
        return self._condition.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._condition.__exit__(*exc)

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return self._condition.wait(timeout)

    def notify_all(self) -> None:
        self._condition.notify_all()


def test_an_end_recorded_before_the_wait_does_not_put_the_waiter_to_sleep() -> None:
    monitor, epoch = live_monitor()
    monitor._changed = CountingCondition(monitor._changed)  # type: ignore[assignment]
    monitor._record(event("die", "c1", time.time(), exitCode="0"))  # after the caller's own look
    monitor.wait_for_change(epoch, timeout=5.0, watching=["c1"])
    assert monitor._changed.waits == 0  # type: ignore[attr-defined]
    monitor.wait_for_change(epoch, timeout=0.01, watching=["c2"])  # nothing ended: it does sleep
    assert monitor._changed.waits == 1  # type: ignore[attr-defined]


def test_a_waiter_is_woken_by_an_end_of_any_container() -> None:
    monitor, epoch = live_monitor()
    woken = threading.Event()

    def wait() -> None:
        monitor.wait_for_change(epoch, timeout=10.0, watching=["c1"])
        woken.set()

    threading.Thread(target=wait, daemon=True).start()
    time.sleep(0.1)
    monitor._record(event("die", "c2", time.time(), exitCode="1"))
    assert woken.wait(5.0)


def test_a_run_seen_whole_is_remembered_with_its_exit_code_and_times() -> None:
    monitor, epoch = live_monitor()
    monitor.cover("c1", epoch)
    monitor._record(event("start", "c1", 1_700_000_000.25))
    assert monitor.exit_of("c1") is None, "still running"
    monitor._record(event("die", "c1", 1_700_000_001.5, exitCode="3"))
    known = monitor.exit_of("c1")
    assert known is not None
    assert known.exit_code == 3
    assert known.started_at == datetime.fromtimestamp(1_700_000_000.25, UTC)
    assert known.finished_at == datetime.fromtimestamp(1_700_000_001.5, UTC)


def test_half_a_run_a_removed_container_or_an_uncovered_one_is_not_answered() -> None:
    monitor, epoch = live_monitor()
    for container in ("no-start", "removed", "no-code", "uncovered"):
        if container != "uncovered":
            monitor.cover(container, epoch)
    monitor._record(event("die", "no-start", 1.0, exitCode="0"))
    monitor._record(event("start", "removed", 1.0))
    monitor._record(event("die", "removed", 2.0, exitCode="0"))
    monitor._record(event("destroy", "removed", 3.0))
    monitor._record(event("start", "no-code", 1.0))
    monitor._record(event("die", "no-code", 2.0))
    monitor._record(event("start", "uncovered", 1.0))
    monitor._record(event("die", "uncovered", 2.0, exitCode="0"))
    for container in ("no-start", "removed", "no-code", "uncovered"):
        assert monitor.exit_of(container) is None, container
        assert monitor.ended([container]) == [container], "each one's end still wakes its wait"


def test_a_restart_forgets_the_earlier_exit() -> None:
    monitor, epoch = live_monitor()
    monitor.cover("c1", epoch)
    monitor._record(event("start", "c1", 1.0))
    monitor._record(event("die", "c1", 2.0, exitCode="1"))
    monitor._record(event("start", "c1", 3.0))
    assert monitor.exit_of("c1") is None
