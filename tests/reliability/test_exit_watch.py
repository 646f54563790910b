"""A running job costs the engine almost nothing: its exit is learnt from the end of its followed output.

The worker used to poll each running container's state about twice a second (0.5 s at most
between two inspections), so 1,000 running jobs meant some 2,000 inspections a second on one
engine. While a follower reads the output, the watcher now asks once when the output ends (or
breaks) and once per wait slice.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import docker
import pytest
from django.core.management import call_command

from container_manager.models import ExecutorHost
from container_manager.states import JobStatus
from tests.reliability.conftest import make_docker_job

pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]


def test_a_running_job_is_not_polled_while_its_output_is_followed(
    docker_host: ExecutorHost, test_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inspections: Counter[str] = Counter()
    real = docker.APIClient.inspect_container

    def counted(self: docker.APIClient, container: str, *args: Any, **kwargs: Any) -> Any:
        inspections[str(container)] += 1
        return real(self, container, *args, **kwargs)

    monkeypatch.setattr(docker.APIClient, "inspect_container", counted)
    job = make_docker_job(test_image, "echo started; sleep 8; echo done", docker_host)
    call_command("process_container_jobs", once=True, concurrency=1)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.last_error
    assert job.clean_output == "started\ndone\n"
    # Polled, the 8 s run took 30 inspections; followed, a look after each wait slice (2 s, then
    # 4 s), one when the output ends, and the harvest's.
    assert sum(inspections.values()) <= 6, inspections
