"""A fault tied to one host: the real worker marks that host unhealthy with the reason and serves the others.

Each case puts one broken host (saved behind validation with ``.update()``, as a script or a migration
could) next to a healthy Docker host, both on the local engine, with jobs pinned to each. The worker
process, serving every host, must stay alive, run every healthy job exactly once (the engine's start
events), mark the broken host unhealthy with its reason, leave the broken host's jobs queued (never
claimed: the host is at fault, not the jobs) and leave no container behind.

Against the code before this test: the uninstalled type and the list config crashed the worker at its
first reconcile (NoExecutorPlugin, TypeError); log_cap_bytes -1 left its job running for ever, the
harvest retrying; api_version "1.24" bounced its job between launching and pending for ever.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import FINISHED_STATUSES, JobStatus
from tests.dockertools import engine_refused_version
from tests.reliability.conftest import (
    StartCounter,
    make_docker_host,
    make_docker_job,
    managed_containers,
    remove_containers,
)
from tests.worker.processes import start_worker, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GOOD_JOBS = 3
BAD_JOBS = 2
BASE_CONFIG = {"timeout": 30, "health_timeout": 5, "default_network": "none"}


# name -> (how to break the host, what its last_health_error must say)
FAULTS: dict[str, tuple[Callable[[docker.DockerClient], dict[str, Any]], str]] = {
    "uninstalled-type": (lambda _: {"executor_type": "kubernetes"}, "No executor plugin for 'kubernetes'"),
    "config-is-a-list": (
        lambda _: {"executor_config": ["timeout", 30]},
        "The executor config must be a JSON object, got list.",
    ),
    "negative-log-cap": (
        lambda _: {"executor_config": {**BASE_CONFIG, "log_cap_bytes": -1}},
        "log_cap_bytes must be a whole number of bytes",
    ),
    "old-api-version": (
        lambda _: {"executor_config": {**BASE_CONFIG, "api_version": "1.24"}},
        "api_version '1.24' is outside the versions this plugin supports",
    ),
    # Accepted by the plugin, refused by the engine: found when the worker first talks to the host.
    "engine-refuses-api-version": (
        lambda client: {"executor_config": {**BASE_CONFIG, "api_version": engine_refused_version(client)}},
        "in the API version it is configured with: client version",
    ),
}


def run_beside_a_broken_host(
    client: docker.DockerClient,
    image: str,
    fault: str,
    settings: dict[str, Any],
    log_path: Path,
    *,
    once: bool,
) -> tuple[ExecutorHost, list[str], list[str], StartCounter, str]:
    """Run a worker over a healthy host and one broken by ``fault``; return what the checks need."""
    breaks, _ = FAULTS[fault]
    changes = breaks(client)  # before any row: a skip leaves nothing behind
    good_host = make_docker_host("healthy-docker")
    bad_host = make_docker_host("broken-host")
    good = [make_docker_job(image, f"echo good-{n}", good_host, max_retries=0).pk for n in range(GOOD_JOBS)]
    bad = [make_docker_job(image, f"echo bad-{n}", bad_host, max_retries=0).pk for n in range(BAD_JOBS)]
    ExecutorHost.objects.filter(pk=bad_host.pk).update(**changes)  # behind validation's back
    finished = ContainerJob.objects.filter(pk__in=good, status__in=FINISHED_STATUSES)
    counter = StartCounter(client)
    code: int | None = None
    with log_path.open("wb") as log:
        worker = start_worker(["--concurrency", "4", *(["--once"] if once else [])], settings, log=log)
        try:
            if once:
                code = worker.wait(timeout=90)  # a --once worker finishes what it can run, then exits
            else:
                wait_for(
                    lambda: finished.count() == GOOD_JOBS or worker.poll() is not None,
                    90,
                    "the healthy host's jobs to finish",
                )
                # A few health and reconcile rounds (2 s each): a broken host must stay broken.
                time.sleep(5)
                assert worker.poll() is None, "the worker died:\n" + log_path.read_text()[-3000:]
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=30)
    text = log_path.read_text()
    assert code == 0, text[-3000:]
    bad_host.refresh_from_db()
    return bad_host, [str(pk) for pk in good], [str(pk) for pk in bad], counter, text


@pytest.mark.parametrize("once", [False, True], ids=["serving", "once"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_broken_host_is_marked_and_the_others_are_served(
    docker_client: docker.DockerClient,
    test_image: str,
    worker_settings: dict[str, Any],
    tmp_path: Path,
    fault: str,
    once: bool,
):
    all_ids: set[str] = set()
    try:
        bad_host, good, bad, counter, text = run_beside_a_broken_host(
            docker_client, test_image, fault, worker_settings, tmp_path / "worker.log", once=once
        )
        all_ids = set(good) | set(bad)
        starts = counter.close()
        for job in ContainerJob.objects.filter(pk__in=good):
            assert (job.status, job.exit_code, job.clean_output) == (
                JobStatus.COMPLETED,
                0,
                f"good-{good.index(str(job.pk))}\n",
            ), text[-3000:]
            assert starts[str(job.pk)] == 1, (counter.history.get(str(job.pk)), text[-3000:])
        _, expected = FAULTS[fault]
        assert not bad_host.healthy, text[-3000:]
        assert expected in bad_host.last_health_error, bad_host.last_health_error
        for job in ContainerJob.objects.filter(pk__in=bad):
            # Never claimed: still queued as created, no attempt used, nothing started.
            assert (job.status, job.attempt, job.retry_count, job.last_error) == (
                JobStatus.PENDING,
                0,
                0,
                "",
            ), (text[-3000:], job.last_error)
            assert starts[str(job.pk)] == 0
        assert managed_containers(docker_client, all_ids) == []
    finally:
        remove_containers(docker_client, all_ids)


def test_fixing_the_host_lets_its_jobs_run(
    docker_client: docker.DockerClient, test_image: str, worker_settings: dict[str, Any], tmp_path: Path
):
    bad_host, good, bad, counter, _ = run_beside_a_broken_host(
        docker_client, test_image, "negative-log-cap", worker_settings, tmp_path / "first.log", once=True
    )
    counter.close()
    ExecutorHost.objects.filter(pk=bad_host.pk).update(executor_config=BASE_CONFIG)
    log_path = tmp_path / "second.log"
    try:
        with log_path.open("wb") as log:
            worker = start_worker(["--once"], worker_settings, log=log)
            assert worker.wait(timeout=90) == 0, log_path.read_text()[-3000:]
        jobs = ContainerJob.objects.filter(pk__in=bad)
        assert sorted(jobs.values_list("status", "attempt")) == [(JobStatus.COMPLETED, 1)] * BAD_JOBS
        bad_host.refresh_from_db()
        assert (bad_host.healthy, bad_host.last_health_error) == (True, "")
    finally:
        remove_containers(docker_client, set(good) | set(bad))
