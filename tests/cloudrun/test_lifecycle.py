"""Status, stop, cleanup and listing against the fake API: timeouts, cancels, lost executions."""

from __future__ import annotations

import time

import grpc
import pytest
from cloudrun_executor.naming import ExecutionName
from cloudrun_executor.plugin import CloudRunExecutor

from container_manager_core.errors import ExecutionNotFound, ExecutorError, ExecutorUnavailable
from container_manager_core.types import ExecutionState, HostSpec
from tests.cloudrun.conftest import JobMaker, wait_exited
from tests.fakes import FakeCloudRun, cloudrun_host_spec

pytestmark = pytest.mark.cloudrun


def test_status_moves_from_pending_to_running_to_exited(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.delay_starts(0.3)
    execution = executor.launch_job(cloudrun_host, make_job(duration=0.3))
    pending = executor.check_status(cloudrun_host, execution.execution_id)
    assert pending.state is ExecutionState.PENDING
    assert pending.started_at is None
    time.sleep(0.4)
    running = executor.check_status(cloudrun_host, execution.execution_id)
    assert running.state is ExecutionState.RUNNING
    assert running.started_at is not None
    exited = wait_exited(executor, cloudrun_host, execution.execution_id)
    assert (exited.exit_code, exited.error) == (0, None)
    assert exited.started_at == running.started_at
    assert exited.finished_at is not None
    assert exited.finished_at >= exited.started_at


def test_timeout_is_exited_with_an_error_naming_the_timeout(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, make_job: JobMaker
) -> None:
    execution = executor.launch_job(cloudrun_host, make_job(stdout="slow", duration=30, timeout_seconds=1))
    status = wait_exited(executor, cloudrun_host, execution.execution_id)
    assert status.exit_code is None
    assert status.error is not None
    assert "timeout of 1 s" in status.error
    assert "The configured timeout was reached" in status.error


def test_stop_cancels_and_the_status_says_cancelled(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    execution = executor.launch_job(cloudrun_host, make_job(duration=60))
    assert executor.stop_job(cloudrun_host, execution.execution_id, grace_seconds=1) is True
    assert fake_cloudrun.call_count("CancelExecution") == 1
    status = wait_exited(executor, cloudrun_host, execution.execution_id)
    assert (status.state, status.error, status.exit_code) == (ExecutionState.EXITED, "cancelled", None)
    assert executor.stop_job(cloudrun_host, execution.execution_id, grace_seconds=1) is False
    assert fake_cloudrun.call_count("CancelExecution") == 1


def test_stop_of_a_pending_execution_cancels_it_before_it_starts(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.delay_starts(5)
    execution = executor.launch_job(cloudrun_host, make_job(stdout="never printed"))
    assert executor.stop_job(cloudrun_host, execution.execution_id, grace_seconds=1) is True
    status = wait_exited(executor, cloudrun_host, execution.execution_id)
    assert (status.error, status.started_at) == ("cancelled", None)
    assert executor.get_logs(cloudrun_host, execution.execution_id, timestamps=False).stdout == ""


def test_lost_execution_is_not_found_everywhere(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    execution = executor.launch_job(cloudrun_host, make_job(duration=60))
    fake_cloudrun.lose_execution(execution.execution_id)
    assert executor.check_status(cloudrun_host, execution.execution_id).state is ExecutionState.NOT_FOUND
    with pytest.raises(ExecutionNotFound):
        executor.get_logs(cloudrun_host, execution.execution_id, timestamps=False)
    with pytest.raises(ExecutionNotFound):
        executor.stop_job(cloudrun_host, execution.execution_id, grace_seconds=1)
    assert executor.cleanup(cloudrun_host, execution.execution_id) is False
    assert all(e != execution.execution_id for _, e in executor.list_executions(cloudrun_host))


@pytest.mark.parametrize(
    "foreign",
    [
        "projects/fake-project/locations/us-central1/jobs/cmtest-a-12345678/executions/cmtest-a-12345678-abcde",
        "projects/fake-project/locations/europe-west1/jobs/other-a-12345678/executions/other-a-12345678-abcde",
        "projects/fake-project/locations/europe-west1/jobs/cmtest-a-12345678",
    ],
)
def test_ids_that_cannot_be_this_hosts_are_not_found_without_asking(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, foreign: str
) -> None:
    assert executor.check_status(cloudrun_host, foreign).state is ExecutionState.NOT_FOUND
    assert executor.cleanup(cloudrun_host, foreign) is False
    with pytest.raises(ExecutionNotFound):
        executor.stop_job(cloudrun_host, foreign, grace_seconds=1)
    assert fake_cloudrun.calls == []


def test_status_errors_are_typed(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    execution = executor.launch_job(cloudrun_host, make_job())
    fake_cloudrun.fail_next("GetExecution", grpc.StatusCode.UNAVAILABLE, "Try later.")
    with pytest.raises(ExecutorUnavailable):
        executor.check_status(cloudrun_host, execution.execution_id)
    fake_cloudrun.fail_next("GetExecution", grpc.StatusCode.PERMISSION_DENIED, "No run.executions.get.")
    with pytest.raises(ExecutorError, match=r"PERMISSION_DENIED: No run\.executions\.get") as caught:
        executor.check_status(cloudrun_host, execution.execution_id)
    assert not isinstance(caught.value, ExecutorUnavailable)


def test_cleanup_of_a_running_execution_cancels_then_deletes_it_and_its_job(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    execution = executor.launch_job(cloudrun_host, make_job(duration=60))
    name = ExecutionName.parse(execution.execution_id)
    assert name is not None
    assert executor.cleanup(cloudrun_host, execution.execution_id) is True
    assert fake_cloudrun.call_count("CancelExecution") == 1
    assert fake_cloudrun.execution_names() == []
    assert fake_cloudrun.job(name.job) is None


def test_cleanup_keeps_the_job_when_the_host_says_so(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, delete_after_run=False)
    execution = executor.launch_job(host, make_job())
    wait_exited(executor, host, execution.execution_id)
    name = ExecutionName.parse(execution.execution_id)
    assert name is not None
    assert executor.cleanup(host, execution.execution_id) is True
    assert fake_cloudrun.execution_names() == []
    assert fake_cloudrun.job(name.job) is not None
    assert fake_cloudrun.call_count("CancelExecution") == 0


def test_cleanup_failure_is_typed(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    execution = executor.launch_job(cloudrun_host, make_job())
    wait_exited(executor, cloudrun_host, execution.execution_id)
    fake_cloudrun.fail_next("DeleteExecution", grpc.StatusCode.UNAVAILABLE, "Try later.")
    with pytest.raises(ExecutorUnavailable):
        executor.cleanup(cloudrun_host, execution.execution_id)
    assert executor.cleanup(cloudrun_host, execution.execution_id) is True


def test_listing_pages_through_jobs_and_skips_other_managers_jobs(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    # The fake answers two items per page, so five jobs take three pages.
    jobs = [make_job() for _ in range(5)]
    mine = {(job.job_id, executor.launch_job(cloudrun_host, job).execution_id) for job in jobs}
    other_host = cloudrun_host_spec(fake_cloudrun, job_name_prefix="elsewhere")
    executor.launch_job(other_host, make_job())
    assert set(executor.list_executions(cloudrun_host)) == mine
    assert len(executor.list_executions(other_host)) == 1
