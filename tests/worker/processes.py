"""Start and watch worker subprocesses against the test's PostgreSQL database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def require_postgres() -> None:
    """Skip without PostgreSQL (a subprocess cannot share SQLite's in-memory test database); fail in CI."""
    if connection.vendor != "postgresql":
        message = "Worker subprocess tests need PostgreSQL: set CM_TEST_DATABASE_URL."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def start_worker(
    args: Sequence[str], settings: dict[str, Any], *, log: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``process_container_jobs`` in a new process using the test database."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.worker.worker_settings",
        CM_WORKER_SETTINGS=json.dumps(settings),
        CM_WORKER_DB_NAME=str(connection.settings_dict["NAME"]),
        PYTHONUNBUFFERED="1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "django", "process_container_jobs", *args],
        cwd=ROOT,
        env=env,
        stdout=log or subprocess.DEVNULL,
        stderr=log or subprocess.STDOUT,
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until true; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout} s waiting for {what}.")
        time.sleep(interval)
