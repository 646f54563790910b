"""Every hardening setting is visible in ``docker inspect`` and holds inside the running container."""

from __future__ import annotations

import docker
import pytest
from docker_executor.plugin import DockerExecutor

from container_manager_core.types import HostSpec, TmpfsMount
from tests.integration.docker.conftest import JobMaker, wait_exited

pytestmark = pytest.mark.docker

# Run inside the container: each line reports one property the hardening should give.
PROBE = """
echo "uid=$(id -u) gid=$(id -g)"
touch /rootfs-write 2>/dev/null && echo "root=writable" || echo "root=read-only"
echo x > /tmp/probe && echo "tmp=writable" || echo "tmp=read-only"
cp /bin/busybox /tmp/bb && /tmp/bb true 2>/dev/null && echo "tmp-exec=allowed" || echo "tmp-exec=refused"
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t'
cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max
"""


@pytest.fixture
def hardened(
    executor: DockerExecutor, docker_host: HostSpec, docker_client: docker.DockerClient, make_job: JobMaker
) -> tuple[dict[str, object], str]:
    job = make_job(
        PROBE,
        memory_limit_mb=48,
        cpu_limit=0.25,
        pids_limit=40,
        tmpfs=(TmpfsMount("/tmp", 8 * 1024 * 1024),),
        env={"GREETING": "hello"},
        working_dir="/tmp",
    )
    execution = executor.launch_job(docker_host, job)
    status = wait_exited(executor, docker_host, execution.execution_id)
    assert status.exit_code == 0
    inspected = docker_client.api.inspect_container(execution.execution_id)
    output = executor.get_logs(docker_host, execution.execution_id, timestamps=False).stdout
    return inspected, output


def test_inspect_shows_every_hardening_setting(hardened: tuple[dict[str, object], str]) -> None:
    inspected, _ = hardened
    hc = inspected["HostConfig"]
    config = inspected["Config"]
    assert isinstance(hc, dict) and isinstance(config, dict)
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"]
    assert not hc["CapAdd"]
    assert hc["SecurityOpt"] == ["no-new-privileges=true"]
    assert hc["PidsLimit"] == 40
    assert hc["Memory"] == hc["MemorySwap"] == 48 * 1024 * 1024
    assert hc["NanoCpus"] == 250_000_000
    assert hc["Privileged"] is False
    assert hc["NetworkMode"] == "none"
    assert hc["PidMode"] == "" and hc["UsernsMode"] == "" and hc["IpcMode"] in ("private", "shareable")
    assert not hc["Devices"] and not hc["Binds"]
    assert hc["Tmpfs"] == {"/tmp": "size=8388608,mode=1777,noexec,nosuid,nodev"}
    assert hc["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "5", "max-size": "10485760"},
    }  # 10m, in bytes
    assert hc["RestartPolicy"]["Name"] == "no"
    assert config["User"] == "1001:1001"
    assert config["WorkingDir"] == "/tmp"
    assert "GREETING=hello" in config["Env"]
    assert config["Labels"]["container_manager.managed"] == "true"
    assert config["Labels"]["container_manager.host"] == "local-docker"


def test_the_container_feels_the_hardening(hardened: tuple[dict[str, object], str]) -> None:
    _, output = hardened
    lines = output.splitlines()
    assert "uid=1001 gid=1001" in lines
    assert "root=read-only" in lines
    assert "tmp=writable" in lines
    assert "tmp-exec=refused" in lines
    assert "CapEff:0000000000000000" in lines
    assert "CapBnd:0000000000000000" in lines
    assert "NoNewPrivs:1" in lines
    assert "Seccomp:2" in lines  # the engine's default seccomp filter is on
    assert lines[-1] == "40"
