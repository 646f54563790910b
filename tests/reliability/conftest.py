"""Fixtures for reliability tests: the real Docker Engine, the test image, a Docker host row, start counting."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from container_manager.models import ContainerJob, ExecutorHost
from container_manager_core.labels import JOB_ID_LABEL, MANAGED_LABEL

BASE_URL = "unix:///var/run/docker.sock"
# Worker settings for these tests. Network "none": these tests are not about networking, and a
# burst of bridge-networked containers has wedged this engine before.
WORKER_SETTINGS: dict[str, Any] = {
    "POLL_INTERVAL": 0.2,
    "HEALTH_CHECK_INTERVAL": 2,
    "RECONCILE_INTERVAL": 2,
    "LEASE_SECONDS": 4,
    "STOP_GRACE_SECONDS": 1,
    "SHUTDOWN_GRACE_SECONDS": 5,
    "RETRY_BACKOFF_BASE_SECONDS": 1,
    "RETRY_BACKOFF_MAX_SECONDS": 2,
    "DEFAULT_NETWORK_MODE": "none",
    "DEFAULT_EXECUTOR_TYPE": "docker",
    "REQUIRE_USER_NAMESPACES": False,  # the local engine does not remap users
}


@pytest.fixture
def worker_settings(settings: Any) -> dict[str, Any]:
    settings.CONTAINER_MANAGER = dict(WORKER_SETTINGS)
    return dict(WORKER_SETTINGS)


def make_docker_host(
    name: str = "reliability-docker", base_url: str = BASE_URL, **fields: Any
) -> ExecutorHost:
    fields.setdefault("max_concurrent_jobs", 8)  # Never flood the shared engine.
    return ExecutorHost.objects.create(
        name=name,
        executor_type="docker",
        connection_string=base_url,
        auto_pull_images=False,
        executor_config={"timeout": 30, "health_timeout": 5, "default_network": "none"},
        **fields,
    )


@pytest.fixture
def docker_host(db: None, worker_settings: dict[str, Any]) -> ExecutorHost:
    return make_docker_host()


def make_docker_job(image: str, script: str, host: ExecutorHost, **options: Any) -> ContainerJob:
    options.setdefault("memory_limit", 32)
    options.setdefault("cpu_limit", 0.5)
    options.setdefault("timeout_seconds", 120)
    options.setdefault("pids_limit", 32)
    return ContainerJob.objects.create_job(
        image, script, options.pop("name", "reliability"), docker_host=host, **options
    )


class StartCounter:
    """Count the engine's ``start`` events per job, as they happen (the engine's backlog is short).

    ``history`` keeps every container event per job too, to explain a failure.
    """

    def __init__(self, client: docker.DockerClient) -> None:
        self.starts: Counter[str] = Counter()
        self.history: dict[str, list[str]] = {}
        self._stream = client.api.events(
            filters={"type": ["container"], "label": [f"{MANAGED_LABEL}=true"]}, decode=True
        )
        self._thread = threading.Thread(target=self._read, name="start-counter", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                job_id = event.get("Actor", {}).get("Attributes", {}).get(JOB_ID_LABEL)
                if not job_id:
                    continue
                action = str(event.get("Action") or event.get("status"))
                self.history.setdefault(job_id, []).append(f"{event.get('timeNano', 0)} {action}")
                if action == "start":
                    self.starts[job_id] += 1
        except Exception:  # noqa: S110 - the stream ends with an error when closed; counts are kept
            pass

    def close(self) -> Counter[str]:
        self._stream.close()
        self._thread.join(timeout=10)
        return self.starts


@pytest.fixture
def start_counter(docker_client: docker.DockerClient) -> Iterator[StartCounter]:
    counter = StartCounter(docker_client)
    yield counter
    counter.close()


def managed_containers(client: docker.DockerClient, job_ids: set[str]) -> list[str]:
    """Return the ids of labelled containers that belong to ``job_ids``."""
    found = client.api.containers(all=True, filters={"label": f"{MANAGED_LABEL}=true"})
    return [c["Id"] for c in found if (c.get("Labels") or {}).get(JOB_ID_LABEL) in job_ids]


def remove_containers(client: docker.DockerClient, job_ids: set[str]) -> None:
    for container_id in managed_containers(client, job_ids):
        try:
            client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            continue
