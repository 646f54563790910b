"""Usage is measured without blocking, survives the container's exit, and is honest when unknown."""

from __future__ import annotations

import time

import docker
import pytest
from docker_executor.plugin import DockerExecutor
from docker_executor.state import parse_engine_time
from docker_executor.usage import stats_sample

from container_manager_core.types import HostSpec, ResourceUsage, TmpfsMount
from tests.integration.docker.conftest import JobMaker, wait_exited

pytestmark = pytest.mark.docker

MB = 1024 * 1024
# 20 MB in the tmpfs is charged to the container's memory; then one core is kept busy.
BUSY_AND_20_MB = "head -c 20m /dev/zero > /tmp/fill; while :; do :; done"


def test_usage_of_a_running_job_is_plausible(
    executor: DockerExecutor, docker_host: HostSpec, docker_client: docker.DockerClient, make_job: JobMaker
) -> None:
    # How long a usage() call takes is a benchmark figure (the plugin's README), not an assertion.
    job = make_job(BUSY_AND_20_MB, memory_limit_mb=64, cpu_limit=0.5, tmpfs=(TmpfsMount("/tmp", 32 * MB),))
    execution = executor.launch_job(docker_host, job)
    time.sleep(1.5)
    usage = executor.get_usage(docker_host, execution.execution_id)
    assert usage.peak_memory_bytes is not None and 20 * MB <= usage.peak_memory_bytes <= 64 * MB
    assert usage.average_cpu_percent is not None and 15 <= usage.average_cpu_percent <= 60

    # The engine's one-shot stats (the path for engines that are not local) agree with the cgroup.
    info = docker_client.api.inspect_container(execution.execution_id)
    started_at = parse_engine_time(info["State"]["StartedAt"])
    assert started_at is not None
    sample = stats_sample(docker_client.api, info["Id"], started_at)
    assert sample is not None and sample.peak_memory_bytes is not None
    assert abs(sample.peak_memory_bytes - usage.peak_memory_bytes) < 8 * MB
    one_shot = sample.usage().average_cpu_percent
    assert one_shot is not None and 15 <= one_shot <= 60

    # Once it has exited the cgroup is gone: the last sample is what is known.
    executor.stop_job(docker_host, execution.execution_id, grace_seconds=0)
    after = executor.get_usage(docker_host, execution.execution_id)
    assert after.peak_memory_bytes is not None and after.peak_memory_bytes >= usage.peak_memory_bytes
    assert after.average_cpu_percent is not None


def test_usage_never_sampled_while_running_is_unknown(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
) -> None:
    execution = executor.launch_job(docker_host, make_job("true"))
    wait_exited(executor, docker_host, execution.execution_id)
    assert executor.get_usage(docker_host, execution.execution_id) == ResourceUsage(None, None)
