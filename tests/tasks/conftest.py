"""Fixtures for Django task tests: the Python image, a host on the local engine, the backend's settings.

Django 5.2 has no ``django.tasks``: there each test module skips, saying so (CI's Django 5.2 pass
runs tests/unit and tests/worker only; the backend needs Django 6.0's task API).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from container_manager.models import ContainerJob, ExecutorHost
from tests.dockertools import docker_client_or_fail
from tests.tasks import image

HOST = "tasks-local-engine"
BACKEND = "container_manager.tasks.ContainerTaskBackend"
# Short cadences so a test waits on its container, not on the worker's sleeps.
WORKER_SETTINGS = {
    "REQUIRE_USER_NAMESPACES": False,
    "POLL_INTERVAL": 0.1,
    "RETRY_BACKOFF_BASE_SECONDS": 0.1,
    "RETRY_BACKOFF_MAX_SECONDS": 0.2,
    "STOP_GRACE_SECONDS": 1,
}


@pytest.fixture(scope="session")
def task_image() -> str:
    docker_client_or_fail().close()
    return image.build()


def skip_without_django_tasks() -> None:
    """Skip the calling test module on a Django without ``django.tasks`` (5.2)."""
    pytest.importorskip("django.tasks", reason="ContainerTaskBackend needs Django 6.0's django.tasks.")


def task_options(task_image: str, **queues: dict[str, Any]) -> dict[str, Any]:
    return {
        "BACKEND": BACKEND,
        "QUEUES": ["default", *queues],
        "OPTIONS": {
            "image": task_image,
            "host": HOST,
            "memory_limit": 128,
            "cpu_limit": 1.0,
            "timeout_seconds": 60,
            "queues": queues,
        },
    }


@pytest.fixture
def engine_host(db: None) -> ExecutorHost:
    return ExecutorHost.objects.create(
        name=HOST,
        executor_type="docker",
        host_type="unix",
        connection_string="unix:///var/run/docker.sock",
        auto_pull_images=False,
        max_concurrent_jobs=4,
        executor_config={"default_network": "none"},
    )


def configure(settings: Any, task_image: str) -> None:
    """Make the default task backend run containers: a default, a tight, a slow and a retried queue."""
    settings.CONTAINER_MANAGER = dict(WORKER_SETTINGS)
    settings.TASKS = {
        "default": task_options(
            task_image, tight={"memory_limit": 48}, slow={"timeout_seconds": 3}, retried={"max_retries": 1}
        )
    }


@pytest.fixture
def backend_settings(settings: Any, task_image: str, engine_host: ExecutorHost) -> Any:
    """The backend on the real image and engine."""
    configure(settings, task_image)
    return settings


@pytest.fixture
def offline_settings(settings: Any, engine_host: ExecutorHost) -> Any:
    """The backend without the engine: for what is decided before any container runs."""
    configure(settings, "container-manager-task:offline")
    return settings


def run_worker() -> None:
    """Run what is claimable now to completion, as ``process_container_jobs --once``."""
    call_command("process_container_jobs", once=True, concurrency=4)


def task_jobs() -> list[ContainerJob]:
    return list(ContainerJob.objects.filter(task__isnull=False).order_by("created_at"))
