"""Start a second, test-only dockerd beside the machine's own, and leave nothing of it behind.

The daemon gets its own data root, exec root, pidfile, containerd namespace and bridge under a
fresh directory, is stopped by its PID at the end, and its directory is deleted once no mount is
left under it. Used by the TLS test (a TLS-only engine) and the user-namespace test (an engine
started with ``--userns-remap=default``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import docker.errors
import pytest
import requests.exceptions

from tests.dockertools import RUN_ID, private_bridge

START_TIMEOUT = 40.0
STOP_TIMEOUT = 20.0
# How a daemon that is still starting fails a readiness probe.
NOT_ANSWERING = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


def missing(message: str) -> NoReturn:
    """Fail when CI is set (CI has everything these tests need), else skip."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_dockerd() -> str:
    """Return the path of dockerd; fail under CI and skip elsewhere when it is missing or we are not root."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        missing("A second Docker engine needs dockerd on PATH.")
    if os.geteuid() != 0:
        missing("A second Docker engine needs root.")
    return dockerd


def mounts_under(root: Path) -> list[str]:
    """Return the mount points at or below ``root``, deepest first."""
    prefix = str(root.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


@contextlib.contextmanager
def daemon_root(prefix: str) -> Iterator[Path]:
    """Yield a fresh directory for a daemon; delete it afterwards, failing if a mount was left in it.

    Short and in /tmp: containerd's unix sockets live under the exec root, and paths are capped at
    108 bytes. Traversable by others (0711), so a remapped root can reach its data root below it.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        left = mounts_under(root)
        for point in left:
            subprocess.run(["umount", "-l", point], check=False, capture_output=True, timeout=30)
        shutil.rmtree(root, ignore_errors=True)
        if left:
            pytest.fail(f"The second dockerd left mounts behind (now unmounted): {left}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def second_dockerd(
    root: Path, name: str, options: Sequence[str], ready: Callable[[], bool]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a dockerd with ``options`` (its listening address among them) under ``root``.

    ``ready`` is asked until it answers True or the start times out; it may raise while the daemon
    starts. The daemon has a bridge of its own (never ``--bridge=none``, which deletes the host's
    docker0), no iptables rules, vfs storage, and containerd namespaces named after ``name``.
    """
    dockerd = require_dockerd()
    config = root / "daemon.json"
    if not config.exists():
        config.write_text("{}")
    namespace = f"cm-{name}-{RUN_ID}"
    log = root / "dockerd.log"
    with private_bridge() as bridge:
        command = dockerd_command(dockerd, root, bridge, namespace, options)
        with log.open("wb") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_ready(name, process, log, ready)
            yield process
        finally:
            _stop(process)


def dockerd_command(
    dockerd: str, root: Path, bridge: str, namespace: str, options: Sequence[str]
) -> list[str]:
    """Return the command line of a test dockerd whose every path and name is its own, under ``root``.

    Its own bridge (never ``--bridge=none``, which deletes the host's docker0), no iptables rules,
    vfs storage, and containerd namespaces named ``namespace``, so it touches nothing of the host's engine.
    """
    return [
        dockerd,
        f"--config-file={root / 'daemon.json'}",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'dockerd.pid'}",
        f"--bridge={bridge}",
        "--iptables=false",
        "--ip-masq=false",
        "--storage-driver=vfs",
        f"--containerd-namespace={namespace}",
        f"--containerd-plugins-namespace={namespace}-plugins",
        "--log-level=warn",
        *options,
    ]


def _wait_ready(name: str, process: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"The {name} dockerd exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(*NOT_ANSWERING):
            if ready():
                return
        time.sleep(0.3)
    pytest.fail(f"The {name} dockerd did not answer within {START_TIMEOUT} s: {log.read_text()[-2000:]}")
