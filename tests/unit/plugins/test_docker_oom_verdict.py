"""The OOM verdict weighs the engine's flag, the exit status, our own stops and the engine's events.

Moved out of tests/integration/docker: the verdict is a pure function, so it runs wherever the unit
suite runs (the real OOM kills are in tests/integration/docker/test_limits.py).
"""

from __future__ import annotations

import pytest
from docker_executor.oom import oom_killed


@pytest.mark.parametrize(
    ("flagged", "exit_code", "stopped_by_us", "event", "expected"),
    [
        (True, 137, True, False, True),  # the engine's flag
        (False, 137, False, False, True),  # a SIGKILL nobody here sent
        (False, 137, True, False, False),  # our own stop's SIGKILL
        (False, 0, False, True, True),  # only the event saw it
        (False, 1, False, False, False),
    ],
)
def test_oom_verdict_combines_flag_exit_status_and_events(
    flagged: bool, exit_code: int, stopped_by_us: bool, event: bool, expected: bool
) -> None:
    asked: list[bool] = []

    def event_seen() -> bool:
        asked.append(True)
        return event

    verdict = oom_killed(
        flagged=flagged, exit_code=exit_code, stopped_by_us=stopped_by_us, event_seen=event_seen
    )
    assert verdict is expected
    # The event query costs a round trip: it is only made when cheaper evidence did not decide.
    assert bool(asked) == (not flagged and not (exit_code == 137 and not stopped_by_us))
