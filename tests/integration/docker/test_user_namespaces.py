"""REQUIRE_USER_NAMESPACES against real engines: the machine's own, which does not remap users, and a
second dockerd started with ``--userns-remap=default`` (tests/seconddaemon.py: its own data root,
exec root, pidfile, unix socket and bridge; stopped by PID, its directory and mounts removed).

With the requirement on, a host on the ordinary engine is refused (unhealthy with the reason, shown
by check_hosts, no job claimed, no container created), and a host on the remapping engine runs a job
whose process is, seen from this machine, an unprivileged UID from dockremap's /etc/subuid range.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import docker
import docker.api.container
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from docker_executor.naming import JOB_ID_LABEL
from docker_executor.plugin import DockerExecutor
from docker_executor.plugin import plugin as docker_plugin

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus
from container_manager_core.errors import HostMisconfigured
from container_manager_core.types import HostSpec
from tests.dockertools import build_test_image
from tests.integration.docker.conftest import BASE_URL, JobMaker
from tests.seconddaemon import daemon_root, second_dockerd

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WORKER = {
    "POLL_INTERVAL": 0.05,
    "HEALTH_CHECK_INTERVAL": 60,
    "RECONCILE_INTERVAL": 600,
    "STOP_GRACE_SECONDS": 1,
    "REQUIRE_USER_NAMESPACES": True,
}
REFUSAL = "the engine runs containers without user namespaces"
IN_CONTAINER_UID = 1001
# How long the job keeps its process alive for the test to look at it from the machine.
JOB_SECONDS = 4


def _client(socket: Path) -> docker.DockerClient:
    client = docker.DockerClient(base_url=f"unix://{socket}", version="1.41", timeout=60)
    client.api.trust_env = False
    return client


def _answers(socket: Path) -> bool:
    if not socket.exists():
        return False  # docker-py leaks the socket of a failed unix connect (docker-py #3356)
    client = _client(socket)
    try:
        return bool(client.ping())
    finally:
        client.close()


@pytest.fixture(scope="module")
def remapping_engine() -> Iterator[Path]:
    """Start a dockerd with --userns-remap=default, with the test image built on it; yield its socket."""
    with daemon_root("cmuns-") as root:
        socket = root / "docker.sock"
        with second_dockerd(
            root, "userns", [f"-H=unix://{socket}", "--userns-remap=default"], lambda: _answers(socket)
        ):
            client = _client(socket)
            try:
                assert "name=userns" in client.info()["SecurityOptions"]
                build_test_image(client)  # nothing can be pulled: built from the local static busybox
            finally:
                client.close()
            yield socket
        # The worker's plugin still holds connections to the stopped engine: close them, not the GC.
        docker_plugin._clients.close()


def _subordinate_range(path: str, user: str = "dockremap") -> int:
    """Return the first host ID of ``user``'s range in /etc/subuid or /etc/subgid."""
    for line in Path(path).read_text().splitlines():
        name, start, _count = line.split(":")
        if name == user:
            return int(start)
    pytest.fail(f"dockerd did not give {user!r} a range in {path}.")


def _host_ids(pid: int) -> tuple[int, int]:
    """Return the real UID and GID of process ``pid`` as this machine sees them."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


@pytest.fixture
def creates(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the job id of every container create sent to any engine during the test."""
    sent: list[str] = []
    original = docker.api.container.ContainerApiMixin.create_container_from_config

    def counting(self: Any, config: dict[str, Any], name: str | None = None, **kwargs: Any) -> Any:
        sent.append(str(config["Labels"][JOB_ID_LABEL]))
        return original(self, config, name, **kwargs)

    monkeypatch.setattr(docker.api.container.ContainerApiMixin, "create_container_from_config", counting)
    return sent


