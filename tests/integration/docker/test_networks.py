"""A job joins every network it names, with its aliases, before it starts."""

from __future__ import annotations

import docker
import pytest
from docker_executor.plugin import DockerExecutor

from container_manager_core.types import HostSpec, NetworkAttachment
from tests.dockertools import RUN_ID, TEST_LABEL
from tests.integration.docker.conftest import JobMaker

pytestmark = pytest.mark.docker


def test_job_joins_all_its_networks_with_aliases(
    executor: DockerExecutor, docker_host: HostSpec, docker_client: docker.DockerClient, make_job: JobMaker
) -> None:
    # Internal networks: no NAT rules, nothing reaches outside; the cleanup removes them by label.
    front, back = f"cm-front-{RUN_ID}", f"cm-back-{RUN_ID}"
    for name in (front, back):
        docker_client.api.create_network(name, driver="bridge", internal=True, labels={TEST_LABEL: RUN_ID})
    networks = (NetworkAttachment(front, ("web",)), NetworkAttachment(back, ("api", "api-v2")))
    execution = executor.launch_job(docker_host, make_job("sleep 30", network_mode=None, networks=networks))
    attached = docker_client.api.inspect_container(execution.execution_id)["NetworkSettings"]["Networks"]
    assert set(attached) == {front, back}
    assert "web" in attached[front]["Aliases"]
    assert {"api", "api-v2"} <= set(attached[back]["Aliases"])
    assert executor.stop_job(docker_host, execution.execution_id, grace_seconds=0) is True
