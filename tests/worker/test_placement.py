"""Placement by resources in the claim: memory and CPU fit, big jobs are not starved, and the
last slot or megabyte is never handed out twice."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone

from container_manager.health import check_host
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import ACTIVE_STATUSES, JobStatus
from container_manager.worker import claim_sql, claims
from tests.worker.conftest import FAST, make_host, make_job

pytestmark = pytest.mark.django_db


def claim(limit: int = 10, worker_id: str = "w1", **options: Any) -> list[claims.Claim]:
    options.setdefault("host_names", ())
    return claims.claim_jobs(
        worker_id=worker_id,
        limit=limit,
        default_executor_type="mock",
        lease_seconds=30,
        rng=random.Random(1),  # noqa: S311 - seeded for repeatable placement
        **options,
    ).won


def running_elsewhere(host: ExecutorHost, **options: Any) -> ContainerJob:
    """A job another worker runs on ``host``: it holds its limits there."""
    job = make_job(host, **options)
    ContainerJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, worker_id="elsewhere")
    return job


def finish(job: ContainerJob) -> None:
    ContainerJob.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, completed_at=timezone.now())


def held(host: ExecutorHost) -> tuple[int, int, float]:
    """Return how many active jobs ``host`` has, and their memory and CPU limits together."""
    rows = ContainerJob.objects.filter(docker_host=host, status__in=ACTIVE_STATUSES)
    jobs = list(rows.values_list("memory_limit", "cpu_limit"))
    return len(jobs), sum(m for m, _ in jobs), round(sum(c for _, c in jobs), 6)


def test_a_host_takes_jobs_only_while_their_memory_fits(db: None):
    host = make_host(memory_capacity_mb=1000)
    jobs = [make_job(memory_limit=400) for _ in range(3)]
    assert {c.job.pk for c in claim()} == {jobs[0].pk, jobs[1].pk}
    assert held(host)[:2] == (2, 800)
    assert claim() == []  # 800 + 400 > 1000: the third waits.
    finish(jobs[0])
    assert [c.job.pk for c in claim()] == [jobs[2].pk]


@override_settings(CONTAINER_MANAGER={**FAST, "CPU_OVERCOMMIT": 1.0})
def test_a_host_takes_jobs_only_while_their_cpus_fit(db: None):
    host = make_host(cpu_capacity=1.0)
    for _ in range(11):
        make_job(cpu_limit=0.1)
    assert len(claim(limit=20)) == 10  # 10 x 0.1 CPUs is exactly 1.0: the float sum still fits.
    assert held(host)[0] == 10


def test_the_overcommit_settings_scale_the_capacity(settings: Any, db: None):
    host = make_host(memory_capacity_mb=1000, cpu_capacity=1.0)
    for _ in range(6):
        make_job(memory_limit=500, cpu_limit=0.5)
    settings.CONTAINER_MANAGER = {**FAST, "MEMORY_OVERCOMMIT": 1.5, "CPU_OVERCOMMIT": 1.0}
    assert len(claim()) == 2  # CPU: 2 x 0.5 = 1.0
    settings.CONTAINER_MANAGER = {**FAST, "MEMORY_OVERCOMMIT": 1.5, "CPU_OVERCOMMIT": 4.0}
    assert len(claim()) == 1  # memory: 3 x 500 = 1500 = 1000 x 1.5
    assert held(host)[:2] == (3, 1500)


def test_the_engine_size_from_the_health_check_is_used_unless_overridden(db: None):
    host = make_host(executor_config={"memory_mb": 1000, "cpus": 2})
    check_host(host)
    host.refresh_from_db()
    assert (host.engine_memory_mb, host.engine_cpus) == (1000, 2.0)
    for _ in range(4):
        make_job(memory_limit=300)
    assert len(claim()) == 3  # 3 x 300 <= 1000 < 4 x 300
    ExecutorHost.objects.filter(pk=host.pk).update(memory_capacity_mb=1200)  # The override wins.
    assert len(claim()) == 1


def test_a_host_without_a_size_is_held_by_its_slots_alone(db: None):
    # Cloud Run reports no size: each job gets its own machine, within the plugin's per-job limits.
    make_host(max_concurrent_jobs=3)
    for _ in range(4):
        make_job(memory_limit=2048, cpu_limit=2.0)
    assert len(claim()) == 3


def test_a_big_job_holds_a_host_against_the_small_jobs_behind_it(db: None):
    host = make_host("big", memory_capacity_mb=1000)
    small_host = make_host("small", memory_capacity_mb=300)
    running = [running_elsewhere(host, memory_limit=300) for _ in range(3)]
    big = make_job(memory_limit=800)
    behind = [make_job(memory_limit=100) for _ in range(5)]
    # 900 MB used: a 100 MB job would fit on "big", but the older 800 MB job is waiting for it.
    won = claim()
    assert {c.job.pk for c in won} == {job.pk for job in behind[:3]}
    assert {c.job.docker_host_id for c in won} == {small_host.pk}
    for job in running:
        assert claim() == []  # "big" takes nothing while it drains, the small host is full.
        finish(job)
    won = claim()
    assert (won[0].job.pk, won[0].job.docker_host_id) == (big.pk, host.pk)
    assert {c.job.pk for c in won[1:]} == {job.pk for job in behind[3:]}  # 800 + 2 x 100 fit.


def test_without_the_hold_the_big_job_would_starve(db: None, monkeypatch: pytest.MonkeyPatch):
    # The same queue with the rule turned off: every freed megabyte goes to a younger small job.
    from container_manager.worker import placing

    monkeypatch.setattr(placing.Seat, "admits", lambda seat, demand: seat.budget.admits(seat.load, demand))
    monkeypatch.setattr(placing.Placer, "all_reserved", lambda placer: False)
    host = make_host("big", memory_capacity_mb=1000)
    running_elsewhere(host, memory_limit=900)
    make_job(memory_limit=800)
    small = make_job(memory_limit=100)
    assert [c.job.pk for c in claim()] == [small.pk]


def test_a_higher_priority_job_still_goes_first(db: None):
    host = make_host(memory_capacity_mb=1000)
    running_elsewhere(host, memory_limit=500)
    make_job(memory_limit=800)
    urgent = make_job(memory_limit=400, priority=5)
    assert [c.job.pk for c in claim()] == [urgent.pk]


def test_waiting_jobs_hold_one_host_each_in_order(db: None):
    hosts = [make_host(f"h{i}", memory_capacity_mb=1000) for i in range(3)]
    for host in hosts:
        running_elsewhere(host, memory_limit=500)
    bigs = [make_job(memory_limit=800) for _ in range(2)]
    small = make_job(memory_limit=100)
    # The two big jobs hold h0 and h1; the small one goes to h2, the only host not held.
    (won,) = claim()
    assert (won.job.pk, won.job.docker_host_id) == (small.pk, hosts[2].pk)
    assert ContainerJob.objects.filter(pk__in=[b.pk for b in bigs], status=JobStatus.PENDING).count() == 2


def test_a_pinned_job_that_must_wait_holds_its_host(db: None):
    host = make_host(memory_capacity_mb=1000)
    running_elsewhere(host, memory_limit=600)
    make_job(host, memory_limit=800)
    make_job(memory_limit=100)
    assert claim() == []


def test_a_row_enlarged_behind_create_jobs_back_is_refused_at_claim(db: None, fast_worker: Any):
    host = make_host(memory_capacity_mb=1000)
    job = make_job(memory_limit=500)
    ContainerJob.objects.filter(pk=job.pk).update(memory_limit=1500)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert (job.status, job.termination_reason) == (JobStatus.FAILED, "launch_failed")
    assert "no_host_fits" in job.last_error and "'mock-1', holds 1000 MB" in job.last_error
    assert fast_worker.launch_count == 0  # Nothing was sent to the engine.
    assert held(host)[0] == 0


def test_a_job_that_fits_a_host_another_worker_serves_waits(db: None):
    make_host("small", memory_capacity_mb=500)
    make_host("large", memory_capacity_mb=4000)
    job = make_job(memory_limit=1500)
    assert claim(host_names=["small"]) == []
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    (won,) = claim(host_names=["large"])
    assert won.job.pk == job.pk and won.refusal is None


# The race: the last slot and the last megabytes -------------------------------------------------


def _waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # Inside a transaction the view is frozen.
        cursor.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        (count,) = cursor.fetchone()
    return int(count)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("host_fields", "job_fields"),
    [({"max_concurrent_jobs": 1}, {}), ({"memory_capacity_mb": 1000}, {"memory_limit": 600})],
    ids=["last-slot", "last-megabytes"],
)
def test_a_claim_waiting_for_the_host_lock_sees_the_jobs_placed_meanwhile(
    host_fields: dict[str, Any], job_fields: dict[str, Any]
):
    """A claim waits for another claim's host lock, then must count the jobs that claim placed.

    Counted in the statement that waited for the lock, they were invisible to it (its snapshot
    predates their commit) and the host's last slot was handed out twice.
    """
    host = make_host(**host_fields)
    first, second = (make_job(**job_fields) for _ in range(2))
    outcome: list[list[claims.Claim]] = []

    def other_worker() -> None:
        try:
            outcome.append(claim(worker_id="w2"))
        finally:
            connections.close_all()

    with transaction.atomic():
        (locked,) = claim_sql.lock_hosts([])
        now = timezone.now()
        ContainerJob.mark_launching(
            [first], host=locked, worker_id="w1", lease_expires_at=now + timedelta(seconds=30), now=now
        )
        racer = threading.Thread(target=other_worker)
        racer.start()
        deadline = time.monotonic() + 10
        while _waiting_on_a_lock() == 0:  # The other claim now waits for the host lock.
            assert time.monotonic() < deadline, "the other claim never waited for the host lock"
            time.sleep(0.01)
    racer.join(timeout=30)
    assert outcome == [[]], "the other claim placed a job on a full host"
    assert held(host)[0] == 1
    second.refresh_from_db()
    assert second.status == JobStatus.PENDING
