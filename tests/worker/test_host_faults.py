"""The host rule in process: refused hosts are marked with their reason, left out of claims, and re-judged.

The real worker process against real Docker hosts is in tests/reliability/test_host_faults.py; these
cover each place the rule applies (claim, reconcile, health, check_hosts, cleanup_containers, the
admin) and the runner's two host-fault paths (a launch refused for the host's config, a harvest
that keeps failing).
"""

from __future__ import annotations

import io
import random
import re
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from mock_executor.plugin import MockExecutor

from container_manager import health
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus, TerminationReason
from container_manager.worker import claims, runner
from container_manager_core.errors import ExecutorError, HostMisconfigured
from tests.worker.conftest import make_host, make_job

pytestmark = pytest.mark.django_db

NO_PLUGIN = "No executor plugin for 'nomad'"
LIST_CONFIG = "The executor config must be a JSON object, got list."


def claim(**options: Any) -> list[claims.Claim]:
    return claims.claim_jobs(
        worker_id="w1",
        limit=10,
        host_names=(),
        default_executor_type="mock",
        lease_seconds=30,
        rng=random.Random(1),  # noqa: S311 - seeded for repeatable placement
        **options,
    ).won


def docker_host(name: str = "d1", **config: Any) -> ExecutorHost:
    return ExecutorHost.objects.create(
        name=name,
        executor_type="docker",
        connection_string="unix:///var/run/docker.sock",
        executor_config=config,
    )


def test_a_claim_leaves_out_a_host_it_cannot_use_and_marks_it(db: None):
    good, bad = make_host("good"), make_host("bad")
    good_job, bad_job = make_job(good), make_job(bad)
    ExecutorHost.objects.filter(pk=bad.pk).update(executor_config=["not", "an", "object"])
    (won,) = claim()
    assert won.job.pk == good_job.pk
    bad.refresh_from_db()
    assert (bad.healthy, bad.last_health_error) == (False, LIST_CONFIG)
    bad_job.refresh_from_db()
    assert (bad_job.status, bad_job.attempt) == (JobStatus.PENDING, 0)


def test_a_host_marked_healthy_by_hand_is_refused_again_without_a_write(db: None, django_assert_num_queries):
    bad = make_host("bad")
    ExecutorHost.objects.filter(pk=bad.pk).update(executor_type="nomad")
    bad.refresh_from_db()
    assert health.refuse_if_unusable(bad)
    assert bad.last_health_error.startswith(NO_PLUGIN)
    with django_assert_num_queries(0):  # known broken, already marked: nothing to write
        assert health.refuse_if_unusable(bad)
    ExecutorHost.objects.filter(pk=bad.pk).update(healthy=True)
    bad.refresh_from_db()
    assert health.refuse_if_unusable(bad)
    bad.refresh_from_db()
    assert not bad.healthy


def test_a_fixed_host_is_judged_again_at_once(db: None):
    host = docker_host(log_cap_bytes=-1)
    assert "log_cap_bytes must be a whole number of bytes" in health.unusable_reason(host)
    ExecutorHost.objects.filter(pk=host.pk).update(executor_config={"log_cap_bytes": 4096})
    host.refresh_from_db()
    assert health.unusable_reason(host) == ""


def test_a_validator_that_raises_is_a_refusal_not_a_crash(db: None, monkeypatch: pytest.MonkeyPatch):
    host = make_host("odd")

    def broken(self: ExecutorHost, *, source: str) -> str:
        raise KeyError("region")

    monkeypatch.setattr(ExecutorHost, "unusable_reason", broken)
    assert health.unusable_reason(host) == "Host 'odd' could not be validated: KeyError: 'region'"


def test_the_worker_serves_the_other_hosts(db: None, fast_worker: MockExecutor):
    good = make_host("good")
    orphan, listed = make_host("orphan"), make_host("listed")
    jobs = [make_job(good) for _ in range(3)]
    stuck = [make_job(orphan), make_job(listed)]
    ExecutorHost.objects.filter(pk=orphan.pk).update(executor_type="nomad")
    ExecutorHost.objects.filter(pk=listed.pk).update(executor_config=[1])
    call_command("process_container_jobs", once=True)
    assert {j.status for j in ContainerJob.objects.filter(pk__in=[j.pk for j in jobs])} == {
        JobStatus.COMPLETED
    }
    for job in ContainerJob.objects.filter(pk__in=[j.pk for j in stuck]):
        assert (job.status, job.attempt, job.last_error) == (JobStatus.PENDING, 0, "")
    orphan.refresh_from_db()
    listed.refresh_from_db()
    assert not orphan.healthy and orphan.last_health_error.startswith(NO_PLUGIN)
    assert (listed.healthy, listed.last_health_error) == (False, LIST_CONFIG)


