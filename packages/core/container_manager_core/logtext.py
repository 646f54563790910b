"""Log helpers every executor shares: storable text, timestamp stripping, head-and-tail caps, JSON results.

A job's output is bytes, and not necessarily text: it may hold NUL bytes (refused by PostgreSQL's
text and jsonb types) and bytes that are not UTF-8. :func:`storable_text` is the one rule that
turns it into text any database stores, and :func:`decode_stream` the one place where an
executor's captured bytes become text.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any, NamedTuple

from container_manager_core.types import ExecutionLogs

# What a NUL byte becomes: U+2400 SYMBOL FOR NULL, visible where a NUL would be invisible.
NUL_REPLACEMENT = "\u2400"
# What each byte that is not part of valid UTF-8 becomes: U+FFFD REPLACEMENT CHARACTER.
INVALID_REPLACEMENT = "\ufffd"
# After a surrogateescape decode, each undecodable byte is one of these and nothing else is.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# What no database stores from a str: NUL, and surrogates (they have no UTF-8 encoding).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# Docker's timestamps=True prefix: RFC 3339 with up to nanoseconds, then one space.
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})(?: |$)", re.MULTILINE
)


def storable_text(data: bytes | str) -> tuple[str, int]:
    """Return ``data`` as text every database stores, and how many of its bytes were replaced.

    Bytes are read as UTF-8. Each NUL byte becomes ``NUL_REPLACEMENT`` (U+2400, "␀") and each byte
    that is not part of a valid UTF-8 sequence becomes ``INVALID_REPLACEMENT`` (U+FFFD): one
    character per replaced byte, so the count is exact. Valid UTF-8 without NUL comes back
    unchanged. A ``str`` is taken as the bytes it encodes to, a lone surrogate as the three invalid
    bytes Python's ``surrogatepass`` gives it. Never raises.
    """
    if isinstance(data, str):
        if _UNSTORABLE.search(data) is None:
            return data, 0
        data = data.encode("utf-8", "surrogatepass")
    elif b"\x00" not in data:
        try:
            return data.decode("utf-8"), 0
        except UnicodeDecodeError:
            pass
    text = data.decode("utf-8", "surrogateescape")
    nul = text.count("\x00")
    text, invalid = _ESCAPED_BYTE.subn(INVALID_REPLACEMENT, text.replace("\x00", NUL_REPLACEMENT))
    return text, nul + invalid


def storable_json(value: Any) -> Any:
    """Return a JSON value (as ``json.loads`` gives) that PostgreSQL's jsonb accepts.

    Every string, keys included, goes through :func:`storable_text` (a ``"\\u0000"`` escape decodes to
    NUL, ``"\\ud800"`` to a lone surrogate: jsonb refuses both); NaN and infinities become None.
    Keys that become equal keep the last value. Iterative, so no nesting is too deep for it.
    """
    root = [value]
    pending: list[tuple[Any, Any]] = [(root, 0)]
    while pending:
        container, key = pending.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = storable_text(item)[0]
        elif isinstance(item, float) and not math.isfinite(item):
            container[key] = None
        elif isinstance(item, list | tuple):
            items = list(item)
            container[key] = items
            pending.extend((items, index) for index in range(len(items)))
        elif isinstance(item, dict):
            mapping = {storable_text(k)[0] if isinstance(k, str) else k: v for k, v in item.items()}
            container[key] = mapping
            pending.extend((mapping, k) for k in mapping)
    return root[0]


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


class DecodedStream(NamedTuple):
    """One captured stream as text: the bytes the cap dropped and the bytes made storable, counted."""

    text: str
    dropped_bytes: int
    replaced_bytes: int


def decode_stream(kept: bytes, dropped: int, limit: int) -> DecodedStream:
    """Turn a stream's capped bytes into storable text: the one place where output bytes become text.

    Without a cut the bytes go through :func:`storable_text` whole. With one, the truncation notice
    goes between head and tail, which are decoded apart; a character the cut split in two is
    dropped whole (the end of a head that is an unfinished UTF-8 sequence, and up to three
    continuation bytes opening the tail), so ``replaced_bytes`` counts only what the job itself
    wrote that was not storable text, and ``dropped_bytes`` plus the bytes kept is all it wrote.
    """
    if not dropped:
        text, replaced = storable_text(kept)
        return DecodedStream(text, 0, replaced)
    split = head_budget(limit)
    return decode_parts(kept[:split], kept[split:], dropped)


def decode_parts(head: bytes, tail: bytes, dropped: int) -> DecodedStream:
    """Decode a stream kept as a head and a tail with ``dropped`` bytes cut between them.

    Nothing cut: the two are one text. Else the notice goes between them, and a character the cut
    split in two is dropped whole and counted (see :func:`decode_stream`).
    """
    if not dropped:
        text, replaced = storable_text(head + tail)
        return DecodedStream(text, 0, replaced)
    head_cut, tail_cut = _unfinished_character(head), _leading_continuations(tail)
    head, tail = head[: len(head) - head_cut], tail[tail_cut:]
    dropped += head_cut + tail_cut
    head_text, head_replaced = storable_text(head)
    tail_text, tail_replaced = storable_text(tail)
    return DecodedStream(
        head_text + truncation_notice(dropped) + tail_text, dropped, head_replaced + tail_replaced
    )


def _unfinished_character(head: bytes) -> int:
    """Return how many bytes at the end of ``head`` are a valid but unfinished UTF-8 sequence."""
    for length in range(1, min(3, len(head)) + 1):
        byte = head[-length]
        if byte < 0x80:
            return 0
        if byte >= 0xC0:  # a lead byte: unfinished if the decoder waits for more rather than refusing
            try:
                decoded = codecs.getincrementaldecoder("utf-8")().decode(head[-length:], final=False)
            except UnicodeDecodeError:
                return 0
            return length if decoded == "" else 0
    return 0


def _leading_continuations(tail: bytes) -> int:
    """Return how many of the first three bytes of ``tail`` are UTF-8 continuation bytes in a row."""
    count = 0
    while count < min(3, len(tail)) and 0x80 <= tail[count] <= 0xBF:
        count += 1
    return count


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

    def skip(self, count: int) -> None:
        """Count ``count`` bytes of the stream that never arrived (an executor's own cap cut them).

        Bytes after a gap do not continue what came before: the head is closed and the tail
        restarts, so what is kept is always contiguous head and tail, and the rest is dropped.
        """
        if count < 0:
            raise ValueError(f"A gap in a log stream is zero or more bytes, got {count!r}.")
        if not count:
            return
        self._total += count
        self._head_limit = len(self._head)
        self._tail.clear()

    @property
    def head(self) -> bytes:
        """Return the head kept so far (it only grows, up to half the cap)."""
        return bytes(self._head)

    @property
    def tail(self) -> bytes:
        """Return the rolling tail: the last bytes fed after the head was full."""
        return bytes(self._tail)

    @property
    def total(self) -> int:
        """Return how many bytes were fed in all."""
        return self._total

    def result(self) -> tuple[bytes, int]:
        """Return the kept bytes (head then tail) and how many were dropped from the middle."""
        kept = bytes(self._head + self._tail)
        return kept, self._total - len(kept)

    def decoded(self) -> DecodedStream:
        """Return what was fed as storable text, through :func:`decode_stream`."""
        return decode_parts(
            bytes(self._head), bytes(self._tail), self._total - len(self._head) - len(self._tail)
        )


def buffered_logs(stdout: HeadTailBuffer, stderr: HeadTailBuffer, *, timestamps: bool) -> ExecutionLogs:
    """Return both captured streams as the ``ExecutionLogs`` an executor answers, decoded alike."""
    out, err = stdout.decoded(), stderr.decoded()
    return ExecutionLogs(
        stdout=out.text,
        stderr=err.text,
        timestamps=timestamps,
        stdout_dropped_bytes=out.dropped_bytes,
        stderr_dropped_bytes=err.dropped_bytes,
        stdout_replaced_bytes=out.replaced_bytes,
        stderr_replaced_bytes=err.replaced_bytes,
    )


def parse_json_output(text: str) -> Any | None:
    """Return the JSON value the output holds: the whole output, else a final object/array line, else None.

    Strict JSON: NaN, Infinity and numbers beyond a float's range are not JSON (jsonb refuses them).
    """
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
        return True, json.loads(text, parse_constant=_not_json, parse_float=_finite_float)
    except (ValueError, RecursionError):  # job output is untrusted: deep nesting must not escape
        return False, None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond a float's range")
    return value
