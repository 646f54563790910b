"""Map the engine's container state onto the core's execution state."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from container_manager_core.errors import ExecutorError
from container_manager_core.types import ExecutionState

# Every state the engine reports, in one place ("removing" is a container on its way out).
STATUS_MAP: Mapping[str, ExecutionState] = MappingProxyType(
    {
        "created": ExecutionState.PENDING,
        "running": ExecutionState.RUNNING,
        "restarting": ExecutionState.RUNNING,
        "paused": ExecutionState.RUNNING,
        "removing": ExecutionState.EXITED,
        "exited": ExecutionState.EXITED,
        "dead": ExecutionState.EXITED,
    }
)
# SIGKILL's exit status: what an OOM kill or the second half of a stop leaves behind.
SIGKILL_EXIT = 137
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


def execution_state(docker_status: str) -> ExecutionState:
    """Return the execution state for the engine's ``State.Status``."""
    try:
        return STATUS_MAP[docker_status]
    except KeyError:
        raise ExecutorError(f"The engine reported the unknown container state {docker_status!r}.") from None


def parse_engine_time(text: str | None) -> datetime | None:
    """Parse the engine's RFC 3339 nanosecond timestamps; the zero time ("never") becomes None."""
    if not text or text.startswith("0001-01-01"):
        return None
    match = _RFC3339.match(text)
    if match is None:
        raise ExecutorError(f"The engine reported the unreadable timestamp {text!r}.")
    whole, fraction, zone = match.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{whole}.{micros}{zone}").astimezone(UTC)


def never_started(state: Mapping[str, Any]) -> bool:
    """Say whether a container was created but no start was ever attempted."""
    return (
        state.get("Status") == "created"
        and parse_engine_time(state.get("StartedAt")) is None
        and not state.get("Error")
    )
