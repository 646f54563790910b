"""The plugin against the fake's service-like behaviour: late logs, asynchronous readiness, lagging
and varied failure reports, quotas, project numbers, the logging agent's rewriting, OOM notes.

Each test fails on the plugin as it was before issue 19 (checked by running it against that code).
"""

from __future__ import annotations

import json
import time

import grpc
import pytest
from cloudrun_executor.naming import ExecutionName
from cloudrun_executor.plugin import CloudRunExecutor

from container_manager_core.errors import ExecutorError, ExecutorUnavailable, ImagePullFailed, LaunchFailed
from container_manager_core.types import ExecutionState, HostSpec
from tests.cloudrun.conftest import JobMaker, wait_exited
from tests.fakes import FakeCloudRun, cloudrun_host_spec

pytestmark = pytest.mark.cloudrun


def run_to_exit(executor: CloudRunExecutor, host: HostSpec, job_maker: JobMaker, **scenario: object) -> str:
    execution = executor.launch_job(host, job_maker(**scenario))
    assert executor.wait_for_exit(host, execution.execution_id, 10)
    return execution.execution_id


def test_logs_that_arrive_after_the_exit_are_waited_for(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.realism.log_lag = (0.1, 0.4)
    lines = [f"row {n}" for n in range(6)] + ['{"rows":6}']
    execution_id = run_to_exit(executor, cloudrun_host, make_job, stdout="\n".join(lines))
    logs = executor.get_logs(cloudrun_host, execution_id, timestamps=False)
    assert logs.stdout.splitlines() == lines


def test_the_wait_for_late_logs_is_bounded(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, log_wait_seconds=0.3)
    fake_cloudrun.realism.log_lag = (30, 30)  # nothing arrives within the wait
    execution_id = run_to_exit(executor, host, make_job, stdout="late")
    began = time.monotonic()
    assert executor.get_logs(host, execution_id, timestamps=False).stdout == ""
    assert time.monotonic() - began < 2


def test_a_missing_image_fails_readiness_as_an_image_failure_and_leaves_no_job(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.realism.readiness_delay = 0.2
    job = make_job(image="europe-docker.pkg.dev/fake-project/jobs/absent:1")
    fake_cloudrun.refuse_image(job.image)
    with pytest.raises(ImagePullFailed, match=r"Image '.*absent:1' not found"):
        executor.launch_job(cloudrun_host, job)
    assert fake_cloudrun.job_names() == []
    assert fake_cloudrun.call_count("RunJob") == 0


def test_an_unreadable_secret_fails_the_launch_and_leaves_no_job(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.deny_secret("db-password")
    job = make_job()
    job = make_job(job_id=job.job_id, env={**job.env, "DB_PASSWORD": "sm://db-password"})
    with pytest.raises(LaunchFailed, match="Secret Manager Secret Accessor") as caught:
        executor.launch_job(cloudrun_host, job)
    assert not isinstance(caught.value, ImagePullFailed)
    assert fake_cloudrun.job_names() == []


def test_a_run_refused_after_create_job_deletes_the_job(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.fail_next("RunJob", grpc.StatusCode.FAILED_PRECONDITION, "Execution quota exceeded.")
    with pytest.raises(LaunchFailed):
        executor.launch_job(cloudrun_host, make_job())
    assert fake_cloudrun.job_names() == []


def test_failed_launches_do_not_use_up_the_regions_job_limit(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.realism.max_jobs = 2
    fake_cloudrun.refuse_image("gone.example/app:1")
    for _ in range(3):
        with pytest.raises(ImagePullFailed):
            executor.launch_job(cloudrun_host, make_job(image="gone.example/app:1"))
    execution = executor.launch_job(cloudrun_host, make_job(stdout="fits"))
    assert wait_exited(executor, cloudrun_host, execution.execution_id).exit_code == 0


def test_a_full_region_is_a_transient_refusal(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.realism.max_jobs = 1
    executor.launch_job(cloudrun_host, make_job(duration=5))
    with pytest.raises(ExecutorUnavailable, match="maximum of 1 jobs"):
        executor.launch_job(cloudrun_host, make_job())


def test_reconcile_sweeps_managed_jobs_that_never_ran(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, orphan_job_seconds=0.2)
    # A launch that died between CreateJob and RunJob (the worker crashed, the API went away).
    fake_cloudrun.fail_next("RunJob", grpc.StatusCode.UNAVAILABLE, "Backend unavailable.")
    with pytest.raises(ExecutorUnavailable):
        executor.launch_job(host, make_job())
    running = executor.launch_job(host, make_job(duration=5))
    assert len(fake_cloudrun.job_names()) == 2
    time.sleep(0.3)
    assert [e for _, e in executor.list_executions(host)] == [running.execution_id]
    assert len(fake_cloudrun.job_names()) == 1


def test_listing_finds_executions_named_with_the_project_number(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    job = make_job(duration=5)
    execution = executor.launch_job(cloudrun_host, job)
    assert execution.execution_id.startswith(f"projects/{fake_cloudrun.project_number}/")
    assert executor.list_executions(cloudrun_host) == [(job.job_id, execution.execution_id)]


@pytest.mark.parametrize("cancel_reads_succeeded", [False, True])
def test_a_cancel_is_never_read_as_success(
    executor: CloudRunExecutor,
    cloudrun_host: HostSpec,
    fake_cloudrun: FakeCloudRun,
    make_job: JobMaker,
    cancel_reads_succeeded: bool,
) -> None:
    fake_cloudrun.realism.cancel_reads_succeeded = cancel_reads_succeeded
    execution = executor.launch_job(cloudrun_host, make_job(duration=30))
    assert executor.stop_job(cloudrun_host, execution.execution_id, grace_seconds=1)
    status = wait_exited(executor, cloudrun_host, execution.execution_id)
    assert (status.error, status.exit_code) == ("cancelled", None)


def test_a_task_result_that_lags_the_execution_is_waited_for(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.realism.result_lag = 0.3
    job = make_reporting_job(make_job, "signal", exit_code=3)
    execution = executor.launch_job(cloudrun_host, job)  # type: ignore[arg-type]
    status = wait_exited(executor, cloudrun_host, execution.execution_id)
    # "Container terminated on signal 9." names no exit code: only the task's result (term_signal) has it.
    assert (status.exit_code, status.error) == (137, None)


def make_reporting_job(make_job: JobMaker, report: str, **scenario: object) -> object:
    job = make_job(**scenario)
    return make_job(job_id=job.job_id, **scenario, env={**job.env, "FAKE_REPORT": report})


@pytest.mark.parametrize(
    ("report", "exit_code", "expected"),
    [
        ("code-of", 3, (3, None)),
        ("code-and-message", 3, (3, None)),
        ("signal", 3, (137, None)),
    ],
)
def test_each_wording_of_a_failure_gives_its_code(
    executor: CloudRunExecutor,
    cloudrun_host: HostSpec,
    fake_cloudrun: FakeCloudRun,
    make_job: JobMaker,
    report: str,
    exit_code: int,
    expected: tuple[int | None, str | None],
) -> None:
    fake_cloudrun.realism.result_lag = 0.2
    execution = executor.launch_job(
        cloudrun_host,
        make_reporting_job(make_job, report, stderr="boom", exit_code=exit_code),  # type: ignore[arg-type]
    )
    status = wait_exited(executor, cloudrun_host, execution.execution_id)
    assert (status.exit_code, status.error) == expected


def test_a_failure_without_any_code_is_unknown_not_one(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.delay_starts(0.3)
    job = make_job(image="gone.example/app:2")
    execution = executor.launch_job(cloudrun_host, job)
    fake_cloudrun.refuse_image(job.image)  # deleted after the job was ready: the container never starts
    status = wait_exited(executor, cloudrun_host, execution.execution_id)
    assert status.exit_code is None
    assert status.error is not None
    assert "not found" in status.error


def test_out_of_memory_is_read_from_the_system_log(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.realism.log_lag = (0.1, 0.3)
    job = make_job(stdout="filling memory")
    job = make_job(job_id=job.job_id, env={**job.env, "FAKE_MEMORY_MB": "700"})
    execution = executor.launch_job(cloudrun_host, job)
    status = wait_exited(executor, cloudrun_host, execution.execution_id)
    assert status.oom_killed
    assert status.exit_code == 137
    assert status.error is not None
    assert status.error.startswith("Memory limit of 512 MiB exceeded with 700 MiB used.")


def test_status_is_polled_with_backoff(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, status_poll_seconds=10)
    execution = executor.launch_job(host, make_job(duration=30))
    before = fake_cloudrun.call_count("GetExecution")
    assert executor.wait_for_exit(host, execution.execution_id, 2.5) is False
    # One second apart at first, then doubling: reads at 0, 1 and 2.5 s, not every half second.
    assert fake_cloudrun.call_count("GetExecution") - before <= 3


def test_a_throttled_status_read_is_still_running_not_a_host_outage(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    execution = executor.launch_job(cloudrun_host, make_job(duration=30))
    fake_cloudrun.limit_rate("GetExecution", 2)
    assert executor.wait_for_exit(cloudrun_host, execution.execution_id, 0.5) is False


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.PERMISSION_DENIED],
    ids=["throttled", "denied"],
)
def test_a_refused_log_read_is_this_jobs_log_failure_and_bounded(
    executor: CloudRunExecutor,
    fake_cloudrun: FakeCloudRun,
    make_job: JobMaker,
    code: grpc.StatusCode,
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, log_wait_seconds=0.5)
    execution_id = run_to_exit(executor, host, make_job, stdout="x")
    fake_cloudrun.fail_next(
        "ListLogEntries", code, "Quota exceeded for quota metric 'Read requests'.", times=100
    )
    began = time.monotonic()
    with pytest.raises(ExecutorError, match="Cloud Logging") as caught:
        executor.get_logs(host, execution_id, timestamps=False)
    assert not isinstance(caught.value, ExecutorUnavailable)
    assert time.monotonic() - began < 3


def test_empty_log_pages_with_a_token_are_followed(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    fake_cloudrun.realism.empty_log_pages = 3
    execution_id = run_to_exit(executor, cloudrun_host, make_job, stdout="after the empty pages")
    assert (
        executor.get_logs(cloudrun_host, execution_id, timestamps=False).stdout == "after the empty pages\n"
    )


def test_json_lines_survive_the_logging_agents_rewriting(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, make_job: JobMaker
) -> None:
    # A printed time far in the past becomes the entry's timestamp; severity leaves the payload.
    early = '{"time": "2001-01-01T00:00:00Z", "step": "early"}'
    result = '{"severity": "NOTICE", "rows": 3}'
    execution_id = run_to_exit(executor, cloudrun_host, make_job, stdout=f"{early}\n{result}")
    lines = executor.get_logs(cloudrun_host, execution_id, timestamps=False).stdout.splitlines()
    assert [json.loads(line) for line in lines] == [{"step": "early"}, {"severity": "NOTICE", "rows": 3}]


def test_the_health_probe_is_bounded_as_a_whole(
    executor: CloudRunExecutor, fake_cloudrun: FakeCloudRun
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, health_timeout_seconds=1)
    fake_cloudrun.slow_down("ListJobs", 0.6)
    fake_cloudrun.slow_down("ListLogEntries", 0.6)
    began = time.monotonic()
    health = executor.get_health_status(host)
    assert time.monotonic() - began < 1.1
    assert not health.healthy


def test_running_logs_are_what_has_arrived_without_waiting(
    executor: CloudRunExecutor, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    execution = executor.launch_job(cloudrun_host, make_job(stdout="started", duration=30))
    time.sleep(0.2)
    began = time.monotonic()
    logs = executor.get_logs(cloudrun_host, execution.execution_id, timestamps=False)
    assert time.monotonic() - began < 0.5
    assert logs.stdout == "started\n"
    assert executor.check_status(cloudrun_host, execution.execution_id).state is ExecutionState.RUNNING
    name = ExecutionName.parse(execution.execution_id)
    assert name is not None
