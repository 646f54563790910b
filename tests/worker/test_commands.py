"""check_hosts and cleanup_containers against mock hosts."""

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
    execution = fast_worker.launch(host.to_spec(), job.to_spec())
    ContainerJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    out = io.StringIO()
    call_command("cleanup_containers", dry_run=True, stdout=out)
    assert f"would remove {execution.execution_id}" in out.getvalue()
    assert len(fast_worker.executions(host.to_spec())) == 1
    call_command("cleanup_containers", stdout=io.StringIO())
    assert fast_worker.executions(host.to_spec()) == []
