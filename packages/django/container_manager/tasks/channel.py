"""The result channel: how the runner in the container tells the backend what the task did.

The runner's last act is one line on the container's stdout, written to a copy of the file
descriptor it had at start (so a task that redirects ``sys.stdout`` or closes fd 1 cannot swallow
it), after flushing everything the task printed::

    {"container_manager_task_result": {"nonce": "...", "status": "SUCCESSFUL", "value": ...}}

The worker stores stdout as it stores any job's (head and tail kept under the log cap, so the last
line survives however much the task prints), and the backend reads the result back from it. The
line carries a per-job random nonce that only the job's environment holds: a task printing a line
of the same shape (say, the output of another task it ran) is not mistaken for its result. The
nonce is no defence against the task itself, which needs none: it decides its own return value.
The frame is also a JSON object line, so the job's ``parsed_output`` shows it in the admin.

Pure standard library: the runner imports this module inside the container.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from typing import Any, Final

# The environment variables the runner reads: the call, the nonce that signs its answer, and the
# workers of this attempt and the earlier ones (JSON, oldest first: TaskContext.attempt is its length).
CALL_VARIABLE: Final = "CM_TASK_CALL"
NONCE_VARIABLE: Final = "CM_TASK_NONCE"
WORKERS_VARIABLE: Final = "CM_TASK_WORKERS"
FRAME_KEY: Final = "container_manager_task_result"
_FRAME_PREFIX: Final = '{"' + FRAME_KEY + '"'
SUCCESSFUL: Final = "SUCCESSFUL"
FAILED: Final = "FAILED"


def new_nonce() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Outcome:
    """What the runner reported: a return value, or an exception's class path, message and traceback."""

    status: str
    value: Any = None
    exception_class: str = ""
    message: str = ""
    traceback: str = ""

    @property
    def successful(self) -> bool:
        return self.status == SUCCESSFUL


def frame(nonce: str, outcome: Outcome) -> bytes:
    """Return the line that reports ``outcome``; raise ValueError/TypeError if the value is not JSON."""
    body: dict[str, Any] = {"nonce": nonce, "status": outcome.status}
    if outcome.successful:
        body["value"] = outcome.value
    else:
        body |= {
            "exception_class": outcome.exception_class,
            "message": outcome.message,
            "traceback": outcome.traceback,
        }
    text = json.dumps({FRAME_KEY: body}, allow_nan=False, ensure_ascii=True, separators=(",", ":"))
    # A leading newline ends whatever partial line the task left unterminated.
    return b"\n" + text.encode("ascii") + b"\n"


def write_frame(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a pipe may take it in pieces)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def find_outcome(output: str, nonce: str) -> Outcome | None:
    """Return the outcome the runner reported in ``output``, or None if no line carries ``nonce``.

    The last matching line wins (a task's own output precedes it); lines of the same shape with
    another nonce, or that are not valid frames, are the task's output and are skipped.
    """
    if not nonce:
        return None
    for line in reversed(output.splitlines()):
        line = line.strip()
        if not line.startswith(_FRAME_PREFIX):
            continue
        try:
            body = json.loads(line)[FRAME_KEY]
        except (ValueError, KeyError, TypeError, RecursionError):
            continue
        if not isinstance(body, dict) or body.get("nonce") != nonce:
            continue
        if body.get("status") == SUCCESSFUL and "value" in body:
            return Outcome(SUCCESSFUL, value=body["value"])
        if body.get("status") == FAILED:
            return Outcome(
                FAILED,
                exception_class=str(body.get("exception_class", "")),
                message=str(body.get("message", "")),
                traceback=str(body.get("traceback", "")),
            )
    return None
