"""Pure tests of the create-payload translation and of the re-check that guards every create.

No engine is contacted: the payload is built from plain values with docker-py's own config types.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from docker_executor.guard import check_create_payload, payload_violations
from docker_executor.naming import container_name
from docker_executor.payload import build_create_payload

from container_manager_core.errors import LaunchFailed, PolicyViolationError
from container_manager_core.types import Command, HostSpec, JobSpec, Mount, NetworkAttachment, TmpfsMount

pytestmark = pytest.mark.docker

API = "1.41"
HOST = HostSpec(
    "h1", "docker", "unix:///var/run/docker.sock", config={"log_max_size": "5m", "log_max_file": 2}
)


def job(**overrides: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "job_id": "job-1",
        "image": "registry.example/app:1",
        "command": Command.exec("python", "-m", "work"),
        "user": "1001:1001",
        "memory_limit_mb": 64,
        "cpu_limit": 0.5,
        "pids_limit": 32,
        "timeout_seconds": 60,
        "network_mode": "none",
        "env": {"MODE": "test"},
        "working_dir": "/work",
        "labels": {"team": "data"},
    }
    fields.update(overrides)
    return JobSpec(**fields)


def test_hardened_payload_carries_every_setting() -> None:
    payload = build_create_payload(HOST, job(tmpfs=(TmpfsMount("/tmp", 16 * 1024 * 1024),)), API)
    config = payload.config
    hc = config["HostConfig"]
    assert payload.name == "cm-job-job-1"
    assert config["User"] == "1001:1001"
    assert config["Cmd"] == ["python", "-m", "work"]
    assert config["Env"] == ["MODE=test"]
    assert config["WorkingDir"] == "/work"
    assert config["StopTimeout"] == 10
    assert config["Labels"] == {
        "team": "data",
        "container_manager.managed": "true",
        "container_manager.owner": "default",
        "container_manager.job_id": "job-1",
        "container_manager.host": "h1",
    }
    assert hc["ReadonlyRootfs"] is True
    assert hc["Tmpfs"] == {"/tmp": "size=16777216,mode=1777,noexec,nosuid,nodev"}
    assert hc["CapDrop"] == ["ALL"]
    assert "CapAdd" not in hc
    assert hc["SecurityOpt"] == ["no-new-privileges=true"]
    assert hc["PidsLimit"] == 32
    assert hc["Memory"] == hc["MemorySwap"] == 64 * 1024 * 1024
    assert hc["NanoCpus"] == 500_000_000
    assert not hc.get("Privileged")  # docker-py omits the key when false: the engine default
    assert hc["NetworkMode"] == "none"
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "5m", "max-file": "2"}}
    assert hc["RestartPolicy"] == {"Name": "no"}
    for absent in ("PidMode", "IpcMode", "UsernsMode", "Devices", "Binds", "Mounts"):
        assert not hc.get(absent), absent
    assert list(payload_violations(config)) == []


def test_a_job_cannot_override_the_manager_labels() -> None:
    spoofed = job(labels={"container_manager.managed": "false", "container_manager.job_id": "other"})
    labels = build_create_payload(HOST, spoofed, API).config["Labels"]
    assert labels["container_manager.managed"] == "true"
    assert labels["container_manager.job_id"] == "job-1"


def test_no_command_means_the_image_default() -> None:
    assert build_create_payload(HOST, job(command=None), API).config["Cmd"] is None


def test_shell_command_runs_through_sh() -> None:
    config = build_create_payload(HOST, job(command=Command.shell("echo hi && exit 3")), API).config
    assert config["Cmd"] == ["/bin/sh", "-c", "echo hi && exit 3"]


@pytest.mark.parametrize(
    ("config", "mode", "expected"),
    [({}, None, "bridge"), ({"default_network": "jobs-net"}, None, "jobs-net"), ({}, "none", "none")],
)
def test_network_mode_defaults_to_the_host_setting(
    config: dict[str, str], mode: str | None, expected: str
) -> None:
    host = HostSpec("h1", "docker", config=config)
    assert (
        build_create_payload(host, job(network_mode=mode), API).config["HostConfig"]["NetworkMode"]
        == expected
    )


def test_networks_create_on_the_first_and_join_the_rest() -> None:
    networks = (NetworkAttachment("front", ("web", "www")), NetworkAttachment("back", ("db-client",)))
    payload = build_create_payload(HOST, job(network_mode=None, networks=networks), API)
    assert payload.config["HostConfig"]["NetworkMode"] == "front"
    endpoints = payload.config["NetworkingConfig"]["EndpointsConfig"]
    assert list(endpoints) == ["front"]
    assert endpoints["front"]["Aliases"] == ["web", "www"]
    assert payload.extra_networks == (networks[1],)


def test_network_mode_and_networks_together_are_refused() -> None:
    with pytest.raises(LaunchFailed, match="sets network_mode 'none' and also joins networks"):
        build_create_payload(HOST, job(network_mode="none", networks=(NetworkAttachment("front"),)), API)


def test_bind_mounts_are_translated_read_only() -> None:
    payload = build_create_payload(HOST, job(mounts=(Mount("/srv/data", "/data"),)), API)
    [mount] = payload.config["HostConfig"]["Mounts"]
    assert (mount["Type"], mount["Source"], mount["Target"], mount["ReadOnly"]) == (
        "bind",
        "/srv/data",
        "/data",
        True,
    )
    assert list(payload_violations(payload.config)) == []


def test_container_names_are_deterministic_and_distinct() -> None:
    assert container_name("abc-1") == container_name("abc-1") == "cm-job-abc-1"
    odd_a, odd_b = container_name("team/job 1"), container_name("team:job 1")
    assert odd_a != odd_b
    assert odd_a.startswith("cm-job-team_job_1-")
    assert container_name("x" * 500) != container_name("x" * 499)


# The re-check: each mutation makes one dangerous create body, which must be refused by code.
def _set(path: str, value: Any) -> Any:
    def mutate(config: dict[str, Any]) -> None:
        target = config
        *parents, key = path.split(".")
        for parent in parents:
            target = target[parent]
        target[key] = value

    return mutate


DANGEROUS: dict[str, tuple[Any, str]] = {
    "privileged": (_set("HostConfig.Privileged", True), "payload.privileged"),
    "host network": (_set("HostConfig.NetworkMode", "host"), "payload.host-namespace"),
    "host pid": (_set("HostConfig.PidMode", "host"), "payload.host-namespace"),
    "host ipc": (_set("HostConfig.IpcMode", "host"), "payload.host-namespace"),
    "host userns": (_set("HostConfig.UsernsMode", "host"), "payload.host-namespace"),
    "host uts": (_set("HostConfig.UTSMode", "host"), "payload.host-namespace"),
    "other container's pid": (_set("HostConfig.PidMode", "container:abc"), "payload.shared-namespace"),
    "docker socket bind": (
        _set("HostConfig.Binds", ["/var/run/docker.sock:/var/run/docker.sock"]),
        "payload.system-mount",
    ),
    "root bind": (_set("HostConfig.Binds", ["/:/host:ro"]), "payload.system-mount"),
    "etc bind": (_set("HostConfig.Binds", ["/etc/../etc:/x"]), "payload.system-mount"),
    "parent of the socket": (_set("HostConfig.Binds", ["/var:/x"]), "payload.system-mount"),
    "socket mount": (
        _set("HostConfig.Mounts", [{"Type": "bind", "Source": "/run/docker.sock", "Target": "/s"}]),
        "payload.system-mount",
    ),
    "empty user": (_set("User", ""), "payload.root-user"),
    "uid 0": (_set("User", "0:1001"), "payload.root-user"),
    "root by name": (_set("User", "root"), "payload.root-user"),
    "cap add": (_set("HostConfig.CapAdd", ["SYS_ADMIN"]), "payload.cap-add"),
    "capabilities kept": (_set("HostConfig.CapDrop", []), "payload.cap-drop"),
    "seccomp unconfined": (
        _set("HostConfig.SecurityOpt", ["no-new-privileges:true", "seccomp=unconfined"]),
        "payload.unconfined",
    ),
    "seccomp unconfined, old syntax": (
        _set("HostConfig.SecurityOpt", ["no-new-privileges", "seccomp:unconfined"]),
        "payload.unconfined",
    ),
    "apparmor unconfined": (
        _set("HostConfig.SecurityOpt", ["no-new-privileges:true", "apparmor=unconfined"]),
        "payload.unconfined",
    ),
    "new privileges allowed": (_set("HostConfig.SecurityOpt", []), "payload.new-privileges"),
    "no pids limit": (_set("HostConfig.PidsLimit", None), "payload.no-pids-limit"),
    "unlimited pids": (_set("HostConfig.PidsLimit", -1), "payload.no-pids-limit"),
    "no memory limit": (_set("HostConfig.Memory", 0), "payload.no-memory-limit"),
    "unlimited swap": (_set("HostConfig.MemorySwap", -1), "payload.swap"),
    "no cpu limit": (_set("HostConfig.NanoCpus", 0), "payload.no-cpu-limit"),
    "devices": (_set("HostConfig.Devices", [{"PathOnHost": "/dev/sda"}]), "payload.devices"),
    "gpu request": (_set("HostConfig.DeviceRequests", [{"Count": -1}]), "payload.devices"),
    "oom killer off": (_set("HostConfig.OomKillDisable", True), "payload.oom-kill-disabled"),
    "unbounded logs": (
        _set("HostConfig.LogConfig", {"Type": "json-file", "Config": {}}),
        "payload.unbounded-logs",
    ),
    "volumes from": (_set("HostConfig.VolumesFrom", ["other"]), "payload.volumes-from"),
}


@pytest.mark.parametrize("name", sorted(DANGEROUS))
def test_recheck_refuses_a_dangerous_create_body(name: str) -> None:
    mutate, code = DANGEROUS[name]
    config = copy.deepcopy(build_create_payload(HOST, job(), API).config)
    mutate(config)
    with pytest.raises(PolicyViolationError) as raised:
        check_create_payload(config)
    assert code in [v.code for v in raised.value.violations]


def test_recheck_reads_what_a_dangerous_spec_translates_to() -> None:
    # The translation is faithful, so a spec that slipped past the policy is caught on the payload.
    reckless = job(
        privileged=True, cap_add=("NET_ADMIN",), user="0", pid_mode="host", no_new_privileges=False
    )
    with pytest.raises(PolicyViolationError) as raised:
        check_create_payload(build_create_payload(HOST, reckless, API).config)
    codes = {v.code for v in raised.value.violations}
    assert codes >= {
        "payload.privileged",
        "payload.cap-add",
        "payload.root-user",
        "payload.host-namespace",
        "payload.new-privileges",
    }


def test_recheck_leaves_a_writable_root_to_the_policy() -> None:
    # The policy may allow it (allow_writable_root); the plugin only translates the decision.
    config = build_create_payload(HOST, job(read_only_root=False), API).config
    assert config["HostConfig"]["ReadonlyRootfs"] is False
    check_create_payload(config)


def test_recheck_lists_every_problem_at_once() -> None:
    config = copy.deepcopy(build_create_payload(HOST, job(), API).config)
    config["HostConfig"].update(Privileged=True, PidsLimit=None, Memory=None)
    violations = list(payload_violations(config))
    assert {v.code for v in violations} == {
        "payload.privileged",
        "payload.no-pids-limit",
        "payload.no-memory-limit",
    }
    assert all(v.message.endswith(".") for v in violations)
