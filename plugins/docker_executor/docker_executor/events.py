"""Read the engine's event log with a hard timeout.

docker-py's ``events()`` sends its request with ``timeout=None``, so a wedged engine would block the
caller forever. These helpers issue the same request through the client's session with a bounded
``until`` (the engine closes the stream there) and a read timeout on top.

Events say how a run ended (an OOM kill, a stop sent by someone else), never whether it ended: the
engine keeps a bounded backlog (256 events in 20.10, none across a restart), so that is read from
the container's state.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import docker
import requests

from docker_executor.engine_errors import api_url, raise_for_engine_status

# Extra seconds on top of the stream's own length before a silent engine counts as wedged.
READ_SLACK = 5.0


def _timestamp(seconds: float) -> str:
    # The engine parses "seconds.nanoseconds"; whole seconds would miss events in the last second.
    return f"{seconds:.9f}"


@contextlib.contextmanager
def open_events(
    api: docker.APIClient,
    *,
    filters: Mapping[str, Sequence[str]],
    until: float,
    since: float | None = None,
    timeout: float,
) -> Iterator[Iterator[dict[str, Any]]]:
    """Subscribe to engine events matching ``filters`` up to ``until`` (Unix time) and yield them.

    The subscription exists once this context is entered (the engine flushes headers at once), so
    callers can check current state afterwards without missing an event in between.
    """
    params = {"filters": json.dumps({k: list(v) for k, v in filters.items()}), "until": _timestamp(until)}
    if since is not None:
        params["since"] = _timestamp(since)
    url = api_url(api, "/events")
    read_timeout = max(0.0, until - time.time()) + timeout + READ_SLACK
    response = api.get(url, params=params, stream=True, timeout=(timeout, read_timeout))
    try:
        raise_for_engine_status(response)
        yield _decode_lines(response)
    finally:
        response.close()


def _decode_lines(response: requests.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines(chunk_size=None):
        if line:
            event = json.loads(line)
            if isinstance(event, dict):
                yield event


def actions_seen(
    api: docker.APIClient, container_id: str, actions: Sequence[str], *, since: float, timeout: float
) -> frozenset[str]:
    """Return which of ``actions`` the engine logged for the container since ``since`` (Unix time).

    An old event can have left the engine's backlog: absent means "not seen", not "did not happen".
    """
    filters = {"container": [container_id], "event": list(actions)}
    with open_events(api, filters=filters, since=since, until=time.time(), timeout=timeout) as events:
        return frozenset(
            action
            for event in events
            if (action := str(event.get("Action") or event.get("status"))) in actions
        )
