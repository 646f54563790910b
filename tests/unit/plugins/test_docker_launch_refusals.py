"""Launches the plugin refuses before any engine answers: an absent engine, plain TCP, a version too old.

Moved out of tests/integration/docker: each fails before a request reaches an engine, so they run
wherever the unit suite runs, with no engine at all.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_executor.plugin import DockerExecutor

from container_manager_core.errors import ExecutorError, ExecutorUnavailable, HostMisconfigured
from container_manager_core.types import Command, HostSpec, JobSpec
from tests.dockertools import RUN_ID


def job() -> JobSpec:
    return JobSpec(
        job_id=f"refused-{RUN_ID}",
        image="container-manager-test/busybox:latest",
        command=Command.shell("true"),
        user="1001:1001",
        memory_limit_mb=64,
        cpu_limit=0.5,
        pids_limit=64,
        timeout_seconds=60,
        network_mode="none",
    )


def test_an_unreachable_engine_is_unavailable() -> None:
    executor = DockerExecutor()
    host = HostSpec("gone", "docker", f"unix:///tmp/cm-no-such-{RUN_ID}.sock", config={"timeout": 2})
    with pytest.raises(ExecutorUnavailable, match="Docker host 'gone'"):
        executor.launch_job(host, job())
    with pytest.raises(ExecutorUnavailable):
        executor.check_status(host, "anything")


def test_plain_tcp_is_refused_unless_the_host_opts_in() -> None:
    host = HostSpec("plain", "docker", "tcp://127.0.0.1:2375")
    with pytest.raises(ExecutorError, match="without TLS"):
        DockerExecutor().launch_job(host, job())


@pytest.fixture
def silent_socket() -> Iterator[str]:
    """Return a unix socket that accepts connections and never answers: any request would hang."""
    with tempfile.TemporaryDirectory(prefix="cm-silent-") as directory:
        path = str(Path(directory, "docker.sock"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen(16)
            yield path


def test_a_pinned_version_too_old_for_the_request_is_a_host_fault(silent_socket: str) -> None:
    # Saved behind validation: the plugin reads its settings through the typed config, which refuses
    # a version below the oldest it can build every request for (docker-py has no init below 1.25),
    # before any request (the socket never answers).
    host = HostSpec(
        "old-version",
        "docker",
        f"unix://{silent_socket}",
        config={"default_network": "none", "api_version": "1.24", "timeout": 2},
    )
    with pytest.raises(
        HostMisconfigured, match=r"api_version '1.24' is outside the versions this plugin supports"
    ):
        DockerExecutor().launch_job(host, job())
