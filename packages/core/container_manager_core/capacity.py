"""What a host can hold, as its plugin reports it in the health status's ``details``.

A plugin that knows its engine's size puts it in ``HealthStatus.details`` with
:func:`capacity_details`; the app reads it back with :func:`read_capacity` and places jobs by it.
A plugin that reports nothing (Cloud Run: every job gets its own machine) leaves the host
unbounded, held only by ``max_concurrent_jobs`` and by the plugin's own per-job limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

# The detail keys: the engine's total memory in bytes, and how many CPUs it can schedule on.
MEMORY_TOTAL_BYTES: Final = "memory_total_bytes"
CPUS: Final = "cpus"
MIB: Final = 1024 * 1024


@attrs.frozen
class EngineCapacity:
    """A host's size as its engine reports it; None where the engine does not say (unbounded)."""

    memory_mb: int | None = None
    cpus: float | None = None


def capacity_details(memory_bytes: object, cpus: object) -> dict[str, Any]:
    """Return the detail entries a plugin reports its engine's size with (values passed through)."""
    return {MEMORY_TOTAL_BYTES: memory_bytes, CPUS: cpus}


def _positive(value: object) -> float | None:
    # A missing, non-numeric, non-finite or non-positive figure says nothing about the host's size.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def read_capacity(details: Mapping[str, Any]) -> EngineCapacity:
    """Return the size a health status reports; a figure that is absent or unusable is None.

    Memory is rounded down to whole MiB, so a job is never placed on memory the engine lacks.
    """
    memory = _positive(details.get(MEMORY_TOTAL_BYTES))
    cpus = _positive(details.get(CPUS))
    memory_mb = None if memory is None else int(memory // MIB) or None
    return EngineCapacity(memory_mb=memory_mb, cpus=cpus)
