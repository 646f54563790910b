"""Crash recovery with the mock executor: adopt, harvest, relaunch, fail and remove orphans."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import attrs
import pytest
from django.core.management import call_command
from django.utils import timezone
from mock_executor.plugin import MockExecutor

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus, TerminationReason
from container_manager_core.errors import ExecutorUnavailable, LaunchFailed
from container_manager_core.types import ExecutionState
from tests.worker.conftest import make_job

pytestmark = pytest.mark.django_db


def orphaned(
    job: ContainerJob, status: str, *, execution_id: str = "", expired: bool = True, **fields: Any
) -> None:
    """Make ``job`` look as a dead worker left it."""
    lease = timezone.now() + timedelta(seconds=-5 if expired else 300)
    ContainerJob.objects.filter(pk=job.pk).update(
        status=status,
        worker_id="dead-worker",
        attempt=1,
        lease_expires_at=lease,
        execution_id=execution_id,
        started_at=timezone.now(),
        **fields,
    )


def launch(mock: MockExecutor, host: ExecutorHost, job: ContainerJob) -> str:
    return mock.launch_job(host.to_spec(), job.to_spec()).execution_id


def test_an_exit_nobody_watched_is_harvested_with_its_real_code(
    host: ExecutorHost, fast_worker: MockExecutor
):
    job = make_job(host, env={"MOCK_EXIT_CODE": 5, "MOCK_STDOUT": "done"})
    eid = launch(fast_worker, host, job)
    orphaned(job, JobStatus.RUNNING, execution_id=eid)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert (job.status, job.exit_code, job.termination_reason) == (JobStatus.FAILED, 5, "non_zero_exit")
    assert "done" in job.stdout_log
    assert job.attempt == 2 and job.worker_id != "dead-worker"
    assert "took over from dead-worker" in job.docker_log
    assert fast_worker.launch_count == 1
    assert fast_worker.check_status(host.to_spec(), eid).state is ExecutionState.NOT_FOUND


def test_a_running_container_is_adopted_and_followed(host: ExecutorHost, fast_worker: MockExecutor):
    job = make_job(host, env={"MOCK_DURATION": 0.3})
    eid = launch(fast_worker, host, job)
    orphaned(job, JobStatus.RUNNING, execution_id=eid)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert (job.status, job.execution_id, fast_worker.launch_count) == (JobStatus.COMPLETED, eid, 1)


def test_a_vanished_container_is_host_lost(host: ExecutorHost):
    job = make_job(host)
    orphaned(job, JobStatus.RUNNING, execution_id="mock-gone")
    call_command("process_container_jobs", once=True, worker_id="w2")
    job.refresh_from_db()
    assert (job.status, job.termination_reason) == (JobStatus.FAILED, TerminationReason.HOST_LOST)


def test_a_vanished_container_is_retried_when_allowed(host: ExecutorHost, fast_worker: MockExecutor):
    job = make_job(host, max_retries=1)
    orphaned(job, JobStatus.RUNNING, execution_id="mock-gone")
    call_command("process_container_jobs", once=True, worker_id="w2")
    job.refresh_from_db()
    assert (job.status, job.retry_count, fast_worker.launch_count) == (JobStatus.COMPLETED, 1, 1)


def test_a_launching_job_without_a_container_is_relaunched(host: ExecutorHost, fast_worker: MockExecutor):
    job = make_job(host)
    orphaned(job, JobStatus.LAUNCHING)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert (job.status, job.attempt, fast_worker.launch_count) == (JobStatus.COMPLETED, 2, 1)


def test_a_launching_job_changed_behind_create_jobs_back_is_refused_not_relaunched(
    host: ExecutorHost, fast_worker: MockExecutor
):
    # A takeover re-launches: it must pass the same checks as a fresh claim, not only a fresh spec.
    job = make_job(host)
    orphaned(job, JobStatus.LAUNCHING, max_retries=1_000_000_000)
    call_command("process_container_jobs", once=True, worker_id="w2")
    job.refresh_from_db()
    assert (job.status, job.termination_reason) == (JobStatus.FAILED, TerminationReason.LAUNCH_FAILED)
    assert "max_retries" in job.last_error
    assert fast_worker.launch_count == 0


def test_a_launching_job_whose_container_exists_is_adopted_not_launched_twice(
    host: ExecutorHost, fast_worker: MockExecutor
):
    job = make_job(host, env={"MOCK_DURATION": 0.2})
    eid = launch(fast_worker, host, job)
    orphaned(job, JobStatus.LAUNCHING)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert (job.status, job.execution_id, fast_worker.launch_count) == (JobStatus.COMPLETED, eid, 1)


def test_a_live_workers_jobs_are_left_alone(host: ExecutorHost, fast_worker: MockExecutor):
    job = make_job(host, env={"MOCK_DURATION": 30})
    eid = launch(fast_worker, host, job)
    orphaned(job, JobStatus.RUNNING, execution_id=eid, expired=False)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert (job.status, job.worker_id, job.attempt) == (JobStatus.RUNNING, "dead-worker", 1)
    assert fast_worker.check_status(host.to_spec(), eid).state is ExecutionState.RUNNING


def test_a_restarted_worker_with_the_same_id_recovers_its_jobs_at_once(
    host: ExecutorHost, fast_worker: MockExecutor
):
    job = make_job(host)
    eid = launch(fast_worker, host, job)
    orphaned(job, JobStatus.RUNNING, execution_id=eid, expired=False)
    call_command("process_container_jobs", once=True, worker_id="dead-worker")
    job.refresh_from_db()
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 2)


def test_containers_of_unknown_and_finished_jobs_are_removed(host: ExecutorHost, fast_worker: MockExecutor):
    spec = host.to_spec()
    done = make_job(host)
    done_eid = launch(fast_worker, host, done)
    ContainerJob.objects.filter(pk=done.pk).update(status=JobStatus.COMPLETED, completed_at=timezone.now())
    stranger = ContainerJob(id=uuid.uuid4(), docker_image="busybox:latest", command="true", docker_host=host)
    stranger_eid = launch(fast_worker, host, stranger)  # never saved: the database does not know it
    live = make_job(host, env={"MOCK_DURATION": 30})
    live_eid = launch(fast_worker, host, live)
    orphaned(live, JobStatus.RUNNING, execution_id=live_eid, expired=False)

    call_command("cleanup_containers", dry_run=True)
    assert len(fast_worker.list_executions(spec)) == 3

    call_command("process_container_jobs", once=True)
    assert {eid for _, eid in fast_worker.list_executions(spec)} == {live_eid}
    assert done_eid != live_eid != stranger_eid


def test_another_deployments_containers_are_never_touched(host: ExecutorHost, fast_worker: MockExecutor):
    # Same engine, another owner label: not listed, so neither reconciled nor cleaned up.
    foreign_host = attrs.evolve(host.to_spec(), owner="another-deployment")
    stranger = ContainerJob(id=uuid.uuid4(), docker_image="busybox:latest", command="true", docker_host=host)
    foreign = fast_worker.launch_job(foreign_host, stranger.to_spec()).execution_id
    call_command("process_container_jobs", once=True)
    call_command("cleanup_containers")
    assert [eid for _, eid in fast_worker.list_executions(foreign_host)] == [foreign]


def _stranger(host: ExecutorHost, mock: MockExecutor) -> str:
    stranger = ContainerJob(id=uuid.uuid4(), docker_image="busybox:latest", command="true", docker_host=host)
    return launch(mock, host, stranger)  # never saved: an orphan for the next reconcile


def test_an_engine_that_stops_answering_while_orphans_are_removed_does_not_stop_the_worker(
    host: ExecutorHost,
    fast_worker: MockExecutor,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    # Seen in CI on dockerd 20.10: removing one container hung past the client's timeout, and
    # all four workers died of the ExecutorUnavailable raised from the reconcile.
    hung = _stranger(host, fast_worker)

    def no_answer(spec: Any, execution_id: str) -> bool:
        raise ExecutorUnavailable(f"Docker host {spec.name!r} did not answer: Read timed out.")

    monkeypatch.setattr(fast_worker, "cleanup", no_answer)
    caplog.set_level(logging.INFO, logger="container_manager.worker")
    call_command("process_container_jobs", once=True)  # returns: the worker lived
    # The host was taken out of the pass (its next health check may bring it back at once).
    marked = [r.getMessage() for r in caplog.records if "event=host_unhealthy" in r.getMessage()]
    assert marked and "did not answer" in marked[0]
    assert hung in {eid for _, eid in fast_worker.list_executions(host.to_spec())}


def test_an_orphan_the_engine_refuses_to_remove_leaves_the_others_removed(
    host: ExecutorHost, fast_worker: MockExecutor, monkeypatch: pytest.MonkeyPatch
):
    refused, other = _stranger(host, fast_worker), _stranger(host, fast_worker)
    real_cleanup = fast_worker.cleanup

    def refuse_one(spec: Any, execution_id: str) -> bool:
        if execution_id == refused:
            raise LaunchFailed("removal of container is already in progress")
        return real_cleanup(spec, execution_id)

    monkeypatch.setattr(fast_worker, "cleanup", refuse_one)
    job = make_job(host)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    host.refresh_from_db()
    assert host.healthy
    assert job.status == JobStatus.COMPLETED  # the host's jobs still ran
    left = {eid for _, eid in fast_worker.list_executions(host.to_spec())}
    assert refused in left and other not in left
