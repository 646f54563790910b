"""Block until one of several containers exits, woken by the engine's events instead of polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import docker

from docker_executor.events import open_events


def wait_for_exit_events(
    api: docker.APIClient,
    container_ids: Sequence[str],
    *,
    timeout: float,
    call_timeout: float,
    exited_now: Callable[[], list[str]],
) -> list[str]:
    """Return the ids that have exited, waiting up to ``timeout`` seconds for the first one.

    The event subscription is opened before the current states are read, so an exit in between is
    still delivered; ``exited_now`` is asked again after a wake-up so every exited id is returned.
    """
    filters = {"container": list(container_ids), "event": ["die", "destroy"]}
    until = time.time() + max(0.0, timeout)
    with open_events(api, filters=filters, until=until, timeout=call_timeout) as events:
        exited = exited_now()
        if exited:
            return exited
        for _event in events:
            break  # woken: re-read the states below, outside the subscription
    return exited_now()
