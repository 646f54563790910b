"""The Docker plugin reads stdout and stderr from one framed log body and keeps them apart exactly.

Checked against a parser that ignored the stream id: interleaved stderr text landed in stdout.
"""

from __future__ import annotations

import io

import pytest
from docker_executor.logs import FRAME_HEADER, STDERR_ID, STDOUT_ID, frame_payloads
from hypothesis import given
from hypothesis import strategies as st

from container_manager_core.errors import ExecutorError

frames = st.lists(st.tuples(st.sampled_from([STDOUT_ID, STDERR_ID]), st.binary(max_size=300)), max_size=20)


class Trickle(io.RawIOBase):
    """A body that hands out at most ``step`` bytes per read, as a socket may."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._step, self._at = data, step, 0

    def read(self, size: int = -1) -> bytes:
        size = self._step if size < 0 else min(size, self._step)
        piece = self._data[self._at : self._at + size]
        self._at += len(piece)
        return piece


def encode(chunks: list[tuple[int, bytes]]) -> bytes:
    return b"".join(FRAME_HEADER.pack(stream, len(data)) + data for stream, data in chunks)


@given(chunks=frames, step=st.integers(min_value=1, max_value=64))
def test_each_stream_gets_exactly_its_own_bytes_in_order(chunks: list[tuple[int, bytes]], step: int):
    received: dict[int, bytes] = {STDOUT_ID: b"", STDERR_ID: b""}
    for stream, piece in frame_payloads(Trickle(encode(chunks), step)):
        received[stream] += piece
    for stream in (STDOUT_ID, STDERR_ID):
        assert received[stream] == b"".join(data for s, data in chunks if s == stream)


def test_a_frame_of_an_unknown_stream_is_refused():
    with pytest.raises(ExecutorError, match="unknown stream 3"):
        list(frame_payloads(io.BytesIO(encode([(STDOUT_ID, b"ok"), (3, b"?")]))))


def test_a_body_cut_short_ends_with_what_arrived():
    body = encode([(STDOUT_ID, b"complete"), (STDERR_ID, b"cut here")])[:-3]
    assert list(frame_payloads(io.BytesIO(body))) == [(STDOUT_ID, b"complete"), (STDERR_ID, b"cut h")]
