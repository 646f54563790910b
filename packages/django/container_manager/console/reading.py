"""What the console shows of a job, read in one place: its logs, its usage, its attempts.

Every view and command reads through these functions. A job run by a worker has attempts
(``JobAttempt``) whose output the worker stores while it runs: logs, usage samples and attempts are
read from them, and offsets are bytes of the job's own output. A job without attempts (a row from
before them) is read as before: while it runs from its executor, else from its row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from container_manager.attempts import LOG_SLICE_BYTES, JobAttempt, latest_attempt
from container_manager.executors.registry import get_plugin_manager
from container_manager.models import ContainerJob
from container_manager.states import ACTIVE_STATUSES
from container_manager_core.errors import ContainerManagerError
from container_manager_core.logtext import storable_text
from container_manager_core.types import ExecutionLogs

Stream = Literal["stdout", "stderr"]
STREAMS: Final[tuple[Stream, ...]] = ("stdout", "stderr")
# The most a tail read returns per stream: a page shows the end of a long log, the download has it all.
TAIL_CHARS: Final = 64 * 1024


@dataclass(frozen=True)
class LogSlice:
    """What a stream holds after ``offset``: append ``text`` to what was read, or replace it if ``reset``."""

    text: str
    offset: int  # where the next read starts
    reset: bool  # the text does not continue the earlier reads (the log was cut or replaced)
    skipped: int  # characters left out before ``text`` to keep within the limit
    dropped_bytes: int  # bytes the log cap cut from the middle


@dataclass(frozen=True)
class Logs:
    """Both streams after the offsets asked for, and where they were read."""

    streams: Mapping[Stream, LogSlice]
    live: bool  # read from the running container rather than from storage
    note: str  # why a live read fell back to storage; empty when it did not


@dataclass(frozen=True)
class Usage:
    peak_memory_bytes: int | None
    cpu_percent: float | None
    live: bool


@dataclass(frozen=True)
class UsageSample:
    at: datetime
    memory_bytes: int | None
    cpu_percent: float | None


@dataclass(frozen=True)
class Attempt:
    """One run of the job: where, when, and how it ended."""

    number: int
    host: str
    worker: str
    execution_id: str
    launched_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    exit_code: int | None
    termination_reason: str
    peak_memory_bytes: int | None
    cpu_percent: float | None


def log_since(job: ContainerJob, offsets: Mapping[Stream, int], *, limit: int | None = TAIL_CHARS) -> Logs:
    """Return each stream's text after its offset (0: from the start), at most ``limit`` characters.

    A stream whose log was cut in the middle, or that is shorter than its offset (the job was
    re-queued), comes back whole (its end, within ``limit``) with ``reset`` set. For a job with
    attempts, the offsets and ``limit`` are bytes of its latest attempt's stored output.
    """
    attempt = latest_attempt(job)
    if attempt is not None:
        return Logs(
            {stream: _stored_since(attempt, stream, offsets.get(stream, 0), limit) for stream in STREAMS},
            live=job.status in ACTIVE_STATUSES,
            note="",
        )
    current, live, note = _current_logs(job)
    streams: dict[Stream, LogSlice] = {}
    for stream in STREAMS:
        text, dropped = _stream(current, stream)
        offset = offsets.get(stream, 0)
        reset = offset < 0 or offset > len(text) or (dropped > 0 and offset > 0)
        start = 0 if reset else offset
        new = text[start:]
        skipped = 0
        if limit is not None and len(new) > limit:
            skipped = len(new) - limit
            new = new[skipped:]
        streams[stream] = LogSlice(new, len(text), reset, skipped, dropped)
    return Logs(streams, live, note)


def _stored_since(attempt: JobAttempt, stream: Stream, offset: int, limit: int | None) -> LogSlice:
    """Read what the worker stored of ``stream`` after byte ``offset``: its end within ``limit``.

    A cut the log cap made on the way is marked by its notice in the text, not by ``reset``.
    """
    dropped = int(getattr(attempt, f"{stream}_dropped_bytes"))
    end = attempt.stored_end(stream)
    reset = offset < 0 or offset > end
    start = 0 if reset else offset
    skipped = 0 if limit is None else max(0, end - start - limit)
    start += skipped
    parts, position = [], start
    while position < end:
        room = LOG_SLICE_BYTES if limit is None else start + limit - position
        piece = attempt.log_since(stream, position, limit=max(1, room))
        if piece.next_offset <= position:
            break
        parts.append(piece.text)
        position = piece.next_offset
    return LogSlice("".join(parts), position, reset, skipped, dropped)


def usage_now(job: ContainerJob) -> Usage:
    """Return the job's peak memory and average CPU: measured now while it runs, else as stored."""
    if _is_live(job):
        assert job.docker_host is not None  # noqa: S101 - _is_live checked it
        try:
            usage = get_plugin_manager().get_usage(job.docker_host.to_spec(), job.execution_id)
        except ContainerManagerError:
            pass  # the container just ended, or its engine is out of reach: show what is stored
        else:
            return Usage(usage.peak_memory_bytes, usage.average_cpu_percent, live=True)
    return Usage(job.max_memory_usage, job.cpu_usage_percent, live=False)


