"""Several worker processes race on one queue: every job runs exactly once and none is lost.

The issue asks for 4 workers on 1000 jobs. On a 2-core machine the hardened engine runs about 4-5
containers a second, so that takes about 4 minutes: set CM_RACE_JOBS=1000 to run it (measured:
237 s, every job started once, none lost). The default suite runs the same test on 120 jobs.

Checked against a read-then-write claim (no status guard in the UPDATE, no row locks): 12 of 120 jobs
were claimed twice (attempt 2). The engine's name-based adoption kept their starts at one, which
is why the attempt is asserted as well as the start count.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import FINISHED_STATUSES, JobStatus
from tests.reliability.conftest import StartCounter, make_docker_job, managed_containers
from tests.worker.processes import start_worker, wait_for

RACE_JOBS = int(os.environ.get("CM_RACE_JOBS", "120"))

pytestmark = [
    pytest.mark.docker,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    # The suite's 300 s cap is for one stuck test; this one's length grows with its size, and its own
    # wait below (60 s + 1 s a job) is what decides. Past that, plus set-up, something is stuck.
    pytest.mark.timeout(RACE_JOBS + 180),
]

WORKERS = 4
# 4 workers x 2 = 8 containers at most, the host's cap too: the shared engine is never flooded.
CONCURRENCY = 2


def test_racing_workers_run_every_job_exactly_once(
    docker_host: ExecutorHost,
    test_image: str,
    start_counter: StartCounter,
    worker_settings: dict[str, Any],
    docker_client: docker.DockerClient,
    tmp_path: Path,
):
    count = RACE_JOBS
    jobs = {
        str(make_docker_job(test_image, f"echo job {i}; exit {i % 5}", docker_host, name=f"race-{i}").pk): i
        for i in range(count)
    }
    log_path = tmp_path / "workers.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        workers = [
            start_worker(
                ["--concurrency", str(CONCURRENCY), "--worker-id", f"racer-{n}"], worker_settings, log=log
            )
            for n in range(WORKERS)
        ]
        try:
            finished = ContainerJob.objects.filter(pk__in=list(jobs), status__in=FINISHED_STATUSES)
            wait_for(
                lambda: finished.count() == count,
                timeout=60 + count,
                what=f"{count} jobs to finish",
                interval=1,
            )
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            codes = [worker.wait(timeout=30) for worker in workers]
    elapsed = time.monotonic() - started
    starts = start_counter.close()
    print(f"{count} jobs, {WORKERS} workers: {elapsed:.1f} s, {count / elapsed:.2f} jobs/s")

    assert codes == [0] * WORKERS, log_path.read_text()[-3000:]
    twice = {job_id: n for job_id, n in starts.items() if job_id in jobs and n != 1}
    never = [job_id for job_id in jobs if starts[job_id] == 0]
    assert twice == {} and never == [], f"started twice: {twice}; never started: {never}"
    rows = ContainerJob.objects.filter(pk__in=list(jobs)).values_list(
        "pk", "status", "exit_code", "attempt", "worker_id"
    )
    wrong = []
    workers_used = set()
    for pk, status, exit_code, attempt, worker_id in rows:
        expected = jobs[str(pk)] % 5
        want = JobStatus.COMPLETED if expected == 0 else JobStatus.FAILED
        if (status, exit_code, attempt) != (want, expected, 1):
            wrong.append((str(pk), status, exit_code, attempt))
        workers_used.add(worker_id)
    assert wrong == []
    assert len(workers_used) == WORKERS  # A real race: every worker won some claims.
    wait_for(
        lambda: managed_containers(docker_client, set(jobs)) == [], 30, "harvested containers to be removed"
    )
