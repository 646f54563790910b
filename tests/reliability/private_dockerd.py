"""A private Docker Engine on its own socket and data root, which a test may stop and restart.

Restarting the machine's shared engine would break everyone else's containers; this one holds
only the test's own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest
import requests.exceptions

from tests.dockertools import private_bridge
from tests.seconddaemon import dockerd_command

START_TIMEOUT = 60.0


class PrivateDockerd:
    """One private dockerd: start it, stop it gracefully (as an operator's restart does), start it again."""

    def __init__(self, root: Path, bridge: str) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        namespace = f"cmrel-{uuid.uuid4().hex[:8]}"
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            pytest.fail("The engine restart test needs dockerd on PATH.")
        (root / "daemon.json").write_text("{}")
        self.command = dockerd_command(dockerd, root, bridge, namespace, [f"--host=unix://{self.socket}"])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        with (self.root / "dockerd.log").open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"The private dockerd exited with {self.process.returncode}: {self.log_tail()}")
            # Probe the socket first: docker-py leaks the socket of a connection that was refused.
            if self._listening():
                try:
                    with self.client() as client:
                        client.ping()
                    return
                except (docker.errors.DockerException, requests.exceptions.RequestException):
                    pass
            time.sleep(0.3)
        pytest.fail(f"The private dockerd did not answer within {START_TIMEOUT} s: {self.log_tail()}")

    def _listening(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    def stop(self) -> None:
        """Stop the engine as ``kill -TERM`` does: it stops its containers, then exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    @contextmanager
    def client(self) -> Iterator[docker.DockerClient]:
        client = docker.DockerClient(base_url=self.base_url, version="1.41", timeout=30)
        client.api.trust_env = False
        try:
            yield client
        finally:
            client.close()

    def log_tail(self) -> str:
        path = self.root / "dockerd.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@contextmanager
def private_dockerd() -> Iterator[PrivateDockerd]:
    """Run a private engine for the duration of the block; remove its containers and data after."""
    if os.geteuid() != 0:
        pytest.fail("A private dockerd needs root.")
    # A short root: containerd's sockets live under the exec root and unix paths are capped at 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="cmrel-", dir="/tmp"))
    with private_bridge() as bridge:
        yield from _run(PrivateDockerd(root, bridge), root)


def _run(daemon: PrivateDockerd, root: Path) -> Iterator[PrivateDockerd]:
    try:
        daemon.start()
        yield daemon
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            try:
                with daemon.client() as client:
                    for container in client.api.containers(all=True):
                        client.api.remove_container(container["Id"], force=True)
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                pass  # Stopping the engine below takes its containers down anyway.
        daemon.stop()
        subprocess.run(["umount", "-R", str(root / "exec")], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
