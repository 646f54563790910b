"""``container-manager-test-image``, as a pip user runs it, builds a tiny non-root image on a real engine."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.dockertools import DEFAULT_BASE_URL, RUN_ID, TEST_LABEL, remove_labelled

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# The console script pip puts next to the interpreter; here .venv/bin/container-manager-test-image.
SCRIPT = Path(sys.prefix) / "bin" / "container-manager-test-image"
BASE_URL = os.environ.get("DOCKER_HOST", DEFAULT_BASE_URL)


@pytest.fixture
def tag(docker_client: docker.DockerClient) -> Iterator[str]:
    """A tag of this run's own; its containers and then the image are removed afterwards."""
    tag = f"container-manager-test-image-{RUN_ID}:busybox"
    yield tag
    remove_labelled(docker_client, RUN_ID)
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(tag, force=True)


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "--docker-host", BASE_URL, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_console_script_builds_a_small_non_root_image(docker_client: docker.DockerClient, tag: str):
    built = run_script("--tag", tag)
    assert built.returncode == 0, built.stderr
    assert built.stdout == f"{tag}\n", "stdout is the tag alone, for IMAGE=$(container-manager-test-image)"
    assert built.stderr.startswith(f"Built {tag} from "), built.stderr

    image = docker_client.images.get(tag)
    assert image.attrs["Config"]["User"] == "1001:1001"
    assert image.attrs["Size"] < 5_000_000, "scratch and one static busybox: about 2 MB"

    container = docker_client.containers.run(
        tag,
        ["id", "-u"],
        detach=True,
        network_mode="none",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        labels={TEST_LABEL: RUN_ID},
    )
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        assert container.logs(stdout=True, stderr=False) == b"1001\n"
    finally:
        container.remove(force=True)


def test_a_second_run_finds_the_image_and_rebuild_replaces_it(docker_client: docker.DockerClient, tag: str):
    # Built without the cache, so the image is this tag's alone: a cached build may hand back the
    # image another tag (the docs' container-manager-test:busybox) holds, which must then stay.
    assert run_script("--tag", tag, "--rebuild").returncode == 0
    first = docker_client.images.get(tag).id
    assert first is not None

    again = run_script("--tag", tag)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"{tag}\n"
    assert "already present" in again.stderr
    assert docker_client.images.get(tag).id == first

    rebuilt = run_script("--tag", tag, "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stderr.startswith(f"Built {tag} from "), rebuilt.stderr
    assert docker_client.images.get(tag).id != first
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(first)  # the replaced image is not left dangling
