"""Fixtures for worker tests: a mock executor host, a job factory, fast worker settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mock_executor.plugin import MockExecutor
from mock_executor.plugin import plugin as mock_plugin

from container_manager.models import ContainerJob, ExecutorHost

FAST = {
    "POLL_INTERVAL": 0.02,
    "HEALTH_CHECK_INTERVAL": 0.2,
    "RECONCILE_INTERVAL": 60,
    "LEASE_SECONDS": 30,
    "RETRY_BACKOFF_BASE_SECONDS": 0.001,
    "RETRY_BACKOFF_MAX_SECONDS": 0.004,
    "SHUTDOWN_GRACE_SECONDS": 5,
    "STOP_GRACE_SECONDS": 1,
    "DEFAULT_EXECUTOR_TYPE": "mock",
}


@pytest.fixture(autouse=True)
def fast_worker(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[MockExecutor]:
    """Use short worker cadences and a mock executor that forgets every run between tests."""
    settings.CONTAINER_MANAGER = dict(FAST)
    monkeypatch.setattr(MockExecutor, "exit_poll_interval", 0.01)
    mock_plugin.reset()
    yield mock_plugin
    mock_plugin.reset()


def make_host(name: str = "mock-1", **fields: Any) -> ExecutorHost:
    """Create an active, healthy mock host."""
    fields.setdefault("max_concurrent_jobs", 10)
    return ExecutorHost.objects.create(name=name, executor_type="mock", host_type="api", **fields)


def make_job(host: ExecutorHost | None = None, **options: Any) -> ContainerJob:
    """Queue a job; ``MOCK_*`` keys in ``env`` tell the mock executor how it ends."""
    env = {key: str(value) for key, value in options.pop("env", {}).items()}
    return ContainerJob.objects.create_job(
        "busybox:latest",
        "true",
        options.pop("name", "test job"),
        environment_vars=env,
        docker_host=host,
        executor_type="mock",
        **options,
    )


@pytest.fixture
def host(db: None) -> ExecutorHost:
    return make_host()
