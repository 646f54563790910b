"""check_hosts, cleanup_containers and the --host names of both commands, against mock hosts."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from mock_executor.plugin import MockExecutor

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus
from tests.worker.conftest import make_host, make_job

pytestmark = pytest.mark.django_db


def test_check_hosts_records_health_and_fails_when_one_is_unhealthy(db: None):
    good = make_host("good")
    bad = make_host("bad", executor_config={"unhealthy": "disk full"})
    make_host("retired", is_active=False, executor_config={"unreachable": True})
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 host") as raised:
        call_command("check_hosts", stdout=out)
    assert raised.value.returncode == 1
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.healthy and good.last_health_check is not None and good.health_response_time is not None
    assert not bad.healthy and bad.last_health_error == "disk full"
    assert "good: healthy" in out.getvalue() and "bad: UNHEALTHY" in out.getvalue()
    assert "retired" not in out.getvalue()


def test_check_hosts_succeeds_when_every_host_is_healthy(db: None):
    make_host("good")
    out = io.StringIO()
    call_command("check_hosts", stdout=out)
    assert "good: healthy" in out.getvalue()


def test_cleanup_containers_dry_run_removes_nothing(host: ExecutorHost, fast_worker: MockExecutor):
    job = make_job(host)
    execution = fast_worker.launch_job(host.to_spec(), job.to_spec())
    ContainerJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    out = io.StringIO()
    call_command("cleanup_containers", dry_run=True, stdout=out)
    assert f"would remove {execution.execution_id}" in out.getvalue()
    assert len(fast_worker.list_executions(host.to_spec())) == 1
    call_command("cleanup_containers", stdout=io.StringIO())
    assert fast_worker.list_executions(host.to_spec()) == []


def test_the_worker_refuses_an_unknown_host_and_names_the_existing_ones(db: None):
    make_host("alpha")
    make_host("beta")
    job = make_job()
    with pytest.raises(
        CommandError, match=r"^Unknown executor hosts: alhpa, nope\. Existing hosts: alpha, beta\.$"
    ):
        call_command("process_container_jobs", once=True, hosts=["alhpa", "nope", "beta"])
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.worker_id == ""  # Refused before claiming anything.


def test_the_worker_says_when_there_are_no_hosts_at_all(db: None):
    with pytest.raises(CommandError, match=r"^Unknown executor host: nope\. There are no executor hosts yet"):
        call_command("process_container_jobs", once=True, hosts=["nope"])


def test_the_worker_refuses_an_inactive_host(db: None):
    make_host("live")
    make_host("retired", is_active=False)
    with pytest.raises(
        CommandError, match=r"^Inactive executor host: retired\. A worker serves active hosts only"
    ):
        call_command("process_container_jobs", once=True, hosts=["live", "retired"])


def test_the_worker_names_unknown_and_inactive_hosts_together(db: None):
    make_host("retired", is_active=False)
    with pytest.raises(CommandError) as raised:
        call_command("process_container_jobs", once=True, hosts=["retired", "nope"])
    assert "Unknown executor host: nope. Existing hosts: retired." in str(raised.value)
    assert "Inactive executor host: retired." in str(raised.value)


def test_check_hosts_names_an_unknown_host_and_checks_nothing(db: None):
    good = make_host("good")
    with pytest.raises(CommandError, match=r"^Unknown executor host: nope\. Existing hosts: good\.$"):
        call_command("check_hosts", hosts=["good", "nope"], stdout=io.StringIO())
    good.refresh_from_db()
    assert good.last_health_check is None


def test_check_hosts_checks_a_named_inactive_host_and_says_it_is_inactive(db: None):
    make_host("good")
    new = make_host("new", is_active=False)
    out = io.StringIO()
    call_command("check_hosts", hosts=["new"], stdout=out)
    assert out.getvalue().startswith("new (inactive): healthy in ")
    assert "good" not in out.getvalue()
    new.refresh_from_db()
    assert new.healthy and new.last_health_check is not None


def test_check_hosts_without_active_hosts_says_so(db: None):
    make_host("retired", is_active=False)
    with pytest.raises(CommandError, match=r"^No active executor hosts to check\.$"):
        call_command("check_hosts", stdout=io.StringIO())
