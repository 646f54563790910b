"""Turn an exit into the job's final (or retrying) state and save it with one guarded UPDATE."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from container_manager.conf import AppSettings
from container_manager.models import ContainerJob
from container_manager.states import JobStatus, TerminationReason
from container_manager.worker.tracking import StopReason
from container_manager_core.logtext import parse_json_output, storable_json, storable_text, strip_timestamps
from container_manager_core.types import ExecutionLogs, ExecutionStatus, ResourceUsage

# What the kernel's OOM killer leaves behind (128 + SIGKILL) when the engine did not flag it.
OOM_EXIT_CODE = 137
# Failures a job's max_retries may retry; policy violations and launch failures are never retried.
RETRYABLE = frozenset(
    {
        TerminationReason.NON_ZERO_EXIT,
        TerminationReason.OOM_KILLED,
        TerminationReason.TIMEOUT,
        TerminationReason.HOST_LOST,
    }
)
# An engine that keeps restarting under a job eventually fails it rather than looping for ever.
MAX_INTERRUPTIONS = 5
# Pause before re-running an interrupted job: an engine stopping its containers is still shutting
# down, and answers a create or start in that window with errors that are not the job's.
INTERRUPTED_RERUN_SECONDS = 5.0
_FINAL_STATUS = {
    TerminationReason.COMPLETED: JobStatus.COMPLETED,
    TerminationReason.CANCELLED: JobStatus.CANCELLED,
    TerminationReason.TIMEOUT: JobStatus.TIMEOUT,
}


def termination_reason(status: ExecutionStatus, stop_reason: str) -> TerminationReason:
    """Say why the container ended; a container the worker stopped is never an OOM."""
    if stop_reason == StopReason.CANCELLED:
        return TerminationReason.CANCELLED
    if stop_reason == StopReason.TIMEOUT:
        return TerminationReason.TIMEOUT
    if status.oom_killed or status.exit_code == OOM_EXIT_CODE:
        return TerminationReason.OOM_KILLED
    if status.exit_code == 0:
        return TerminationReason.COMPLETED
    return TerminationReason.NON_ZERO_EXIT


def backoff_seconds(retry_count: int, settings: AppSettings) -> float:
    """Return the pause before retry number ``retry_count + 1``: base * 2**retry_count, capped."""
    return float(
        min(settings.RETRY_BACKOFF_MAX_SECONDS, settings.RETRY_BACKOFF_BASE_SECONDS * 2**retry_count)
    )


def settle(
    job: ContainerJob,
    reason: TerminationReason,
    *,
    interrupted: bool,
    settings: AppSettings,
    now: datetime,
) -> tuple[JobStatus, TerminationReason, dict[str, Any]]:
    """Return the status the job moves to, the reason to record, and the bookkeeping fields."""
    if interrupted and reason not in (
        TerminationReason.COMPLETED,
        TerminationReason.CANCELLED,
        TerminationReason.TIMEOUT,
    ):
        # The engine went away under the job (a restart kills its containers): not the job's failure.
        reason = TerminationReason.HOST_LOST
        if job.interruption_count < MAX_INTERRUPTIONS:
            # Run it again shortly, without using up one of the job's retries.
            bookkeeping = {
                "interruption_count": job.interruption_count + 1,
                "next_attempt_at": now + timedelta(seconds=INTERRUPTED_RERUN_SECONDS),
            }
            return JobStatus.RETRYING, reason, bookkeeping
    if reason in RETRYABLE and job.retry_count < job.max_retries:
        delay = timedelta(seconds=backoff_seconds(job.retry_count, settings))
        return (
            JobStatus.RETRYING,
            reason,
            {"retry_count": job.retry_count + 1, "next_attempt_at": now + delay},
        )
    return _FINAL_STATUS.get(reason, JobStatus.FAILED), reason, {"completed_at": now}


def harvest_fields(
    status: ExecutionStatus, logs: ExecutionLogs | None, usage: ResourceUsage | None
) -> dict[str, Any]:
    """Return the row fields an exit fills in: exit code, raw and clean logs, parsed JSON, usage.

    The one point where output becomes row fields, so the one point where it is made storable on
    every database, whatever the plugin handed over: NUL and invalid UTF-8 replaced and counted
    (on top of what the plugin's decoding counted), the parsed JSON's strings likewise.
    """
    fields: dict[str, Any] = {"exit_code": status.exit_code}
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


def finish(
    job: ContainerJob,
    reason: TerminationReason,
    *,
    worker_id: str,
    attempt: int,
    interrupted: bool,
    settings: AppSettings,
    now: datetime,
    fields: dict[str, Any] | None = None,
    error: str = "",
) -> JobStatus:
    """Move an owned job to where ``reason`` leads; raise InvalidStateTransition if it was lost."""
    status, reason, bookkeeping = settle(job, reason, interrupted=interrupted, settings=settings, now=now)
    changes = {
        **(fields or {}),
        **bookkeeping,
        "termination_reason": reason,
        "lease_expires_at": None,
        "last_error": error,
    }
    job._transition(status, worker_id=worker_id, attempt=attempt, **changes)
    return status
