"""Pure tests of the create-payload translation and of the re-check that guards every create.

No engine is contacted: the payload is built from plain values with docker-py's own config types,
so these run in the unit suite, wherever the engine is missing.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from docker_executor.guard import MIN_MEMORY_BYTES, MIN_NANO_CPUS, check_create_payload, payload_violations
from docker_executor.naming import container_name
from docker_executor.payload import build_create_payload
from docker_executor.plugin import plugin
from hypothesis import given
from hypothesis import strategies as st

from container_manager_core.errors import HostMisconfigured, LaunchFailed, PolicyViolationError
from container_manager_core.types import Command, HostSpec, JobSpec, NetworkAttachment, TmpfsMount

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
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "5242880", "max-file": "2"}}
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
    "other container's network": (
        _set("HostConfig.NetworkMode", "container:victim"),
        "payload.shared-namespace",
    ),
    "other container's uts": (_set("HostConfig.UTSMode", "container:abc"), "payload.shared-namespace"),
    "other container's ipc": (_set("HostConfig.IpcMode", "container:abc"), "payload.shared-namespace"),
    "other container's userns": (_set("HostConfig.UsernsMode", "container:abc"), "payload.shared-namespace"),
    "host cgroup namespace": (_set("HostConfig.CgroupnsMode", "host"), "payload.host-namespace"),
    # Unset, an engine on cgroup v1 gives the container the host's cgroup namespace.
    "the engine's default cgroup namespace": (
        _set("HostConfig.CgroupnsMode", None),
        "payload.host-namespace",
    ),
    "host network, spelled loudly": (_set("HostConfig.NetworkMode", " HOST "), "payload.host-namespace"),
    "host network as an endpoint": (
        _set("NetworkingConfig", {"EndpointsConfig": {"host": {}}}),
        "payload.host-namespace",
    ),
    "docker socket bind": (
        _set("HostConfig.Binds", ["/var/run/docker.sock:/var/run/docker.sock"]),
        "payload.system-mount",
    ),
    "root bind": (_set("HostConfig.Binds", ["/:/host:ro"]), "payload.system-mount"),
    "etc bind mount": (
        _set("HostConfig.Mounts", [{"Type": "bind", "Source": "/etc", "Target": "/data", "ReadOnly": True}]),
        "payload.system-mount",
    ),
    "etc bind": (_set("HostConfig.Binds", ["/etc/../etc:/x"]), "payload.system-mount"),
    "parent of the socket": (_set("HostConfig.Binds", ["/var:/x"]), "payload.system-mount"),
    "socket mount": (
        _set("HostConfig.Mounts", [{"Type": "bind", "Source": "/run/docker.sock", "Target": "/s"}]),
        "payload.system-mount",
    ),
    "empty user": (_set("User", ""), "payload.root-user"),
    "uid 0": (_set("User", "0:1001"), "payload.root-user"),
    "uid 0 with leading zeros": (_set("User", "0000:0000"), "payload.root-user"),
    "uid 00": (_set("User", "00"), "payload.root-user"),
    "root by name": (_set("User", "root"), "payload.root-user"),
    "a name the image resolves": (_set("User", "nobody"), "payload.root-user"),
    "uid without a group": (_set("User", "1001"), "payload.root-group"),
    "gid 0": (_set("User", "1001:00"), "payload.root-group"),
    "supplementary root group": (_set("HostConfig.GroupAdd", ["0"]), "payload.group-add"),
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
    "inline seccomp profile": (
        _set(
            "HostConfig.SecurityOpt",
            ["no-new-privileges=true", 'seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}'],
        ),
        "payload.security-opt",
    ),
    "another apparmor profile": (
        _set("HostConfig.SecurityOpt", ["no-new-privileges=true", "apparmor=lenient"]),
        "payload.security-opt",
    ),
    "selinux type": (
        _set("HostConfig.SecurityOpt", ["no-new-privileges=true", "label=type:container_runtime_t"]),
        "payload.security-opt",
    ),
    "selinux labels off": (
        _set("HostConfig.SecurityOpt", ["no-new-privileges=true", "label=disable"]),
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
    "memory below the engine minimum": (
        lambda c: c["HostConfig"].update(Memory=MIN_MEMORY_BYTES - 1, MemorySwap=MIN_MEMORY_BYTES - 1),
        "payload.memory-too-low",
    ),
    "no cpu limit": (_set("HostConfig.NanoCpus", 0), "payload.no-cpu-limit"),
    "cpu that rounds to no quota": (_set("HostConfig.NanoCpus", 1000), "payload.no-cpu-limit"),
    "cpu just under the floor": (_set("HostConfig.NanoCpus", 9_999_999), "payload.no-cpu-limit"),
    "cpu as a float": (_set("HostConfig.NanoCpus", 5e8), "payload.no-cpu-limit"),
    "unlimited cfs quota": (
        lambda c: c["HostConfig"].update(NanoCpus=None, CpuQuota=-1),
        "payload.no-cpu-limit",
    ),
    "cfs quota under the kernel minimum": (
        lambda c: c["HostConfig"].update(NanoCpus=None, CpuQuota=999, CpuPeriod=100_000),
        "payload.no-cpu-limit",
    ),
    "devices": (_set("HostConfig.Devices", [{"PathOnHost": "/dev/sda"}]), "payload.devices"),
    "gpu request": (_set("HostConfig.DeviceRequests", [{"Count": -1}]), "payload.devices"),
    "device cgroup rule": (_set("HostConfig.DeviceCgroupRules", ["c 1:3 mr"]), "payload.devices"),
    "oom killer off": (_set("HostConfig.OomKillDisable", True), "payload.oom-kill-disabled"),
    "unbounded logs": (
        _set("HostConfig.LogConfig", {"Type": "json-file", "Config": {}}),
        "payload.unbounded-logs",
    ),
    "huge logs": (
        _set(
            "HostConfig.LogConfig", {"Type": "json-file", "Config": {"max-size": "1000000g", "max-file": "1"}}
        ),
        "payload.unbounded-logs",
    ),
    "many log files": (
        _set(
            "HostConfig.LogConfig", {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "1000"}}
        ),
        "payload.unbounded-logs",
    ),
    "log size without a number": (
        _set("HostConfig.LogConfig", {"Type": "json-file", "Config": {"max-size": "-1", "max-file": "1"}}),
        "payload.unbounded-logs",
    ),
    "another log driver": (
        _set("HostConfig.LogConfig", {"Type": "local", "Config": {}}),
        "payload.unbounded-logs",
    ),
    "no init": (_set("HostConfig.Init", False), "payload.no-init"),
    "tmpfs over etc": (_set("HostConfig.Tmpfs", {"/etc": "size=1000"}), "payload.mount-target"),
    "tmpfs over proc/sys": (_set("HostConfig.Tmpfs", {"/proc/sys": "size=1000"}), "payload.mount-target"),
    "tmpfs mount over usr": (
        _set("HostConfig.Mounts", [{"Type": "tmpfs", "Target": "/usr"}]),
        "payload.mount-target",
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
    reckless = job(user="0", memory_limit_mb=1, network_mode="host")
    with pytest.raises(PolicyViolationError) as raised:
        check_create_payload(build_create_payload(HOST, reckless, API).config)
    codes = {v.code for v in raised.value.violations}
    assert codes >= {"payload.root-user", "payload.memory-too-low", "payload.host-namespace"}


@pytest.mark.parametrize(
    "setting",
    [
        "privileged",
        "cap_add",
        "no_new_privileges",
        "pid_mode",
        "ipc_mode",
        "userns_mode",
        "security_opt",
        "devices",
        "mounts",
    ],
)
def test_the_portable_spec_has_no_engine_only_setting(setting: str) -> None:
    # Only the engine request can carry these, and the payload fixes each to its safe value.
    with pytest.raises(TypeError, match=setting):
        job(**{setting: ()})


@given(st.integers(1, 2**40))
def test_the_memory_floor_is_read_as_a_number(memory: int) -> None:
    config = copy.deepcopy(build_create_payload(HOST, job(), API).config)
    config["HostConfig"].update(Memory=memory, MemorySwap=memory)
    too_low = "payload.memory-too-low" in {v.code for v in payload_violations(config)}
    assert too_low == (memory < MIN_MEMORY_BYTES)


def test_the_engine_minimum_memory_passes_the_guard() -> None:
    config = build_create_payload(HOST, job(memory_limit_mb=6), API).config
    assert config["HostConfig"]["Memory"] == MIN_MEMORY_BYTES
    assert list(payload_violations(config)) == []


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


# What the engine will run: numbers, ids and resolved paths, not the text that was written. --------


@pytest.mark.parametrize(
    ("user", "engine_user"),
    [("1001", "1001:1001"), ("00001001", "1001:1001"), ("65534", "65534:65534"), ("1001:2000", "1001:2000")],
)
def test_a_uid_alone_gets_an_explicit_group_of_the_same_number(user: str, engine_user: str) -> None:
    config = build_create_payload(HOST, job(user=user), API).config
    assert config["User"] == engine_user
    assert list(payload_violations(config)) == []


@pytest.mark.parametrize("user", ["0", "00", "0000:0000", "1001:0", "root", "nobody", ""])
def test_a_root_or_named_user_reaches_the_payload_as_written_and_is_refused(user: str) -> None:
    # The translation stays faithful; the guard, not the translation, says no.
    with pytest.raises(PolicyViolationError) as raised:
        check_create_payload(build_create_payload(HOST, job(user=user), API).config)
    assert {v.code for v in raised.value.violations} & {"payload.root-user", "payload.root-group"}


def test_the_cpu_floor_translates_to_a_quota_the_engine_keeps() -> None:
    config = build_create_payload(HOST, job(cpu_limit=0.01), API).config
    assert config["HostConfig"]["NanoCpus"] == MIN_NANO_CPUS
    assert list(payload_violations(config)) == []
    tiny = build_create_payload(HOST, job(cpu_limit=1e-6), API).config
    assert tiny["HostConfig"]["NanoCpus"] == 1000
    assert "payload.no-cpu-limit" in {v.code for v in payload_violations(tiny)}


@pytest.mark.parametrize("network", ["container:victim", "host", "CONTAINER:victim"])
def test_a_host_default_network_that_shares_a_namespace_is_refused_in_the_payload(network: str) -> None:
    # The typed host config refuses it, so no request is built from it...
    host = HostSpec("h1", "docker", config={"default_network": network})
    with pytest.raises(HostMisconfigured, match="default_network"):
        build_create_payload(host, job(network_mode=None), API)
    # ...and a request carrying it anyway is refused by the guard.
    payload = build_create_payload(HOST, job(network_mode=None), API)
    payload.config["HostConfig"]["NetworkMode"] = network
    with pytest.raises(PolicyViolationError) as raised:
        check_create_payload(payload.config, HOST, payload.extra_networks)
    assert {v.code for v in raised.value.violations} & {"payload.host-namespace", "payload.shared-namespace"}


def test_a_network_joined_before_start_is_checked_too() -> None:
    networks = (NetworkAttachment("front"), NetworkAttachment("host"))
    payload = build_create_payload(HOST, job(network_mode=None, networks=networks), API)
    codes = {v.code for v in payload_violations(payload.config, HOST, payload.extra_networks)}
    assert codes == {"payload.host-namespace"}


@pytest.mark.parametrize("image", ["abc123", "sha256:" + "a" * 64, "sha256:abc", "deadbeef"])
def test_an_image_id_is_refused_where_the_host_has_an_allow_list(image: str) -> None:
    host = HostSpec("h1", "docker", config={"allowed_registries": ["docker.io/library"]})
    config = build_create_payload(host, job(image=image), API).config
    codes = {v.code for v in payload_violations(config, host)}
    assert codes == {"payload.image"}
    assert list(payload_violations(config, HostSpec("h1", "docker"))) == []  # no allow-list, no rule


def test_an_allowed_image_passes_the_host_allow_list() -> None:
    host = HostSpec("h1", "docker", config={"allowed_registries": ["docker.io/library"]})
    config = build_create_payload(host, job(image="busybox:1.36"), API).config
    assert list(payload_violations(config, host)) == []


@pytest.mark.parametrize("key", ["Binds", "Mounts"])
def test_a_bind_source_is_judged_by_what_its_symlink_points_to(tmp_path: Path, key: str) -> None:
    (tmp_path / "etc-link").symlink_to("/etc")
    source = str(tmp_path / "etc-link")
    config = copy.deepcopy(build_create_payload(HOST, job(), API).config)
    config["HostConfig"][key] = (
        [f"{source}:/data:ro"] if key == "Binds" else [{"Type": "bind", "Source": source, "Target": "/data"}]
    )
    [violation] = payload_violations(config)
    assert (violation.code, violation.field) == ("payload.system-mount", key)
    assert "resolves to '/etc'" in violation.message


@pytest.mark.parametrize(
    ("config", "max_size"),
    [({}, "10485760"), ({"log_max_size": "512k"}, "524288"), ({"log_max_size": "1.5m"}, "1572864")],
)
def test_log_sizes_reach_the_engine_in_bytes(config: dict[str, Any], max_size: str) -> None:
    host = HostSpec("h1", "docker", config=config)
    log = build_create_payload(host, job(), API).config["HostConfig"]["LogConfig"]
    assert log["Config"]["max-size"] == max_size


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"log_max_size": "1000000g"}, "payload.unbounded-logs"),
        ({"log_max_size": "10m", "log_max_file": 500}, "payload.unbounded-logs"),
        ({"log_max_size": "lots"}, "payload.unbounded-logs"),
        ({"use_init": False}, "payload.no-init"),
    ],
)
def test_unsafe_host_log_and_init_settings_are_refused_in_the_payload(
    config: dict[str, Any], code: str
) -> None:
    # The typed host config refuses them, so no request is built from them...
    host = HostSpec("h1", "docker", config=config)
    with pytest.raises(HostMisconfigured):
        build_create_payload(host, job(), API)
    # ...and a request carrying them anyway is refused by the guard.
    request = build_create_payload(HOST, job(), API).config
    if "use_init" in config:
        request["HostConfig"]["Init"] = config["use_init"]
    else:
        options = request["HostConfig"]["LogConfig"]["Config"]
        options["max-size"] = config["log_max_size"]
        options["max-file"] = str(config.get("log_max_file", options["max-file"]))
    assert code in {v.code for v in payload_violations(request, HOST)}


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"default_network": "container:victim"}, "shared_network_namespace"),
        ({"default_network": "host"}, "host_network"),
        ({"log_max_size": "1000000g"}, "log_limits_invalid"),
        ({"log_max_file": 0}, "log_limits_invalid"),
        ({"use_init": False}, "init_disabled"),
        ({"use_init": "no"}, "init_disabled"),
    ],
)
def test_the_docker_plugin_refuses_unsafe_host_defaults(config: dict[str, Any], code: str) -> None:
    host = HostSpec("h1", "docker", config=config)
    assert [v.code for v in plugin.validate_host(host)] == [code]
    assert [v.code for v in plugin.validate_job(host, job())] == [code]
    assert plugin.validate_host(HostSpec("h1", "docker", config={"default_network": "none"})) == []
    assert plugin.validate_host(HostSpec("h1", "mock", config=config)) == []