def _host(name: str, address: str) -> ExecutorHost:
    host = ExecutorHost(
        name=name,
        executor_type="docker",
        host_type="unix",
        connection_string=address,
        auto_pull_images=False,
        executor_config={"default_network": "none"},  # not about networking
    )
    host.full_clean()
    host.save()
    return host


def _work(hosts: list[str]) -> None:
    try:
        call_command("process_container_jobs", once=True, hosts=hosts)
    finally:
        connection.close()  # this thread's own connection


@pytest.mark.django_db(transaction=True)
def test_only_the_remapping_engine_runs_jobs_and_as_an_unprivileged_host_uid(
    settings: Any, remapping_engine: Path, test_image: str, cleanup: None, creates: list[str]
) -> None:
    settings.CONTAINER_MANAGER = dict(WORKER)
    plain = _host("plain-engine", BASE_URL)
    remapping = _host("remapping-engine", f"unix://{remapping_engine}")
    # Queued while the host was not yet known to be refused.
    refused = ContainerJob.objects.create_job(test_image, "true", name="refused", docker_host=plain)
    remapped = ContainerJob.objects.create_job(
        test_image, f"sleep {JOB_SECONDS}; id", name="remapped", docker_host=remapping
    )

    out = StringIO()
    with pytest.raises(CommandError, match=r"1 of 2 host\(s\) unhealthy: plain-engine\."):
        call_command("check_hosts", stdout=out)
    assert "plain-engine: UNHEALTHY in" in out.getvalue()
    assert REFUSAL in out.getvalue()
    assert "remapping-engine: healthy" in out.getvalue()
    plain.refresh_from_db()
    assert not plain.healthy and REFUSAL in plain.last_health_error

    with pytest.raises(ValidationError, match=REFUSAL):  # once it is, nothing more is queued there
        ContainerJob.objects.create_job(test_image, "true", name="too late", docker_host=plain)
    worker = threading.Thread(target=_work, args=(["plain-engine", "remapping-engine"],), daemon=True)
    worker.start()
    client = _client(remapping_engine)
    try:
        pid = _running_pid(client, remapped.pk)
        host_uid, host_gid = _host_ids(pid)
    finally:
        client.close()
    worker.join(timeout=60)
    assert not worker.is_alive()

    uid_base, gid_base = _subordinate_range("/etc/subuid"), _subordinate_range("/etc/subgid")
    assert uid_base >= 65536
    assert (host_uid, host_gid) == (uid_base + IN_CONTAINER_UID, gid_base + IN_CONTAINER_UID)
    remapped.refresh_from_db()
    assert remapped.status == JobStatus.COMPLETED, (remapped.last_error, remapped.stderr_log)
    assert remapped.clean_output.strip() == "uid=1001 gid=1001 groups=1001"  # the same job, inside

    refused.refresh_from_db()
    assert (refused.status, refused.attempt) == (JobStatus.PENDING, 0)
    assert creates == [str(remapped.pk)]  # nothing for the job on the refused host


def _running_pid(client: docker.DockerClient, job_pk: Any) -> int:
    """Wait for the job's container to run on the engine; return its process's PID on this machine."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for container in client.api.containers(filters={"label": f"{JOB_ID_LABEL}={job_pk}"}):
            pid = client.api.inspect_container(container["Id"])["State"]["Pid"]
            if pid:
                return int(pid)
        time.sleep(0.05)
    pytest.fail("The job's container did not start on the remapping engine within 30 s.")


def test_a_launch_on_an_engine_that_stopped_remapping_creates_nothing(
    docker_host: HostSpec, make_job: JobMaker, creates: list[str]
) -> None:
    # Between two health checks the engine may restart without remapping: the launch asks again.
    host = HostSpec(
        name=docker_host.name,
        executor_type="docker",
        connection_string=docker_host.connection_string,
        config=docker_host.config,
        require_user_namespaces=True,
    )
    with pytest.raises(HostMisconfigured, match=REFUSAL):
        DockerExecutor().launch_job(host, make_job("true"))
    assert creates == []
