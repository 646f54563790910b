"""The plugin does not ask the engine again for what cannot have changed, and reuses and closes its connections."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import docker
import pytest
from docker_executor.plugin import OOM_SETTLE_SECONDS, DockerExecutor

from container_manager_core.errors import ImagePullFailed
from container_manager_core.types import ExecutionState, HostSpec
from tests.dockertools import RUN_ID
from tests.integration.docker.conftest import JobMaker, wait_exited

pytestmark = pytest.mark.docker


def _count(api: docker.APIClient, names: tuple[str, ...]) -> Counter[str]:
    """Count calls of the named client methods (the calls still go to the real engine)."""
    calls: Counter[str] = Counter()
    for name in names:
        real: Callable[..., Any] = getattr(api, name)

        def counted(*args: Any, _real: Callable[..., Any] = real, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)

        setattr(api, name, counted)
    return calls


def test_an_exited_container_is_inspected_once(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
) -> None:
    # Checked against the plugin without the exited-state memory: 4 inspects for the same container.
    execution = executor.launch_job(docker_host, make_job("exit 3"))
    calls = _count(executor._get_client(docker_host).api, ("inspect_container",))
    status = wait_exited(executor, docker_host, execution.execution_id)
    assert status.exit_code == 3
    again = executor.check_status(docker_host, execution.execution_id)
    executor.get_usage(docker_host, execution.execution_id)
    assert again.exit_code == 3
    assert calls["inspect_container"] <= 2  # once while running (maybe), once after the exit
    assert executor.cleanup(docker_host, execution.execution_id) is True
    assert executor.check_status(docker_host, execution.execution_id).state is ExecutionState.NOT_FOUND


def test_image_presence_is_remembered_and_a_removed_image_is_noticed(
    executor: DockerExecutor,
    docker_host: HostSpec,
    docker_client: docker.DockerClient,
    make_job: JobMaker,
    test_image: str,
) -> None:
    # Checked against a cache without the fallback: the launch after the removal failed with the engine's
    # raw "No such image" instead of the host's pull-policy message.
    tag = f"container-manager-test/transient:{RUN_ID}"
    docker_client.images.get(test_image).tag(tag)
    host = attrs.evolve(docker_host, auto_pull_images=False)
    calls = _count(executor._get_client(host).api, ("inspect_image",))
    first = executor.launch_job(host, make_job("true", image=tag))
    second = executor.launch_job(host, make_job("true", image=tag))
    assert calls["inspect_image"] == 1
    for execution in (first, second):
        wait_exited(executor, host, execution.execution_id)
        executor.cleanup(host, execution.execution_id)
    docker_client.images.remove(tag)
    with pytest.raises(ImagePullFailed, match="auto_pull_images is off"):
        executor.launch_job(host, make_job("true", image=tag))


def _unix_sockets_opened(monkeypatch: pytest.MonkeyPatch) -> list[socket.socket]:
    """Record every unix socket this process opens from now on."""
    opened: list[socket.socket] = []
    original = socket.socket.__init__

    def recording(self: socket.socket, family: int = -1, *args: Any, **kwargs: Any) -> None:
        original(self, family, *args, **kwargs)
        if self.family == socket.AF_UNIX:
            opened.append(self)

    monkeypatch.setattr(socket.socket, "__init__", recording)
    return opened


def test_calls_about_different_containers_share_one_connection(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checked against docker-py's own unix adapter (the SocketPoolAdapter mount removed): it keys its
    # pools by URL, so each container's inspect, logs and removal opened a new socket.
    executions = [executor.launch_job(docker_host, make_job("true")) for _ in range(3)]
    opened = _unix_sockets_opened(monkeypatch)
    for execution in executions:
        wait_exited(executor, docker_host, execution.execution_id)
        executor.get_logs(docker_host, execution.execution_id, timestamps=False)
        executor.cleanup(docker_host, execution.execution_id)
    assert len(opened) <= 1, f"{len(opened)} sockets opened for 3 containers"


def test_closing_the_clients_closes_every_connection_they_opened(
    docker_host: HostSpec, make_job: JobMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = _unix_sockets_opened(monkeypatch)
    executor = DockerExecutor()
    execution = executor.launch_job(docker_host, make_job("true"))
    wait_exited(executor, docker_host, execution.execution_id)
    executor.cleanup(docker_host, execution.execution_id)
    assert opened, "the calls went over a unix socket"
    assert any(s.fileno() != -1 for s in opened), "kept open between calls, for reuse"
    # Held, as a caller of _get_client may: closing must not rely on the client being collected.
    client = executor._get_client(docker_host)
    executor._clients.close()
    assert [s for s in opened if s.fileno() != -1] == []
    del client


def test_an_exit_is_read_from_the_state_and_its_verdicts_from_one_event_query(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = executor.launch_job(docker_host, make_job("sleep 0.3; exit 4"))
    api = executor._get_client(docker_host).api
    event_queries: list[str] = []
    real_get = api.get

    def get(url: str, *args: Any, **kwargs: Any) -> Any:
        if url.endswith("/events"):
            event_queries.append(url)
        return real_get(url, *args, **kwargs)

    monkeypatch.setattr(api, "get", get)
    assert executor.wait_for_exit(docker_host, execution.execution_id, 30) is True
    assert event_queries == [], "waiting reads the state: no event stream is asked when it ended"
    time.sleep(OOM_SETTLE_SECONDS + 0.5)  # the verdicts of a settled exit are final
    status = executor.check_status(docker_host, execution.execution_id)
    assert (status.exit_code, status.oom_killed, status.interrupted) == (4, False, False)
    assert len(event_queries) == 1, "one event-log query decides both the OOM and the interrupted verdict"
    executor.check_status(docker_host, execution.execution_id)
    assert len(event_queries) == 1, "and it is not asked again"
