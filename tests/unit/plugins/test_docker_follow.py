"""The Docker plugin's followed output: framed bytes become the job's own, a cursor skips what was read."""

from __future__ import annotations

import struct

from docker_executor.logs import followed_pieces
from hypothesis import given, settings
from hypothesis import strategies as st

FRAME = struct.Struct(">BxxxL")


class _Body:
    def __init__(self, data: bytes, size: int) -> None:
        self._data, self._size = data, size

    def read(self, amount: int) -> bytes:
        piece, self._data = self._data[: min(amount, self._size)], self._data[min(amount, self._size) :]
        return piece


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(min_size=1, max_size=20)), max_size=20),
    st.integers(1, 50),
    st.integers(0, 60),
    st.integers(0, 60),
)
def test_followed_frames_are_the_jobs_bytes_and_a_cursor_skips_what_was_read(
    frames: list[tuple[int, bytes]], read_size: int, skip_out: int, skip_err: int
) -> None:
    body = b"".join(FRAME.pack(sid, len(data)) + data for sid, data in frames)
    got: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    cursor = ""
    for piece in followed_pieces(_Body(body, read_size), f"{skip_out}:{skip_err}"):
        got[piece.stream] += piece.data
        cursor = piece.cursor
    out = b"".join(d for s, d in frames if s == 1)
    err = b"".join(d for s, d in frames if s == 2)
    assert got == {"stdout": out[skip_out:], "stderr": err[skip_err:]}
    if cursor:
        assert cursor == f"{max(len(out), skip_out)}:{max(len(err), skip_err)}"
