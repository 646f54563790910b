"""Fixtures for the Cloud Run executor's tests: a fake Cloud Run API on 127.0.0.1 and jobs for it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cloudrun_executor.plugin import CloudRunExecutor

from container_manager_core.types import Command, ExecutionState, ExecutionStatus, HostSpec, JobSpec
from tests.fakes import FakeCloudRun, cloudrun_host_spec, start_fake_cloudrun

# The same job runs on a real Cloud Run: the shell does what the fake reads from the FAKE_* variables.
SCENARIO_SCRIPT = 'printf "%s" "$FAKE_STDOUT"; printf "%s" "$FAKE_STDERR" >&2; sleep "$FAKE_DURATION"; exit "$FAKE_EXIT_CODE"'

JobMaker = Callable[..., JobSpec]


@pytest.fixture(scope="session")
def fake_cloudrun_server() -> Iterator[FakeCloudRun]:
    """Start one fake server for the session; tests get it reset through ``fake_cloudrun``."""
    fake = start_fake_cloudrun()
    yield fake
    fake.stop()


@pytest.fixture
def fake_cloudrun(fake_cloudrun_server: FakeCloudRun) -> FakeCloudRun:
    """Return the fake Cloud Run API with no resources, failures or denials left from other tests."""
    fake_cloudrun_server.reset()
    return fake_cloudrun_server


@pytest.fixture
def cloudrun_host(fake_cloudrun: FakeCloudRun) -> HostSpec:
    return cloudrun_host_spec(fake_cloudrun)


@pytest.fixture
def executor() -> CloudRunExecutor:
    """Return a fresh plugin instance (its own client cache), for tests that call it directly."""
    return CloudRunExecutor()


def make_scenario_job(
    *, stdout: str = "", stderr: str = "", exit_code: int = 0, duration: float = 0.0, **fields: Any
) -> JobSpec:
    """Return a policy-compliant job that prints, runs and exits as asked, with a new job id."""
    values: dict[str, Any] = {
        "job_id": f"cr-{uuid.uuid4().hex[:12]}",
        "image": "docker.io/library/busybox:1.36",
        "command": Command.shell(SCENARIO_SCRIPT),
        "env": {
            "FAKE_STDOUT": stdout,
            "FAKE_STDERR": stderr,
            "FAKE_EXIT_CODE": str(exit_code),
            "FAKE_DURATION": str(duration),
        },
        # The core policy wants a numeric non-root user even though Cloud Run ignores it.
        "user": "1001:1001",
        "memory_limit_mb": 512,
        "cpu_limit": 1,
        "pids_limit": 64,
        "timeout_seconds": 600,
    }
    values.update(fields)
    return JobSpec(**values)


@pytest.fixture
def make_job() -> JobMaker:
    return make_scenario_job


def wait_exited(
    executor: CloudRunExecutor, host: HostSpec, execution_id: str, timeout: float = 15.0
) -> ExecutionStatus:
    """Poll the plugin until the execution exits; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        status = executor.check_status(host, execution_id)
        if status.state is ExecutionState.EXITED:
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"Execution {execution_id!r} did not exit within {timeout} s (last: {status}).")
        time.sleep(0.05)