def usage_samples(job: ContainerJob) -> list[UsageSample]:
    """Return the usage samples stored over the job's run, oldest first.

    A job with attempts has its latest attempt's samples, taken while it ran; a job without keeps
    one in its row: the figures of the harvest, at the job's end.
    """
    attempt = latest_attempt(job)
    if attempt is not None and attempt.usage_samples:
        return [
            UsageSample(attempt.launched_at + timedelta(seconds=seconds), memory, cpu)
            for seconds, memory, cpu in attempt.usage_samples
        ]
    if job.completed_at is None or (job.max_memory_usage is None and job.cpu_usage_percent is None):
        return []
    return [UsageSample(job.completed_at, job.max_memory_usage, job.cpu_usage_percent)]


def attempts(job: ContainerJob) -> list[Attempt]:
    """Return the job's attempts, newest first; a job from before attempts has its row's one."""
    stored = list(job.attempts.order_by("-number"))
    if stored:
        return [
            Attempt(
                number=row.number,
                host=row.host_name,
                worker=row.worker_id,
                execution_id=row.execution_id,
                launched_at=row.launched_at,
                started_at=row.started_at,
                completed_at=row.finished_at,
                exit_code=row.exit_code,
                termination_reason=row.termination_reason,
                peak_memory_bytes=row.peak_memory_bytes,
                cpu_percent=row.cpu_percent,
            )
            for row in stored
        ]
    if job.launched_at is None:
        return []
    return [
        Attempt(
            number=job.attempt,
            host=job.docker_host.name if job.docker_host is not None else "",
            worker=job.worker_id,
            execution_id=job.execution_id,
            launched_at=job.launched_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
            exit_code=job.exit_code,
            termination_reason=job.termination_reason,
            peak_memory_bytes=job.max_memory_usage,
            cpu_percent=job.cpu_usage_percent,
        )
    ]


def _is_live(job: ContainerJob) -> bool:
    return job.status in ACTIVE_STATUSES and bool(job.execution_id) and job.docker_host is not None


def _current_logs(job: ContainerJob) -> tuple[ExecutionLogs, bool, str]:
    """Return the job's logs as they are now, whether read live, and why a live read failed."""
    note = ""
    if _is_live(job):
        assert job.docker_host is not None  # noqa: S101 - _is_live checked it
        try:
            # Timestamped, as the harvest stores them, so offsets still hold once the job has ended.
            logs = get_plugin_manager().get_logs(job.docker_host.to_spec(), job.execution_id, timestamps=True)
        except ContainerManagerError as exc:
            note = f"The running container's output cannot be read now: {exc}"
        else:
            return logs, True, note
    stored = ExecutionLogs(
        stdout=job.stdout_log,
        stderr=job.stderr_log,
        timestamps=True,
        stdout_dropped_bytes=job.stdout_dropped_bytes,
        stderr_dropped_bytes=job.stderr_dropped_bytes,
    )
    return stored, False, note


def _stream(logs: ExecutionLogs, stream: Stream) -> tuple[str, int]:
    """Return one stream's storable text (as the harvest would store it) and its dropped byte count."""
    if stream == "stdout":
        return storable_text(logs.stdout)[0], logs.stdout_dropped_bytes
    return storable_text(logs.stderr)[0], logs.stderr_dropped_bytes
