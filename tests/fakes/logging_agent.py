"""What Cloud Run's logging agent makes of one line a container prints: a LogEntry's payload and fields.

Source: Cloud Logging, "Structured logging", section "Special JSON fields in messages"
(cloud.google.com/logging/docs/structured-logging): when a line is a JSON object, the agent moves
``severity``, ``time`` / ``timestamp`` / ``timestampSeconds`` + ``timestampNanos`` and the
``logging.googleapis.com/*`` fields out of ``jsonPayload`` into the LogEntry's own fields; a printed
time becomes the entry's ``timestamp``; and when ``message`` is the only field left, it is stored as
``textPayload``. The fluent-bit Stackdriver output documents the same table ("Stackdriver special
fields"), removing each field it lifts out of the payload.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import attrs

SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")
_SPECIAL_PREFIX = "logging.googleapis.com/"


@attrs.frozen
class AgentRecord:
    """The LogEntry fields one printed line becomes."""

    text: str | None = None
    json: dict[str, Any] | None = None
    severity: str = "DEFAULT"
    timestamp: datetime | None = None  # a printed time, which replaces the moment of printing
    labels: dict[str, str] = attrs.field(factory=dict)
    trace: str = ""
    span_id: str = ""
    insert_id: str = ""


def agent_record(line: str) -> AgentRecord:
    """Return what the agent writes for ``line``: plain text, or a JSON object with its fields lifted."""
    payload = _json_object(line)
    if payload is None:
        return AgentRecord(text=line)
    severity = str(payload.pop("severity", "DEFAULT")).upper()
    moment = _printed_time(payload)
    labels = payload.pop(_SPECIAL_PREFIX + "labels", {})
    trace = str(payload.pop(_SPECIAL_PREFIX + "trace", ""))
    span_id = str(payload.pop(_SPECIAL_PREFIX + "spanId", ""))
    insert_id = str(payload.pop(_SPECIAL_PREFIX + "insertId", ""))
    for key in [k for k in payload if k.startswith(_SPECIAL_PREFIX)]:
        del payload[key]  # sourceLocation, operation, trace_sampled...: LogEntry fields the fake keeps not
    only_message = set(payload) == {"message"}
    return AgentRecord(
        text=str(payload["message"]) if only_message else None,
        json=None if only_message else payload,
        severity=severity if severity in SEVERITIES else "DEFAULT",
        timestamp=moment,
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        trace=trace,
        span_id=span_id,
        insert_id=insert_id,
    )


def _printed_time(payload: dict[str, Any]) -> datetime | None:
    seconds = payload.pop("timestampSeconds", None)
    nanos = payload.pop("timestampNanos", None)
    moment: datetime | None = None
    if isinstance(seconds, int | float):
        moment = datetime.fromtimestamp(float(seconds) + float(nanos or 0) / 1e9, UTC)
    for key in ("timestamp", "time"):
        value = payload.pop(key, None)
        if isinstance(value, dict) and isinstance(value.get("seconds"), int | float):
            moment = datetime.fromtimestamp(float(value["seconds"]) + float(value.get("nanos", 0)) / 1e9, UTC)
        elif isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                moment = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
            except ValueError:
                payload[key] = value  # not a time: the agent leaves it in the payload
    return moment


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
