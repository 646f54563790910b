"""Attach to a container's output before it starts, so every byte it writes is read as it is written.

The engine's logs endpoint reads its ``json-file`` copy, which its rotation cuts while a chatty
job runs (and which Engine 20.10 reads at a few MB/s, JSON-decoding every line, sometimes ending
a follow early after a rotation). An attachment made between create and start gets the process's
output itself, framed per write, independent of the log driver: the head cannot be rotated away
and the count of bytes is exact. It is handed to ``follow_logs`` once; a container without one
(adopted by another worker, or an attachment that broke) is followed through the logs endpoint.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import urllib.parse
from typing import Any

import docker

from container_manager_core.logstream import ReadAhead
from docker_executor.engine_errors import api_url
from docker_executor.logs import STREAMS, framed_messages

logger = logging.getLogger("docker_executor.attach")

# Attachments nobody took (a launch whose follower never came) are closed after this long.
UNCLAIMED_SECONDS = 600.0


class Attachment:
    """The open output stream of one container, read by its own thread as fast as it is written.

    Never read by the job's consumer directly: a consumer that is slow, or never comes, must not
    block the job's writes. What is read waits in ``output`` (bounded: see ``ReadAhead``).
    """

    def __init__(self, response: Any, container_id: str, limit: int) -> None:
        self._response = response  # kept: if collected, it would close the connection
        # The connection now carries this container's output alone: it must never go back to the
        # pool (urllib3 would hand it to the next request, or keep it dead once this one is closed).
        response.raw._pool = None
        reader: Any = response.raw._fp.fp  # the buffered reader past the HTTP headers
        self._socket: socket.socket | None = getattr(reader.raw, "_sock", None)
        if self._socket is not None:
            # Blocking: a silent job may write nothing for hours; close() ends a read at any time.
            self._socket.settimeout(None)
        self.output = ReadAhead(limit)
        self.opened = time.monotonic()
        self._thread = threading.Thread(
            target=self._read, args=(reader,), name=f"attach-{container_id[:12]}", daemon=True
        )
        self._thread.start()

    def _read(self, reader: Any) -> None:
        try:
            for batch in framed_messages(reader):
                for stream_id, data in batch:
                    self.output.put(STREAMS[stream_id], data)
        except Exception as exc:  # A broken connection: the follower resumes from the engine's copy.
            self.output.end(exc)
            return
        self.output.end()

    def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
            self._socket.close()
        with contextlib.suppress(Exception):
            self._response.close()


class Attachments:
    """Attachments made at launch, by container id, from the start until their follower is done."""

    def __init__(self) -> None:
        self._open: dict[str, Attachment] = {}
        self._taken: set[str] = set()
        self._lock = threading.Lock()

    def attach(self, api: docker.APIClient, container_id: str, limit: int) -> None:
        """Attach to a created container's stdout and stderr; a failure only means no attachment.

        ``limit``: the host's ``log_cap_bytes``, which bounds what waits for the follower.
        """
        url = api_url(api, f"/containers/{urllib.parse.quote(container_id, safe='')}/attach")
        params = {"stdout": 1, "stderr": 1, "stream": 1, "logs": 0}
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        try:
            response = api.post(url, params=params, headers=headers, stream=True)
            response.raise_for_status()
            attachment = Attachment(response, container_id, limit)
        except Exception as exc:  # Followed through the logs endpoint instead.
            logger.warning("Could not attach to container %r before its start: %s", container_id, exc)
            return
        with self._lock:
            self._close_unclaimed()
            self._open[container_id] = attachment

    def take(self, container_id: str) -> Attachment | None:
        """Return the container's attachment once; it stays open until :meth:`close`."""
        with self._lock:
            if container_id in self._taken:
                return None
            attachment = self._open.get(container_id)
            if attachment is not None:
                self._taken.add(container_id)
            return attachment

    def close(self, container_id: str) -> None:
        """Close the container's attachment: read to its end, or the container is going away."""
        with self._lock:
            attachment = self._open.pop(container_id, None)
            self._taken.discard(container_id)
        if attachment is not None:
            attachment.close()

    def _close_unclaimed(self) -> None:
        now = time.monotonic()
        for container_id, attachment in list(self._open.items()):
            if container_id not in self._taken and now - attachment.opened > UNCLAIMED_SECONDS:
                del self._open[container_id]
                attachment.close()
