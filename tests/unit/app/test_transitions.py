"""The state machine: one guarded UPDATE per change, signals after commit, and the event methods."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from container_manager import signals
from container_manager.exceptions import HostUnavailable, InvalidStateTransition
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import (
    FINISHED_STATUSES,
    TRANSITIONS,
    CancelOutcome,
    JobStatus,
    TerminationReason,
    can_transition,
    sources_of,
)
from tests.factories import advance, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def received():
    """Record every job signal sent during the test."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(name: str) -> Callable[..., None]:
        def receiver(sender: object, **kwargs: Any) -> None:
            calls.append((name, kwargs))

        return receiver

    receivers = {
        signals.job_status_changed: record("changed"),
        signals.job_started: record("started"),
        signals.job_finished: record("finished"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver, weak=False)
    yield calls
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def test_every_status_appears_in_the_table():
    assert set(TRANSITIONS) == set(JobStatus)
    assert sources_of(JobStatus.PENDING) == FINISHED_STATUSES | {JobStatus.LAUNCHING}
    assert can_transition("running", "completed")
    assert not can_transition("completed", "running")


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (JobStatus.PENDING, JobStatus.RUNNING),
        (JobStatus.PENDING, JobStatus.COMPLETED),
        (JobStatus.RUNNING, JobStatus.LAUNCHING),
        (JobStatus.COMPLETED, JobStatus.FAILED),
        (JobStatus.CANCELLED, JobStatus.RUNNING),
    ],
)
def test_illegal_transitions_raise_and_change_nothing(host, start, target):
    job = advance(make_job(host=host), start)
    with pytest.raises(InvalidStateTransition) as info:
        job._transition(target)
    assert (info.value.current, info.value.target) == (start, target)
    assert f"cannot move from {start.value!r} to {target.value!r}" in str(info.value)
    job.refresh_from_db()
    assert job.status == start


def test_a_stale_instance_cannot_repeat_a_transition(host):
    job = make_job(host=host)
    stale = ContainerJob.objects.get(pk=job.pk)
    job._transition(JobStatus.LAUNCHING, execution_id="first")
    job._transition(JobStatus.RUNNING)
    with pytest.raises(InvalidStateTransition):
        stale._transition(JobStatus.LAUNCHING, execution_id="second")
    assert ContainerJob.objects.get(pk=job.pk).execution_id == "first"


def test_the_worker_and_attempt_guards_stop_a_worker_that_lost_its_claim(host):
    job = make_job(host=host)
    # A worker's claim sets worker_id and bumps attempt with its own UPDATE (the worker's claims.py).
    ContainerJob.objects.filter(pk=job.pk).update(worker_id="w1", attempt=F("attempt") + 1)
    job.refresh_from_db()
    job._transition(JobStatus.LAUNCHING)
    job._transition(JobStatus.RUNNING, worker_id="w1", attempt=1)
    with pytest.raises(InvalidStateTransition):
        job._transition(JobStatus.COMPLETED, worker_id="someone-else")
    with pytest.raises(InvalidStateTransition):
        job._transition(JobStatus.COMPLETED, worker_id="w1", attempt=7)
    job._transition(JobStatus.COMPLETED, worker_id="w1", attempt=1, exit_code=0)
    assert ContainerJob.objects.get(pk=job.pk).status == JobStatus.COMPLETED


