"""Placement on the real engine: the health check reads the engine's size, and a host whose
capacity is overridden small runs a second job only once the first has ended."""

from __future__ import annotations

import docker
import pytest
from django.core.management import call_command

from container_manager.models import ExecutorHost
from container_manager.states import JobStatus
from tests.reliability.conftest import make_docker_job

pytestmark = [pytest.mark.docker, pytest.mark.django_db]


def test_a_second_job_waits_for_room_on_a_small_host(
    docker_host: ExecutorHost, test_image: str, docker_client: docker.DockerClient
):
    # 64 MB: room for one 48 MB job at a time, though the host has slots for eight.
    ExecutorHost.objects.filter(pk=docker_host.pk).update(memory_capacity_mb=64)
    first, second = (
        make_docker_job(test_image, "sleep 2; echo done", docker_host, memory_limit=48, name=f"room-{n}")
        for n in range(2)
    )
    call_command("process_container_jobs", once=True, concurrency=4)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (JobStatus.COMPLETED, JobStatus.COMPLETED)
    ordered = sorted([first, second], key=lambda job: job.launched_at)
    assert ordered[1].launched_at >= ordered[0].completed_at, [
        (job.launched_at, job.started_at, job.completed_at) for job in ordered
    ]
    # The worker's health check read the engine's own size; the override is what placed the jobs.
    docker_host.refresh_from_db()
    info = docker_client.info()
    assert docker_host.engine_memory_mb == info["MemTotal"] // (1024 * 1024)
    assert docker_host.engine_cpus == float(info["NCPU"])
