"""Retries with backoff, cancellation and timeouts, through the worker command."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.dispatch import receiver
from mock_executor.plugin import MockExecutor

from container_manager import signals
from container_manager.conf import app_settings
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus, TerminationReason, backoff_seconds
from tests.worker.conftest import make_job

pytestmark = pytest.mark.django_db


def run_until_finished(job: ContainerJob, rounds: int = 20) -> None:
    """Run --once until the job finishes (a retry becomes due only after its backoff)."""
    for _ in range(rounds):
        call_command("process_container_jobs", once=True)
        job.refresh_from_db()
        if job.is_finished:
            return
        time.sleep(0.01)
    pytest.fail(f"Job {job.pk} did not finish: {job.status}.")


def test_backoff_doubles_and_is_capped(settings: Any):
    settings.CONTAINER_MANAGER = {"RETRY_BACKOFF_BASE_SECONDS": 5, "RETRY_BACKOFF_MAX_SECONDS": 30}
    assert [backoff_seconds(n, app_settings()) for n in range(5)] == [5, 10, 20, 30, 30]


@pytest.mark.parametrize("env", [{"MOCK_EXIT_CODE": 2}, {"MOCK_OOM": "1"}])
def test_failures_are_retried_up_to_max_retries(
    host: ExecutorHost, fast_worker: MockExecutor, env: dict[str, Any]
):
    job = make_job(host, env=env, max_retries=2)
    run_until_finished(job)
    assert (job.status, job.retry_count, job.interruption_count) == (JobStatus.FAILED, 2, 0)
    assert fast_worker.launch_count == 3
    assert job.attempt == 3


def test_a_retry_waits_for_its_backoff(host: ExecutorHost, settings: Any):
    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER,
        "RETRY_BACKOFF_BASE_SECONDS": 60,
        "RETRY_BACKOFF_MAX_SECONDS": 600,
    }
    job = make_job(host, env={"MOCK_EXIT_CODE": 1}, max_retries=1)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert (job.status, job.termination_reason, job.retry_count) == (
        JobStatus.RETRYING,
        TerminationReason.NON_ZERO_EXIT,
        1,
    )
    assert job.next_attempt_at is not None and job.launched_at is not None and job.completed_at is None
    assert timedelta(seconds=55) < job.next_attempt_at - job.launched_at < timedelta(seconds=65)
    call_command("process_container_jobs", once=True)  # Not due yet: nothing is claimed.
    job.refresh_from_db()
    assert (job.status, job.attempt) == (JobStatus.RETRYING, 1)


def test_a_retry_removes_the_old_container_before_relaunching(
    host: ExecutorHost, fast_worker: MockExecutor, settings: Any
):
    # Without cleanup after harvest, the old exited container is still there; the mock (like Docker,
    # by name) would hand it back on launch and the retry would silently replay the first result.
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "CLEANUP_AFTER_HARVEST": False}
    job = make_job(host, env={"MOCK_EXIT_CODE": 1}, max_retries=1)
    run_until_finished(job)
    assert fast_worker.launch_count == 2
    assert job.retry_count == 1


def test_a_successful_retry_ends_completed(host: ExecutorHost, fast_worker: MockExecutor, monkeypatch):
    outcomes = iter([1, 0])
    real_launch = MockExecutor.launch_job

    def flaky(self, host_spec, spec):
        env = dict(spec.env, MOCK_EXIT_CODE=str(next(outcomes)))
        import attrs

        return real_launch(self, host_spec, attrs.evolve(spec, env=env))

    monkeypatch.setattr(MockExecutor, "launch_job", flaky)
    job = make_job(host, max_retries=3)
    run_until_finished(job)
    assert (job.status, job.exit_code, job.retry_count) == (JobStatus.COMPLETED, 0, 1)


@pytest.mark.django_db(transaction=True)  # job_started is sent on commit
def test_cancel_stops_the_running_container(host: ExecutorHost, fast_worker: MockExecutor):
    job = make_job(host, env={"MOCK_DURATION": 30}, max_retries=3)

    @receiver(signals.job_started, weak=False)
    def cancel_when_started(*, job: ContainerJob, **kwargs: Any) -> None:
        job.request_cancel()  # What the admin action and the API do.

    started = time.monotonic()
    try:
        call_command("process_container_jobs", once=True)
    finally:
        signals.job_started.disconnect(cancel_when_started)
    job.refresh_from_db()
    assert time.monotonic() - started < 10
    assert (job.status, job.termination_reason, job.stop_reason) == (
        JobStatus.CANCELLED,
        TerminationReason.CANCELLED,
        "cancelled",
    )
    assert job.retry_count == 0
    assert fast_worker.launch_count == 1


def test_a_job_past_its_timeout_is_stopped_and_reported_as_timeout(
    host: ExecutorHost, fast_worker: MockExecutor
):
    job = make_job(host, env={"MOCK_DURATION": 30}, timeout_seconds=1)
    started = time.monotonic()
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert 1 <= time.monotonic() - started < 10
    assert (job.status, job.termination_reason, job.stop_reason) == (
        JobStatus.TIMEOUT,
        TerminationReason.TIMEOUT,
        "timeout",
    )
    assert job.exit_code == 143


def test_a_timed_out_job_is_retried_when_allowed(host: ExecutorHost, fast_worker: MockExecutor):
    job = make_job(host, env={"MOCK_DURATION": 30}, timeout_seconds=1, max_retries=1)
    run_until_finished(job)
    assert (job.status, job.termination_reason, job.retry_count) == (
        JobStatus.TIMEOUT,
        TerminationReason.TIMEOUT,
        1,
    )
    assert fast_worker.launch_count == 2
