"""The runner inside the task's container: ``python -m container_manager.tasks.run``.

It reads the call from the environment (never the network: it works with network ``none``),
imports the task by module path, calls it, and reports the return value or the exception on the
result channel (``channel.py``). Exit status 0 when the task returned, 1 when it raised, so the
job's own status and retries follow the task's.

Django is configured from ``DJANGO_SETTINGS_MODULE`` when the queue's profile sets it; otherwise
with the least the ``@task`` decorator needs (the task's backend alias, answered by Django's
``DummyBackend``): the task module is imported, the project's database is not.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import traceback
from typing import Any

from django.tasks import TaskContext, TaskResult, TaskResultStatus
from django.utils.json import normalize_json

from container_manager.tasks import channel

# Answers the ``@task`` decorator's validation when the project's settings are not in the image.
_DUMMY_BACKEND = "django.tasks.backends.dummy.DummyBackend"


def _configure_django(alias: str) -> None:
    import django
    from django.conf import settings

    if not os.environ.get("DJANGO_SETTINGS_MODULE") and not settings.configured:
        settings.configure(
            USE_TZ=True,
            INSTALLED_APPS=[],
            TASKS={alias: {"BACKEND": _DUMMY_BACKEND, "QUEUES": []}},
        )
    django.setup()


def _call(call: dict[str, Any], worker_ids: list[str]) -> Any:
    from django.utils import timezone
    from django.utils.module_loading import import_string

    task = import_string(call["path"])
    args, kwargs = list(call["args"]), dict(call["kwargs"])
    if not getattr(task, "takes_context", False):
        return task.call(*args, **kwargs)
    now = timezone.now()
    # What the container knows of its own result: the call, and the workers of its attempts so far.
    result: TaskResult[..., Any] = TaskResult(
        task=task,
        id=call["id"],
        status=TaskResultStatus.RUNNING,
        enqueued_at=None,
        started_at=now,
        last_attempted_at=now,
        finished_at=None,
        args=args,
        kwargs=kwargs,
        backend=call["backend"],
        errors=[],
        worker_ids=worker_ids,
    )
    return task.call(TaskContext(task_result=result), *args, **kwargs)


def _worker_ids(raw: str) -> list[str]:
    """The attempts' workers the job passed, else this container's host name (one attempt)."""
    try:
        ids = json.loads(raw) if raw else []
    except ValueError:
        ids = []
    if isinstance(ids, list) and ids and all(isinstance(item, str) for item in ids):
        return ids
    return [socket.gethostname()]


def _failure(exc: BaseException) -> channel.Outcome:
    kind = type(exc)
    return channel.Outcome(
        channel.FAILED,
        exception_class=f"{kind.__module__}.{kind.__qualname__}",
        message=str(exc),
        traceback="".join(traceback.format_exception(exc)),
    )


def main() -> int:
    # The original stdout, kept before the task can redirect or close it: the frame goes there.
    result_fd = os.dup(1)
    nonce = os.environ.pop(channel.NONCE_VARIABLE, "")
    raw_call = os.environ.pop(channel.CALL_VARIABLE, "")
    worker_ids = _worker_ids(os.environ.pop(channel.WORKERS_VARIABLE, ""))
    if not nonce or not raw_call:
        sys.stderr.write(
            f"{channel.CALL_VARIABLE} and {channel.NONCE_VARIABLE} must be set: start me as a task job.\n"
        )
        return 2
    call = json.loads(raw_call)
    try:
        _configure_django(call["backend"])
        outcome = channel.Outcome(channel.SUCCESSFUL, value=normalize_json(_call(call, worker_ids)))
        data = channel.frame(nonce, outcome)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: the task ended without a value
        outcome = _failure(exc)
        data = channel.frame(nonce, outcome)
    for stream in (sys.stdout, sys.stderr):
        # The task may have closed or broken it; the frame does not need it.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    channel.write_frame(result_fd, data)
    return 0 if outcome.successful else 1


if __name__ == "__main__":
    sys.exit(main())
