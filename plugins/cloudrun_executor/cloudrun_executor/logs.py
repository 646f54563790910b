"""Read an execution's output from Cloud Logging, stdout and stderr apart, capped per stream.

Cloud Run writes each line a job prints as one log entry, in the log ``run.googleapis.com/stdout``
or ``run.googleapis.com/stderr`` (URL-encoded in the log name), on the ``cloud_run_job`` resource and
labelled with the execution's name; its own notes (the container's exit, an out-of-memory kill) go
to ``run.googleapis.com/varlog/system``. Lines that are JSON objects arrive as structured payloads,
with ``severity`` and a printed ``time`` lifted out by the logging agent, and are given back as
compact JSON with their severity.

Entries arrive late: seconds, sometimes about a minute, after they are printed, and a printed time
may place an entry before the execution began. So the filter bounds the search by the time Logging
received an entry, and a finished execution's logs are read only once its last attempt's exit entry
is there and a re-read after a quiet period finds nothing new (both bounded in time).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from google.api_core import exceptions as api_exceptions
from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
from google.cloud.logging_v2.types import ListLogEntriesRequest, LogEntry
from google.logging.type import log_severity_pb2
from google.protobuf import json_format

from cloudrun_executor.errors import LogReadFailed, describe
from cloudrun_executor.naming import ExecutionName
from container_manager_core.logtext import HeadTailBuffer, buffered_logs
from container_manager_core.types import ExecutionLogs

STDOUT_LOG = "run.googleapis.com%2Fstdout"
STDERR_LOG = "run.googleapis.com%2Fstderr"
SYSTEM_LOG = "run.googleapis.com%2Fvarlog%2Fsystem"
EXECUTION_LABEL = "run.googleapis.com/execution_name"
ATTEMPT_LABEL = "run.googleapis.com/task_attempt"
PAGE_SIZE = 1000  # the API's maximum: fewer calls against Logging's read quota
# How Cloud Run's system log says an attempt's container ended.
_EXIT_NOTES = ("Container called exit(", "Memory limit of ", "Container terminated on signal")
OOM_NOTE = "Memory limit of "
_FIRST_PAUSE = 1.0


def log_filter(project: str, execution: ExecutionName, since: datetime | None = None) -> str:
    """Return the Logging filter that selects one execution's stdout, stderr and system entries."""
    logs = " OR ".join(f'"projects/{project}/logs/{log}"' for log in (STDOUT_LOG, STDERR_LOG, SYSTEM_LOG))
    clauses = [
        'resource.type="cloud_run_job"',
        f'resource.labels.job_name="{execution.job}"',
        f'resource.labels.location="{execution.region}"',
        f'labels."{EXECUTION_LABEL}"="{execution.execution}"',
        f"logName=({logs})",
    ]
    if since is not None:
        # A lower bound keeps the read from scanning the whole retention. It is on the time Logging
        # received the entry: a line that printed its own "time" may carry any timestamp.
        clauses.append(f'receiveTimestamp>="{format_timestamp(since)}"')
    return " AND ".join(clauses)


@attrs.frozen
class LogSource:
    """Where one execution's entries are read, and how long a read may take."""

    client: LoggingServiceV2Client
    project: str
    execution: ExecutionName
    since: datetime | None
    timeout: float

    def read(self) -> list[LogEntry]:
        """Return every entry Logging shows now, oldest first.

        Raises:
            google.api_core.exceptions.GoogleAPIError: the read failed.
        """
        request = ListLogEntriesRequest(
            resource_names=[f"projects/{self.project}"],
            filter=log_filter(self.project, self.execution, self.since),
            order_by="timestamp asc",
            page_size=PAGE_SIZE,
        )
        # The pager follows next_page_token, through the empty pages a slow search returns too.
        return list(self.client.list_log_entries(request=request, retry=None, timeout=self.timeout))


@attrs.frozen
class Settling:
    """How long to wait for late entries: ``quiet`` seconds with nothing new, ``wait`` in all."""

    quiet: float
    wait: float
    expect_exit: bool  # the execution ran a container whose exit Cloud Run will note


def settled_entries(
    source: LogSource, settling: Settling, *, what: str, sleep: Callable[[float], None] = time.sleep
) -> list[LogEntry]:
    """Return the execution's entries once late ones have had time to arrive (bounded by ``wait``).

    A throttled read is tried again within the wait; a read still throttled at its end, or a
    forbidden one, raises :class:`LogReadFailed` naming ``what`` was being read.
    """
    deadline = time.monotonic() + settling.wait
    entries = _read(source, deadline, what, sleep)
    pause = _FIRST_PAUSE
    while time.monotonic() < deadline:
        if settling.expect_exit and not has_last_exit(entries):
            sleep(max(0.0, min(pause, settling.quiet, deadline - time.monotonic())))
            pause *= 2
            entries = _read(source, deadline, what, sleep)
            continue
        if settling.quiet <= 0:
            break
        sleep(max(0.0, min(settling.quiet, deadline - time.monotonic())))
        again = _read(source, deadline, what, sleep)
        if len(again) == len(entries):
            return again
        entries = again
    return entries


