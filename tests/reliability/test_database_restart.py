"""PostgreSQL restarts mid-run: the workers reconnect and carry on, with no double claim.

This restarts the machine's PostgreSQL cluster (as `pg_ctlcluster ... restart -m fast` does for an
operator); it is back within seconds. Checked against a worker loop that let a database error end
the process (no DatabaseError handling in Worker._loop): both workers exited with status 1 and
the remaining jobs stayed pending.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
import pytest
from django.db import DatabaseError, connection

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import FINISHED_STATUSES, JobStatus
from tests.reliability.conftest import StartCounter, make_docker_job
from tests.worker.processes import start_worker

pytestmark = [
    pytest.mark.docker,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

JOBS = 60


def restart_postgres() -> None:
    """Restart the local PostgreSQL cluster the tests use."""
    if shutil.which("pg_lsclusters") is None:
        pytest.fail(
            "Restarting PostgreSQL needs pg_lsclusters and pg_ctlcluster (Debian's postgresql-common)."
        )
    first = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True)
    version, name = first.stdout.split()[:2]
    subprocess.run(["pg_ctlcluster", version, name, "restart", "-m", "fast"], check=True, timeout=60)


def finished_count(job_ids: list[str]) -> int:
    """Count finished jobs, reconnecting while the server comes back."""
    for _ in range(100):
        try:
            return ContainerJob.objects.filter(pk__in=job_ids, status__in=FINISHED_STATUSES).count()
        except DatabaseError:
            connection.close()
            time.sleep(0.2)
    pytest.fail("The database did not come back within 20 s.")


def test_workers_survive_a_database_restart(
    docker_host: ExecutorHost,
    test_image: str,
    start_counter: StartCounter,
    worker_settings: dict[str, Any],
    docker_client: docker.DockerClient,
    tmp_path: Path,
):
    # A lease longer than the outage: any second owner would be a double claim, not a takeover.
    settings = {**worker_settings, "LEASE_SECONDS": 60}
    jobs = {
        str(make_docker_job(test_image, f"sleep 0.3; exit {i % 3}", docker_host).pk): i for i in range(JOBS)
    }
    ids = list(jobs)
    log_path = tmp_path / "workers.log"
    with log_path.open("wb") as log:
        workers = [start_worker(["--concurrency", "3"], settings, log=log) for _ in range(2)]
        try:
            deadline = time.monotonic() + 120
            while finished_count(ids) < JOBS // 4:
                assert time.monotonic() < deadline, "the first quarter of the jobs did not finish"
                time.sleep(0.2)
            restart_postgres()
            connection.close()
            while finished_count(ids) < JOBS:
                assert time.monotonic() < deadline + 60, log_path.read_text()[-3000:]
                assert all(w.poll() is None for w in workers), log_path.read_text()[-3000:]
                time.sleep(0.5)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            codes = [worker.wait(timeout=30) for worker in workers]
    starts = start_counter.close()
    text = log_path.read_text()
    assert codes == [0, 0], text[-3000:]
    assert "event=database_error" in text  # The restart really hit the workers.
    assert {jobs[pk]: n for pk, n in starts.items() if pk in jobs and n != 1} == {}
    rows = ContainerJob.objects.filter(pk__in=ids).values_list("pk", "status", "exit_code", "attempt")
    wrong = [
        (jobs[str(pk)], status, code, attempt)
        for pk, status, code, attempt in rows
        if (status, code, attempt)
        != (JobStatus.COMPLETED if jobs[str(pk)] % 3 == 0 else JobStatus.FAILED, jobs[str(pk)] % 3, 1)
    ]
    assert wrong == []
