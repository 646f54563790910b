"""call_command("process_container_jobs", once=True) runs jobs to the right status and reason."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from mock_executor.plugin import MockExecutor

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus, TerminationReason
from container_manager.worker import runner
from container_manager.worker.outcome import termination_reason
from container_manager_core.types import ExecutionState, ExecutionStatus
from tests.worker.conftest import make_job

pytestmark = pytest.mark.django_db


def run_once(**options: Any) -> None:
    call_command("process_container_jobs", once=True, **options)


def test_a_successful_job_keeps_raw_and_clean_logs_json_and_usage(
    host: ExecutorHost, fast_worker: MockExecutor, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(runner, "FIRST_USAGE_SAMPLE_SECONDS", 0.05)  # Sampled while it runs.
    job = make_job(
        host,
        env={
            "MOCK_DURATION": 0.3,
            "MOCK_STDOUT": '{"answer": 42}',
            "MOCK_STDERR": "a warning",
            "MOCK_PEAK_MEMORY_BYTES": 12345,
            "MOCK_CPU_PERCENT": 7.5,
        },
    )
    run_once()
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.termination_reason == TerminationReason.COMPLETED
    assert job.exit_code == 0
    assert job.stdout_log == '{"answer": 42}\n'  # as the job wrote it, without engine timestamps
    assert job.clean_output == '{"answer": 42}\n'
    assert job.parsed_output == {"answer": 42}
    assert "a warning" in job.stderr_log
    assert (job.max_memory_usage, job.cpu_usage_percent) == (12345, 7.5)
    assert job.execution_id.startswith("mock-")
    assert job.started_at is not None and job.completed_at is not None and job.started_at <= job.completed_at
    assert job.attempt == 1
    assert job.lease_expires_at is None
    # CLEANUP_AFTER_HARVEST: the container is removed once the result is saved.
    assert fast_worker.check_status(host.to_spec(), job.execution_id).state is ExecutionState.NOT_FOUND


def test_plain_text_output_is_not_parsed_and_a_short_job_has_no_usage(host: ExecutorHost):
    job = make_job(host, env={"MOCK_STDOUT": "hello"})
    run_once()
    job.refresh_from_db()
    assert job.clean_output == "hello\n"
    assert job.parsed_output is None
    assert (job.max_memory_usage, job.cpu_usage_percent) == (None, None)  # Ended before any sample.


@pytest.mark.parametrize(
    ("env", "reason", "code"),
    [
        ({"MOCK_EXIT_CODE": 3, "MOCK_STDERR": "boom"}, TerminationReason.NON_ZERO_EXIT, 3),
        ({"MOCK_OOM": "1"}, TerminationReason.OOM_KILLED, 137),
        # The executor says whether 137 was the OOM killer (Docker weighs it against its own stops and
        # the engine's events); the worker never guesses it from the number: the mock says it was not.
        ({"MOCK_EXIT_CODE": 137}, TerminationReason.NON_ZERO_EXIT, 137),
    ],
)
def test_failures_record_the_reason_and_exit_code(
    host: ExecutorHost, env: dict[str, Any], reason: str, code: int
):
    job = make_job(host, env=env)
    run_once()
    job.refresh_from_db()
    assert (job.status, job.termination_reason, job.exit_code) == (JobStatus.FAILED, reason, code)


@pytest.mark.parametrize(
    ("env", "reason", "message"),
    [
        (
            {"MOCK_LAUNCH_ERROR": "no such network: backend"},
            TerminationReason.LAUNCH_FAILED,
            "no such network",
        ),
        (
            {"MOCK_IMAGE_PULL_ERROR": "manifest unknown"},
            TerminationReason.IMAGE_PULL_FAILED,
            "manifest unknown",
        ),
    ],
)
def test_launch_failures_keep_the_real_error_and_are_not_retried(
    host: ExecutorHost, fast_worker: MockExecutor, env: dict[str, str], reason: str, message: str
):
    job = make_job(host, env=env, max_retries=3)
    run_once()
    job.refresh_from_db()
    assert (job.status, job.termination_reason, job.retry_count) == (JobStatus.FAILED, reason, 0)
    assert message in job.last_error
    assert job.attempt == 1


def test_policy_violation_at_launch_fails_the_job_and_is_never_retried(
    host: ExecutorHost, fast_worker: MockExecutor
):
    job = make_job(host, max_retries=3)
    # Limits tightened after the job was queued: the launch-time policy check refuses it.
    ContainerJob.objects.filter(pk=job.pk).update(memory_limit=1_000_000)
    run_once()
    job.refresh_from_db()
    assert (job.status, job.termination_reason, job.retry_count) == (
        JobStatus.FAILED,
        TerminationReason.LAUNCH_FAILED,
        0,
    )
    assert "policy" in job.last_error
    assert fast_worker.launch_count == 0


def test_priority_then_age_decides_the_order(host: ExecutorHost):
    low = make_job(host, name="low")
    high = make_job(host, name="high", priority=5)
    older_low = ContainerJob.objects.get(pk=low.pk)
    run_once(concurrency=1)
    high.refresh_from_db()
    older_low.refresh_from_db()
    assert high.started_at is not None and older_low.started_at is not None
    assert high.started_at < older_low.started_at


def test_scheduled_jobs_wait_for_their_time(host: ExecutorHost):
    from datetime import timedelta

    from django.utils import timezone

    later = make_job(host, scheduled_for=timezone.now() + timedelta(hours=1))
    now = make_job(host, scheduled_for=timezone.now() - timedelta(seconds=1))
    run_once()
    later.refresh_from_db()
    now.refresh_from_db()
    assert later.status == JobStatus.PENDING
    assert now.status == JobStatus.COMPLETED


def test_max_jobs_stops_after_that_many(host: ExecutorHost):
    jobs = [make_job(host) for _ in range(3)]
    call_command("process_container_jobs", max_jobs=2, concurrency=1)
    statuses = sorted(
        ContainerJob.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)
    )
    assert statuses == [JobStatus.COMPLETED, JobStatus.COMPLETED, JobStatus.PENDING]


@pytest.mark.parametrize(
    ("status", "stop_reason", "expected"),
    [
        (ExecutionStatus(ExecutionState.EXITED, exit_code=137), "timeout", TerminationReason.TIMEOUT),
        (
            ExecutionStatus(ExecutionState.EXITED, exit_code=137, oom_killed=True),
            "timeout",
            TerminationReason.TIMEOUT,
        ),
        (ExecutionStatus(ExecutionState.EXITED, exit_code=137), "cancelled", TerminationReason.CANCELLED),
        (ExecutionStatus(ExecutionState.EXITED, exit_code=137), "", TerminationReason.NON_ZERO_EXIT),
        (
            ExecutionStatus(ExecutionState.EXITED, exit_code=137, oom_killed=True),
            "",
            TerminationReason.OOM_KILLED,
        ),
        (
            ExecutionStatus(ExecutionState.EXITED, exit_code=1, oom_killed=True),
            "",
            TerminationReason.OOM_KILLED,
        ),
        (ExecutionStatus(ExecutionState.EXITED, exit_code=143), "", TerminationReason.NON_ZERO_EXIT),
        (ExecutionStatus(ExecutionState.EXITED, exit_code=0), "", TerminationReason.COMPLETED),
    ],
)
def test_a_container_the_worker_stopped_is_never_an_oom(
    status: ExecutionStatus, stop_reason: str, expected: str
):
    assert termination_reason(status, stop_reason) == expected


def test_a_once_run_returns_only_after_its_containers_are_removed(
    host: ExecutorHost, fast_worker: MockExecutor, monkeypatch: pytest.MonkeyPatch
):
    # Checked against the worker without the final join: the run returned while the removal was
    # still under way, and the executor still listed the job's execution.
    real_remove = fast_worker.cleanup

    def slow_remove(*args: Any, **kwargs: Any) -> bool:
        import time

        time.sleep(0.5)
        return real_remove(*args, **kwargs)

    monkeypatch.setattr(fast_worker, "cleanup", slow_remove)
    jobs = [make_job(host, env={"MOCK_STDOUT": f"job {i}"}) for i in range(3)]
    run_once()
    assert all(ContainerJob.objects.get(pk=j.pk).status == JobStatus.COMPLETED for j in jobs)
    assert fast_worker.list_executions(host.to_spec()) == []
