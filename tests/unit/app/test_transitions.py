"""The state machine: one guarded UPDATE per change, signals after commit, and the event methods."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from container_manager import signals
from container_manager.exceptions import HostUnavailable, InvalidStateTransition
from container_manager.models import ContainerJob, ExecutorHost, Owner
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


def claim(job: ContainerJob, worker_id: str = "w1") -> list[ContainerJob]:
    """Claim ``job`` as a worker's claim does (one guarded UPDATE); return it if won."""
    now = timezone.now()
    assert job.docker_host is not None
    return ContainerJob.mark_launching(
        [job],
        host=job.docker_host,
        worker_id=worker_id,
        lease_expires_at=now + timedelta(seconds=30),
        now=now,
    )


# Each event a worker or a person triggers, as a call on a job.
EVENTS: dict[JobStatus, Callable[[ContainerJob], object]] = {
    JobStatus.LAUNCHING: lambda job: claim(job) or _refused(job, JobStatus.LAUNCHING),
    JobStatus.RUNNING: lambda job: job.mark_running(job.owner(), execution_id="again"),
    JobStatus.COMPLETED: lambda job: job.record_exit(job.owner(), TerminationReason.COMPLETED),
    JobStatus.FAILED: lambda job: job.fail(job.owner(), TerminationReason.LAUNCH_FAILED, "no"),
    JobStatus.PENDING: lambda job: job.release(job.owner(), "unreachable", unpin=False),
}


def _refused(job: ContainerJob, target: JobStatus) -> None:
    raise InvalidStateTransition(job.pk, ContainerJob.objects.get(pk=job.pk).status, target)


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (JobStatus.PENDING, JobStatus.RUNNING),
        (JobStatus.PENDING, JobStatus.COMPLETED),
        (JobStatus.RUNNING, JobStatus.LAUNCHING),
        (JobStatus.RUNNING, JobStatus.PENDING),  # a release is only for a launching job
        (JobStatus.COMPLETED, JobStatus.FAILED),
        (JobStatus.CANCELLED, JobStatus.RUNNING),
        (JobStatus.FAILED, JobStatus.PENDING),  # a worker's release never re-queues a finished job
    ],
)
def test_illegal_transitions_raise_and_change_nothing(host, start, target):
    job = advance(make_job(host=host), start)
    with pytest.raises(InvalidStateTransition) as info:
        EVENTS[target](job)
    assert (info.value.current, info.value.target) == (start, target)
    assert f"cannot move from {start.value!r} to {target.value!r}" in str(info.value)
    job.refresh_from_db()
    assert job.status == start


def test_a_stale_instance_cannot_claim_again(host):
    job = make_job(host=host)
    stale = ContainerJob.objects.get(pk=job.pk)
    (job,) = claim(job, "first")
    job.mark_running(job.owner(), execution_id="c-1")
    assert claim(stale, "second") == []
    row = ContainerJob.objects.get(pk=job.pk)
    assert (row.status, row.worker_id, row.attempt, row.execution_id) == (
        JobStatus.RUNNING,
        "first",
        1,
        "c-1",
    )


def test_the_owner_guard_stops_a_worker_that_lost_its_claim(host):
    (job,) = claim(make_job(host=host), "w1")
    job.mark_running(Owner("w1", 1), execution_id="c-1")
    with pytest.raises(InvalidStateTransition):
        job.record_exit(Owner("someone-else", 1), TerminationReason.COMPLETED)
    with pytest.raises(InvalidStateTransition):
        job.record_exit(Owner("w1", 7), TerminationReason.COMPLETED)
    # Another worker takes the job over: the first one's pair no longer holds it.
    other = ContainerJob.objects.get(pk=job.pk)
    assert other.take_over(worker_id="w2", lease_seconds=30)
    assert not job.take_over(worker_id="w3", lease_seconds=30)  # job's own view is stale now
    with pytest.raises(InvalidStateTransition):
        job.record_exit(Owner("w1", 1), TerminationReason.COMPLETED, result={"exit_code": 0})
    assert other.record_exit(Owner("w2", 2), TerminationReason.COMPLETED, result={"exit_code": 0}) == (
        JobStatus.COMPLETED
    )
    row = ContainerJob.objects.get(pk=job.pk)
    assert (row.status, row.worker_id, row.attempt) == (JobStatus.COMPLETED, "w2", 2)


