"""Shared helpers for tests that need a real Docker Engine: client, test image, label cleanup."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import requests.exceptions

from example.image import is_static_elf

# Every container, network and image a test creates carries this label, valued with the run id.
TEST_LABEL = "container_manager.test"
# Unique per test session, so parallel runs on one engine never clean up each other's containers.
RUN_ID = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
TEST_IMAGE = "container-manager-test/busybox:latest"
BUSYBOX = Path("/bin/busybox")
DEFAULT_BASE_URL = "unix:///var/run/docker.sock"
# Short: tests must not hang on a wedged engine, and no test call legitimately takes longer.
CLIENT_TIMEOUT = 60

_SCRATCH_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
# Like real base images: runc copies an existing mount point's mode onto a tmpfs mounted over it,
# and the engine creates a missing working directory as 0755 first, so /tmp must exist as 1777.
RUN ["/bin/busybox", "mkdir", "-m", "1777", "/tmp"]
USER 1001:1001
"""
_PULLED_DOCKERFILE = """\
FROM busybox:1.36
USER 1001:1001
"""


def docker_client_or_fail() -> docker.DockerClient:
    """Return a client for the local engine; without one, fail when CI is set, else skip."""
    base_url = os.environ.get("DOCKER_HOST", DEFAULT_BASE_URL)
    try:
        client = docker.DockerClient(base_url=base_url, version="auto", timeout=CLIENT_TIMEOUT)
        client.api.trust_env = False
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        message = f"No Docker Engine answers at {base_url!r}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return client


def build_test_image(client: docker.DockerClient) -> str:
    """Build the non-root busybox test image and return its tag.

    With a static busybox on this machine the image is built FROM scratch (no registry needed);
    otherwise busybox is pulled from the configured registry and only the user is changed.
    """
    with tempfile.TemporaryDirectory(prefix="cm-test-image-") as context:
        if BUSYBOX.is_file() and is_static_elf(BUSYBOX):
            shutil.copy2(BUSYBOX, Path(context, "busybox"))
            Path(context, "Dockerfile").write_text(_SCRATCH_DOCKERFILE)
        else:
            client.images.pull("busybox", tag="1.36")
            Path(context, "Dockerfile").write_text(_PULLED_DOCKERFILE)
        client.images.build(
            path=context,
            tag=TEST_IMAGE,
            rm=True,
            forcerm=True,
            network_mode="none",
            labels={TEST_LABEL: "image"},
            timeout=CLIENT_TIMEOUT,
        )
    return TEST_IMAGE


def remove_labelled(client: docker.DockerClient, run_id: str) -> int:
    """Remove every container and network labelled with ``run_id``; return how many were removed."""
    selector = {"label": f"{TEST_LABEL}={run_id}"}
    removed = 0
    for container in client.api.containers(all=True, filters=selector):
        try:
            client.api.remove_container(container["Id"], force=True, v=True)
            removed += 1
        except docker.errors.NotFound:
            continue
    for network in client.api.networks(filters=selector):
        try:
            client.api.remove_network(network["Id"])
            removed += 1
        except docker.errors.NotFound:
            continue
    return removed


@contextlib.contextmanager
def private_bridge() -> Iterator[str]:
    """Create a bridge of its own for a second, test-only dockerd; yield its name, delete it after.

    A second dockerd started with ``--bridge=none`` deletes the host's ``docker0`` (moby removes the
    default bridge interface when the bridge network is disabled), which breaks the main daemon's
    bridged containers until it restarts. A dedicated bridge with a link-local address avoids that.
    """
    suffix = uuid.uuid4().hex[:8]
    name = f"cmt{suffix}"  # interface names are capped at 15 characters
    octet = 1 + int(suffix, 16) % 254
    commands = (
        ["ip", "link", "add", name, "type", "bridge"],
        ["ip", "addr", "add", f"169.254.{octet}.1/24", "dev", name],
        ["ip", "link", "set", name, "up"],
    )
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, timeout=30)
        yield name
    finally:
        subprocess.run(["ip", "link", "delete", name], check=False, capture_output=True, timeout=30)


def engine_refused_version(client: docker.DockerClient) -> str:
    """Return an api_version the Docker plugin accepts but this engine refuses; skip the test if none."""
    import docker.utils
    from docker_executor.config import MAX_API_VERSION, MIN_API_VERSION

    version = client.version()
    newest, oldest = str(version["ApiVersion"]), str(version.get("MinAPIVersion") or "1.12")
    if docker.utils.version_lt(newest, MAX_API_VERSION):
        return MAX_API_VERSION  # the engine answers "client version ... is too new"
    if docker.utils.version_lt(MIN_API_VERSION, oldest):
        return MIN_API_VERSION  # the engine answers "client version ... is too old"
    pytest.skip(f"This engine speaks every API version the plugin supports ({oldest} to {newest}).")
