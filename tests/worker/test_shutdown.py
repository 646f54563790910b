"""SIGTERM makes a worker subprocess stop claiming, finish what runs within the grace period, and exit."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus
from tests.worker.conftest import FAST, make_job
from tests.worker.processes import require_postgres, start_worker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def running(job: ContainerJob) -> bool:
    return ContainerJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).exists()


def test_sigterm_finishes_running_jobs_and_claims_no_more(host: ExecutorHost, tmp_path: Path):
    require_postgres()
    first = make_job(host, env={"MOCK_DURATION": 2})
    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(["--concurrency", "1"], {**FAST, "SHUTDOWN_GRACE_SECONDS": 20}, log=log)
        try:
            wait_for(lambda: running(first), 30, "the first job to run")
            second = make_job(host)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0
        finally:
            worker.kill()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == JobStatus.COMPLETED
    assert second.status == JobStatus.PENDING  # Claiming stopped at the signal.
    assert "event=shutdown_requested" in (tmp_path / "worker.log").read_text()


def test_after_the_grace_period_the_rest_is_left_for_reconciliation(host: ExecutorHost):
    require_postgres()
    job = make_job(host, env={"MOCK_DURATION": 60})
    worker = start_worker([], {**FAST, "SHUTDOWN_GRACE_SECONDS": 1})
    try:
        wait_for(lambda: running(job), 30, "the job to run")
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
    finally:
        worker.kill()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING  # Still owned; its lease runs out and another worker adopts it.


def test_a_second_signal_exits_at_once(host: ExecutorHost):
    require_postgres()
    job = make_job(host, env={"MOCK_DURATION": 60})
    worker = start_worker([], {**FAST, "SHUTDOWN_GRACE_SECONDS": 60})
    try:
        wait_for(lambda: running(job), 30, "the job to run")
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=0.5)  # The first signal waits for the running job.
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        worker.kill()
