"""Write a followed job's attempt and output, from the worker's main thread (the one that owns the database).

Runner threads capture; this module stores: the attempt row when the container is launched or
adopted, what the capture holds that is new (the head as printed, the freshest tail, the bytes
printed so far) on the worker's log cadence, usage samples, and at the exit the exact tails, the
counts, the engine's times and how the run ended.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from container_manager.attempts import JobAttempt, LogChunk, replace_tails, store_chunks, trim_tail
from container_manager.models import ROW_DATA_ERRORS
from container_manager.worker.tracking import Tracked
from container_manager_core.logstream import LogCapture, LogPart, LogStream
from container_manager_core.logtext import head_budget
from container_manager_core.types import ExecutionStatus, ResourceUsage

# Bytes a capture gathers before the main thread is woken to store them (else it stores once a turn).
FLUSH_BYTES = 256 * 1024


def open_attempt(tracked: Tracked, *, worker_id: str, adopted: bool) -> None:
    """Create the attempt of a launched container, or take over the one an earlier owner opened.

    An adopted container is followed again from its first byte, so what an earlier owner stored
    of it is deleted first (it would be stored twice). Only the job's owner writes its attempts,
    so the next number is read, then inserted (the unique constraint guards the rest).
    """
    job = tracked.job
    if adopted:
        existing = JobAttempt.objects.filter(job=job, execution_id=tracked.execution_id).first()
        if existing is not None:
            LogChunk.objects.filter(attempt=existing).delete()
            JobAttempt.objects.filter(pk=existing.pk).update(worker_id=worker_id, claim=tracked.attempt)
            tracked.attempt_pk = existing.pk
            return
    last = JobAttempt.objects.filter(job=job).aggregate(last=Max("number"))["last"] or 0
    attempt = JobAttempt.objects.create(
        job=job,
        number=last + 1,
        claim=tracked.attempt,
        worker_id=worker_id,
        host_id=tracked.host_pk,
        host_name=tracked.host.name,
        execution_id=tracked.execution_id,
    )
    tracked.attempt_pk = attempt.pk


def store_new_output(tracked: Tracked) -> None:
    """Store what the job printed since the last call: head bytes, and the tail trimmed to its budget."""
    capture = tracked.capture
    if tracked.attempt_pk is None or capture is None or not capture.untaken:
        return
    chunks = capture.take()
    store_chunks(tracked.attempt_pk, chunks)
    tail_budget = capture.limit - head_budget(capture.limit)
    for stream in {chunk.stream for chunk in chunks if chunk.part is LogPart.TAIL}:
        tracked.tail_stored = True
        trim_tail(tracked.attempt_pk, stream, capture.total(stream) - tail_budget)
    JobAttempt.objects.filter(pk=tracked.attempt_pk).update(**_counts(capture))


def store_usage_sample(tracked: Tracked, usage: ResourceUsage, seconds: float) -> None:
    if tracked.attempt_pk is None:
        return
    attempt = JobAttempt.objects.only("usage_samples").get(pk=tracked.attempt_pk)
    attempt.add_usage_sample(seconds, usage.peak_memory_bytes, usage.average_cpu_percent)


def finish_attempt(
    tracked: Tracked,
    *,
    status: ExecutionStatus | None,
    usage: ResourceUsage | None,
    harvest_seconds: float | None,
    reason: str,
    error: str,
) -> None:
    """Record how the attempt ended: the rest of its output, exact tails, counts, times, usage, reason."""
    if tracked.attempt_pk is None:
        return
    changes: dict[str, Any] = {
        "harvested_at": timezone.now(),
        "harvest_seconds": harvest_seconds,
        "exit_code": status.exit_code if status is not None else None,
        "termination_reason": reason,
        "error": error,
    }
    capture = tracked.capture
    if capture is not None:
        store_chunks(tracked.attempt_pk, capture.take())
        # The exact tails replace the rolling ones stored while it ran.
        replace_tails(tracked.attempt_pk, capture.final_tails(), stored=tracked.tail_stored)
        changes |= _counts(capture) | {"logs_complete": capture.complete}
    if status is not None:
        changes |= {"started_at": status.started_at, "finished_at": status.finished_at}
    if usage is not None:
        changes |= {"peak_memory_bytes": usage.peak_memory_bytes, "cpu_percent": usage.average_cpu_percent}
    try:
        with _savepoint():
            JobAttempt.objects.filter(pk=tracked.attempt_pk).update(**changes)
    except ROW_DATA_ERRORS as exc:
        # A value the database refuses (an exit code beyond its integers, say) ends the job as
        # result_unstorable; its attempt keeps how it ended and why the rest is missing.
        JobAttempt.objects.filter(pk=tracked.attempt_pk).update(
            harvested_at=changes["harvested_at"],
            termination_reason=reason,
            error=f"The attempt's result could not be stored: {type(exc).__name__}: {exc}".strip(),
        )


def _savepoint() -> AbstractContextManager[Any]:
    """Return a savepoint inside a transaction (a refused write leaves it usable), else nothing."""
    if transaction.get_connection().in_atomic_block:
        return transaction.atomic()
    return contextlib.nullcontext()


def _counts(capture: LogCapture) -> dict[str, int]:
    return {
        f"{stream}_{what}": count
        for stream in LogStream
        for what, count in (("bytes", capture.total(stream)), ("dropped_bytes", capture.dropped(stream)))
    }


def new_capture(tracked: Tracked) -> LogCapture:
    """Return the capture for a job's output, capped as the host caps it (``log_cap_bytes``).

    The host's spec always holds it (the ``LOG_CAP_BYTES`` setting unless its config sets one).
    """
    limit = tracked.host.config.get("log_cap_bytes")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"Host {tracked.host.name!r} has no usable log_cap_bytes: {limit!r}.")
    return LogCapture(limit)
