"""The shared executor contract, run against the Docker plugin installed through its entry point."""

from __future__ import annotations

import pytest

from container_manager_core.testing import ExecutorContract, JobFactory
from container_manager_core.types import HostSpec, JobSpec
from tests.integration.docker.conftest import JobMaker

pytestmark = pytest.mark.docker

# Values travel in the environment, so any text is printed verbatim with no shell quoting.
CONTRACT_SCRIPT = (
    '[ -n "$CM_STDOUT" ] && printf "%s\\n" "$CM_STDOUT"; '
    '[ -n "$CM_STDERR" ] && printf "%s\\n" "$CM_STDERR" >&2; '
    'sleep "$CM_DURATION"; exit "$CM_EXIT_CODE"'
)


class TestDockerContract(ExecutorContract):
    @pytest.fixture
    def contract_host(self, docker_host: HostSpec) -> HostSpec:
        return docker_host

    @pytest.fixture
    def contract_job(self, make_job: JobMaker) -> JobFactory:
        def factory(
            *, stdout: str = "", stderr: str = "", exit_code: int = 0, duration: float = 0.0
        ) -> JobSpec:
            env = {
                "CM_STDOUT": stdout,
                "CM_STDERR": stderr,
                "CM_DURATION": f"{duration:g}",
                "CM_EXIT_CODE": str(exit_code),
            }
            return make_job(CONTRACT_SCRIPT, env=env)

        return factory
