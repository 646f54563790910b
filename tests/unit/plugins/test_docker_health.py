"""Health without an engine: an absent or wedged engine is an unhealthy answer, and the engine's /info
is read for the limits it can enforce and whether it remaps users.

Moved out of tests/integration/docker: none of these talks to a real engine, so they run wherever
the unit suite runs.
"""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_executor.health import engine_details, limit_problems
from docker_executor.plugin import DockerExecutor

from container_manager_core.errors import ExecutorUnavailable
from container_manager_core.types import HostSpec
from tests.dockertools import RUN_ID


@pytest.fixture
def executor() -> DockerExecutor:
    return DockerExecutor()


def test_an_absent_engine_is_unhealthy_not_an_exception(executor: DockerExecutor) -> None:
    host = HostSpec("gone", "docker", f"unix:///tmp/cm-no-such-{RUN_ID}.sock")
    health = executor.get_health_status(host)
    assert not health.healthy
    assert health.error == f"Docker host 'gone' has no engine socket at '/tmp/cm-no-such-{RUN_ID}.sock'."


@pytest.fixture
def wedged_socket() -> Iterator[str]:
    """Return a unix socket that accepts connections and never answers, like a wedged engine."""
    with tempfile.TemporaryDirectory(prefix="cm-wedged-") as directory:
        path = str(Path(directory, "docker.sock"))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(16)
        try:
            yield path
        finally:
            listener.close()


def test_a_wedged_engine_is_unhealthy_within_the_health_timeout(
    executor: DockerExecutor, wedged_socket: str
) -> None:
    host = HostSpec("wedged", "docker", f"unix://{wedged_socket}", config={"health_timeout": 1, "timeout": 1})
    started = time.monotonic()
    health = executor.get_health_status(host)
    assert not health.healthy
    assert "Read timed out. (read timeout=1)" in (health.error or "")
    assert time.monotonic() - started < 5
    # Every other call is bounded too: the worker gets a retryable error, not a hang.
    started = time.monotonic()
    with pytest.raises(ExecutorUnavailable):
        executor.check_status(host, "anything")
    assert time.monotonic() - started < 5


def test_an_engine_that_cannot_enforce_limits_is_unhealthy() -> None:
    # What a rootless engine on cgroup v1 reports in /info.
    info = {"MemoryLimit": False, "PidsLimit": False, "CpuCfsQuota": True, "CgroupVersion": "1"}
    problems = limit_problems(info)
    assert len(problems) == 2
    assert problems[0].startswith("the engine cannot enforce memory limits (MemoryLimit is False")
    assert problems[1].startswith("the engine cannot enforce process-count limits (PidsLimit is False")


def test_details_report_user_namespace_remapping() -> None:
    info = {"SecurityOptions": ["name=seccomp,profile=default", "name=userns"], "CgroupDriver": "systemd"}
    details = engine_details(info, "1.41")
    assert details["userns_remap"] is True
    assert details["rootless"] is False
    assert (details["cgroup_version"], details["cgroup_driver"], details["api_version"]) == (
        "1",
        "systemd",
        "1.41",
    )


def test_the_engines_size_is_reported_for_placement() -> None:
    from container_manager_core.capacity import EngineCapacity, read_capacity

    info = {"MemTotal": 4 * 1024**3, "NCPU": 2, "MemoryLimit": True, "PidsLimit": True, "CpuCfsQuota": True}
    assert read_capacity(engine_details(info, "1.41")) == EngineCapacity(4096, 2.0)
