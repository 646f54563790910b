"""Launching: what the plugin asks Cloud Run to create, adoption of a launched job, launch failures."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from cloudrun_executor.naming import JOB_ID_ANNOTATION, ExecutionName
from cloudrun_executor.plugin import CloudRunExecutor
from google.cloud import run_v2

from container_manager_core.errors import ExecutorUnavailable, ImagePullFailed, LaunchFailed
from container_manager_core.types import Command, HostSpec, TmpfsMount
from tests.cloudrun.conftest import SCENARIO_SCRIPT, JobMaker, wait_exited
from tests.fakes import FakeCloudRun, cloudrun_host_spec

pytestmark = pytest.mark.cloudrun


def stored_job(fake: FakeCloudRun, execution_id: str) -> run_v2.Job:
    name = ExecutionName.parse(execution_id)
    assert name is not None
    job = fake.job(name.job)
    assert job is not None
    return job


def test_launch_creates_one_task_job_with_the_specs_settings(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    job = make_job(stdout="hi", working_dir="/work", labels={"Team": "Data Science"})
    execution = executor.launch_job(cloudrun_host, job)
    stored = stored_job(fake_cloudrun, execution.execution_id)
    task = stored.template.template
    container = task.containers[0]
    # max_retries has presence: it must be sent as 0, or Cloud Run retries a failed task 3 times.
    assert "max_retries" in task
    assert task.max_retries == 0
    assert stored.template.task_count == 1
    assert list(container.command) == ["/bin/sh", "-c", SCENARIO_SCRIPT]
    assert list(container.args) == []
    assert container.image == job.image
    assert container.working_dir == "/work"
    assert {e.name: e.value for e in container.env} == dict(job.env)
    assert dict(container.resources.limits) == {"cpu": "1", "memory": "512Mi"}
    assert task.timeout == timedelta(seconds=600)
    assert stored.annotations[JOB_ID_ANNOTATION] == job.job_id
    assert stored.labels["managed-by"] == "container-manager"
    assert stored.labels["team"] == "data_science"
    assert dict(stored.template.labels) == dict(stored.labels)
    # The default tmpfs at /tmp becomes an in-memory volume with the same size cap.
    (volume,) = task.volumes
    assert volume.empty_dir.medium == run_v2.EmptyDirVolumeSource.Medium.MEMORY
    assert volume.empty_dir.size_limit == "64Mi"
    assert [(m.name, m.mount_path) for m in container.volume_mounts] == [(volume.name, "/tmp")]


def test_exec_form_splits_entrypoint_and_arguments(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    job = make_job(command=Command.exec("python", "-m", "reports", "--day", "monday"), tmpfs=())
    container = stored_job(
        fake_cloudrun, executor.launch_job(cloudrun_host, job).execution_id
    ).template.template.containers[0]
    assert list(container.command) == ["python"]
    assert list(container.args) == ["-m", "reports", "--day", "monday"]
    assert list(container.volume_mounts) == []


def test_no_command_keeps_the_images_entrypoint(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    container = stored_job(
        fake_cloudrun, executor.launch_job(cloudrun_host, make_job(command=None)).execution_id
    ).template.template.containers[0]
    assert list(container.command) == []
    assert list(container.args) == []


def test_host_identity_and_network_settings_reach_the_task(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    host = cloudrun_host_spec(
        fake_cloudrun,
        service_account="jobs@fake-project.iam.gserviceaccount.com",
        vpc_connector="private",
        vpc_egress="all-traffic",
    )
    task = stored_job(fake_cloudrun, executor.launch_job(host, make_job()).execution_id).template.template
    assert task.service_account == "jobs@fake-project.iam.gserviceaccount.com"
    assert task.vpc_access.connector == f"{fake_cloudrun.location}/connectors/private"
    assert task.vpc_access.egress == run_v2.VpcAccess.VpcEgress.ALL_TRAFFIC


def test_a_failed_task_runs_once_because_retries_stay_with_the_manager(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, make_job: JobMaker
) -> None:
    execution = executor.launch_job(cloudrun_host, make_job(stdout="attempt", exit_code=2, duration=0.1))
    assert wait_exited(executor, cloudrun_host, execution.execution_id).exit_code == 2
    assert (
        executor.get_logs(cloudrun_host, execution.execution_id, timestamps=False).stdout.count("attempt")
        == 1
    )


def test_second_launch_adopts_without_running_again(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    job = make_job(duration=0.2)
    first = executor.launch_job(cloudrun_host, job)
    second = executor.launch_job(cloudrun_host, job)
    assert (second.execution_id, second.adopted, first.adopted) == (first.execution_id, True, False)
    assert fake_cloudrun.call_count("RunJob") == 1
    assert fake_cloudrun.execution_names() == [first.execution_id]


def test_launch_that_lost_the_create_race_adopts_the_winner(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    job = make_job(duration=0.2)
    first = executor.launch_job(cloudrun_host, job)
    # As if the job did not exist yet when this launch looked: its CreateJob meets ALREADY_EXISTS.
    fake_cloudrun.fail_next("GetJob", grpc.StatusCode.NOT_FOUND, "Resource not found.")
    second = executor.launch_job(cloudrun_host, job)
    assert second == type(second)(first.execution_id, adopted=True)
    assert fake_cloudrun.call_count("CreateJob") == 2
    assert fake_cloudrun.call_count("RunJob") == 1


def test_relaunch_after_cleanup_reuses_a_kept_job_with_the_new_spec(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, delete_after_run=False)
    job = make_job(stdout="first")
    first = executor.launch_job(host, job)
    wait_exited(executor, host, first.execution_id)
    assert executor.cleanup(host, first.execution_id) is True
    retry = make_job(job_id=job.job_id, stdout="second", memory_limit_mb=1024)
    second = executor.launch_job(host, retry)
    assert not second.adopted
    assert second.execution_id != first.execution_id
    assert fake_cloudrun.call_count("UpdateJob") == 1
    stored = stored_job(fake_cloudrun, second.execution_id)
    assert stored.template.template.containers[0].resources.limits["memory"] == "1024Mi"
    wait_exited(executor, host, second.execution_id)
    assert executor.get_logs(host, second.execution_id, timestamps=False).stdout == "second\n"


def test_refused_run_is_a_launch_failure(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    job = make_job()
    fake_cloudrun.fail_next("RunJob", grpc.StatusCode.FAILED_PRECONDITION, "Quota exceeded for executions.")
    with pytest.raises(LaunchFailed, match=r"FAILED_PRECONDITION: Quota exceeded for executions") as caught:
        executor.launch_job(cloudrun_host, job)
    assert repr(job.job_id) in str(caught.value)
    assert not isinstance(caught.value, ExecutorUnavailable)


def test_unavailable_api_at_launch_is_transient_and_a_retry_runs_once(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    job = make_job()
    fake_cloudrun.fail_next("RunJob", grpc.StatusCode.UNAVAILABLE, "Backend unavailable.")
    with pytest.raises(ExecutorUnavailable, match="UNAVAILABLE"):
        executor.launch_job(cloudrun_host, job)
    # The job was created before the failure: the retry reuses it and runs it.
    retry = executor.launch_job(cloudrun_host, job)
    assert not retry.adopted
    assert fake_cloudrun.execution_names() == [retry.execution_id]
    assert fake_cloudrun.call_count("CreateJob") == 1


def test_missing_image_is_an_image_pull_failure(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    job = make_job(image="europe-docker.pkg.dev/fake-project/jobs/absent:1")
    fake_cloudrun.refuse_image(job.image)
    with pytest.raises(ImagePullFailed) as caught:
        executor.launch_job(cloudrun_host, job)
    assert caught.value.image == job.image
    assert "not found" in caught.value.reason
    assert fake_cloudrun.call_count("RunJob") == 0


def test_denied_permissions_at_launch_are_a_launch_failure(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.deny_permissions()
    with pytest.raises(LaunchFailed, match="PERMISSION_DENIED"):
        executor.launch_job(cloudrun_host, make_job())


def test_tmpfs_size_is_rounded_up_to_whole_mebibytes(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    job = make_job(tmpfs=(TmpfsMount("/scratch", 3 * 1024 * 1024 + 1),))
    (volume,) = stored_job(
        fake_cloudrun, executor.launch_job(cloudrun_host, job).execution_id
    ).template.template.volumes
    assert volume.empty_dir.size_limit == "4Mi"
