"""Output followed while a job runs: the pieces an executor yields, and the capture that keeps them.

An executor's ``follow_logs`` yields :class:`LogPiece` values: the job's own bytes, in order, per
stream (never the engine's timestamps or framing). The worker feeds them into a
:class:`LogCapture`, which keeps each stream's head (stored as soon as it is printed, so no
engine log rotation can lose it) and a bounded rolling tail, and counts exactly what it drops.
Storage is the caller's: :meth:`LogCapture.take` hands over what is new since the last call.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

import attrs

from container_manager_core.logtext import HeadTailBuffer, buffered_logs, head_budget, truncation_notice
from container_manager_core.types import ExecutionLogs

# Longest single wait for the exit in the polling follow (it waits as long as the job runs).
EXIT_WAIT_SECONDS = 30.0


class LogStream(enum.StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


class LogPart(enum.StrEnum):
    """Where stored bytes sit: the head is never cut; the tail rolls and is trimmed to its budget."""

    HEAD = "head"
    TAIL = "tail"


@attrs.frozen
class LogPiece:
    """Bytes a job printed on one stream, in order, as an executor delivers them.

    ``skipped``: bytes of this stream before ``data`` that the executor could not deliver (its own
    cap cut them); they count as dropped. ``cursor``: an executor's opaque resume point after this
    piece, handed back to ``follow_logs`` to go on after a broken connection without repeats.
    """

    stream: LogStream = attrs.field(converter=LogStream)
    data: bytes = b""
    skipped: int = 0
    cursor: str = ""


class CapturedChunk(NamedTuple):
    """Bytes to store: ``data`` starts at byte ``offset`` of the job's ``stream``."""

    stream: LogStream
    part: LogPart
    offset: int
    data: bytes


class _StreamCapture:
    def __init__(self, stream: LogStream, limit: int) -> None:
        self.stream = stream
        self.buffer = HeadTailBuffer(limit)
        self._tail_limit = limit - head_budget(limit)
        self._taken_head = 0
        self._fresh_tail = bytearray()  # bytes past the head not yet taken, at most the tail's budget

    def feed(self, data: bytes) -> None:
        head_before = len(self.buffer.head)
        self.buffer.feed(data)
        past_head = data[len(self.buffer.head) - head_before :]
        if past_head:
            self._fresh_tail += past_head
            if len(self._fresh_tail) > self._tail_limit:
                del self._fresh_tail[: len(self._fresh_tail) - self._tail_limit]

    def skip(self, count: int) -> None:
        self.buffer.skip(count)
        self._fresh_tail.clear()

    def take(self) -> list[CapturedChunk]:
        chunks = []
        head = self.buffer.head
        if len(head) > self._taken_head:
            chunks.append(
                CapturedChunk(self.stream, LogPart.HEAD, self._taken_head, head[self._taken_head :])
            )
            self._taken_head = len(head)
        if self._fresh_tail:
            offset = self.buffer.total - len(self._fresh_tail)
            chunks.append(CapturedChunk(self.stream, LogPart.TAIL, offset, bytes(self._fresh_tail)))
            self._fresh_tail.clear()
        return chunks

    def final_tail(self) -> CapturedChunk:
        tail = self.buffer.tail
        return CapturedChunk(self.stream, LogPart.TAIL, self.buffer.total - len(tail), tail)


class LogCapture:
    """Both streams of one execution, each capped at ``limit`` bytes of the job's own output.

    Thread-safe: a follower thread feeds it while another takes what is new. Per stream, the first
    half of ``limit`` is the head, kept whole; the second half is the tail, the last bytes printed.
    ``dropped`` is exactly the bytes printed minus the bytes kept.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._streams = {s: _StreamCapture(s, limit) for s in LogStream}
        self._lock = threading.Lock()
        self._untaken = 0
        self.cursor = ""
        self.complete = False  # The executor delivered the output to its end.

    def feed(self, piece: LogPiece) -> None:
        with self._lock:
            capture = self._streams[piece.stream]
            if piece.skipped:
                capture.skip(piece.skipped)
            if piece.data:
                capture.feed(piece.data)
                self._untaken += len(piece.data)
            if piece.cursor:
                self.cursor = piece.cursor

    @property
    def untaken(self) -> int:
        """Return how many bytes were fed since the last :meth:`take` (some may be dropped already)."""
        return self._untaken

    def take(self) -> list[CapturedChunk]:
        """Return what is new to store: head bytes as printed, and the freshest tail bytes."""
        with self._lock:
            self._untaken = 0
            return [chunk for capture in self._streams.values() for chunk in capture.take()]

    def final_tails(self) -> list[CapturedChunk]:
        """Return each stream's exact tail: stored tails are replaced by these once the output ended."""
        with self._lock:
            return [capture.final_tail() for capture in self._streams.values()]

    def total(self, stream: LogStream) -> int:
        """Return how many bytes the job printed on ``stream`` so far."""
        return self._streams[stream].buffer.total

    def dropped(self, stream: LogStream) -> int:
        """Return how many of them are not kept (the middle of a stream longer than the cap)."""
        buffer = self._streams[stream].buffer
        return buffer.total - len(buffer.head) - len(buffer.tail)

    def logs(self) -> ExecutionLogs:
        """Return both streams as the job's text fields hold them: head, a notice of the cut, tail."""
        with self._lock:
            return buffered_logs(
                self._streams[LogStream.STDOUT].buffer,
                self._streams[LogStream.STDERR].buffer,
                timestamps=False,
            )


