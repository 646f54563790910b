"""Log helpers every executor shares: timestamp stripping, head-and-tail caps, JSON result lines."""

from __future__ import annotations

import json
import re
from typing import Any

# Docker's timestamps=True prefix: RFC 3339 with up to nanoseconds, then one space.
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})(?: |$)", re.MULTILINE
)


def strip_timestamps(text: str) -> str:
    """Remove the RFC 3339 timestamp at the start of each line, leaving other lines alone."""
    return _TIMESTAMP.sub("", text)


def head_budget(limit: int) -> int:
    """Return how many of ``limit`` bytes go to the head (the odd byte, if any, goes there)."""
    return limit - limit // 2


def _check_limit(limit: int) -> None:
    if limit < 0:
        raise ValueError(f"The log cap must be zero or more bytes, got {limit!r}.")


def cap_head_tail(data: bytes, limit: int) -> tuple[bytes, int]:
    """Keep the first and last halves of a ``limit``-byte budget; return them joined and the count dropped."""
    _check_limit(limit)
    if len(data) <= limit:
        return data, 0
    head = head_budget(limit)
    tail = limit - head
    return data[:head] + data[len(data) - tail :], len(data) - limit


def truncation_notice(dropped: int) -> str:
    """Return the line spliced between head and tail to say how much the cap removed."""
    return f"\n[... {dropped} bytes dropped by the log cap ...]\n"


def render_capped(kept: bytes, dropped: int, limit: int) -> str:
    """Decode capped output to text, with the truncation notice between head and tail when bytes were dropped."""
    if not dropped:
        return kept.decode("utf-8", errors="replace")
    # Decode the halves apart so a character cut at the seam does not garble its neighbour.
    head = head_budget(limit)
    return (
        kept[:head].decode("utf-8", errors="replace")
        + truncation_notice(dropped)
        + kept[head:].decode("utf-8", errors="replace")
    )


class HeadTailBuffer:
    """Stream bytes in and keep at most ``limit`` of them: the head as it arrives, then a rolling tail."""

    def __init__(self, limit: int) -> None:
        _check_limit(limit)
        self._head_limit = head_budget(limit)
        self._tail_limit = limit - self._head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0

    def feed(self, chunk: bytes) -> None:
        """Add the next chunk of the stream."""
        self._total += len(chunk)
        view = memoryview(chunk)  # slices of a view do not copy a large chunk
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += view[:room]
            view = view[room:]
        if not len(view):
            return
        if len(view) >= self._tail_limit:
            # A chunk at least as big as the tail replaces it; keep only its end.
            self._tail = bytearray(view[len(view) - self._tail_limit :])
            return
        self._tail += view
        excess = len(self._tail) - self._tail_limit
        if excess > 0:
            del self._tail[:excess]

    @property
    def total(self) -> int:
        """Return how many bytes were fed in all."""
        return self._total

    def result(self) -> tuple[bytes, int]:
        """Return the kept bytes (head then tail) and how many were dropped from the middle."""
        kept = bytes(self._head + self._tail)
        return kept, self._total - len(kept)


def parse_json_output(text: str) -> Any | None:
    """Return the JSON value the output holds: the whole output, else a final object/array line, else None."""
    stripped = text.strip()
    found, value = _loads(stripped)
    if found:
        return value
    last = stripped.rsplit("\n", 1)[-1].strip()
    if last.startswith(("{", "[")):
        found, value = _loads(last)
        if found and isinstance(value, dict | list):
            return value
    return None


def _loads(text: str) -> tuple[bool, Any]:
    """Return ``(True, value)`` if ``text`` is one JSON document, else ``(False, None)``."""
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):  # job output is untrusted: deep nesting must not escape
        return False, None
