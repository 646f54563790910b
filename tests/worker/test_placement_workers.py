"""Four worker processes place a stream of mixed jobs on hosts of mixed sizes (mock executor).

Checked from the rows afterwards: every job's [launched_at, completed_at] on its host. The claim
takes ``launched_at`` once it holds the host locks and has read what the hosts hold, and a job's
``completed_at`` is taken before its exit is written: so a job placed in room another job's end
freed starts, in the rows, after that job ended, and the sum of the limits of the jobs whose
intervals cover any instant is at most what the host held then. The big jobs arrive while small
ones keep coming faster than the hosts run them: each must start before that stream stops.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from container_manager.conf import AppSettings
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.placement import Budget
from container_manager.states import FINISHED_STATUSES, JobStatus
from tests.worker.conftest import FAST, make_host, make_job
from tests.worker.processes import require_postgres, start_worker, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKERS = 4
SETTINGS = {**FAST, "CPU_OVERCOMMIT": 1.0, "HEALTH_CHECK_INTERVAL": 5}
FEED_SECONDS = 12.0
QUEUED_SMALL = 40  # Small jobs kept waiting while the stream runs: more than the hosts can start.
BIG_JOBS = 3


def small_job(rng: random.Random) -> ContainerJob:
    return make_job(
        memory_limit=rng.choice([128, 256, 384, 512]),
        cpu_limit=rng.choice([0.25, 0.5]),
        env={"MOCK_DURATION": f"{rng.uniform(0.2, 1.0):.2f}"},
        name="small",
    )


def feed(stop_at: float, seed: int) -> None:
    """Keep QUEUED_SMALL small jobs queued until ``stop_at`` (in its own database connection)."""
    rng = random.Random(seed)  # noqa: S311 - test data
    try:
        while time.monotonic() < stop_at:
            queued = ContainerJob.objects.filter(status=JobStatus.PENDING, name="small").count()
            for _ in range(QUEUED_SMALL - queued):
                small_job(rng)
            time.sleep(0.2)
    finally:
        connections.close_all()


def over_capacity(host: ExecutorHost, budget: Budget) -> list[str]:
    """Return every instant at which the host's jobs, by their rows, held more than its budget."""
    rows = list(
        ContainerJob.objects.filter(docker_host=host).values_list(
            "name", "launched_at", "completed_at", "memory_limit", "cpu_limit"
        )
    )
    problems = []
    for name, start, _end, _memory, _cpus in rows:
        at: datetime = start
        live = [r for r in rows if r[1] <= at < r[2]]
        memory = sum(r[3] for r in live)
        cpus = sum(r[4] for r in live)
        if (
            len(live) > budget.slots
            or memory > (budget.memory_mb or 1e18)
            or cpus > (budget.cpus or 1e18) + 1e-9
        ):
            problems.append(
                f"{host.name} at {at.isoformat()} ({name} starting): {len(live)} jobs, {memory} MB, {cpus} CPUs"
            )
    return problems


def test_mixed_jobs_on_mixed_hosts_never_exceed_capacity_and_big_jobs_do_not_starve(tmp_path: Path) -> None:
    require_postgres()
    hosts = [
        # Two sized by their engine (the mock reports it to the health check), two by an override.
        make_host("engine-a", max_concurrent_jobs=8, executor_config={"memory_mb": 2048, "cpus": 2}),
        make_host("engine-b", max_concurrent_jobs=8, executor_config={"memory_mb": 2048, "cpus": 2}),
        make_host("override-a", max_concurrent_jobs=6, memory_capacity_mb=1024, cpu_capacity=1.0),
        make_host("override-b", max_concurrent_jobs=4, memory_capacity_mb=1536, cpu_capacity=1.5),
    ]
    rng = random.Random(17)  # noqa: S311 - test data
    for _ in range(QUEUED_SMALL):
        small_job(rng)
    log_path = tmp_path / "workers.log"
    with log_path.open("wb") as log:
        workers = [
            start_worker(["--concurrency", "8", "--worker-id", f"placer-{n}"], SETTINGS, log=log)
            for n in range(WORKERS)
        ]
        try:
            wait_for(
                lambda: ContainerJob.objects.filter(status=JobStatus.COMPLETED).exists(),
                timeout=60,
                what="the workers to start",
                interval=0.2,
            )
            stop_at = time.monotonic() + FEED_SECONDS
            feeder = threading.Thread(target=feed, args=(stop_at, 18))
            feeder.start()
            time.sleep(1.0)
            bigs = [
                make_job(memory_limit=2048, cpu_limit=2.0, env={"MOCK_DURATION": "0.5"}, name="big")
                for _ in range(BIG_JOBS)
            ]
            feeder.join(timeout=FEED_SECONDS + 30)
            stream_ended = timezone.now()
            wait_for(
                lambda: not ContainerJob.objects.exclude(status__in=FINISHED_STATUSES).exists(),
                timeout=120,
                what="every job to finish",
                interval=0.5,
            )
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            codes = [worker.wait(timeout=30) for worker in workers]
    assert codes == [0] * WORKERS, log_path.read_text()[-3000:]

    jobs = ContainerJob.objects.all()
    assert set(jobs.values_list("status", flat=True)) == {JobStatus.COMPLETED}
    assert jobs.filter(attempt=1).count() == jobs.count()  # Each claimed once.
    settings = AppSettings(**SETTINGS)
    problems = []
    for host in hosts:
        host.refresh_from_db()
        problems += over_capacity(host, Budget.of(host, settings))
    assert not problems, problems[:10]
    assert {h.engine_memory_mb for h in hosts[:2]} == {2048}
    # No starvation: the big jobs ran while small jobs were still queued beside them.
    for big in bigs:
        big.refresh_from_db()
        assert big.launched_at is not None and big.launched_at < stream_ended, (big.launched_at, stream_ended)
    placed = {h.name: jobs.filter(docker_host=h).count() for h in hosts}
    print(
        f"{jobs.count()} jobs placed: {placed}; big jobs waited "
        f"{[round((b.launched_at - b.created_at).total_seconds(), 2) for b in bigs]} s"
    )
    assert all(placed.values()), placed
