"""Stop, adopt, separate output, list and remove, on real containers."""

from __future__ import annotations

import time
import uuid

import docker
import pytest
from docker_executor import plugin as plugin_module
from docker_executor.events import open_events
from docker_executor.naming import container_name
from docker_executor.payload import build_create_payload
from docker_executor.plugin import DockerExecutor

from container_manager_core.errors import ExecutionNotFound, LaunchFailed
from container_manager_core.types import ExecutionState, HostSpec
from tests.dockertools import RUN_ID, TEST_LABEL
from tests.integration.docker.conftest import JobMaker, wait_exited

pytestmark = pytest.mark.docker


def start_events(client: docker.DockerClient, container_id: str) -> int:
    """Count the engine's ``start`` events for a container over the last minute."""
    filters = {"container": [container_id], "event": ["start"]}
    with open_events(
        client.api, filters=filters, since=time.time() - 60, until=time.time(), timeout=10
    ) as events:
        return sum(1 for _ in events)


def test_timeout_stop_kills_a_sleeper_and_is_not_oom(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
) -> None:
    # The job ignores SIGTERM, so only the SIGKILL after the grace period ends it: exit 137, the
    # status an OOM kill also leaves. The stop record is what tells them apart.
    execution = executor.launch_job(docker_host, make_job("trap '' TERM; while :; do sleep 1; done"))
    assert executor.check_status(docker_host, execution.execution_id).state is ExecutionState.RUNNING
    started = time.monotonic()
    assert executor.stop_job(docker_host, execution.execution_id, grace_seconds=1) is True
    elapsed = time.monotonic() - started
    status = executor.check_status(docker_host, execution.execution_id)
    assert status.state is ExecutionState.EXITED
    assert status.exit_code == 137
    assert not status.oom_killed
    assert 0.9 < elapsed < 10
    assert status.started_at is not None and status.finished_at is not None
    assert status.finished_at >= status.started_at
    assert executor.stop_job(docker_host, execution.execution_id, grace_seconds=1) is False


@pytest.mark.parametrize("stopped_by", ["this executor", "an operator"])
def test_a_stop_sent_by_someone_else_marks_the_exit_interrupted(
    executor: DockerExecutor,
    docker_host: HostSpec,
    docker_client: docker.DockerClient,
    make_job: JobMaker,
    stopped_by: str,
) -> None:
    # An engine shutting down stops its containers as an operator's docker stop does: the job did not
    # fail, so the worker runs it again. Checked against a _verdict without the kill query: an
    # operator's stop was reported interrupted=False.
    execution = executor.launch_job(docker_host, make_job("sleep 300"))
    if stopped_by == "an operator":
        docker_client.api.stop(execution.execution_id, timeout=5)
    else:
        assert executor.stop_job(docker_host, execution.execution_id, grace_seconds=5) is True
    status = wait_exited(executor, docker_host, execution.execution_id)
    assert status.exit_code == 143
    assert status.interrupted is (stopped_by == "an operator")
    assert not status.oom_killed


def test_sigterm_ends_a_cooperative_job_within_the_grace(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
) -> None:
    execution = executor.launch_job(docker_host, make_job("sleep 300"))
    started = time.monotonic()
    assert executor.stop_job(docker_host, execution.execution_id, grace_seconds=20) is True
    # docker-init as PID 1 forwards SIGTERM, so the grace period is not waited out.
    assert time.monotonic() - started < 5
    status = executor.check_status(docker_host, execution.execution_id)
    assert (status.exit_code, status.oom_killed) == (143, False)


def test_second_launch_adopts_and_never_restarts(
    executor: DockerExecutor, docker_host: HostSpec, docker_client: docker.DockerClient, make_job: JobMaker
) -> None:
    job = make_job("echo ran; sleep 0.5")
    first = executor.launch_job(docker_host, job)
    second = executor.launch_job(docker_host, job)
    assert second == type(second)(first.execution_id, adopted=True)
    wait_exited(executor, docker_host, first.execution_id)
    # After it exited, a relaunch still adopts and returns it as it is: exited, not started again.
    third = DockerExecutor().launch_job(docker_host, job)
    assert (third.execution_id, third.adopted) == (first.execution_id, True)
    assert executor.check_status(docker_host, first.execution_id).state is ExecutionState.EXITED
    named = docker_client.api.containers(all=True, filters={"name": f"^/{container_name(job.job_id)}$"})
    assert [c["Id"] for c in named] == [first.execution_id]
    assert start_events(docker_client, first.execution_id) == 1
    assert executor.get_logs(docker_host, first.execution_id, timestamps=False).stdout == "ran\n"


