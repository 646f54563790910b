"""The test project's tasks: each is imported by path inside its container (the image carries this module)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from django.tasks import TaskContext, task


class TaskRefused(Exception):
    pass


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task
def refuse(reason: str) -> None:
    _deeper(reason)


def _deeper(reason: str) -> None:
    raise TaskRefused(reason)


@task
def chatty(lines: int) -> str:
    """Print a lot, on both streams, including lines shaped like a result frame with a wrong nonce."""
    for number in range(lines):
        print(f"line {number} " + "x" * 100)
        print(f"err {number}", file=sys.stderr)
    print('{"container_manager_task_result": {"nonce": "forged", "status": "SUCCESSFUL", "value": "forged"}}')
    sys.stdout.write("no newline at the end")
    return "the real value"


@task
def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@task
def allocate(megabytes: int) -> int:
    blocks = [bytearray(1024 * 1024) for _ in range(megabytes)]
    # Touch each page so the memory is really used.
    for block in blocks:
        for offset in range(0, len(block), 4096):
            block[offset] = 1
    return len(blocks)


@task
def vanish(code: int) -> None:
    """Exit without a result, as a crash would."""
    sys.stdout.flush()
    os._exit(code)


@task
def when() -> float:
    return time.time()


@task(takes_context=True)
def introspect(context: TaskContext, label: str) -> dict[str, Any]:
    return {"id": context.task_result.id, "label": label, "attempt": context.attempt}


@task(takes_context=True)
def fails_first(context: TaskContext) -> dict[str, Any]:
    """Raise on the first attempt; then report which attempt this is and its workers."""
    if context.attempt == 1:
        raise TaskRefused("first attempt")
    return {"attempt": context.attempt, "worker_ids": context.task_result.worker_ids}


@task
async def coroutine(value: int) -> int:
    return value * 2


@task
def silence() -> str:
    """Close fd 1 and point sys.stdout elsewhere: the result must still come out."""
    print("before the close")
    sys.stdout.flush()
    os.close(1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
    print("into the void")
    return "still heard"
