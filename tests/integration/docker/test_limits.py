"""Memory and process limits hold on real containers, and an OOM kill is reported as one."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import docker
import pytest
from docker_executor.oom import oom_event_seen
from docker_executor.plugin import DockerExecutor
from docker_executor.state import parse_engine_time
from docker_executor.usage import cgroup_dirs

from container_manager_core.types import ExecutionState, HostSpec
from tests.integration.docker.conftest import JobMaker, wait_exited

pytestmark = pytest.mark.docker

# busybox tail keeps a newline-free stream in memory, so this allocates ~200 MB.
ALLOCATE_200_MB = "head -c 200m /dev/zero | tail"


def test_memory_oom_is_reported_as_oom(
    executor: DockerExecutor, docker_host: HostSpec, docker_client: docker.DockerClient, make_job: JobMaker
) -> None:
    execution = executor.launch_job(docker_host, make_job(ALLOCATE_200_MB, memory_limit_mb=32))
    status = wait_exited(executor, docker_host, execution.execution_id)
    assert status.oom_killed
    assert status.exit_code == 137
    # The event the verdict can rest on when the engine's flag is missing is really there.
    created = parse_engine_time(docker_client.api.inspect_container(execution.execution_id)["Created"])
    assert created is not None
    assert oom_event_seen(
        docker_client.api, execution.execution_id, since=created.timestamp() - 1, timeout=10
    )


def test_oom_of_a_child_is_reported_even_when_the_job_exits_zero(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
) -> None:
    # The hog volunteers as the OOM killer's victim: left to its own scoring, the kernel now and then
    # took the shell too once the hog was gone (exit 137, seen about once in 5 runs on this machine).
    job = make_job(
        f"(echo 1000 > /proc/self/oom_score_adj; {ALLOCATE_200_MB}); echo survived", memory_limit_mb=32
    )
    execution = executor.launch_job(docker_host, job)
    status = wait_exited(executor, docker_host, execution.execution_id)
    assert status.exit_code == 0
    assert status.oom_killed
    assert executor.get_logs(docker_host, execution.execution_id, timestamps=False).stdout == "survived\n"


def test_a_job_within_its_memory_is_not_oom(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
) -> None:
    execution = executor.launch_job(
        docker_host, make_job("head -c 8m /dev/zero | tail | wc -c", memory_limit_mb=32)
    )
    status = wait_exited(executor, docker_host, execution.execution_id)
    assert (status.exit_code, status.oom_killed) == (0, False)


def test_fork_bomb_is_held_at_the_pids_limit(
    executor: DockerExecutor, docker_host: HostSpec, docker_client: docker.DockerClient, make_job: JobMaker
) -> None:
    limit = 32
    # The bomb forks until the kernel refuses; PID 1's shell then execs sleep, so the container lives on.
    bomb = "f(){ while :; do f & done; }; f & exec sleep 30"
    execution = executor.launch_job(docker_host, make_job(bomb, pids_limit=limit, cpu_limit=0.5))
    info = docker_client.api.inspect_container(execution.execution_id)
    pids_dir = cgroup_dirs(info["State"]["Pid"], info["Id"])["pids"]
    assert Path(pids_dir, "pids.max").read_text().strip() == str(limit)

    highest = 0
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        try:
            highest = max(highest, int(Path(pids_dir, "pids.current").read_text()))
        except FileNotFoundError:
            break
        time.sleep(0.002)
    refused = int(Path(pids_dir, "pids.events").read_text().split()[1])

    assert highest <= limit
    assert refused > 0, "the bomb never reached the limit, so this test proved nothing"
    assert executor.check_status(docker_host, execution.execution_id).state is ExecutionState.RUNNING
    # The host is fine: it can still fork, and the engine answers promptly.
    started = time.monotonic()
    subprocess.run(["true"], check=True, timeout=5)
    assert docker_client.ping()
    assert time.monotonic() - started < 2
    assert executor.stop_job(docker_host, execution.execution_id, grace_seconds=0) is True
