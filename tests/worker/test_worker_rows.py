"""Requeue, duplicate and cancel on rows the real worker produced, not on rows built by hand.

A row a worker has run carries its claim (``worker_id``, ``attempt``, a lease that was cleared) and
its results; the person's actions must work on exactly that, as the admin's buttons are used.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.dispatch import receiver
from mock_executor.plugin import MockExecutor

from container_manager import signals
from container_manager.exceptions import InvalidStateTransition
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import CancelOutcome, JobStatus, TerminationReason
from container_manager_core.errors import ExecutorUnavailable
from tests.worker.conftest import make_job

pytestmark = pytest.mark.django_db


def run_once() -> None:
    call_command("process_container_jobs", once=True)


# Each scenario: the job's options, and the finished status and reason the worker leaves it in.
FINISHED_BY_THE_WORKER: dict[str, tuple[dict[str, Any], JobStatus, TerminationReason]] = {
    "completed": ({"env": {"MOCK_STDOUT": '{"n": 1}'}}, JobStatus.COMPLETED, TerminationReason.COMPLETED),
    "non_zero_exit": ({"env": {"MOCK_EXIT_CODE": 3}}, JobStatus.FAILED, TerminationReason.NON_ZERO_EXIT),
    "launch_failed": (
        {"env": {"MOCK_LAUNCH_ERROR": "no such runtime"}},
        JobStatus.FAILED,
        TerminationReason.LAUNCH_FAILED,
    ),
    "timeout": (
        {"env": {"MOCK_DURATION": 30}, "timeout_seconds": 1},
        JobStatus.TIMEOUT,
        TerminationReason.TIMEOUT,
    ),
}


@pytest.mark.parametrize("scenario", sorted(FINISHED_BY_THE_WORKER))
def test_a_job_the_worker_finished_can_be_requeued_and_runs_again(
    host: ExecutorHost, fast_worker: MockExecutor, scenario: str
):
    options, status, reason = FINISHED_BY_THE_WORKER[scenario]
    job = make_job(host, **options)
    run_once()
    job.refresh_from_db()
    assert (job.status, job.termination_reason, job.attempt) == (status, reason, 1)
    assert job.worker_id  # The claim is part of the row a worker leaves behind.

    job.requeue()  # The admin's "Retry" action.

    assert job.status == JobStatus.PENDING
    row = ContainerJob.objects.get(pk=job.pk)
    assert row.status == JobStatus.PENDING
    assert (row.worker_id, row.execution_id, row.exit_code, row.termination_reason) == ("", "", None, "")
    assert (row.stdout_log, row.parsed_output, row.completed_at, row.lease_expires_at) == (
        "",
        None,
        None,
        None,
    )
    assert row.attempt == 1  # Kept: a worker still holding attempt 1 can never write again.
    assert f"Re-queued. Previous run: status={status.value}" in row.docker_log

    run_once()  # The worker takes it again, as a new attempt.
    row.refresh_from_db()
    assert (row.status, row.termination_reason, row.attempt) == (status, reason, 2)


@pytest.mark.django_db(transaction=True)  # job_started is sent on commit
def test_a_cancelled_job_the_worker_stopped_can_be_requeued(host: ExecutorHost, fast_worker: MockExecutor):
    job = make_job(host, env={"MOCK_DURATION": 30})

    @receiver(signals.job_started, weak=False)
    def cancel_when_started(*, job: ContainerJob, **kwargs: Any) -> None:
        assert job.request_cancel() is CancelOutcome.REQUESTED  # What the admin's "Cancel" does.

    try:
        run_once()
    finally:
        signals.job_started.disconnect(cancel_when_started)
    job.refresh_from_db()
    assert (job.status, job.stop_reason) == (JobStatus.CANCELLED, "cancelled")
    job.requeue()
    row = ContainerJob.objects.get(pk=job.pk)
    assert (row.status, row.stop_reason, row.cancel_requested_at, row.worker_id) == (
        JobStatus.PENDING,
        "",
        None,
        "",
    )


def test_a_job_the_worker_ran_is_duplicated_and_the_copy_runs(host: ExecutorHost, fast_worker: MockExecutor):
    job = make_job(host, env={"MOCK_EXIT_CODE": 4, "MOCK_STDOUT": "out"}, priority=2, max_retries=0)
    run_once()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED

    copy = job.duplicate()

    assert copy.pk != job.pk
    assert (copy.status, copy.worker_id, copy.attempt, copy.execution_id) == (JobStatus.PENDING, "", 0, "")
    assert copy.priority == 2
    run_once()
    copy.refresh_from_db()
    job.refresh_from_db()
    assert (copy.status, copy.exit_code, copy.attempt) == (JobStatus.FAILED, 4, 1)
    assert copy.execution_id != job.execution_id
    assert (job.status, job.attempt) == (JobStatus.FAILED, 1)  # The original is untouched.


def test_a_retrying_job_the_worker_left_is_cancelled_at_once(host: ExecutorHost, settings: Any):
    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER,
        "RETRY_BACKOFF_BASE_SECONDS": 60,
        "RETRY_BACKOFF_MAX_SECONDS": 600,
    }
    job = make_job(host, env={"MOCK_EXIT_CODE": 1}, max_retries=2)
    run_once()
    job.refresh_from_db()
    assert (job.status, job.worker_id != "") == (JobStatus.RETRYING, True)

    assert job.request_cancel() is CancelOutcome.CANCELLED

    row = ContainerJob.objects.get(pk=job.pk)
    assert (row.status, row.termination_reason) == (JobStatus.CANCELLED, TerminationReason.CANCELLED)
    run_once()  # Nothing left to claim: the worker does not run it again.
    row.refresh_from_db()
    assert (row.status, row.attempt) == (JobStatus.CANCELLED, 1)


def test_a_job_the_worker_released_is_cancelled_at_once(host: ExecutorHost, monkeypatch: pytest.MonkeyPatch):
    # An unreachable engine at launch sends the job back to pending with the claim's traces on it.
    def unreachable(self: MockExecutor, host_spec: Any, spec: Any) -> Any:
        raise ExecutorUnavailable("Cannot connect to the engine at unix:///nowhere.sock.")

    monkeypatch.setattr(MockExecutor, "launch_job", unreachable)
    job = make_job(host)
    run_once()
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.last_error and job.worker_id
    assert job.request_cancel() is CancelOutcome.CANCELLED
    assert ContainerJob.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_a_finished_job_the_worker_produced_cannot_be_cancelled(host: ExecutorHost):
    job = make_job(host)
    run_once()
    job.refresh_from_db()
    with pytest.raises(InvalidStateTransition, match="cannot move from 'completed' to 'cancelled'"):
        job.request_cancel()


def test_a_requeued_job_can_be_cancelled_and_requeued_again(host: ExecutorHost):
    job = make_job(host, env={"MOCK_EXIT_CODE": 5})
    run_once()
    job.refresh_from_db()
    job.requeue()
    assert job.request_cancel() is CancelOutcome.CANCELLED
    job.requeue()
    run_once()
    job.refresh_from_db()
    assert (job.status, job.exit_code, job.attempt) == (JobStatus.FAILED, 5, 2)
