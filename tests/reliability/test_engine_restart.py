"""The Docker Engine restarts while jobs run: no job is lost, and the restart is not the job's failure.

The interruption is recorded (interruption_count) and the jobs run again without using a retry.
It runs on a private dockerd, so the machine's shared engine is never restarted (restarted with
SIGTERM and the same command line, as an operator would). Checked against a worker that did not
remember the outage (Tracked.interrupted never set): every job ended failed, non_zero_exit 143.
It also caught a real bug: the relaunch adopted the old container while the harvest's cleanup
was still removing it (the job then vanished and failed as host_lost).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from container_manager.models import ContainerJob
from container_manager.states import FINISHED_STATUSES, JobStatus, TerminationReason
from tests.dockertools import build_test_image
from tests.reliability.conftest import make_docker_host, make_docker_job
from tests.reliability.private_dockerd import PrivateDockerd, private_dockerd
from tests.worker.processes import start_worker, wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

JOBS = 4


@pytest.fixture
def engine() -> Iterator[PrivateDockerd]:
    with private_dockerd() as daemon:
        yield daemon


def test_jobs_survive_an_engine_restart(
    engine: PrivateDockerd, worker_settings: dict[str, Any], tmp_path: Path
):
    with engine.client() as client:
        image = build_test_image(client)
    host = make_docker_host("restarting-docker", base_url=engine.base_url)
    jobs = [make_docker_job(image, "sleep 8; echo done", host, max_retries=0) for _ in range(JOBS)]
    ids = [job.pk for job in jobs]
    running = ContainerJob.objects.filter(pk__in=ids, status=JobStatus.RUNNING)
    finished = ContainerJob.objects.filter(pk__in=ids, status__in=FINISHED_STATUSES)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = start_worker(["--concurrency", str(JOBS)], worker_settings, log=log)
        try:
            wait_for(lambda: running.count() == JOBS, 60, "every job to run")
            time.sleep(1)
            engine.stop()  # Stops the containers (exit 143), then the engine exits.
            time.sleep(2)  # The worker sees the engine gone.
            engine.start()
            wait_for(lambda: finished.count() == JOBS, 120, "every job to finish after the restart")
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=30)
    text = log_path.read_text()
    assert code == 0, text[-3000:]
    for job in ContainerJob.objects.filter(pk__in=ids):
        assert (job.status, job.termination_reason, job.exit_code) == (
            JobStatus.COMPLETED,
            TerminationReason.COMPLETED,
            0,
        ), text[-3000:]
        assert job.interruption_count >= 1
        assert job.retry_count == 0  # Not the job's failure.
        assert "done" in job.stdout_log
    host.refresh_from_db()
    assert host.healthy  # Marked unhealthy while the engine was down, back once it answered.
    assert "event=host_unhealthy" in text
