"""Two racers claiming one job: the guarded UPDATE lets exactly one of them win (PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from django.db import connection, connections
from django.utils import timezone

from container_manager.models import ContainerJob
from container_manager.states import JobStatus
from tests.factories import make_job
from tests.unit.app.concurrency_child import transition_in_child

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 10


def _race_in_threads(job_pk: str) -> list[str]:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def racer(name: str) -> None:
        try:
            job = ContainerJob.objects.get(pk=job_pk)
            barrier.wait(timeout=30)
            now = timezone.now()
            won = ContainerJob.mark_launching(
                [job], host=job.docker_host, worker_id=name, lease_expires_at=now, now=now
            )
            outcome = "won" if won else "lost"
            with lock:
                outcomes.append(outcome)
        finally:
            connections.close_all()  # each thread has its own connection

    threads = [threading.Thread(target=racer, args=(f"thread-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_threads_one_winner(host):
    assert connection.vendor == "postgresql"
    for _ in range(ROUNDS):
        job = make_job(host=host)
        outcomes = _race_in_threads(str(job.pk))
        assert sorted(outcomes) == ["lost", "won"]
        job.refresh_from_db()
        assert job.status == JobStatus.LAUNCHING
        assert (job.worker_id, job.attempt) in {("thread-0", 1), ("thread-1", 1)}


@pytest.mark.slow
def test_two_processes_one_winner(host):
    assert connection.vendor == "postgresql"
    # spawn, not fork: a forked child would share the parent's open database socket.
    context = multiprocessing.get_context("spawn")
    jobs = [str(make_job(host=host).pk) for _ in range(ROUNDS)]
    barrier = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(
            target=transition_in_child, args=(connection.settings_dict["NAME"], jobs, barrier, results)
        )
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in range(2 * len(jobs))]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    assert not [o for o in outcomes if o[1] == "error"], outcomes
    for pk in jobs:
        mine = sorted((kind, pid) for job_pk, kind, pid in outcomes if job_pk == pk)
        assert [kind for kind, _ in mine] == ["lost", "won"], mine
        job = ContainerJob.objects.get(pk=pk)
        assert (job.status, job.worker_id, job.attempt) == (JobStatus.LAUNCHING, f"pid-{mine[1][1]}", 1)
    assert {pid for _, _, pid in outcomes} == {p.pid for p in processes}
