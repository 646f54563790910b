"""Launches that must fail do so with a clear typed error and leave no container behind."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker
import pytest
from docker_executor.naming import container_name
from docker_executor.plugin import DockerExecutor

from container_manager_core.errors import (
    ImagePullFailed,
    LaunchFailed,
    PolicyViolationError,
)
from container_manager_core.types import Command, HostSpec, NetworkAttachment
from tests.dockertools import RUN_ID
from tests.integration.docker.conftest import JobMaker, wait_exited

pytestmark = pytest.mark.docker


def containers_named(client: docker.DockerClient, name: str) -> list[dict[str, object]]:
    return list(client.api.containers(all=True, filters={"name": f"^/{name}$"}))


def test_missing_network_fails_clearly_and_leaves_nothing(
    executor: DockerExecutor, docker_host: HostSpec, docker_client: docker.DockerClient, make_job: JobMaker
) -> None:
    job = make_job("true", network_mode=None, networks=(NetworkAttachment("app-network"),))
    with pytest.raises(LaunchFailed) as raised:
        executor.launch_job(docker_host, job)
    assert str(raised.value) == (
        "Network 'app-network' does not exist on host 'local-docker'; "
        "create it with `docker network create app-network`."
    )
    assert containers_named(docker_client, container_name(job.job_id)) == []


def test_missing_default_network_of_the_host_fails_clearly(
    executor: DockerExecutor, docker_client: docker.DockerClient, make_job: JobMaker
) -> None:
    host = HostSpec("local-docker", "docker", config={"default_network": f"cm-missing-{RUN_ID}"})
    job = make_job("true", network_mode=None)
    with pytest.raises(LaunchFailed, match=f"Network 'cm-missing-{RUN_ID}' does not exist"):
        executor.launch_job(host, job)
    assert containers_named(docker_client, container_name(job.job_id)) == []


def test_missing_image_with_auto_pull_off(
    executor: DockerExecutor, docker_host: HostSpec, docker_client: docker.DockerClient, make_job: JobMaker
) -> None:
    job = make_job("true", image="container-manager-test/absent:never")
    with pytest.raises(ImagePullFailed) as raised:
        executor.launch_job(docker_host, job)
    assert raised.value.image == "container-manager-test/absent:never"
    assert "auto_pull_images is off" in raised.value.reason
    assert containers_named(docker_client, container_name(job.job_id)) == []


def test_pull_failure_keeps_the_engines_message(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
) -> None:
    host = HostSpec(
        docker_host.name, "docker", docker_host.connection_string, docker_host.tls, docker_host.config, True
    )
    # Nothing listens on port 9 here: the engine reports the refused connection.
    with pytest.raises(ImagePullFailed, match="connection refused"):
        executor.launch_job(host, make_job("true", image="127.0.0.1:9/team/app:1"))


class FakeRegistry(BaseHTTPRequestHandler):
    """A registry that demands basic auth, records it, and knows no images."""

    seen: list[str | None] = []

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        self.seen.append(auth)
        if auth is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="fake"')
            body = b""
        elif self.path == "/v2/":
            self.send_response(200)
            body = b"{}"
        else:
            self.send_response(404)
            body = json.dumps(
                {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
            ).encode()
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815 - the name http.server dispatches HEAD to

    def log_message(self, format: str, *args: object) -> None:
        return  # keep the test output clean


@pytest.fixture
def fake_registry() -> Iterator[tuple[int, list[str | None]]]:
    FakeRegistry.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], FakeRegistry.seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_pull_sends_registry_credentials_and_never_logs_the_password(
    executor: DockerExecutor,
    docker_host: HostSpec,
    make_job: JobMaker,
    fake_registry: tuple[int, list[str | None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, seen = fake_registry
    password = f"s3cret-{RUN_ID}"
    host = HostSpec(
        docker_host.name,
        "docker",
        docker_host.connection_string,
        config={
            **docker_host.config,
            "registry_auth": {
                "username": "alice",
                "password": password,
                "serveraddress": f"127.0.0.1:{port}",
            },
        },
        auto_pull_images=True,
    )
    caplog.set_level(logging.DEBUG)
    # 127.0.0.0/8 is an insecure registry to the engine, so it speaks plain HTTP to the fake.
    with pytest.raises(ImagePullFailed) as raised:
        executor.launch_job(host, make_job("true", image=f"127.0.0.1:{port}/team/app:1.0"))
    assert "manifest unknown" in raised.value.reason
    expected = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    assert expected in seen
    assert password not in str(raised.value)
    assert password not in caplog.text
    assert "alice" in caplog.text
    assert password not in repr(host)


def test_a_dangerous_spec_is_refused_even_without_the_policy(
    executor: DockerExecutor, docker_host: HostSpec, docker_client: docker.DockerClient, make_job: JobMaker
) -> None:
    # Calling the plugin directly skips PluginManager's policy check; the payload re-check still holds.
    job = make_job("true", user="0", memory_limit_mb=1, network_mode="host")
    with pytest.raises(PolicyViolationError) as raised:
        executor.launch_job(docker_host, job)
    assert {"payload.root-user", "payload.memory-too-low", "payload.host-namespace"} <= {
        v.code for v in raised.value.violations
    }
    assert containers_named(docker_client, container_name(job.job_id)) == []


def test_a_start_failure_reports_the_engine_and_leaves_nothing(
    executor: DockerExecutor,
    docker_host: HostSpec,
    docker_client: docker.DockerClient,
    make_job: JobMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The engine resolves user names at start; the image has no passwd file, so start fails. The
    # guard refuses names before the create now, so it is set aside to reach the start path.
    monkeypatch.setattr("docker_executor.plugin.check_create_payload", lambda *args: None)
    job = make_job("true", user="nosuchuser")
    with pytest.raises(
        LaunchFailed, match=r"refused to start the container .*unable to find user nosuchuser"
    ):
        executor.launch_job(docker_host, job)
    assert containers_named(docker_client, container_name(job.job_id)) == []


def test_a_missing_program_is_the_jobs_failure_not_a_launch_failure(
    executor: DockerExecutor, docker_host: HostSpec, make_job: JobMaker
) -> None:
    # docker-init is PID 1 and starts fine; its exec of the job fails inside the container.
    execution = executor.launch_job(docker_host, make_job(command=Command.exec("/no/such/program")))
    status = wait_exited(executor, docker_host, execution.execution_id)
    assert (status.exit_code, status.oom_killed) == (127, False)
    assert (
        "/no/such/program" in executor.get_logs(docker_host, execution.execution_id, timestamps=False).stderr
    )
