"""The sample executor, installed as a wheel and found through its entry point, passes the contract kit.

Only the core's public testing API is used: the kit's ``contract_manager`` fixture comes from the
core's pytest plugin, and this module provides ``contract_host`` and ``contract_job``.
"""

from __future__ import annotations

import itertools

import pytest

from container_manager_core.testing import ExecutorContract, JobFactory
from container_manager_core.types import Command, HostSpec, JobSpec

_ids = itertools.count()


@pytest.fixture
def contract_host() -> HostSpec:
    return HostSpec(name="sample-contract", executor_type="sample", owner="sample-tests")


@pytest.fixture
def contract_job() -> JobFactory:
    def make(*, stdout: str = "", stderr: str = "", exit_code: int = 0, duration: float = 0.0) -> JobSpec:
        # Explicit limits, a non-root user and no network: what the core's policy requires to launch.
        return JobSpec(
            job_id=f"sample-contract-{next(_ids)}",
            image="registry.example/sample:1",
            command=Command.exec("/bin/sample"),
            env={
                "SAMPLE_STDOUT": stdout,
                "SAMPLE_STDERR": stderr,
                "SAMPLE_EXIT_CODE": str(exit_code),
                "SAMPLE_DURATION": str(duration),
            },
            user="1001:1001",
            memory_limit_mb=64,
            cpu_limit=0.5,
            pids_limit=64,
            timeout_seconds=60,
            network_mode="none",
        )

    return make


class TestSampleContract(ExecutorContract):
    """Every test of the kit, unchanged."""
