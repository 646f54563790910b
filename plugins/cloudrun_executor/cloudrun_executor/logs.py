"""Read an execution's output from Cloud Logging, stdout and stderr apart, capped per stream.

Cloud Run writes each line a job prints as one log entry, in the log ``run.googleapis.com/stdout``
or ``run.googleapis.com/stderr`` (URL-encoded in the log name), on the ``cloud_run_job`` resource and
labelled with the execution's name. Lines that are JSON objects arrive as structured payloads and
are given back as compact JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
from google.cloud.logging_v2.types import ListLogEntriesRequest, LogEntry
from google.protobuf import json_format

from cloudrun_executor.naming import ExecutionName
from container_manager_core.logtext import HeadTailBuffer, buffered_logs
from container_manager_core.types import ExecutionLogs

STDOUT_LOG = "run.googleapis.com%2Fstdout"
STDERR_LOG = "run.googleapis.com%2Fstderr"
EXECUTION_LABEL = "run.googleapis.com/execution_name"
PAGE_SIZE = 1000  # the API's maximum: fewer calls against Logging's read quota


def log_filter(project: str, execution: ExecutionName, since: datetime | None = None) -> str:
    """Return the Logging filter that selects one execution's stdout and stderr entries."""
    logs = " OR ".join(f'"projects/{project}/logs/{log}"' for log in (STDOUT_LOG, STDERR_LOG))
    clauses = [
        'resource.type="cloud_run_job"',
        f'resource.labels.job_name="{execution.job}"',
        f'resource.labels.location="{execution.region}"',
        f'labels."{EXECUTION_LABEL}"="{execution.execution}"',
        f"logName=({logs})",
    ]
    if since is not None:
        # Logging indexes by time: a lower bound keeps the read from scanning the whole retention.
        clauses.append(f'timestamp>="{format_timestamp(since)}"')
    return " AND ".join(clauses)


def read_logs(
    client: LoggingServiceV2Client,
    project: str,
    execution: ExecutionName,
    *,
    since: datetime | None,
    timestamps: bool,
    limit: int,
    timeout: float,
) -> ExecutionLogs:
    """Return the execution's stdout and stderr, each capped to ``limit`` bytes (head and tail kept)."""
    buffers = {STDOUT_LOG: HeadTailBuffer(limit), STDERR_LOG: HeadTailBuffer(limit)}
    request = ListLogEntriesRequest(
        resource_names=[f"projects/{project}"],
        filter=log_filter(project, execution, since),
        order_by="timestamp asc",
        page_size=PAGE_SIZE,
    )
    for entry in client.list_log_entries(request=request, retry=None, timeout=timeout):
        buffer = buffers.get(entry.log_name.rsplit("/", 1)[-1])
        if buffer is not None:
            # Back to the bytes the job wrote, so they are decoded as every executor's are. A lone
            # surrogate (no valid UTF-8 encoding) passes as the invalid bytes it would be, never raising.
            buffer.feed(entry_text(entry, timestamps=timestamps).encode("utf-8", "surrogatepass"))
    return buffered_logs(buffers[STDOUT_LOG], buffers[STDERR_LOG], timestamps=timestamps)


def entry_text(entry: LogEntry, *, timestamps: bool) -> str:
    """Return one entry as the line(s) the job printed, each prefixed with its time if asked."""
    if "json_payload" in entry:
        payload = _whole_numbers(json_format.MessageToDict(LogEntry.pb(entry).json_payload))
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    else:
        text = entry.text_payload
    lines = text.splitlines() or [""]
    if timestamps:
        prefix = format_timestamp(entry.timestamp) + " "
        lines = [prefix + line for line in lines]
    return "".join(line + "\n" for line in lines)


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
