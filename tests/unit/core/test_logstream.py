"""LogCapture keeps each stream's head and tail of the job's own bytes and counts the rest exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from container_manager_core.logstream import LogCapture, LogPart, LogPiece, LogStream, ReadAhead, pieces_of
from container_manager_core.logtext import HeadTailBuffer, buffered_logs, head_budget

pieces = st.lists(st.tuples(st.sampled_from(list(LogStream)), st.binary(max_size=40)), max_size=30)


def _stored(chunks: list, stream: LogStream) -> dict[int, bytes]:
    return {c.offset: c.data for c in chunks if c.stream == stream}


@settings(deadline=None)
@given(pieces, st.integers(min_value=0, max_value=64), st.lists(st.integers(0, 30), max_size=5))
def test_head_tail_and_dropped_are_exact_whenever_what_is_new_is_taken(
    fed: list[tuple[LogStream, bytes]], limit: int, take_after: list[int]
) -> None:
    capture = LogCapture(limit)
    taken = []
    for index, (stream, data) in enumerate(fed):
        capture.feed(LogPiece(stream, data))
        if index in take_after:
            taken.extend(capture.take())
    taken.extend(capture.take())
    head_limit = head_budget(limit)
    for stream in LogStream:
        printed = b"".join(data for s, data in fed if s == stream)
        head = printed[:head_limit]
        tail_size = min(len(printed) - len(head), limit - head_limit)
        tail = printed[len(printed) - tail_size :]
        assert capture.total(stream) == len(printed)
        assert capture.dropped(stream) == len(printed) - len(head) - len(tail)
        # The head is stored as printed, contiguous from byte 0, each byte once.
        head_chunks = [c for c in taken if c.stream == stream and c.part is LogPart.HEAD]
        assert b"".join(c.data for c in sorted(head_chunks, key=lambda c: c.offset)) == head
        # Every tail chunk is the bytes printed at its offset.
        for chunk in taken:
            if chunk.stream == stream and chunk.part is LogPart.TAIL:
                assert printed[chunk.offset : chunk.offset + len(chunk.data)] == chunk.data
        (final,) = [c for c in capture.final_tails() if c.stream == stream]
        assert (final.offset, final.data) == (len(printed) - len(tail), tail)


@settings(deadline=None)
@given(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300), st.integers(1, 100)
)
def test_logs_read_whole_at_the_exit_become_pieces_that_keep_the_cut(printed: str, limit: int) -> None:
    # Text without replacements, so the byte counts of the capped logs are the job's.
    text = printed.encode()
    buffer = HeadTailBuffer(limit)
    buffer.feed(text)
    other = HeadTailBuffer(limit)
    logs = buffered_logs(buffer, other, timestamps=False)
    capture = LogCapture(limit)
    for piece in pieces_of(logs):
        capture.feed(piece)
    assert capture.total(LogStream.STDOUT) == len(text)
    assert capture.dropped(LogStream.STDOUT) == logs.stdout_dropped_bytes
    assert capture.logs().stdout == logs.stdout


def test_a_gap_closes_the_head_and_counts_as_dropped() -> None:
    capture = LogCapture(8)
    capture.feed(LogPiece("stdout", b"ab"))
    capture.feed(LogPiece("stdout", b"xyz", skipped=10))
    assert (capture.total(LogStream.STDOUT), capture.dropped(LogStream.STDOUT)) == (15, 10)
    assert capture.logs().stdout == "ab\n[... 10 bytes dropped by the log cap ...]\nxyz"


@settings(deadline=None)
@given(pieces, st.integers(min_value=0, max_value=64), st.lists(st.integers(0, 30), max_size=5))
def test_read_ahead_loses_nothing_a_capture_would_keep_however_late_it_is_read(
    fed: list[tuple[LogStream, bytes]], limit: int, read_after: list[int]
) -> None:
    ahead, direct, through = ReadAhead(limit), LogCapture(limit), LogCapture(limit)
    delivered = ahead.pieces(poll=0.001)
    for index, (stream, data) in enumerate(fed):
        ahead.put(stream, data)
        direct.feed(LogPiece(stream, data))
        if index in read_after:  # a consumer that reads now and then, behind the writer
            for piece in ahead.take():
                through.feed(piece)
    ahead.end()
    for piece in delivered:
        through.feed(piece)
    assert through.logs() == direct.logs()
    for stream in LogStream:
        assert (through.total(stream), through.dropped(stream)) == (
            direct.total(stream),
            direct.dropped(stream),
        )
