"""process_container_jobs prints its events on stderr when the project's LOGGING does not handle them."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import pytest
from django.core.management import call_command
from django.db import connection

from container_manager.models import ExecutorHost
from tests.worker.conftest import FAST, make_job
from tests.worker.processes import ROOT, require_postgres

APP = "container_manager"
INFO_LINE = "INFO    event=finished"
DEBUG_LINE = "DEBUG   event=worker_settings"


def run_worker(*args: str) -> str:
    """Run ``process_container_jobs --once`` in a process whose settings have no LOGGING; return stderr."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.worker.quiet_settings",
        CM_WORKER_SETTINGS=json.dumps(FAST),
        CM_WORKER_DB_NAME=str(connection.settings_dict["NAME"]),
    )
    done = subprocess.run(
        [sys.executable, "-m", "django", "process_container_jobs", "--once", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # Logs go to stderr, as runserver's and Celery's do.
    return done.stderr


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestWithoutLogging:
    """A project fresh from pip: Django's default LOGGING, which configures the django loggers only."""

    def test_default_verbosity_prints_info_events(self, host: ExecutorHost) -> None:
        require_postgres()
        job = make_job(host)
        stderr = run_worker()
        assert "INFO    event=worker_started" in stderr
        assert f"INFO    event=claimed job={job.pk} " in stderr
        assert f"{INFO_LINE} job={job.pk} " in stderr
        assert DEBUG_LINE not in stderr
        # Time first, then the level: "2025-01-31 12:00:00 INFO    event=...".
        first = stderr.splitlines()[0]
        assert first[4] == "-" and first[13] == ":" and first[20:24] in {"INFO", "WARN", "DEBU"}, first

    def test_verbosity_0_prints_only_warnings(self, host: ExecutorHost) -> None:
        require_postgres()
        make_job(host)
        make_job(host, env={"MOCK_LAUNCH_ERROR": "no room"})  # A failed launch is logged as a WARNING.
        stderr = run_worker("-v", "0")
        assert "WARNING event=launch_failed" in stderr
        assert " INFO " not in stderr and " DEBUG " not in stderr

    @pytest.mark.parametrize("verbosity", ["2", "3"])
    def test_verbosity_2_and_3_print_debug_events(self, host: ExecutorHost, verbosity: str) -> None:
        require_postgres()
        make_job(host)
        stderr = run_worker("-v", verbosity)
        assert DEBUG_LINE in stderr
        assert INFO_LINE in stderr


@contextmanager
def unconfigured_root() -> Iterator[None]:
    """Take pytest's capture handlers off the root logger, so only what a test configures handles records."""
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in saved:
            root.addHandler(handler)


class Collect(logging.Handler):
    """A project's own handler: keeps the records and how many handlers the app logger had meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.app_handlers: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.app_handlers.add(len(logging.getLogger(APP).handlers))


def test_repeated_runs_print_each_line_once_and_leave_no_handler(
    host: ExecutorHost, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger(APP)
    with unconfigured_root():
        for _ in range(3):
            make_job(host)
            call_command("process_container_jobs", once=True)
    stderr = capsys.readouterr().err
    assert stderr.count("event=worker_started") == 3
    assert stderr.count(INFO_LINE) == 3
    assert logger.handlers == [] and logger.level == logging.NOTSET


@pytest.mark.parametrize("configured", [APP, f"{APP}.worker", ""])
def test_a_configured_logger_is_left_alone(
    host: ExecutorHost, capsys: pytest.CaptureFixture[str], configured: str
) -> None:
    """Handlers on the app logger, on one below it, or on the root: no second handler, no level change."""
    project = logging.getLogger(configured or None)
    collect, level = Collect(), project.level
    project.addHandler(collect)
    project.setLevel(logging.INFO)
    make_job(host)
    # pytest's own handlers sit on the root: keep them only where the root is the configured logger.
    root: AbstractContextManager[None] = unconfigured_root() if configured else nullcontext()
    try:
        with root:
            call_command("process_container_jobs", once=True, verbosity=3)
    finally:
        project.removeHandler(collect)
        project.setLevel(level)
    assert any(m.startswith("event=finished") for m in collect.messages)
    assert not any(m.startswith("event=worker_settings") for m in collect.messages)  # INFO stayed INFO.
    assert collect.app_handlers == {1 if configured == APP else 0}
    assert "event=" not in capsys.readouterr().err
