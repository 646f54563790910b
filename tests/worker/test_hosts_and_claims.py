"""Claiming: guarded UPDATEs, host capacity and weights, pinned and unhealthy hosts, few queries."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from mock_executor.plugin import MockExecutor

from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager.states import JobStatus
from container_manager.worker import claim_sql, claims, placing
from container_manager_core.errors import ExecutorUnavailable
from tests.worker.conftest import make_host, make_job

pytestmark = pytest.mark.django_db


def claim(limit: int = 10, worker_id: str = "w1", **options: Any) -> list[claims.Claim]:
    options.setdefault("host_names", ())
    return claims.claim_jobs(
        worker_id=worker_id,
        limit=limit,
        default_executor_type="mock",
        lease_seconds=30,
        rng=options.pop("rng", None) or random.Random(1),  # noqa: S311 - seeded for repeatable placement
        **options,
    ).won


def test_a_claim_records_the_worker_and_a_new_attempt(host: ExecutorHost):
    job = make_job(host)
    (won,) = claim()
    assert won.job.pk == job.pk
    assert (won.job.status, won.job.worker_id, won.job.attempt) == (JobStatus.LAUNCHING, "w1", 1)
    assert won.job.lease_expires_at is not None
    assert claim(worker_id="w2") == []  # Already claimed: the status guard refuses a second owner.


def test_the_claim_guard_refuses_a_job_that_left_the_queue(
    host: ExecutorHost, monkeypatch: pytest.MonkeyPatch
):
    job = make_job(host)
    real_candidates = claim_sql.candidates

    def cancel_after_reading(*args: Any, **kwargs: Any) -> list[ContainerJob]:
        # A person cancels between the worker's read and its UPDATE.
        read = real_candidates(*args, **kwargs)
        ContainerJob.objects.get(pk=job.pk).request_cancel()
        return read

    monkeypatch.setattr(claim_sql, "candidates", cancel_after_reading)
    assert claim() == []
    job.refresh_from_db()
    assert (job.status, job.worker_id, job.attempt) == (JobStatus.CANCELLED, "", 0)


def test_a_claim_takes_exactly_the_due_jobs_best_first(host: ExecutorHost, django_assert_num_queries):
    # The claim's SQL is written by hand (claim_sql.py): it renders the same rule as claimable() (due.py).
    past, future = timezone.now() - timedelta(seconds=5), timezone.now() + timedelta(hours=1)
    template = EnvironmentVariableTemplate.objects.create(
        name="t", environment_variables_text="FROM_TEMPLATE=1"
    )
    due = [make_job(host, priority=p) for p in (0, 5, 1)]
    due += [make_job(host, scheduled_for=past), make_job(host, environment_template=template)]
    retrying, backing_off, cancelling, running = (make_job(host) for _ in range(4))
    ContainerJob.objects.filter(pk=retrying.pk).update(status=JobStatus.RETRYING, next_attempt_at=past)
    ContainerJob.objects.filter(pk=backing_off.pk).update(status=JobStatus.RETRYING, next_attempt_at=future)
    ContainerJob.objects.filter(pk=cancelling.pk).update(cancel_requested_at=past)
    ContainerJob.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING, worker_id="elsewhere")
    make_job(host, scheduled_for=future)
    expected = list(ContainerJob.objects.claimable().values_list("pk", flat=True))
    assert set(expected) == {job.pk for job in due} | {retrying.pk}

    won = claim()
    assert [c.job.pk for c in won] == expected  # Highest priority first, then the oldest.
    with django_assert_num_queries(0):  # The template came with the claim: making specs reads nothing.
        specs = {c.job.pk: c.job.to_spec() for c in won}
    assert specs[due[-1].pk].env["FROM_TEMPLATE"] == "1"


def test_a_claim_says_whether_it_left_due_jobs_behind(host: ExecutorHost):
    # The worker claims again on a freed slot only if the last claim left due jobs behind.
    for _ in range(3):
        make_job(host)
    options: dict[str, Any] = {
        "worker_id": "w1",
        "host_names": (),
        "default_executor_type": "mock",
        "lease_seconds": 30,
        "rng": random.Random(1),  # noqa: S311 - seeded for repeatable placement
    }
    first = claims.claim_jobs(limit=2, **options)
    assert (len(first.won), first.more_due) == (2, True)
    second = claims.claim_jobs(limit=2, **options)
    assert (len(second.won), second.more_due) == (1, False)
    assert claims.claim_jobs(limit=2, **options) == claims.ClaimRound([], more_due=False)


def test_the_claim_path_costs_a_fixed_number_of_queries(host: ExecutorHost, django_assert_num_queries):
    for _ in range(3):
        make_job(host)
    # exists, SAVEPOINT, hosts FOR UPDATE, what their active jobs hold (read once the locks are held),
    # candidates, one UPDATE per host, RELEASE.
    with django_assert_num_queries(7):
        assert len(claim()) == 3
    with django_assert_num_queries(1):  # Idle: one indexed query.
        assert claim() == []
    make_job(host)
    with django_assert_num_queries(6):  # Announced by the database: no pre-check.
        assert len(claim(announced=True)) == 1


def test_a_host_never_gets_more_than_its_capacity_across_workers(db: None):
    host = make_host(max_concurrent_jobs=3)
    for _ in range(6):
        make_job(host)
    # Another worker already runs one job there: the count comes from the database.
    other = make_job(host)
    ContainerJob.objects.filter(pk=other.pk).update(status=JobStatus.RUNNING, worker_id="elsewhere")
    assert len(claim(worker_id="w1")) == 2
    assert claim(worker_id="w2") == []
    assert ContainerJob.objects.filter(docker_host=host, status__in=["launching", "running"]).count() == 3


def test_hosts_are_chosen_by_weight():
    hosts = [ExecutorHost(pk=1, name="a", weight=300), ExecutorHost(pk=2, name="b", weight=100)]
    rng = random.Random(7)  # noqa: S311 - seeded for a repeatable draw
    picks = Counter(getattr(placing.pick_host(hosts, rng), "name", None) for _ in range(4000))
    assert 2.6 < picks["a"] / picks["b"] < 3.4
    drained = [ExecutorHost(pk=1, name="a", weight=0), ExecutorHost(pk=2, name="b", weight=1)]
    assert {getattr(placing.pick_host(drained, rng), "name", None) for _ in range(200)} == {"b"}
    assert placing.pick_host([ExecutorHost(pk=1, name="a", weight=0)], rng) is None


def test_floating_jobs_spread_over_hosts_by_weight(db: None):
    heavy = make_host("heavy", weight=300, max_concurrent_jobs=1000)
    light = make_host("light", weight=100, max_concurrent_jobs=1000)
    for _ in range(200):
        make_job()
    placed = Counter(c.job.docker_host_id for c in claim(limit=200, rng=random.Random(3)))  # noqa: S311
    assert placed[heavy.pk] + placed[light.pk] == 200
    assert 2.0 < placed[heavy.pk] / placed[light.pk] < 4.5


def test_a_pinned_job_waits_for_its_host(db: None):
    busy = make_host("busy", max_concurrent_jobs=1)
    make_host("idle", max_concurrent_jobs=10)
    blocker = make_job(busy)
    ContainerJob.objects.filter(pk=blocker.pk).update(status=JobStatus.RUNNING, worker_id="elsewhere")
    pinned = make_job(busy)
    assert claim() == []  # Never moved to the idle host.
    ContainerJob.objects.filter(pk=blocker.pk).update(status=JobStatus.COMPLETED)
    (won,) = claim()
    assert (won.job.pk, won.job.docker_host_id, won.pinned) == (pinned.pk, busy.pk, True)


def test_hosts_filter_limits_the_worker_to_named_hosts(db: None):
    make_host("a")
    b = make_host("b")
    job = make_job(b)
    assert claim(host_names=["a"]) == []
    (won,) = claim(host_names=["b"])
    assert won.job.pk == job.pk


def test_an_unreachable_host_is_skipped_until_it_answers_again(db: None, fast_worker: MockExecutor):
    host = make_host(executor_config={"unreachable": True})
    job = make_job()
    call_command("process_container_jobs", once=True)
    host.refresh_from_db()
    job.refresh_from_db()
    assert not host.healthy and "unreachable" in host.last_health_error
    assert (job.status, fast_worker.launch_count) == (JobStatus.PENDING, 0)

    ExecutorHost.objects.filter(pk=host.pk).update(executor_config={})
    call_command("process_container_jobs", once=True)
    host.refresh_from_db()
    job.refresh_from_db()
    assert host.healthy and host.last_health_error == ""
    assert job.status == JobStatus.COMPLETED


def test_a_transient_launch_error_releases_the_job_without_using_a_retry(
    db: None, fast_worker: MockExecutor, monkeypatch: pytest.MonkeyPatch
):
    host = make_host()
    job = make_job(max_retries=0)  # Floating: it may go to any healthy host next time.

    def unreachable(self, host_spec, spec):
        raise ExecutorUnavailable("Cannot connect to the engine at unix:///nowhere.sock.")

    monkeypatch.setattr(MockExecutor, "launch_job", unreachable)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    host.refresh_from_db()
    assert (job.status, job.retry_count, job.termination_reason) == (JobStatus.PENDING, 0, "")
    assert job.docker_host_id is None
    assert "Cannot connect" in job.last_error
    assert not host.healthy

    monkeypatch.undo()
    call_command("process_container_jobs", once=True)  # The health check brings the host back first.
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
