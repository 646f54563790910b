"""A ContainerJob runs through the worker on a Cloud Run host (the fake API), and a misconfigured
Cloud Run host is marked unhealthy instead of crashing the worker."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from container_manager.models import ContainerJob, ExecutorHost
from tests.cloudrun.conftest import SCENARIO_SCRIPT
from tests.fakes import FakeCloudRun, cloudrun_host_spec

pytestmark = [pytest.mark.cloudrun, pytest.mark.django_db]

FAST = {"POLL_INTERVAL": 0.05, "HEALTH_CHECK_INTERVAL": 0.2, "STOP_GRACE_SECONDS": 1}


@pytest.fixture(autouse=True)
def fast_worker(settings: Any) -> None:
    settings.CONTAINER_MANAGER = dict(FAST)


def _host(fake: FakeCloudRun, name: str = "cloudrun-fake", **config: Any) -> ExecutorHost:
    spec = cloudrun_host_spec(fake, name=name, **config)
    return ExecutorHost.objects.create(
        name=name,
        executor_type="cloudrun",
        host_type="api",
        executor_config=dict(spec.config),
        max_concurrent_jobs=4,
    )


def _job(host: ExecutorHost, *, stdout: str, exit_code: int = 0, **env: str) -> ContainerJob:
    return ContainerJob.objects.create_job(
        "docker.io/library/busybox:1.36",
        SCENARIO_SCRIPT,
        "cloud job",
        docker_host=host,
        environment_vars={
            "FAKE_STDOUT": stdout,
            "FAKE_STDERR": "",
            "FAKE_EXIT_CODE": str(exit_code),
            "FAKE_DURATION": "0.2",
            **env,
        },
        memory_limit=512,
        cpu_limit=1.0,
        timeout_seconds=300,
    )


def test_a_job_runs_end_to_end_on_a_cloudrun_host(fake_cloudrun: FakeCloudRun) -> None:
    host = _host(fake_cloudrun)
    ok = _job(host, stdout='{"rows": 3}\n')
    failing = _job(host, stdout="partial\n", exit_code=4)

    call_command("process_container_jobs", once=True, worker_id="cloudrun-e2e")

    ok.refresh_from_db()
    assert (ok.status, ok.termination_reason, ok.exit_code) == ("completed", "completed", 0)
    assert ok.execution_id.startswith(
        f"projects/{fake_cloudrun.project_number}/locations/{fake_cloudrun.region}/jobs/"
    )
    assert ok.parsed_output == {"rows": 3}
    assert '{"rows":3}' in ok.stdout_log  # Cloud Logging keeps JSON lines as structured payloads
    assert ok.started_at is not None and ok.completed_at is not None
    failing.refresh_from_db()
    assert (failing.status, failing.termination_reason, failing.exit_code) == ("failed", "non_zero_exit", 4)
    # Cleaned up after the harvest: delete_after_run is the default.
    assert fake_cloudrun.execution_names() == []


def test_a_misconfigured_cloudrun_host_is_marked_unhealthy_not_fatal(fake_cloudrun: FakeCloudRun) -> None:
    good = _host(fake_cloudrun)
    broken = _host(fake_cloudrun, name="cloudrun-no-project", project="")
    job = _job(good, stdout="still runs\n")

    call_command("process_container_jobs", once=True, worker_id="cloudrun-e2e")

    broken.refresh_from_db()
    assert broken.healthy is False
    assert "project" in broken.last_health_error
    job.refresh_from_db()
    assert job.status == "completed"
