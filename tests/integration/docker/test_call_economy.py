"""The plugin does not ask the engine again for what cannot have changed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import docker
import pytest
from docker_executor.plugin import DockerExecutor

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
