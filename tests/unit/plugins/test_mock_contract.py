"""The mock executor, found through its entry point, passes the core's contract kit."""

from __future__ import annotations

import itertools

import pytest

from container_manager_core.testing import ExecutorContract, JobFactory
from container_manager_core.types import Command, HostSpec, JobSpec

_ids = itertools.count()


@pytest.fixture
def contract_host() -> HostSpec:
    return HostSpec(name="mock-contract", executor_type="mock")


@pytest.fixture
def contract_job() -> JobFactory:
    def make(*, stdout: str = "", stderr: str = "", exit_code: int = 0, duration: float = 0.0) -> JobSpec:
        return JobSpec(
            job_id=f"contract-{next(_ids)}",
            image="busybox:latest",
            command=Command.shell("true"),
            env={
                "MOCK_STDOUT": stdout,
                "MOCK_STDERR": stderr,
                "MOCK_EXIT_CODE": str(exit_code),
                "MOCK_DURATION": str(duration),
            },
            user="1001:1001",
            memory_limit_mb=64,
            cpu_limit=0.5,
            pids_limit=64,
            timeout_seconds=60,
            network_mode="none",
        )

    return make


class TestMockContract(ExecutorContract):
    pass