def test_plain_changes_are_stored_as_the_orm_would_store_them(host, django_assert_num_queries):
    # Plain values skip the ORM's compiler (sqltext.py): each kind of field must still round-trip.
    job = make_job(host=host)
    other_host = ExecutorHost.objects.create(name="other", executor_type="docker")
    when = timezone.now() - timedelta(minutes=3)
    changes: dict[str, Any] = {
        "docker_host": other_host,  # a model instance for a foreign key
        "launched_at": when,
        "execution_id": "c-1",
        "retry_count": 3,
        "lease_expires_at": None,
    }
    with django_assert_num_queries(1):
        job._transition(JobStatus.LAUNCHING, **changes)
    job._transition(JobStatus.RUNNING, worker_id="", attempt=0, started_at=when)
    outcome = {"parsed_output": {"ok": [1, "two", None]}, "exit_code": -9, "stdout_log": "a'b\"c%s\n"}
    job._transition(JobStatus.FAILED, **outcome, max_memory_usage=2**40, cpu_usage_percent=12.5)
    row = ContainerJob.objects.get(pk=job.pk)
    assert (row.status, row.docker_host_id, row.execution_id, row.retry_count) == (
        "failed",
        other_host.pk,
        "c-1",
        3,
    )
    assert (row.launched_at, row.started_at, row.lease_expires_at) == (when, when, None)
    assert (row.parsed_output, row.exit_code, row.stdout_log) == tuple(outcome.values())
    assert (row.max_memory_usage, row.cpu_usage_percent) == (2**40, 12.5)
    job._transition(JobStatus.PENDING, parsed_output=None, docker_host=None)  # requeue-like: SQL NULLs
    row.refresh_from_db()
    assert (row.parsed_output, row.docker_host_id, row.status) == (None, None, JobStatus.PENDING)


def test_expression_changes_are_read_back(host):
    job = advance(make_job(host=host), JobStatus.RUNNING)
    job._transition(JobStatus.RETRYING, retry_count=F("retry_count") + 1)
    assert job.retry_count == 1
    assert job.status == JobStatus.RETRYING


def test_signals_fire_once_per_transition_after_commit(host, received, django_capture_on_commit_callbacks):
    job = make_job(host=host)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        job._transition(JobStatus.LAUNCHING)
        job._transition(JobStatus.RUNNING)
        assert received == []  # nothing before the commit
    with django_capture_on_commit_callbacks(execute=True):
        job._transition(JobStatus.COMPLETED, exit_code=0)

    assert [
        (name, kw.get("old_status"), kw.get("new_status"), kw.get("status")) for name, kw in received
    ] == [
        ("changed", JobStatus.PENDING, JobStatus.LAUNCHING, None),
        ("changed", JobStatus.LAUNCHING, JobStatus.RUNNING, None),
        ("started", None, None, None),
        ("changed", JobStatus.RUNNING, JobStatus.COMPLETED, None),
        ("finished", None, None, JobStatus.COMPLETED),
    ]
    assert all(kw["job"] is job for _, kw in received)


def test_a_failed_transition_sends_nothing(host, received, django_capture_on_commit_callbacks):
    job = advance(make_job(host=host), JobStatus.COMPLETED)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InvalidStateTransition):
        job._transition(JobStatus.RUNNING)
    assert received == []


def test_a_rolled_back_transition_sends_nothing(host, received, django_capture_on_commit_callbacks):
    job = make_job(host=host)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        job._transition(JobStatus.CANCELLED)
        raise RuntimeError("roll back")
    assert callbacks == []
    assert received == []
    assert ContainerJob.objects.get(pk=job.pk).status == JobStatus.PENDING


def test_a_broken_receiver_does_not_stop_the_others(
    host, received, django_capture_on_commit_callbacks, caplog
):
    def broken(sender, **kwargs):
        raise ValueError("receiver bug")

    signals.job_status_changed.connect(broken, weak=False)
    try:
        job = make_job(host=host)
        with django_capture_on_commit_callbacks(execute=True):
            job._transition(JobStatus.CANCELLED)
    finally:
        signals.job_status_changed.disconnect(broken)
    assert [name for name, _ in received] == ["changed", "finished"]
    assert "receiver bug" in caplog.text


# request_cancel ----------------------------------------------------------------------------------


@pytest.mark.parametrize("start", [JobStatus.PENDING, JobStatus.RETRYING])
def test_cancelling_a_queued_job_cancels_it_at_once(host, start):
    job = advance(make_job(host=host), start)
    assert job.request_cancel() is CancelOutcome.CANCELLED
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.termination_reason == TerminationReason.CANCELLED
    assert job.completed_at is not None
    assert "Cancelled before launch." in job.docker_log


@pytest.mark.parametrize("start", [JobStatus.LAUNCHING, JobStatus.RUNNING])
def test_cancelling_an_active_job_asks_the_worker(host, start):
    job = advance(make_job(host=host), start)
    assert job.request_cancel() is CancelOutcome.REQUESTED
    job.refresh_from_db()
    assert job.status == start
    assert job.cancel_requested_at is not None
    first = job.cancel_requested_at
    assert job.request_cancel() is CancelOutcome.REQUESTED  # asking twice changes nothing
    job.refresh_from_db()
    assert job.cancel_requested_at == first


