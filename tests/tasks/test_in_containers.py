"""Tasks run for real: each in its own container from the locally built Python image, on the local engine.

The worker is ``process_container_jobs --once`` in the test process, so the task signals it sends
(after its transitions commit) are seen here.
"""

# ruff: noqa: E402 - the imports after the skip need django.tasks, which Django 5.2 lacks
from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from tests.tasks.conftest import skip_without_django_tasks

skip_without_django_tasks()
from django.tasks import TaskResultStatus
from django.tasks.signals import task_finished, task_started
from django.utils import timezone

from container_manager.models import ContainerJob
from container_manager.states import JobStatus, TerminationReason
from container_manager.tasks import ContainerTaskBackend
from tests.tasks import sample_tasks
from tests.tasks.conftest import run_worker

pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def signals_seen() -> Any:
    seen: list[tuple[str, str, str]] = []

    def started(sender: type, task_result: Any, **kwargs: Any) -> None:
        assert sender is ContainerTaskBackend
        seen.append(("started", task_result.id, task_result.status))

    def finished(sender: type, task_result: Any, **kwargs: Any) -> None:
        assert sender is ContainerTaskBackend
        seen.append(("finished", task_result.id, task_result.status))

    task_started.connect(started)
    task_finished.connect(finished)
    yield seen
    task_started.disconnect(started)
    task_finished.disconnect(finished)


def test_a_task_returns_its_value_and_the_signals_fire_once_each(
    backend_settings: Any, signals_seen: list[tuple[str, str, str]]
) -> None:
    result = sample_tasks.add.enqueue(2, 3)
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == 5
    assert result.errors == []
    assert result.started_at is not None and result.finished_at is not None
    assert result.enqueued_at <= result.started_at <= result.finished_at  # type: ignore[operator]
    assert len(result.worker_ids) == 1 and result.attempts == 1
    assert signals_seen == [
        ("started", result.id, TaskResultStatus.RUNNING),
        ("finished", result.id, TaskResultStatus.SUCCESSFUL),
    ]
    job = ContainerJob.objects.get(pk=result.id)
    assert job.status == JobStatus.COMPLETED and job.exit_code == 0


def test_a_raising_task_fails_with_its_class_path_and_traceback(
    backend_settings: Any, signals_seen: list[tuple[str, str, str]]
) -> None:
    result = sample_tasks.refuse.enqueue("not today")
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class_path == "tests.tasks.sample_tasks.TaskRefused"
    assert error.exception_class is sample_tasks.TaskRefused
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "in _deeper" in error.traceback
    assert error.traceback.rstrip().endswith("tests.tasks.sample_tasks.TaskRefused: not today")
    assert signals_seen[-1] == ("finished", result.id, TaskResultStatus.FAILED)
    assert ContainerJob.objects.get(pk=result.id).exit_code == 1


def test_a_task_printing_a_lot_still_returns_its_value(backend_settings: Any) -> None:
    # ~2.6 MB of stdout, past the 1 MiB log cap: the head and tail are kept, the frame is the tail.
    result = sample_tasks.chatty.enqueue(25_000)
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == "the real value"
    job = ContainerJob.objects.get(pk=result.id)
    assert job.stdout_dropped_bytes > 0
    assert "line 0 " in job.clean_output and "forged" in job.clean_output


def test_a_task_past_its_queues_timeout_is_stopped_and_fails(backend_settings: Any) -> None:
    result = sample_tasks.sleep.using(queue_name="slow").enqueue(60)
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class_path == "container_manager.tasks.errors.TaskTimedOut"
    assert "ran past its queue's timeout of 3 s" in error.traceback
    assert ContainerJob.objects.get(pk=result.id).status == JobStatus.TIMEOUT


def test_a_task_past_its_memory_limit_fails_as_out_of_memory(backend_settings: Any) -> None:
    result = sample_tasks.allocate.using(queue_name="tight").enqueue(200)
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class_path == "container_manager.tasks.errors.TaskOutOfMemory"
    assert "ran out of memory at 48 MB" in error.traceback
    assert ContainerJob.objects.get(pk=result.id).termination_reason == TerminationReason.OOM_KILLED


def test_a_container_that_exits_without_a_result_fails_and_says_so(backend_settings: Any) -> None:
    result = sample_tasks.vanish.enqueue(0)
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "container_manager.tasks.errors.TaskNoResult"
    assert "exited with code 0 without reporting a result" in result.errors[0].traceback


