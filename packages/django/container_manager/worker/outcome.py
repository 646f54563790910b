"""Read an exit: why the container ended, and the row fields its harvest fills in.

Where that ending leads (final, or retried) is decided by ``states.settle``, and the job's
``record_exit`` writes it.
"""

from __future__ import annotations

from typing import Any

from container_manager.states import TerminationReason
from container_manager.worker.tracking import StopReason
from container_manager_core.logtext import parse_json_output, storable_json, storable_text, strip_timestamps
from container_manager_core.types import ExecutionLogs, ExecutionStatus, ResourceUsage


def termination_reason(status: ExecutionStatus, stop_reason: str) -> TerminationReason:
    """Say why the container ended; a container the worker stopped is never an OOM.

    Whether the job ran out of memory is the executor's verdict (``status.oom_killed``): only it
    knows what an exit code means on its platform (137 is SIGKILL on Docker, which it weighs
    against its own stops and the engine's OOM events; a Cloud Run timeout exits 137 too).
    """
    if stop_reason == StopReason.CANCELLED:
        return TerminationReason.CANCELLED
    if stop_reason == StopReason.TIMEOUT:
        return TerminationReason.TIMEOUT
    if status.oom_killed:
        return TerminationReason.OOM_KILLED
    if status.exit_code == 0:
        return TerminationReason.COMPLETED
    return TerminationReason.NON_ZERO_EXIT


def run_seconds(status: ExecutionStatus) -> float | None:
    """Return the container's own run time by the engine's clock (never the harvest's), if known."""
    if status.started_at is None or status.finished_at is None:
        return None
    return max(0.0, (status.finished_at - status.started_at).total_seconds())


def harvest_fields(
    status: ExecutionStatus, logs: ExecutionLogs | None, usage: ResourceUsage | None
) -> dict[str, Any]:
    """Return the row fields an exit fills in: exit code, raw and clean logs, parsed JSON, usage.

    The one point where output becomes row fields, so the one point where it is made storable on
    every database, whatever the plugin handed over: NUL and invalid UTF-8 replaced and counted
    (on top of what the plugin's decoding counted), the parsed JSON's strings likewise.
    """
    fields: dict[str, Any] = {"exit_code": status.exit_code, "run_seconds": run_seconds(status)}
    if logs is not None:
        stdout, stdout_replaced = storable_text(logs.stdout)
        stderr, stderr_replaced = storable_text(logs.stderr)
        clean = strip_timestamps(stdout) if logs.timestamps else stdout
        fields |= {
            "stdout_log": stdout,
            "stderr_log": stderr,
            "clean_output": clean,
            # Storable text may still spell NUL or a lone surrogate as a JSON escape.
            "parsed_output": storable_json(parse_json_output(clean)),
            "stdout_dropped_bytes": logs.stdout_dropped_bytes,
            "stderr_dropped_bytes": logs.stderr_dropped_bytes,
            "stdout_replaced_bytes": logs.stdout_replaced_bytes + stdout_replaced,
            "stderr_replaced_bytes": logs.stderr_replaced_bytes + stderr_replaced,
        }
    if usage is not None:
        fields |= {
            "max_memory_usage": usage.peak_memory_bytes,
            "cpu_usage_percent": usage.average_cpu_percent,
        }
    return fields