def _read(source: LogSource, deadline: float, what: str, sleep: Callable[[float], None]) -> list[LogEntry]:
    pause = _FIRST_PAUSE
    while True:
        try:
            return source.read()
        except api_exceptions.TooManyRequests as exc:
            # Logging's read quota is per project and small: wait for the next minute's share.
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LogReadFailed(
                    f"Could not {what}: Cloud Logging kept refusing the read for its quota ({describe(exc)}); "
                    "the job's output is missing, the job itself is unaffected."
                ) from exc
            sleep(min(pause, remaining))
            pause *= 2
        except (api_exceptions.PermissionDenied, api_exceptions.Unauthenticated) as exc:
            raise LogReadFailed(
                f"Could not {what}: Cloud Logging refused the read ({describe(exc)}); grant "
                "roles/logging.viewer to the identity this host uses."
            ) from exc


def has_last_exit(entries: Sequence[LogEntry]) -> bool:
    """Say whether Cloud Run has noted the exit of the latest attempt that wrote anything."""
    attempts = [_attempt(e) for e in entries]
    if not attempts:
        return False
    last = max(attempts)
    return any(_attempt(e) == last and _is_exit_note(e) for e in entries)


def oom_note(entries: Sequence[LogEntry]) -> str | None:
    """Return Cloud Run's out-of-memory note ("Memory limit of N MiB exceeded..."), if it wrote one."""
    for entry in entries:
        if _log_of(entry) == SYSTEM_LOG and entry.text_payload.startswith(OOM_NOTE):
            return str(entry.text_payload)
    return None


def logs_from(entries: Sequence[LogEntry], *, timestamps: bool, limit: int) -> ExecutionLogs:
    """Return the job's stdout and stderr from ``entries``, each capped to ``limit`` bytes."""
    buffers = {STDOUT_LOG: HeadTailBuffer(limit), STDERR_LOG: HeadTailBuffer(limit)}
    for entry in entries:
        buffer = buffers.get(_log_of(entry))
        if buffer is not None:
            # Back to the bytes the job wrote, so they are decoded as every executor's are. A lone
            # surrogate (no valid UTF-8 encoding) passes as the invalid bytes it would be, never raising.
            buffer.feed(entry_text(entry, timestamps=timestamps).encode("utf-8", "surrogatepass"))
    return buffered_logs(buffers[STDOUT_LOG], buffers[STDERR_LOG], timestamps=timestamps)


def entry_text(entry: LogEntry, *, timestamps: bool) -> str:
    """Return one entry as the line(s) the job printed, each prefixed with its time if asked."""
    if "json_payload" in entry:
        payload = _whole_numbers(json_format.MessageToDict(LogEntry.pb(entry).json_payload))
        severity = LogEntry.pb(entry).severity
        if severity != log_severity_pb2.DEFAULT and "severity" not in payload:
            # The agent took the printed severity out of the payload; the job printed it.
            payload = {"severity": log_severity_pb2.LogSeverity.Name(severity), **payload}
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    else:
        text = entry.text_payload
    lines = text.splitlines() or [""]
    if timestamps:
        prefix = format_timestamp(entry.timestamp) + " "
        lines = [prefix + line for line in lines]
    return "".join(line + "\n" for line in lines)


def _log_of(entry: LogEntry) -> str:
    return str(entry.log_name).rsplit("/", 1)[-1]


def _attempt(entry: LogEntry) -> int:
    value = entry.labels.get(ATTEMPT_LABEL, "0")
    return int(value) if value.isdigit() else 0


def _is_exit_note(entry: LogEntry) -> bool:
    return _log_of(entry) == SYSTEM_LOG and str(entry.text_payload).startswith(_EXIT_NOTES)


def _whole_numbers(value: Any) -> Any:
    # Logging keeps JSON numbers as doubles; a job that printed 3 should read 3 back, not 3.0.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def format_timestamp(moment: datetime) -> str:
    """Return ``moment`` in RFC 3339 with nanoseconds, as Docker prefixes its log lines."""
    # Logging's timestamps carry nanoseconds (proto-plus DatetimeWithNanoseconds); keep them.
    nanos = getattr(moment, "nanosecond", None)
    if not isinstance(nanos, int):
        nanos = moment.microsecond * 1000
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos:09d}Z"