def test_a_deferred_task_waits_for_run_after(backend_settings: Any) -> None:
    run_after = timezone.now() + timedelta(seconds=3)
    result = sample_tasks.when.using(run_after=run_after).enqueue()
    run_worker()  # Nothing is due yet: the run ends at once.
    result.refresh()
    assert result.status == TaskResultStatus.READY
    time.sleep(max(0.0, (run_after - timezone.now()).total_seconds()))
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.task.run_after == run_after
    assert result.started_at >= run_after  # type: ignore[operator]
    assert result.return_value >= run_after.timestamp()


def test_tasks_start_in_priority_order(backend_settings: Any, settings: Any) -> None:
    order = [-5, 50, 0, 10]
    results = [sample_tasks.when.using(priority=p).enqueue() for p in order]
    # One at a time, so the start order is the claim order.
    from django.core.management import call_command

    call_command("process_container_jobs", once=True, concurrency=1)
    for result in results:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    by_start = sorted(results, key=lambda r: r.return_value)
    assert [r.task.priority for r in by_start] == sorted(order, reverse=True)


def test_context_arguments_coroutines_and_a_closed_stdout(backend_settings: Any) -> None:
    introspected = sample_tasks.introspect.enqueue(label="here")
    doubled = sample_tasks.coroutine.enqueue(21)
    echoed = sample_tasks.echo.enqueue(1, "two", [3.0], flag=True, nested={"a": None})
    silenced = sample_tasks.silence.enqueue()
    run_worker()
    for result in (introspected, doubled, echoed, silenced):
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert introspected.return_value == {"id": introspected.id, "label": "here", "attempt": 1}
    assert doubled.return_value == 42
    # The task closed fd 1 and replaced sys.stdout; the runner kept its own copy of the descriptor.
    assert silenced.return_value == "still heard"
    assert echoed.return_value == {"args": [1, "two", [3.0]], "kwargs": {"flag": True, "nested": {"a": None}}}


def run_with_one_retry(job_id: str) -> ContainerJob:
    """Run the worker until the job's retry ran too; return the job."""
    run_worker()
    job = ContainerJob.objects.get(pk=job_id)
    if job.status == JobStatus.RETRYING:  # The backoff outlived the first --once run.
        ContainerJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        run_worker()
    job.refresh_from_db()
    return job


def test_a_retried_task_starts_once_and_finishes_once(
    backend_settings: Any, signals_seen: list[tuple[str, str, str]]
) -> None:
    result = sample_tasks.refuse.using(queue_name="retried").enqueue("twice")
    job = run_with_one_retry(result.id)
    assert (job.status, job.retry_count) == (JobStatus.FAILED, 1)
    assert Counter(kind for kind, _, _ in signals_seen) == {"started": 1, "finished": 1}
    # One error and one worker id per attempt: Django's TaskResult.attempts is len(worker_ids).
    result.refresh()
    assert result.attempts == 2 and len(result.worker_ids) == 2
    assert [error.exception_class_path for error in result.errors] == [
        "tests.tasks.sample_tasks.TaskRefused",
        "tests.tasks.sample_tasks.TaskRefused",
    ]
    assert all(error.traceback.rstrip().endswith("TaskRefused: twice") for error in result.errors)


def test_each_attempt_without_a_result_keeps_its_own_error(backend_settings: Any) -> None:
    result = sample_tasks.vanish.using(queue_name="retried").enqueue(3)
    job = run_with_one_retry(result.id)
    assert (job.status, job.retry_count, job.exit_code) == (JobStatus.FAILED, 1, 3)
    result.refresh()
    assert result.attempts == 2
    assert [error.exception_class_path for error in result.errors] == [
        "container_manager.tasks.errors.TaskNoResult",
        "container_manager.tasks.errors.TaskNoResult",
    ]
    assert all("exited with code 3 without reporting a result" in e.traceback for e in result.errors)


def test_a_retried_task_knows_its_attempt_inside_the_container(backend_settings: Any) -> None:
    result = sample_tasks.fails_first.using(queue_name="retried").enqueue()
    job = run_with_one_retry(result.id)
    assert (job.status, job.retry_count) == (JobStatus.COMPLETED, 1), job.last_error
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"attempt": 2, "worker_ids": result.worker_ids}
    assert result.attempts == 2
    [error] = result.errors
    assert error.traceback.rstrip().endswith("TaskRefused: first attempt")
