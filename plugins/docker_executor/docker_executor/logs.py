"""Read a container's stdout and stderr separately, streaming each into a head-and-tail cap.

docker-py's ``logs(stream=True)`` turns the socket timeout off ("for long running processes"), so a
stalled engine would hang the reader forever, and its stream's ``close()`` leaves the socket open
once the body is read. The same endpoint is read here through the session, with a read timeout.
"""

from __future__ import annotations

import struct
import urllib.parse
from collections.abc import Iterator
from typing import Protocol

import attrs
import docker

from container_manager_core.errors import ExecutorError
from container_manager_core.logstream import LogPiece, LogStream
from container_manager_core.logtext import HeadTailBuffer, buffered_logs
from container_manager_core.types import ExecutionLogs
from docker_executor.engine_errors import api_url, raise_for_engine_status

# Non-TTY log bodies are framed: stream id (1 stdout, 2 stderr), three zero bytes, big-endian length.
FRAME_HEADER = struct.Struct(">BxxxL")
STDOUT_ID, STDERR_ID = 1, 2
# Large frames are read in pieces so memory stays near the cap whatever the engine sends.
_PIECE = 64 * 1024


class _Readable(Protocol):
    def read(self, amt: int) -> bytes: ...


def _read_exact(raw: _Readable, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = raw.read(size - len(data))
        if not piece:
            break
        data += piece
    return data


def frame_payloads(raw: _Readable) -> Iterator[tuple[int, bytes]]:
    """Yield ``(stream id, payload piece)`` from a framed log body, refusing unknown stream ids."""
    while True:
        header = _read_exact(raw, FRAME_HEADER.size)
        if len(header) < FRAME_HEADER.size:
            return
        stream_id, length = FRAME_HEADER.unpack(header)
        if stream_id not in (STDOUT_ID, STDERR_ID):
            raise ExecutorError(f"The engine sent a log frame of unknown stream {stream_id!r}.")
        while length > 0:
            piece = raw.read(min(length, _PIECE))
            if not piece:
                return
            length -= len(piece)
            yield stream_id, piece


def read_logs(
    api: docker.APIClient, container_id: str, *, timestamps: bool, limit: int, timeout: float
) -> ExecutionLogs:
    """Return both streams of a container, each capped at ``limit`` bytes (head and tail).

    One request for both: every frame names its stream, so they are kept apart exactly (no guessing
    from the words), and streaming into the buffers keeps memory near ``limit`` however much the job
    wrote.
    """
    params: dict[str, int | str] = {
        "stdout": 1,
        "stderr": 1,
        "timestamps": int(timestamps),
        "follow": 0,  # never wait for more output from a running job
        "tail": "all",
    }
    url = api_url(api, f"/containers/{urllib.parse.quote(container_id, safe='')}/logs")
    buffers = {STDOUT_ID: HeadTailBuffer(limit), STDERR_ID: HeadTailBuffer(limit)}
    with api.get(url, params=params, stream=True, timeout=(timeout, timeout)) as response:
        raise_for_engine_status(response)
        for stream_id, piece in frame_payloads(response.raw):
            buffers[stream_id].feed(piece)
    return buffered_logs(buffers[STDOUT_ID], buffers[STDERR_ID], timestamps=timestamps)


# Followed output is read in pieces as the engine sends them, parsed into frames locally: one
# request per job, and no system call per line of a chatty job.
_READ_SIZE = 256 * 1024
STREAMS = {STDOUT_ID: LogStream.STDOUT, STDERR_ID: LogStream.STDERR}


def framed_messages(raw: _Readable) -> Iterator[list[tuple[int, bytes]]]:
    """Yield the complete frames of a framed log body as they arrive, a batch per read.

    With ``timestamps`` each frame is one log message of the engine: a whole line, or a piece of a
    line the engine split (at 16 KiB), which then has no final newline.
    """
    read = getattr(raw, "read1", raw.read)
    buffer = bytearray()
    while piece := read(_READ_SIZE):
        buffer += piece
        batch, start = [], 0
        while len(buffer) - start >= FRAME_HEADER.size:
            stream_id, length = FRAME_HEADER.unpack_from(buffer, start)
            end = start + FRAME_HEADER.size + length
            if end > len(buffer):
                break
            if stream_id not in STREAMS:
                raise ExecutorError(f"The engine sent a log frame of unknown stream {stream_id!r}.")
            batch.append((stream_id, bytes(buffer[start + FRAME_HEADER.size : end])))
            start = end
        del buffer[:start]
        if batch:
            yield batch


@attrs.frozen
class FollowCursor:
    """Where a follow resumes: how many bytes of each stream were read ("<stdout>:<stderr>")."""

    stdout: int = 0
    stderr: int = 0

    @classmethod
    def parse(cls, text: str) -> FollowCursor:
        if not text:
            return cls()
        out, _, err = text.partition(":")
        if not (out.isdigit() and err.isdigit()):
            raise ExecutorError(f"Unreadable log cursor {text!r}: expected '<stdout bytes>:<stderr bytes>'.")
        return cls(int(out), int(err))

    def __str__(self) -> str:
        return f"{self.stdout}:{self.stderr}"


def followed_pieces(raw: _Readable, cursor: str) -> Iterator[LogPiece]:
    """Yield a framed stream of the job's own bytes as pieces, skipping what ``cursor`` says was read.

    Consecutive frames of one stream become one piece; each piece carries the cursor after it.
    """
    start = FollowCursor.parse(cursor)
    skip = {STDOUT_ID: start.stdout, STDERR_ID: start.stderr}
    seen = dict(skip)
    for batch in framed_messages(raw):
        pieces: list[tuple[int, bytearray]] = []
        for stream_id, message in batch:
            data = memoryview(message)
            if skip[stream_id]:
                cut = min(skip[stream_id], len(data))
                skip[stream_id] -= cut
                data = data[cut:]
            if not data:
                continue
            seen[stream_id] += len(data)
            if pieces and pieces[-1][0] == stream_id:
                pieces[-1][1].extend(data)
            else:
                pieces.append((stream_id, bytearray(data)))
        after = str(FollowCursor(seen[STDOUT_ID], seen[STDERR_ID]))
        for stream_id, joined in pieces:
            yield LogPiece(STREAMS[stream_id], bytes(joined), cursor=after)


def follow_logs(
    api: docker.APIClient, container_id: str, *, cursor: str, timeout: float
) -> Iterator[LogPiece]:
    """Yield the container's output from the engine's own copy, following it until the container exits.

    The way to follow a container this worker did not attach to before its start (adopted, or
    resumed after a broken connection): without timestamps the engine gives the job's own bytes,
    a line it split at 16 KiB whole again; the bytes ``cursor`` counts as read are skipped. What
    the engine's log rotation removed before this read is beyond reach. A read that waits
    ``timeout`` seconds on a silent job raises (``UNREACHABLE``); the caller resumes.
    """
    params: dict[str, int | str] = {"stdout": 1, "stderr": 1, "timestamps": 0, "follow": 1, "tail": "all"}
    url = api_url(api, f"/containers/{urllib.parse.quote(container_id, safe='')}/logs")
    with api.get(url, params=params, stream=True, timeout=(timeout, timeout)) as response:
        raise_for_engine_status(response)
        yield from followed_pieces(response.raw, cursor)