# The cursor of an output read whole after the exit: nothing is left to follow.
END_CURSOR = "end"


def pieces_of(logs: ExecutionLogs) -> Iterator[LogPiece]:
    """Yield an executor's capped logs as pieces: each stream's head, then its tail after the cut.

    For executors that cannot follow output while it runs: what their own cap dropped is counted
    as skipped bytes, so the capture's dropped figure still covers it.
    """
    for stream, text, dropped in (
        (LogStream.STDOUT, logs.stdout, logs.stdout_dropped_bytes),
        (LogStream.STDERR, logs.stderr, logs.stderr_dropped_bytes),
    ):
        head, notice, tail = text.partition(truncation_notice(dropped)) if dropped else (text, "", "")
        if not notice:
            head, tail = text, ""
        yield LogPiece(stream, head.encode("utf-8", "surrogatepass"), cursor=END_CURSOR)
        if dropped:
            yield LogPiece(stream, tail.encode("utf-8", "surrogatepass"), skipped=dropped, cursor=END_CURSOR)


def followed_after_exit(
    wait_for_exit: Callable[[float], bool], read_logs: Callable[[], ExecutionLogs], cursor: str
) -> Iterator[LogPiece]:
    """The polling way to follow output: wait for the exit, then read the logs once.

    ``wait_for_exit(timeout)`` says whether the execution has exited; ``read_logs`` reads its
    capped logs without timestamps.
    """
    if cursor == END_CURSOR:
        return
    while not wait_for_exit(EXIT_WAIT_SECONDS):
        pass
    yield from pieces_of(read_logs())


class ReadAhead:
    """Output read as fast as the job writes it, held for a consumer that may be slower (or absent).

    A reader thread ``put``s; ``pieces`` yields to the consumer. Never blocks the writer: held bytes
    stay under ``limit`` per stream beyond each stream's head (the first half of ``limit``, always
    kept); past it the oldest held bytes are dropped and handed on as the next piece's ``skipped``,
    so a capture of the same ``limit`` keeps the same head and tail and counts the same drop.
    """

    def __init__(self, limit: int) -> None:
        self._head_limit = head_budget(limit)
        self._tail_limit = limit - self._head_limit
        self._held: dict[LogStream, list[bytearray]] = {s: [bytearray(), bytearray()] for s in LogStream}
        self._printed = dict.fromkeys(LogStream, 0)
        self._skipped = dict.fromkeys(LogStream, 0)
        self._delivered = dict.fromkeys(LogStream, 0)
        self._changed = threading.Condition()
        self._ended = False
        self.error: BaseException | None = None

    def put(self, stream: LogStream, data: bytes) -> None:
        with self._changed:
            head, rolling = self._held[stream]
            room = max(0, self._head_limit - self._printed[stream])
            head += data[:room]
            rolling += data[room:]
            self._printed[stream] += len(data)
            excess = len(rolling) - self._tail_limit
            if excess > 0:
                del rolling[:excess]
                self._skipped[stream] += excess
            self._changed.notify_all()

    def end(self, error: BaseException | None = None) -> None:
        """No more output: the stream ended (``error``: it broke)."""
        with self._changed:
            self._ended, self.error = True, error
            self._changed.notify_all()

    def take(self) -> list[LogPiece]:
        """Return what is held now (nothing if nothing is), each piece with its cursor."""
        with self._changed:
            return self._take()

    def _take(self) -> list[LogPiece]:
        batch = []
        for stream, (head, rolling) in self._held.items():
            skipped, self._skipped[stream] = self._skipped[stream], 0
            for data, gap in ((bytes(head), 0), (bytes(rolling), skipped)):
                if data or gap:
                    self._delivered[stream] += len(data) + gap
                    batch.append((stream, data, gap))
            head.clear()
            rolling.clear()
        cursor = f"{self._delivered[LogStream.STDOUT]}:{self._delivered[LogStream.STDERR]}"
        return [LogPiece(stream, data, skipped=gap, cursor=cursor) for stream, data, gap in batch]

    def _holding(self) -> bool:
        return any(head or rolling or self._skipped[s] for s, (head, rolling) in self._held.items())

    def pieces(self, poll: float = 1.0) -> Iterator[LogPiece]:
        """Yield what is held as it comes, with its cursor ("<stdout bytes>:<stderr bytes>"), until the end."""
        while True:
            with self._changed:
                while not self._ended and not self._holding():
                    self._changed.wait(poll)
                ended = self._ended
                batch = self._take()
            yield from batch
            if ended and not batch:
                return
