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

import docker

from container_manager_core.errors import ExecutorError
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