def test_cancelling_a_job_a_worker_just_claimed_asks_the_worker(host):
    job = make_job(host=host)
    stale = ContainerJob.objects.get(pk=job.pk)
    job._transition(JobStatus.LAUNCHING)
    assert stale.request_cancel() is CancelOutcome.REQUESTED
    job.refresh_from_db()
    assert job.status == JobStatus.LAUNCHING  # not CANCELLED under the worker's feet
    assert job.cancel_requested_at is not None


@pytest.mark.parametrize("start", sorted(FINISHED_STATUSES))
def test_a_finished_job_cannot_be_cancelled(host, start):
    job = advance(make_job(host=host), start)
    with pytest.raises(InvalidStateTransition):
        job.request_cancel()


# requeue -----------------------------------------------------------------------------------------


def test_requeue_clears_results_and_keeps_history(host):
    job = advance(make_job(host=host), JobStatus.FAILED, last_error="boom")
    ContainerJob.objects.filter(pk=job.pk).update(stdout_log="out", stderr_log="err", parsed_output={"a": 1})
    job.refresh_from_db()
    job.append_event("Exited with code 1.")

    job.requeue()

    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert (job.execution_id, job.exit_code, job.termination_reason) == ("", None, "")
    assert (job.stdout_log, job.stderr_log, job.parsed_output, job.worker_id) == ("", "", None, "")
    assert (job.started_at, job.completed_at, job.last_error) == (None, None, "")
    assert "Exited with code 1." in job.docker_log
    assert (
        f"Re-queued. Previous run: status=failed exit_code=1 termination_reason=non_zero_exit execution_id=exec-{job.pk}"
        in job.docker_log
    )
    assert "last_error='boom'" in job.docker_log


@pytest.mark.parametrize(
    "start", [JobStatus.PENDING, JobStatus.LAUNCHING, JobStatus.RUNNING, JobStatus.RETRYING]
)
def test_only_finished_jobs_can_be_requeued(host, start):
    job = advance(make_job(host=host), start)
    with pytest.raises(InvalidStateTransition):
        job.requeue()


def test_requeue_refuses_an_unavailable_host(host):
    job = advance(make_job(host=host), JobStatus.COMPLETED)
    ExecutorHost.objects.filter(pk=host.pk).update(healthy=False, last_health_error="daemon down")
    job.refresh_from_db()
    with pytest.raises(HostUnavailable, match=r"Host 'mock-1' is unavailable \(unhealthy: daemon down\)"):
        job.requeue()
    assert ContainerJob.objects.get(pk=job.pk).status == JobStatus.COMPLETED


# duplicate ---------------------------------------------------------------------------------------


def test_duplicate_queues_a_new_job_with_the_same_spec(host):
    job = advance(
        make_job(host=host, command=["python", "-c", "print(1)"], environment_vars={"A": "1"}, priority=3),
        JobStatus.COMPLETED,
    )
    copy = job.duplicate()
    assert copy.pk != job.pk
    assert copy.status == JobStatus.PENDING
    assert copy.to_spec().command == job.to_spec().command
    assert dict(copy.to_spec().env) == dict(job.to_spec().env)
    fields = [
        "docker_image",
        "docker_host",
        "memory_limit",
        "cpu_limit",
        "pids_limit",
        "timeout_seconds",
        "priority",
        "user",
    ]
    assert [getattr(copy, f) for f in fields] == [getattr(job, f) for f in fields]
    assert f"Duplicated from job {str(job.pk)!r}." in copy.docker_log


def test_append_event_adds_to_the_row_and_the_instance(host):
    job = make_job(host=host)
    other = ContainerJob.objects.get(pk=job.pk)
    job.append_event("first")
    other.append_event("second")  # appends in SQL, so neither write loses the other
    job.refresh_from_db()
    assert job.docker_log.endswith(" first\n" + job.docker_log.splitlines()[1] + "\n")
    assert [line.split(" ", 1)[1] for line in job.docker_log.splitlines()] == ["first", "second"]
