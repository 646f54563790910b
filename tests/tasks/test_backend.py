"""What the backend decides before any container runs: validation, checks, enqueue, results, signals.

The shape of Django's own tests/tasks cases, written for this backend. No engine is needed: the
jobs are queued, and their rows are moved by hand where a test needs a later state.
"""

# ruff: noqa: E402 - the imports after the skip need django.tasks, which Django 5.2 lacks
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.tasks.conftest import skip_without_django_tasks

skip_without_django_tasks()
from django.core.exceptions import ValidationError
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils import timezone

from container_manager.models import ContainerJob
from container_manager.tasks import ContainerTaskBackend, channel
from container_manager.tasks.backend import MAX_CALL_BYTES
from tests.tasks import sample_tasks
from tests.tasks.conftest import HOST, task_options

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_backend_supports_defer_priority_results_and_coroutines(offline_settings: Any) -> None:
    backend = task_backends["default"]
    assert isinstance(backend, ContainerTaskBackend)
    assert backend.supports_defer and backend.supports_priority and backend.supports_get_result
    assert backend.supports_async_task


def test_enqueue_queues_one_task_job_with_the_queues_profile(offline_settings: Any) -> None:
    result = sample_tasks.add.using(queue_name="tight", priority=7).enqueue(2, b=3)
    job = ContainerJob.objects.get(pk=result.id)
    assert job.task == {
        "path": "tests.tasks.sample_tasks.add",
        "backend": "default",
        "queue": "tight",
        "args": [2],
        "kwargs": {"b": 3},
    }
    assert (job.memory_limit, job.cpu_limit, job.timeout_seconds, job.priority) == (48, 1.0, 60, 7)
    assert job.docker_host is not None and job.docker_host.name == HOST
    assert job.docker_image == "container-manager-task:offline"
    assert job.get_command() is not None and list(job.get_command().argv) == [  # type: ignore[union-attr]
        "python3",
        "-m",
        "container_manager.tasks.run",
    ]
    # The container gets the call (with its own id) and the nonce through its environment.
    assert channel.CALL_VARIABLE in job.environment_overrides
    assert len(job.environment_overrides[channel.NONCE_VARIABLE]) == 32
    assert result.status == TaskResultStatus.READY
    assert (result.args, result.kwargs, result.backend) == ([2], {"b": 3}, "default")
    assert result.enqueued_at == job.created_at
    assert result.started_at is None and result.finished_at is None and result.worker_ids == []
    with pytest.raises(ValueError, match="not finished yet"):
        result.return_value  # noqa: B018 - the property raises


