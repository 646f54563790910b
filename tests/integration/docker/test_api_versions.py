"""An API version the real engine refuses is the host's fault: a HostMisconfigured error, an unhealthy host."""

from __future__ import annotations

import attrs
import docker
import pytest
from docker_executor.config import host_violations
from docker_executor.plugin import DockerExecutor

from container_manager_core.errors import HostMisconfigured
from container_manager_core.types import HostSpec, JobSpec
from tests.dockertools import engine_refused_version

pytestmark = pytest.mark.docker


@pytest.fixture
def refused_host(docker_client: docker.DockerClient, docker_host: HostSpec) -> HostSpec:
    version = engine_refused_version(docker_client)
    host = attrs.evolve(
        docker_host, name="refused-version", config={**docker_host.config, "api_version": version}
    )
    assert host_violations(host) == []  # the plugin accepts it: only the engine can refuse it
    return host


def test_the_health_check_reports_the_engines_refusal(executor: DockerExecutor, refused_host: HostSpec):
    health = executor.get_health_status(refused_host)
    assert not health.healthy
    assert str(health.error).startswith(
        "Docker host 'refused-version' refused to answer the health check in the API version it is "
        "configured with: client version "
    )
    assert str(health.error).endswith(
        "Set api_version in the host's executor_config to a version the engine supports, or to 'auto'."
    )


def test_a_launch_the_engine_refuses_for_its_version_is_a_host_fault(
    executor: DockerExecutor, refused_host: HostSpec, make_job
):
    job: JobSpec = make_job("true")
    with pytest.raises(HostMisconfigured, match=r"refused to launch job .* client version "):
        executor.launch_job(refused_host, job)
