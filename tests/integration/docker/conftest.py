"""Fixtures for tests against the real local Docker Engine.

Every container a test creates carries ``container_manager.test=<run id>`` and is removed by that
label when the test ends, so no more than a test's own few containers ever exist at once.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from docker_executor.plugin import DockerExecutor

from container_manager_core.types import Command, ExecutionState, ExecutionStatus, HostSpec, JobSpec
from tests.dockertools import RUN_ID, TEST_LABEL, remove_labelled

BASE_URL = "unix:///var/run/docker.sock"
_job_numbers = itertools.count(1)

JobMaker = Callable[..., JobSpec]


@pytest.fixture
def cleanup(docker_client: docker.DockerClient) -> Iterator[None]:
    """Remove this run's containers and networks after the test."""
    yield
    remove_labelled(docker_client, RUN_ID)


@pytest.fixture
def docker_host() -> HostSpec:
    # Jobs default to no network: these tests are not about networking, and a burst of
    # bridge-networked containers has wedged this engine before.
    return HostSpec(
        name="local-docker",
        executor_type="docker",
        connection_string=BASE_URL,
        config={"timeout": 30, "health_timeout": 5, "default_network": "none"},
    )


@pytest.fixture
def executor() -> DockerExecutor:
    """Return a fresh executor, so per-process records (stops, samples) never leak between tests."""
    return DockerExecutor()


def wait_exited(
    executor: DockerExecutor, host: HostSpec, execution_id: str, timeout: float = 30
) -> ExecutionStatus:
    """Wait until the execution exits; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if executor.wait_for_exit(host, execution_id, min(5.0, deadline - time.monotonic())):
            status = executor.check_status(host, execution_id)
            if status.state is ExecutionState.EXITED:
                return status
    pytest.fail(f"Execution {execution_id!r} did not exit within {timeout} s.")


def unique_job_id(prefix: str = "job") -> str:
    return f"{prefix}-{RUN_ID}-{next(_job_numbers)}"


@pytest.fixture
def make_job(test_image: str, cleanup: None) -> JobMaker:
    """Return a factory of policy-compliant jobs running a shell script in the test image."""

    def make(script: str | None = None, **overrides: Any) -> JobSpec:
        fields: dict[str, Any] = {
            "job_id": unique_job_id(),
            "image": test_image,
            "command": None if script is None else Command.shell(script),
            "user": "1001:1001",
            "memory_limit_mb": 64,
            "cpu_limit": 0.5,
            "pids_limit": 64,
            "timeout_seconds": 60,
            "stop_grace_seconds": 2,
            "network_mode": "none",
        }
        labels = {TEST_LABEL: RUN_ID, **dict(overrides.pop("labels", {}))}
        fields.update(overrides)
        return JobSpec(labels=labels, **fields)

    return make
