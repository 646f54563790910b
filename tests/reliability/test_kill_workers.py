"""Workers killed with SIGKILL at random moments, again and again, then restarted: nothing is lost.

0 lost jobs, 0 duplicate launches (one engine start per job), 0 wrong exit codes (job i exits with
i % 7), and 0 orphan containers after one reconciliation pass.

Checked against a reconciler that relaunched every job whose worker died, RUNNING ones included,
instead of adopting their containers: 15 of 80 jobs were started twice.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from container_manager.conf import app_settings
from container_manager.executors.registry import get_plugin_manager
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import FINISHED_STATUSES, JobStatus
from container_manager.worker.reconcile import Reconciler
from tests.reliability.conftest import StartCounter, make_docker_job, managed_containers
from tests.worker.processes import start_worker, wait_for

pytestmark = [
    pytest.mark.docker,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

JOBS = 80
WORKERS = 2
KILLS = 8


def test_killed_workers_lose_nothing_and_launch_nothing_twice(
    docker_host: ExecutorHost,
    test_image: str,
    start_counter: StartCounter,
    worker_settings: dict[str, Any],
    docker_client: docker.DockerClient,
    tmp_path: Path,
):
    rng = random.Random()  # noqa: S311 - random kill moments, not security
    # Sleeps of 0.5-1.4 s so kills land in every phase: claim, create, start, wait, harvest, cleanup.
    jobs = {
        str(
            make_docker_job(
                test_image, f"sleep {0.5 + (i % 10) / 10}; echo {i}; exit {i % 7}", docker_host
            ).pk
        ): i
        for i in range(JOBS)
    }
    finished = ContainerJob.objects.filter(pk__in=list(jobs), status__in=FINISHED_STATUSES)
    log_path = tmp_path / "workers.log"
    generation = 0

    def spawn(log: Any) -> subprocess.Popen[bytes]:
        nonlocal generation
        generation += 1
        return start_worker(
            ["--concurrency", "4", "--worker-id", f"victim-{generation}"], worker_settings, log=log
        )

    with log_path.open("wb") as log:
        workers = [spawn(log) for _ in range(WORKERS)]
        try:
            for _ in range(KILLS):
                # Django takes about a second to start: kill after that, while jobs are in flight.
                time.sleep(rng.uniform(1.5, 4.0))
                index = rng.randrange(WORKERS)
                workers[index].send_signal(signal.SIGKILL)
                workers[index].wait(timeout=10)
                workers[index] = spawn(log)  # A new id: its jobs are recovered once their lease runs out.
            wait_for(lambda: finished.count() == JOBS, 240, f"{JOBS} jobs to finish", interval=0.5)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()

    # One reconciliation pass removes whatever a killed worker left behind.
    Reconciler(get_plugin_manager(), worker_id="final-pass", settings=app_settings()).run(
        [docker_host], set()
    )
    starts = start_counter.close()
    twice = {jobs[pk]: n for pk, n in starts.items() if pk in jobs and n != 1}
    never = [jobs[pk] for pk in jobs if starts[pk] == 0]
    assert (twice, never) == ({}, []), {
        jobs[pk]: start_counter.history.get(pk) for pk in jobs if starts[pk] != 1
    }
    wrong = []
    for pk, status, exit_code in ContainerJob.objects.filter(pk__in=list(jobs)).values_list(
        "pk", "status", "exit_code"
    ):
        expected = jobs[str(pk)] % 7
        want = JobStatus.COMPLETED if expected == 0 else JobStatus.FAILED
        if (status, exit_code) != (want, expected):
            wrong.append((jobs[str(pk)], status, exit_code, start_counter.history.get(str(pk))))
    assert wrong == []
    assert managed_containers(docker_client, set(jobs)) == []
    taken_over = ContainerJob.objects.filter(pk__in=list(jobs), attempt__gt=1).count()
    print(f"{KILLS} kills, {generation} worker processes, {taken_over} jobs recovered from a killed worker")
    assert taken_over > 0  # The kills really hit jobs in flight.