def test_a_container_left_created_is_started_once_when_stale(
    executor: DockerExecutor,
    docker_host: HostSpec,
    docker_client: docker.DockerClient,
    make_job: JobMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A launcher that crashed between create and start leaves a "created" container behind.
    job = make_job("echo late start")
    payload = build_create_payload(docker_host, job, docker_client.api.api_version)
    created = docker_client.api.create_container_from_config(payload.config, name=payload.name)  # type: ignore[no-untyped-call]  # untyped in docker-stubs
    orphan = created["Id"]
    # Young: another launcher may be about to start it, so the adopter leaves it alone.
    adopted = executor.launch_job(docker_host, job)
    assert (adopted.execution_id, adopted.adopted) == (orphan, True)
    assert executor.check_status(docker_host, orphan).state is ExecutionState.PENDING
    # Stale: its launcher is gone, so the adopter starts it, exactly once.
    monkeypatch.setattr(plugin_module, "STALE_CREATE_SECONDS", 0.0)
    executor.launch_job(docker_host, job)
    assert wait_exited(executor, docker_host, orphan).exit_code == 0
    executor.launch_job(docker_host, job)
    assert start_events(docker_client, orphan) == 1


def test_a_foreign_container_with_the_name_is_not_adopted(
    executor: DockerExecutor,
    docker_host: HostSpec,
    docker_client: docker.DockerClient,
    make_job: JobMaker,
    test_image: str,
) -> None:
    job = make_job("true")
    docker_client.api.create_container(
        test_image, ["true"], name=container_name(job.job_id), labels={TEST_LABEL: RUN_ID}
    )
    with pytest.raises(
        LaunchFailed,
        match=r"labelled for job None of owner None, not for job '.+' of owner 'default'; remove or rename it\.",
    ):
        executor.launch_job(docker_host, job)


def test_stdout_and_stderr_are_separated_exactly(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
) -> None:
    script = (
        "echo 'ERROR: out 1'; echo 'ok: err 1' >&2; echo 'Traceback: out 2'; "
        "printf 'no newline err' >&2; printf 'caf\\303\\251 \\377\\n'"
    )
    execution = executor.launch_job(docker_host, make_job(script))
    wait_exited(executor, docker_host, execution.execution_id)
    logs = executor.get_logs(docker_host, execution.execution_id, timestamps=False)
    assert logs.stdout == "ERROR: out 1\nTraceback: out 2\ncafé \ufffd\n"
    assert logs.stderr == "ok: err 1\nno newline err"
    assert (logs.stdout_dropped_bytes, logs.stderr_dropped_bytes, logs.timestamps) == (0, 0, False)
    stamped = executor.get_logs(docker_host, execution.execution_id, timestamps=True)
    assert stamped.timestamps
    out_lines = stamped.stdout.splitlines()
    assert len(out_lines) == 3
    assert all(line[:4].isdigit() and "T" in line.split(" ", 1)[0] for line in out_lines)
    assert out_lines[0].split(" ", 1)[1] == "ERROR: out 1"


def test_executions_lists_only_this_managers_containers(
    executor: DockerExecutor,
    docker_host: HostSpec,
    docker_client: docker.DockerClient,
    make_job: JobMaker,
    test_image: str,
) -> None:
    job = make_job("sleep 30")
    execution = executor.launch_job(docker_host, job)
    stranger = docker_client.api.create_container(test_image, ["true"], labels={TEST_LABEL: RUN_ID})["Id"]
    listed = executor.list_executions(docker_host)
    assert (job.job_id, execution.execution_id) in listed
    assert stranger not in {container_id for _, container_id in listed}


def test_remove_is_idempotent_and_forceful(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
) -> None:
    execution = executor.launch_job(docker_host, make_job("sleep 300"))
    assert executor.cleanup(docker_host, execution.execution_id) is True  # running: force-removed
    assert executor.cleanup(docker_host, execution.execution_id) is False
    assert executor.check_status(docker_host, execution.execution_id).state is ExecutionState.NOT_FOUND


def test_unknown_execution_is_not_found_everywhere(executor: DockerExecutor, docker_host: HostSpec) -> None:
    unknown = f"cm-no-such-{uuid.uuid4().hex}"
    assert executor.check_status(docker_host, unknown).state is ExecutionState.NOT_FOUND
    for call in (
        lambda: executor.get_logs(docker_host, unknown, timestamps=False),
        lambda: executor.get_usage(docker_host, unknown),
        lambda: executor.stop_job(docker_host, unknown, grace_seconds=1),
    ):
        with pytest.raises(ExecutionNotFound):
            call()
    assert executor.cleanup(docker_host, unknown) is False
    assert executor.wait_for_exit(docker_host, unknown, 5) is True
