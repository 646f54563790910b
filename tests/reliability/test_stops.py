"""A memory hog ends as OOM, a sleeper past its timeout as timeout, a cancelled job as cancelled.

Each within a bounded time, with its container removed. Checked against a worker that classified
every exit 137 as OOM (no stop_reason): the timed-out sleeper, killed after its grace period,
ended as oom_killed.
"""

from __future__ import annotations

import time
from typing import Any

import docker
import pytest
from django.core.management import call_command
from django.dispatch import receiver

from container_manager import signals
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus, TerminationReason
from tests.reliability.conftest import make_docker_job, managed_containers

pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]  # job_started is sent on commit

MEMORY_HOG = 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo ${#x}'
# A shell that ignores SIGTERM outlives the 1 s grace period and is killed: exit 137, like an OOM kill.
STUBBORN_SLEEPER = "trap '' TERM; sleep 60 & wait; sleep 60"


def test_oom_timeout_and_cancel_end_with_their_own_reasons(
    docker_host: ExecutorHost,
    test_image: str,
    docker_client: docker.DockerClient,
    worker_settings: dict[str, Any],
):
    hog = make_docker_job(test_image, MEMORY_HOG, docker_host, memory_limit=16, name="hog")
    sleeper = make_docker_job(test_image, STUBBORN_SLEEPER, docker_host, timeout_seconds=3, name="sleeper")
    victim = make_docker_job(test_image, "sleep 60", docker_host, name="victim", max_retries=2)

    @receiver(signals.job_started, weak=False)
    def cancel_victim(*, job: ContainerJob, **kwargs: Any) -> None:
        if job.pk == victim.pk:
            job.request_cancel()  # What the admin action and the API do.

    started = time.monotonic()
    try:
        call_command("process_container_jobs", once=True)
    finally:
        signals.job_started.disconnect(cancel_victim)
    elapsed = time.monotonic() - started
    assert elapsed < 30  # Every job would otherwise run for at least 60 s.

    for job in (hog, sleeper, victim):
        job.refresh_from_db()
    assert (hog.status, hog.termination_reason, hog.exit_code) == (
        JobStatus.FAILED,
        TerminationReason.OOM_KILLED,
        137,
    )
    # Stopped after 3 s, killed after the 1 s grace: exit 137, yet a timeout, never an OOM.
    assert (sleeper.status, sleeper.termination_reason, sleeper.stop_reason) == (
        JobStatus.TIMEOUT,
        TerminationReason.TIMEOUT,
        "timeout",
    )
    assert sleeper.exit_code == 137
    assert (victim.status, victim.termination_reason, victim.retry_count) == (
        JobStatus.CANCELLED,
        TerminationReason.CANCELLED,
        0,
    )
    ids = {str(job.pk) for job in (hog, sleeper, victim)}
    deadline = time.monotonic() + 15
    while managed_containers(docker_client, ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert managed_containers(docker_client, ids) == []
