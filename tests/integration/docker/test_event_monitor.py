"""One event stream per host tells waits about exits and the OOM verdict about kills, without a request per job.

Checked against a monitor that kept its coverage across a broken stream (the break test failed),
and against docker-py's own unix adapter (the connection test saw a new socket per container).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from docker_executor import monitor as monitor_module
from docker_executor.plugin import DockerExecutor
from docker_executor.state import parse_engine_time

from container_manager_core.types import ExecutionState, HostSpec
from tests.integration.docker.conftest import JobMaker, wait_exited

pytestmark = pytest.mark.docker


@pytest.fixture
def engine_requests(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the engine requests this process sends, by method and endpoint (ids left out)."""
    counts: Counter[str] = Counter()
    original = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        path, _, query = (request.url or "").partition("?")
        parts = [part for part in path.split("/v1.", 1)[-1].split("/")[1:] if len(part) < 40]
        key = f"{request.method} {'/'.join(parts)}"
        if key == "GET events":
            # Monitors of earlier tests' executors reopen their host-wide streams now and then;
            # only a query about one container is a request made for a job.
            filters = json.loads(parse_qs(query).get("filters", ["{}"])[0])
            key += " of a container" if "container" in filters else " of the host"
        counts[key] += 1
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    return counts


def test_a_launched_containers_exit_and_verdict_come_from_the_shared_stream(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker, engine_requests: Counter[str]
):
    executions = [executor.launch(docker_host, make_job(f"sleep 0.{i}; exit {i}")) for i in range(1, 4)]
    for i, execution in enumerate(executions, start=1):
        assert executor._events(docker_host).covers(execution.execution_id)
        status = wait_exited(executor, docker_host, execution.execution_id)
        assert (status.exit_code, status.oom_killed) == (i, False)
    assert engine_requests["GET events of the host"] >= 1
    assert engine_requests["GET events of a container"] == 0, "no wait request, no OOM query per exit"
    assert engine_requests["GET containers/json"] == 0, "the die events carried the exit codes"


def test_a_status_from_the_stream_agrees_with_the_engines_state(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker, engine_requests: Counter[str]
):
    execution = executor.launch(docker_host, make_job("sleep 0.2; exit 7"))
    status = wait_exited(executor, docker_host, execution.execution_id)
    assert engine_requests["GET containers/json"] == 0
    info = executor._get_client(docker_host).api.inspect_container(execution.execution_id)["State"]
    assert (status.exit_code, status.oom_killed, status.interrupted) == (info["ExitCode"], False, False)
    assert status.started_at is not None and status.finished_at is not None
    engine_started, engine_finished = (
        parse_engine_time(info["StartedAt"]),
        parse_engine_time(info["FinishedAt"]),
    )
    assert engine_started is not None and engine_finished is not None
    # The event times trail the state's own by the engine's bookkeeping, never by more than a moment.
    assert timedelta(0) <= status.started_at - engine_started < timedelta(seconds=1)
    assert timedelta(0) <= status.finished_at - engine_finished < timedelta(seconds=1)


def test_a_container_removed_behind_the_streams_back_is_not_reported_exited(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
):
    # Checked against an exit_of() that ignored "destroy": this status said EXITED with code 0.
    execution = executor.launch(docker_host, make_job("true"))
    wait_exited(executor, docker_host, execution.execution_id)
    monitor = executor._events(docker_host)
    executor._get_client(docker_host).api.remove_container(execution.execution_id, force=True)
    deadline = time.monotonic() + 10
    while execution.execution_id not in monitor._destroyed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert executor.status(docker_host, execution.execution_id).state is ExecutionState.NOT_FOUND


def test_a_container_the_stream_did_not_see_start_is_inspected(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker, engine_requests: Counter[str]
):
    execution = executor.launch(docker_host, make_job("exit 5"))
    wait_exited(executor, docker_host, execution.execution_id)
    executor._events(docker_host)._starts.forget(execution.execution_id)
    inspects = engine_requests["GET containers/json"]
    assert executor.status(docker_host, execution.execution_id).exit_code == 5
    assert engine_requests["GET containers/json"] == inspects + 1, "half a record is not enough"


def test_an_oom_kill_seen_by_the_stream_decides_the_verdict(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker, engine_requests: Counter[str]
):
    script = "(echo 1000 > /proc/self/oom_score_adj; head -c 200m /dev/zero | tail); echo survived"
    execution = executor.launch(docker_host, make_job(script, memory_limit_mb=32))
    status = wait_exited(executor, docker_host, execution.execution_id)
    assert (status.exit_code, status.oom_killed) == (0, True)
    assert engine_requests["GET events of a container"] == 0


def test_after_a_break_the_state_is_read_again_and_the_exit_still_noticed(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker, engine_requests: Counter[str]
):
    execution = executor.launch(docker_host, make_job("sleep 1"))
    monitor = executor._events(docker_host)
    # What a broken and reopened stream looks like: events in between may be lost.
    monitor._broken()
    monitor._opened(continued=False)
    assert not monitor.covers(execution.execution_id)
    started = time.monotonic()
    assert executor.wait(docker_host, [execution.execution_id], timeout=20) == [execution.execution_id]
    assert time.monotonic() - started < 10, "the exit came from the reopened stream, not the timeout"
    assert engine_requests["GET containers/json"] >= 1, "the uncovered container's state was read"


def test_a_container_that_exited_unseen_is_found_by_its_state(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
):
    execution = executor.launch(docker_host, make_job("true"))
    monitor = executor._events(docker_host)
    time.sleep(1.0)  # exited by now, but the stream "missed" it:
    monitor._ended.forget(execution.execution_id)
    monitor._covered.forget(execution.execution_id)
    assert executor.wait(docker_host, [execution.execution_id], timeout=5) == [execution.execution_id]


def test_an_unused_monitor_stops_its_thread(
    docker_host: HostSpec, make_job: JobMaker, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(monitor_module, "IDLE_SECONDS", 0.5)
    monkeypatch.setattr(monitor_module, "STREAM_SECONDS", 0.5)
    executor = DockerExecutor()
    executor.launch(docker_host, make_job("true"))
    names = lambda: {t.name for t in threading.enumerate()}  # noqa: E731
    assert f"docker-events-{docker_host.name}" in names()
    deadline = time.monotonic() + 10
    while f"docker-events-{docker_host.name}" in names() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"docker-events-{docker_host.name}" not in names()
    assert executor._events(docker_host).live_epoch() is not None, "and starts again when needed"


def test_calls_for_different_containers_share_connections(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker, monkeypatch: pytest.MonkeyPatch
):
    import socket

    opened: list[int] = []
    original = socket.socket.__init__

    def counting(self: socket.socket, *args: Any, **kwargs: Any) -> None:
        opened.append(1)
        original(self, *args, **kwargs)

    executions = [executor.launch(docker_host, make_job("true")) for _ in range(3)]
    for execution in executions:
        # Noticed on the shared stream: no request has named these containers' inspect URL yet.
        assert executor.wait(docker_host, [execution.execution_id], timeout=20)
    monkeypatch.setattr(socket.socket, "__init__", counting)
    for execution in executions:
        executor.status(docker_host, execution.execution_id)
    assert len(opened) <= 1, "docker-py's own adapter opens a socket per container URL"