def test_check_hosts_and_cleanup_report_a_refused_host(db: None):
    make_host("good")
    docker_host("capped", log_cap_bytes=-1)
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 host"):
        call_command("check_hosts", stdout=out)
    assert re.search(
        r"^capped: UNHEALTHY in [0-9.]+s: Docker host 'capped': log_cap_bytes must be a whole number of bytes",
        out.getvalue(),
        re.MULTILINE,
    )
    err = io.StringIO()
    call_command("cleanup_containers", stdout=io.StringIO(), stderr=err)
    assert "capped: cannot be used as it is configured: Docker host 'capped': log_cap_bytes" in err.getvalue()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"log_cap_bytes": -1}, "log_cap_bytes must be a whole number of bytes from 1 to"),
        ({"api_version": "1.24"}, "api_version '1.24' is outside the versions this plugin supports"),
        ({"timeout": 0}, "timeout must be a positive number of seconds, got 0."),
        ({"timout": 30}, "the config key 'timout' is unknown; known keys are allow_insecure_tcp,"),
    ],
)
def test_saving_a_config_the_plugin_refuses_fails_on_the_config_field(config: dict[str, Any], message: str):
    host = ExecutorHost(name="d1", executor_type="docker", connection_string="unix:///var/run/docker.sock")
    host.executor_config = config
    with pytest.raises(ValidationError) as info:
        host.full_clean()
    [error] = info.value.message_dict["executor_config"]
    assert message in error


def test_the_admin_form_shows_the_plugins_refusal(admin_client):
    add = reverse("admin:container_manager_executorhost_add")
    data = {
        "name": "d1",
        "executor_type": "docker",
        "host_type": "unix",
        "connection_string": "unix:///var/run/docker.sock",
        "tls_verify": "on",
        "is_active": "on",
        "weight": "100",
        "max_concurrent_jobs": "10",
        "executor_config": '{"log_cap_bytes": -1}',
    }
    response = admin_client.post(add, data)
    assert response.status_code == 200
    assert "log_cap_bytes must be a whole number of bytes" in response.content.decode()
    assert not ExecutorHost.objects.filter(name="d1").exists()
    data["executor_config"] = '{"log_cap_bytes": 4096}'
    assert admin_client.post(add, data).status_code == 302
    assert ExecutorHost.objects.get(name="d1").executor_config == {"log_cap_bytes": 4096}


def test_a_launch_refused_for_the_hosts_config_releases_the_job_without_a_retry(
    db: None, fast_worker: MockExecutor, monkeypatch: pytest.MonkeyPatch
):
    host = make_host()
    job = make_job(host, max_retries=0)
    refusal = "Docker host 'mock-1' refused to launch job in the API version it is configured with: too new."

    def refused(self: MockExecutor, host_spec: Any, spec: Any) -> Any:
        raise HostMisconfigured(refusal)

    monkeypatch.setattr(MockExecutor, "launch_job", refused)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    host.refresh_from_db()
    assert (job.status, job.retry_count, job.last_error) == (JobStatus.PENDING, 0, refusal)
    assert (host.healthy, host.last_health_error) == (False, refusal)


def test_a_harvest_that_keeps_failing_ends_the_job_with_a_clear_error(
    db: None, fast_worker: MockExecutor, monkeypatch: pytest.MonkeyPatch
):
    host = make_host()
    job = make_job(host, max_retries=0)
    calls = []

    def refuse_logs(self: MockExecutor, host_spec: Any, execution_id: str, *, timestamps: bool) -> Any:
        calls.append(execution_id)
        raise ExecutorError("Host config 'log_cap_bytes' must be a whole number of bytes, got -1.")

    monkeypatch.setattr(MockExecutor, "get_logs", refuse_logs)
    monkeypatch.setattr(runner, "RETRY_PAUSE_SECONDS", (0.001,))
    call_command("process_container_jobs", once=True)  # returns: before, it retried for ever
    job.refresh_from_db()
    assert len(calls) == runner.HARVEST_ATTEMPTS
    assert (job.status, job.exit_code, job.termination_reason) == (
        JobStatus.COMPLETED,
        0,
        TerminationReason.COMPLETED,
    )
    assert job.last_error == (
        f"The job's results could not be collected after {runner.HARVEST_ATTEMPTS} attempts, so its output is "
        "missing: Host config 'log_cap_bytes' must be a whole number of bytes, got -1."
    )
    assert job.interruption_count == 0  # a refusal is not an engine outage
