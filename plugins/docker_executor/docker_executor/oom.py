"""Decide whether an exited container was killed for running out of memory.

The engine's ``OOMKilled`` flag alone misses real OOM kills (1-7% of runs when measured), because
the kernel's OOM notification and the exit race inside the engine. Three signals are combined.
"""

from __future__ import annotations

from collections.abc import Callable

import docker

from docker_executor.events import actions_seen
from docker_executor.state import SIGKILL_EXIT


def oom_event_seen(api: docker.APIClient, container_id: str, *, since: float, timeout: float) -> bool:
    """Say whether the engine logged an ``oom`` event for the container since ``since`` (Unix time).

    The engine keeps a bounded backlog of events (256 in 20.10), so an old event can be gone: False
    means "not seen", not "certainly no OOM".
    """
    return "oom" in actions_seen(api, container_id, ("oom",), since=since, timeout=timeout)


def oom_killed(
    *, flagged: bool, exit_code: int | None, stopped_by_us: bool, event_seen: Callable[[], bool]
) -> bool:
    """Return the verdict for an exited container, cheapest evidence first.

    - the engine's ``OOMKilled`` flag (``flagged``);
    - exit status 137 (SIGKILL) when this process did not stop the container: nothing else here
      sends SIGKILL, and a stop issued elsewhere is the worker's knowledge, not guessed at here;
    - an ``oom`` event for the container (also catches a killed child while PID 1 survived).
    """
    if flagged:
        return True
    if exit_code == SIGKILL_EXIT and not stopped_by_us:
        return True
    return event_seen()