def test_an_owner_write_that_landed_unseen_counts_as_done_once(
    host, received, django_capture_on_commit_callbacks
):
    # A commit reply lost in a restart: the write landed, the worker did not hear it, and tries again.
    (job,) = claim(make_job(host=host), "w1")
    ContainerJob.objects.get(pk=job.pk).mark_running(Owner("w1", 1), execution_id="c-1")
    received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        job.mark_running(Owner("w1", 1), execution_id="c-1")  # the same write again: no error
    assert job.status == JobStatus.RUNNING
    assert [(name, kw.get("new_status")) for name, kw in received] == [
        ("changed", JobStatus.RUNNING),
        ("started", None),
    ]  # sent for this instance, which never saw them; the other instance sent its own
    with pytest.raises(InvalidStateTransition):
        job.mark_running(Owner("w1", 2), execution_id="c-1")  # not the owner: no such leniency


def test_a_release_unpins_only_when_asked(host):
    (job,) = claim(make_job(host=host))
    job.release(job.owner(), "Cannot connect", unpin=True)
    row = ContainerJob.objects.get(pk=job.pk)
    assert (row.status, row.docker_host_id, row.last_error, row.lease_expires_at) == (
        JobStatus.PENDING,
        None,
        "Cannot connect",
        None,
    )
    assert row.retry_count == 0 and row.worker_id == "w1"  # no retry used up; the claim's trace stays


@pytest.mark.django_db(transaction=True)  # the worker's autocommit path: no savepoint around the write
def test_plain_changes_are_stored_as_the_orm_would_store_them(host, django_assert_num_queries):
    # Plain values skip the ORM's compiler (sqltext.py): each kind of field must still round-trip.
    other_host = ExecutorHost.objects.create(name="other", executor_type="mock")
    job = make_job(host=other_host)
    with django_assert_num_queries(1):
        (job,) = claim(job)
    when = job.launched_at
    job.mark_running(job.owner(), execution_id="c-1")
    outcome = {"parsed_output": {"ok": [1, "two", None]}, "exit_code": -9, "stdout_log": "a'b\"c%s\n"}
    usage = {"max_memory_usage": 2**40, "cpu_usage_percent": 12.5}
    with django_assert_num_queries(1):
        job.record_exit(job.owner(), TerminationReason.NON_ZERO_EXIT, result={**outcome, **usage})
    row = ContainerJob.objects.get(pk=job.pk)
    assert (row.status, row.docker_host_id, row.execution_id, row.worker_id, row.attempt) == (
        "failed",
        other_host.pk,
        "c-1",
        "w1",
        1,
    )
    assert (row.launched_at, row.lease_expires_at) == (when, None)
    assert row.started_at is not None and row.completed_at is not None
    assert (row.parsed_output, row.exit_code, row.stdout_log) == tuple(outcome.values())
    assert (row.max_memory_usage, row.cpu_usage_percent) == (2**40, 12.5)
    row.requeue()  # SQL NULLs, and an expression (docker_log) read back
    row.refresh_from_db()
    assert (row.parsed_output, row.exit_code, row.status, row.worker_id) == (
        None,
        None,
        JobStatus.PENDING,
        "",
    )


def test_expression_changes_are_read_back(host):
    job = advance(make_job(host=host), JobStatus.FAILED)
    job.append_event("Exited with code 1.")
    job.requeue()  # docker_log is appended in SQL
    assert job.docker_log == ContainerJob.objects.get(pk=job.pk).docker_log
    assert "Re-queued. Previous run: status=failed" in job.docker_log


def test_changes_can_never_be_taken_for_guards(host):
    # A written value (here the claim's reset to worker_id="") is a change, never a condition.
    job = advance(make_job(host=host), JobStatus.COMPLETED)
    assert job.worker_id == "test-worker"
    job.requeue()
    assert ContainerJob.objects.get(pk=job.pk).status == JobStatus.PENDING


def test_signals_fire_once_per_transition_after_commit(host, received, django_capture_on_commit_callbacks):
    job = make_job(host=host)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        (job,) = claim(job)
        job.mark_running(job.owner(), execution_id="c-1")
        assert received == []  # nothing before the commit
    with django_capture_on_commit_callbacks(execute=True):
        job.record_exit(job.owner(), TerminationReason.COMPLETED, result={"exit_code": 0})

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
    received.clear()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InvalidStateTransition):
        job.mark_running(job.owner(), execution_id="again")
    assert received == []


def test_a_rolled_back_transition_sends_nothing(host, received, django_capture_on_commit_callbacks):
    job = make_job(host=host)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        job.request_cancel()
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
            job.request_cancel()
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
    claim(job)
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
