"""Health is a real read of the local engine: its version and what it can enforce.

The health tests that need no engine (absent, wedged, /info readings) are in
tests/unit/plugins/test_docker_health.py."""

from __future__ import annotations

import pytest
from docker_executor.plugin import DockerExecutor

from container_manager_core.types import HostSpec

pytestmark = pytest.mark.docker


def test_local_engine_is_healthy_with_version_and_details(
    executor: DockerExecutor, docker_host: HostSpec
) -> None:
    health = executor.get_health_status(docker_host)
    assert health.healthy, health.error
    assert health.error is None
    assert health.engine_version and health.engine_version[0].isdigit()
    assert 0 < health.response_time < 5
    details = health.as_dict()
    assert details["api_version"] == executor._get_client(docker_host).api.api_version
    assert details["cgroup_version"] in ("1", "2")
    assert details["cgroup_driver"] in ("cgroupfs", "systemd")
    assert details["userns_remap"] is False
    assert details["memory_limit"] is details["pids_limit"] is True
