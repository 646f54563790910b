"""A small interpreter for the subset of the Cloud Logging filter language the fake server accepts.

Supported: clauses joined by ``AND``, each one of ``field="value"``, ``field=("a" OR "b")`` and
``timestamp>="RFC 3339"`` (or ``receiveTimestamp``), where a field is a dotted path and may end in a quoted label key
(``labels."run.googleapis.com/execution_name"``). Anything else is refused with ``ValueError``, so
a plugin that sends a filter the fake does not understand fails loudly instead of matching nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime

_FIELD = r'(?P<field>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?:\."[^"]+")?)'
_EQUALS = re.compile(rf'^{_FIELD}\s*=\s*"(?P<value>[^"]*)"$')
_ANY_OF = re.compile(rf'^{_FIELD}\s*=\s*\((?P<values>"[^"]*"(?:\s+OR\s+"[^"]*")*)\)$')
_SINCE = re.compile(r'^(?P<field>timestamp|receiveTimestamp)\s*>=\s*"(?P<moment>[^"]+)"$')
_QUOTED = re.compile(r'"([^"]*)"')

Entry = Mapping[str, str]
Times = Mapping[str, datetime]
Predicate = Callable[[Entry, Times], bool]


def compile_filter(text: str) -> Predicate:
    """Return a predicate over ``(fields, times)`` for ``text``; raise ValueError if unsupported."""
    predicates = [_clause(part.strip()) for part in _split_and(text)] if text.strip() else []
    return lambda fields, times: all(p(fields, times) for p in predicates)


def _split_and(text: str) -> list[str]:
    # AND never appears inside the quoted values this fake deals with, nor inside parentheses.
    return re.split(r"\s+AND\s+", text.strip())


def _clause(clause: str) -> Predicate:
    if match := _EQUALS.match(clause):
        field, value = _normalise(match["field"]), match["value"]
        return lambda fields, _moment: fields.get(field) == value
    if match := _ANY_OF.match(clause):
        field, values = _normalise(match["field"]), frozenset(_QUOTED.findall(match["values"]))
        return lambda fields, _moment: fields.get(field) in values
    if match := _SINCE.match(clause):
        since, field = datetime.fromisoformat(_trim_nanos(match["moment"])), match["field"]
        return lambda _fields, times: times[field] >= since
    raise ValueError(f"The fake Logging API does not support the filter clause {clause!r}.")


def _normalise(field: str) -> str:
    return field.replace('"', "")


def _trim_nanos(moment: str) -> str:
    # datetime parses at most microseconds; the filter may carry nanoseconds.
    return re.sub(r"(\.\d{6})\d+", r"\1", moment).replace("Z", "+00:00")