def test_run_after_becomes_the_jobs_schedule(offline_settings: Any) -> None:
    later = timezone.now() + timedelta(hours=1)
    result = sample_tasks.add.using(run_after=later).enqueue(1, 1)
    job = ContainerJob.objects.get(pk=result.id)
    assert job.scheduled_for == later
    assert result.task.run_after == later
    assert not ContainerJob.objects.claimable().filter(pk=job.pk).exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"queue_name": "nowhere"}, "Queue 'nowhere' is not valid for backend."),
        ({"priority": 101}, "priority must be a whole number between -100 and 100."),
        ({"run_after": timezone.now().replace(tzinfo=None)}, "run_after must be an aware datetime."),
    ],
)
def test_invalid_tasks_are_refused(offline_settings: Any, change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        sample_tasks.add.using(**change)
    assert not ContainerJob.objects.exists()


def test_a_function_not_at_module_level_is_refused(offline_settings: Any) -> None:
    def local() -> None:
        pass

    from django.tasks import task

    with pytest.raises(InvalidTask, match="module level"):
        task(local)


def test_arguments_must_be_json_and_fit_the_environment(offline_settings: Any) -> None:
    with pytest.raises(TypeError, match="must be JSON"):
        sample_tasks.echo.enqueue(object())
    with pytest.raises(ValidationError, match="over the 122880 an environment variable carries"):
        sample_tasks.echo.enqueue("x" * MAX_CALL_BYTES)
    assert not ContainerJob.objects.exists()


def test_enqueue_is_part_of_the_callers_transaction(offline_settings: Any) -> None:
    sent: list[Any] = []

    def receiver(sender: type, task_result: Any, **kwargs: Any) -> None:
        sent.append((sender, task_result.id, task_result.status))

    task_enqueued.connect(receiver)
    try:
        with transaction.atomic():
            kept = sample_tasks.add.enqueue(1, 2)
            assert sent == []  # Not before the commit.
        with pytest.raises(RuntimeError), transaction.atomic():
            sample_tasks.add.enqueue(3, 4)
            raise RuntimeError("the caller's work failed")
    finally:
        task_enqueued.disconnect(receiver)
    assert sent == [(ContainerTaskBackend, kept.id, TaskResultStatus.READY)]
    assert [str(pk) for pk in ContainerJob.objects.values_list("pk", flat=True)] == [kept.id]


def test_get_result_of_unknown_ids_and_of_plain_jobs(offline_settings: Any) -> None:
    plain = ContainerJob.objects.create_job("container-manager-task:offline", "true", docker_host=HOST)
    for unknown in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", str(plain.pk)):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(unknown)


def test_get_result_follows_the_job_row(offline_settings: Any) -> None:
    result = sample_tasks.add.enqueue(1, 2)
    job = ContainerJob.objects.get(pk=result.id)
    nonce = job.environment_overrides[channel.NONCE_VARIABLE]
    started = timezone.now()
    ContainerJob.objects.filter(pk=job.pk).update(status="running", started_at=started, worker_id="w-1")
    running = sample_tasks.add.get_result(result.id)
    assert (running.status, running.started_at, running.worker_ids) == (
        TaskResultStatus.RUNNING,
        started,
        ["w-1"],
    )
    frame = channel.frame(nonce, channel.Outcome(channel.SUCCESSFUL, value=3)).decode()
    ContainerJob.objects.filter(pk=job.pk).update(
        status="completed",
        termination_reason="completed",
        exit_code=0,
        completed_at=timezone.now(),
        clean_output="hello\n" + frame,
    )
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3
    assert result.finished_at is not None and result.errors == []


def test_a_completed_job_without_its_frame_is_a_failure(offline_settings: Any) -> None:
    result = sample_tasks.add.enqueue(1, 2)
    forged = channel.frame("another-nonce", channel.Outcome(channel.SUCCESSFUL, value=3)).decode()
    ContainerJob.objects.filter(pk=result.id).update(
        status="completed",
        termination_reason="completed",
        exit_code=0,
        completed_at=timezone.now(),
        clean_output=forged,
    )
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "container_manager.tasks.errors.TaskNoResult"
    assert "exited with code 0 without reporting a result" in result.errors[0].traceback
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018


def test_a_task_cancelled_before_it_ran_fails_and_says_so(offline_settings: Any) -> None:
    result = sample_tasks.add.enqueue(1, 2)
    ContainerJob.objects.get(pk=result.id).request_cancel()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "container_manager.tasks.errors.TaskCancelled"
    assert "cancelled before it started" in result.errors[0].traceback
    assert result.errors[0].exception_class.__name__ == "TaskCancelled"


def test_the_system_check_reports_profiles_create_job_refuses(settings: Any) -> None:
    settings.TASKS = {
        "default": {
            "BACKEND": "container_manager.tasks.ContainerTaskBackend",
            "QUEUES": ["default", "huge"],
            "OPTIONS": {
                "image": "container-manager-task:offline",
                "queues": {"huge": {"memory_limit": 999_999}, "ghost": {}},
                "colour": "blue",
            },
        }
    }
    messages = [message.msg for message in task_backends["default"].check()]
    assert any("unknown keys ['colour']" in m for m in messages)
    assert any("'ghost', which is not in QUEUES" in m for m in messages)
    settings.TASKS = {
        "default": {
            "BACKEND": "container_manager.tasks.ContainerTaskBackend",
            "QUEUES": ["default", "huge"],
            "OPTIONS": {
                "image": "container-manager-task:offline",
                "queues": {"huge": {"memory_limit": 999_999, "cpu_limit": 64}},
            },
        }
    }
    errors = task_backends["default"].check()
    assert {e.id for e in errors} == {"container_manager.E302"}
    assert any("Queue 'huge': memory_limit" in e.msg for e in errors)
    assert any("Queue 'huge': cpu_limit" in e.msg for e in errors)
    settings.TASKS = {"default": task_options("container-manager-task:offline", heavy={"memory_limit": 512})}
    assert task_backends["default"].check() == []


def test_a_profile_without_an_image_is_refused_at_check_and_enqueue(settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "container_manager.tasks.ContainerTaskBackend", "OPTIONS": {}}}
    assert [e.id for e in task_backends["default"].check()] == ["container_manager.E301"]
    with pytest.raises(InvalidTask, match="has no image"):
        sample_tasks.add.enqueue(1, 2)


def test_the_admin_shows_the_task_with_secret_named_arguments_masked(
    offline_settings: Any, admin_client: Any
) -> None:
    result = sample_tasks.echo.enqueue("visible-positional", api_key="sk-very-secret-value", colour="blue")
    ContainerJob.objects.filter(pk=result.id).update(status="completed", completed_at=timezone.now())
    page = admin_client.get(f"/admin/container_manager/containerjob/{result.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Django task" in html
    assert "tests.tasks.sample_tasks.echo" in html and "blue" in html and "visible-positional" in html
    assert "sk-very-secret-value" not in html


def test_the_system_check_warns_rather_than_crashes_without_a_usable_database(
    offline_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import ProgrammingError

    from container_manager import placement

    def missing_table(job: Any) -> None:
        raise ProgrammingError('relation "container_manager_executorhost" does not exist')

    # As before `migrate`: create_job's placement rule reads the hosts' table.
    monkeypatch.setattr(placement, "hosts_for", missing_table)
    [warning] = task_backends["default"].check()
    assert warning.id == "container_manager.W301"
    assert "not checked against create_job's rules" in warning.msg
