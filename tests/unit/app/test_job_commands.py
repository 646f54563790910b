"""The terminal's cancel_job, retry_job and job_logs: what they do, and their errors for bad ids and states."""

from __future__ import annotations

import io
import re
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from container_manager.executors.registry import get_plugin_manager
from container_manager.models import ContainerJob
from container_manager.states import JobStatus, TerminationReason
from tests.factories import advance, make_job

pytestmark = pytest.mark.django_db

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", ["cancel_job", "retry_job", "job_logs"])
def test_an_unknown_or_malformed_id_is_a_clear_error(command, db):
    with pytest.raises(CommandError, match=re.escape(f"No job with id '{UNKNOWN}'.")):
        run(command, UNKNOWN)
    with pytest.raises(CommandError, match=re.escape("'42' is not a job id: a job id is a UUID.")):
        run(command, "42")


def test_cancel_job_cancels_a_queued_job_and_asks_the_worker_to_stop_a_running_one(host):
    queued = make_job(host=host, name="queued")
    running = advance(make_job(host=host, name="running"), JobStatus.RUNNING)
    assert run("cancel_job", str(queued.pk))[0] == "queued: cancelled before launch.\n"
    assert run("cancel_job", str(running.pk))[0] == "running: asked the worker to stop it.\n"
    queued.refresh_from_db()
    running.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED
    assert running.status == JobStatus.RUNNING and running.cancel_requested_at is not None


def test_cancel_job_refuses_a_finished_job(host):
    done = advance(make_job(host=host, name="done"), JobStatus.COMPLETED)
    with pytest.raises(CommandError, match=re.escape("done: already completed.")):
        run("cancel_job", str(done.pk))


def test_retry_job_requeues_a_finished_job_and_refuses_an_active_one(host):
    failed = advance(make_job(host=host, name="failed"), JobStatus.FAILED)
    assert run("retry_job", str(failed.pk))[0] == "failed: re-queued.\n"
    failed.refresh_from_db()
    assert failed.status == JobStatus.PENDING
    with pytest.raises(CommandError, match=re.escape("failed: only a finished job can be retried.")):
        run("retry_job", str(failed.pk))


def test_job_logs_prints_each_stream_where_it_belongs(host):
    job = advance(make_job(host=host), JobStatus.COMPLETED)
    ContainerJob.objects.filter(pk=job.pk).update(stdout_log="t1 out\n", stderr_log="t1 err\n")
    assert run("job_logs", str(job.pk)) == ("t1 out\n", "t1 err\n")


@pytest.mark.django_db(transaction=True)  # the finisher thread writes through its own connection
def test_job_logs_follow_prints_as_the_job_runs_and_exits_when_it_ends(host):
    job = advance(
        make_job(host=host, environment_vars={"MOCK_STDOUT": "live", "MOCK_DURATION": "60"}),
        JobStatus.LAUNCHING,
    )
    execution = get_plugin_manager().launch_job(host.to_spec(), job.to_spec())
    job.mark_running(job.owner(), execution_id=execution.execution_id)

    def finish_later() -> None:
        try:
            time.sleep(0.5)
            live = get_plugin_manager().get_logs(host.to_spec(), execution.execution_id, timestamps=True)
            job.record_exit(
                job.owner(),
                TerminationReason.COMPLETED,
                result={"exit_code": 0, "stdout_log": live.stdout + "2026-01-01T00:00:09Z after\n"},
            )
        finally:
            connection.close()  # the thread's own connection, or the test database cannot be dropped

    finisher = threading.Thread(target=finish_later)
    finisher.start()
    started = time.monotonic()
    out, err = run("job_logs", str(job.pk), "--follow", "--interval", "0.1")
    finisher.join()
    assert time.monotonic() - started < 5
    lines = out.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["live", "after"]  # each printed once
    assert err == "==> test-job: completed, Completed, exit code 0\n"


@pytest.mark.parametrize("interval", ["0", "-1", "nan", "inf"])
def test_job_logs_refuses_an_interval_that_is_not_a_positive_number(host, interval):
    job = make_job(host=host)
    with pytest.raises(
        CommandError, match=rf"argument --interval: invalid positive float value: '{interval}'"
    ):
        run("job_logs", str(job.pk), "--follow", "--interval", interval)
