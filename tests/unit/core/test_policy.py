from __future__ import annotations

import subprocess
import sys
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from container_manager_core.errors import PolicyViolationError
from container_manager_core.identity import MAX_ID
from container_manager_core.plugins import PluginManager
from container_manager_core.policy import normalise_path
from container_manager_core.types import (
    HostSpec,
    JobSpec,
    NetworkAttachment,
    PolicyLimits,
    TlsSettings,
    TmpfsMount,
    Violation,
)

LIMITS = PolicyLimits()
PM = PluginManager(load_entry_points=False)


def safe_job(**changes: Any) -> JobSpec:
    base = JobSpec(
        job_id="job-1",
        image="python:3.11",
        user="1001:1001",
        memory_limit_mb=512,
        cpu_limit=1.0,
        timeout_seconds=600,
        pids_limit=256,
    )
    return attrs.evolve(base, **changes)


def codes(violations: list[Violation]) -> list[str]:
    return [v.code for v in violations]


def test_the_safe_baseline_passes() -> None:
    assert PM.validate_job(None, safe_job(), LIMITS) == []


# A job within every limit, with any combination of settings the policy allows, passes. ------------

safe_jobs = st.builds(
    safe_job,
    image=st.sampled_from(
        ["python:3.11", "docker.io/library/alpine", "myorg/app:v1", f"busybox@sha256:{'a' * 64}"]
    ),
    user=st.one_of(
        st.integers(1001, MAX_ID).map(str),
        st.tuples(st.integers(1001, MAX_ID), st.integers(1, MAX_ID)).map(lambda ids: f"{ids[0]}:{ids[1]}"),
    ),
    memory_limit_mb=st.integers(6, 2048),
    cpu_limit=st.floats(0.01, 2.0),
    timeout_seconds=st.integers(1, 3600),
    pids_limit=st.integers(1, 1024),
    network_mode=st.sampled_from([None, "bridge", "none", "default", "jobs-net"]),
    networks=st.lists(st.sampled_from(["jobs", "db_net", "svc.internal"]), max_size=2, unique=True).map(
        lambda names: tuple(NetworkAttachment(n) for n in names)
    ),
    tmpfs=st.lists(
        st.builds(
            TmpfsMount, st.sampled_from(["/tmp", "/run/app", "/cache"]), st.integers(1, 512 * 1024 * 1024)
        ),
        max_size=2,
    ).map(tuple),
    env=st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
        st.text(max_size=5).filter(lambda v: "\x00" not in v),
        max_size=3,
    ),
)


@settings(max_examples=75)
@given(safe_jobs)
def test_any_safe_job_within_limits_has_no_violations(job: JobSpec) -> None:
    assert PM.validate_job(None, job, LIMITS) == []


# Every forbidden setting, one per row: the change, the code it must produce, and words the message uses.

FORBIDDEN: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "memory_limit_mb",
        {"memory_limit_mb": None},
        "memory_limit_missing",
        "must set memory_limit_mb explicitly",
    ),
    (
        "memory_limit_mb",
        {"memory_limit_mb": 5},
        "memory_limit_too_low",
        "memory_limit_mb is 5, below the minimum of 6 MB: the engine refuses",
    ),
    (
        "memory_limit_mb",
        {"memory_limit_mb": 2049},
        "memory_limit_too_high",
        "memory_limit_mb is 2049, above the maximum of 2048",
    ),
    ("read_only_root", {"read_only_root": False}, "writable_root", "root filesystem must be read-only"),
    ("cpu_limit", {"cpu_limit": None}, "cpu_limit_missing", "must set cpu_limit explicitly"),
    ("cpu_limit", {"cpu_limit": 2.5}, "cpu_limit_too_high", "cpu_limit is 2.5, above the maximum of 2.0"),
    ("timeout_seconds", {"timeout_seconds": None}, "timeout_missing", "must set timeout_seconds explicitly"),
    ("timeout_seconds", {"timeout_seconds": 3601}, "timeout_too_high", "above the maximum of 3600"),
    ("pids_limit", {"pids_limit": None}, "pids_limit_missing", "must set pids_limit explicitly"),
    ("pids_limit", {"pids_limit": 5000}, "pids_limit_too_high", "above the maximum of 1024"),
    ("tmpfs", {"tmpfs": (TmpfsMount("/tmp", 2**30),)}, "tmpfs_too_large", "'/tmp' is 1073741824 bytes"),
    ("tmpfs", {"tmpfs": (TmpfsMount("/etc", 2**20),)}, "mount_target_system_path", "The tmpfs at '/etc'"),
    ("user", {"user": None}, "user_missing", "no user was set"),
    (
        "user",
        {"user": "0"},
        "user_uid_too_low",
        "The container must run as a non-root user with UID > 1000; got '0'.",
    ),
    ("user", {"user": "1000:1000"}, "user_uid_too_low", "got '1000:1000'"),
    ("user", {"user": "root"}, "user_invalid", "(names cannot be verified); got 'root'"),
    ("user", {"user": "1001:0"}, "user_gid_root", "root group (GID 0); got '1001:0'"),
    ("user", {"user": "4294967295"}, "user_invalid", "got '4294967295'"),
    ("user", {"user": "1001\n"}, "user_invalid", "got '1001\\n'"),
    ("user", {"user": "\u0661\u0660\u0660\u0661"}, "user_invalid", "names cannot be verified"),
    (
        "network_mode",
        {"network_mode": "host"},
        "host_network",
        "network_mode 'host' would share the host's network",
    ),
    ("network_mode", {"network_mode": " HOST "}, "host_network", "' HOST '"),
    ("network_mode", {"network_mode": "container:db"}, "shared_network_namespace", "'container:db'"),
    ("network_mode", {"network_mode": ""}, "network_invalid", "network_mode '' is not a valid network name."),
    ("network_mode", {"network_mode": "jobs\n"}, "network_invalid", "'jobs\\n'"),
    ("networks", {"networks": (NetworkAttachment("host"),)}, "host_network", "networks 'host'"),
    ("image", {"image": "Not A Valid:Image"}, "image_invalid", "Invalid image reference 'Not A Valid:Image'"),
    ("env", {"env": {"BAD-NAME": "x"}}, "env_name_invalid", "'BAD-NAME'"),
    ("env", {"env": {"FOO\n": "x"}}, "env_name_invalid", "'FOO\\n'"),
    ("env", {"env": {"OK": "a\x00b"}}, "env_value_nul", "'OK' contains a NUL byte."),
]


@pytest.mark.parametrize(
    ("field", "changes", "code", "words"), FORBIDDEN, ids=[row[2] + "-" + repr(row[1]) for row in FORBIDDEN]
)
def test_each_forbidden_setting_is_named_with_a_clear_message(
    field: str, changes: dict[str, Any], code: str, words: str
) -> None:
    found = [v for v in PM.validate_job(None, safe_job(**changes), LIMITS) if v.code == code]
    assert len(found) == 1, PM.validate_job(None, safe_job(**changes), LIMITS)
    violation = found[0]
    assert words in violation.message
    assert violation.message.endswith(".")
    assert violation.field == field


@settings(max_examples=75)
@given(safe_jobs, st.lists(st.sampled_from(FORBIDDEN), min_size=1, max_size=6, unique_by=lambda row: row[0]))
def test_a_job_with_forbidden_settings_never_passes_and_every_one_is_named(
    job: JobSpec, rows: list[tuple[str, dict[str, Any], str, str]]
) -> None:
    changes = {key: value for _, change, _, _ in rows for key, value in change.items()}
    found = codes(PM.validate_job(None, attrs.evolve(job, **changes), LIMITS))
    assert found
    assert {code for _, _, code, _ in rows} <= set(found)


def test_all_violations_are_collected_not_just_the_first() -> None:
    job = safe_job(user="0", read_only_root=False, network_mode="host", memory_limit_mb=None, cpu_limit=1e-6)
    assert codes(PM.validate_job(None, job, LIMITS)) == [
        "memory_limit_missing",
        "cpu_limit_too_low",
        "user_uid_too_low",
        "user_gid_root",  # a UID alone runs in the group of the same number: 0
        "writable_root",
        "host_network",
    ]
    with pytest.raises(PolicyViolationError) as info:
        PM.enforce(None, job, LIMITS)
    assert len(info.value.violations) == 6
    assert "[host_network]" in str(info.value)


def test_limits_come_from_policy_limits() -> None:
    strict = PolicyLimits(max_memory_mb=256, max_cpu=0.5, max_timeout_seconds=60, max_pids=64, min_uid=2000)
    found = codes(PM.validate_job(None, safe_job(), strict))
    assert codes(PM.validate_job(None, safe_job(), PolicyLimits(min_memory_mb=513))) == [
        "memory_limit_too_low"
    ]
    assert found == [
        "memory_limit_too_high",
        "cpu_limit_too_high",
        "timeout_too_high",
        "pids_limit_too_high",
        "user_uid_too_low",
    ]
    message = PM.validate_job(None, safe_job(user="1500"), strict)[-1].message
    assert message == "The container must run as a non-root user with UID > 1999; got '1500'."


# Paths are normalised before any comparison, so spelling tricks do not pass. ------------------------


SYSTEM_DIRS = [
    "/etc",
    "/root",
    "/proc",
    "/sys",
    "/var/run",
    "/run",
    "/var/lib/docker",
    "/usr",
    "/lib64",
    "/boot",
]


@settings(max_examples=100)
@given(st.sampled_from(SYSTEM_DIRS), st.data())
def test_any_spelling_of_a_system_path_is_a_refused_tmpfs_target(system: str, data: st.DataObject) -> None:
    # Same directory, different spelling: noise before each component, then something at the end.
    noise = ["/", "//", "/./", "/x/../"]
    first, *rest = system.strip("/").split("/")
    spelled = data.draw(st.sampled_from([*noise, "/../", "/srv/jobs/../../"])) + first
    spelled += "".join(data.draw(st.sampled_from(noise)) + part for part in rest)
    target = spelled + data.draw(st.sampled_from(["", "/", "/.", "//"]))
    assert normalise_path(target) == system
    found = codes(PM.validate_job(None, safe_job(tmpfs=(TmpfsMount(target, 2**20),)), LIMITS))
    assert found == ["mount_target_system_path"]


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("/", False),
        ("/etc", False),
        ("/etc/", False),
        ("/usr", False),
        ("/var", False),
        ("/var/lib", False),
        ("/proc/sys/kernel", False),
        ("/dev/shm", False),
        ("/sys/fs/cgroup", False),
        ("//usr/./", False),
        ("/usr/src/app", True),
        ("/etc/app/config.yml", True),
        ("/data", True),
        ("/workspace/in", True),
    ],
)
def test_tmpfs_targets_may_not_shadow_system_directories(target: str, allowed: bool) -> None:
    found = codes(PM.validate_job(None, safe_job(tmpfs=(TmpfsMount(target, 2**20),)), LIMITS))
    assert found == ([] if allowed else ["mount_target_system_path"])


# Registry allow-lists: the limits' list and the host's list both apply. ------------------------------


def host(
    executor_type: str = "docker", connection: str = "", tls: TlsSettings | None = None, **config: Any
) -> HostSpec:
    return HostSpec(
        name="h1", executor_type=executor_type, connection_string=connection, tls=tls, config=config
    )


@pytest.mark.parametrize(
    ("image", "limits_list", "host_list", "rejected_by"),
    [
        ("python:3.11", None, None, []),
        ("python:3.11", ("docker.io",), None, []),
        ("gcr.io/my-project/app", ("docker.io",), None, ["the policy limits"]),
        ("gcr.io/my-project/app", ("gcr.io/my-project",), None, []),
        ("gcr.io/other/app", ("gcr.io/my-project",), None, ["the policy limits"]),
        ("gcr.io/my-project/app", ("docker.io",), ["gcr.io/my-project"], ["the policy limits"]),
        ("python:3.11", ("docker.io",), ["gcr.io/my-project"], ["host 'h1'"]),
        ("ghcr.io/x/y", ("docker.io",), ["gcr.io"], ["the policy limits", "host 'h1'"]),
        ("registry.example.com:5000/app", None, ["registry.example.com:5000"], []),
        ("registry.example.com:5000/app", None, "registry.example.com:5000", []),
        ("python:3.11", (), None, ["the policy limits"]),
        ("python:3.11", None, [], ["host 'h1'"]),
        # A malformed host setting allows nothing rather than everything.
        ("python:3.11", None, 42, ["host 'h1'"]),
    ],
)
def test_registry_allow_lists(
    image: str, limits_list: tuple[str, ...] | None, host_list: Any, rejected_by: list[str]
) -> None:
    limits = attrs.evolve(LIMITS, allowed_registries=limits_list)
    the_host = host(allowed_registries=host_list) if host_list is not None else host()
    violations = PM.validate_job(the_host, safe_job(image=image), limits)
    assert codes(violations) == ["image_registry_not_allowed"] * len(rejected_by)
    for violation, source in zip(violations, rejected_by, strict=True):
        assert f"allowed by {source}" in violation.message
        assert repr(image) in violation.message


def test_host_allow_list_is_ignored_when_the_job_has_no_host_yet() -> None:
    assert PM.validate_job(None, safe_job(image="ghcr.io/x/y"), LIMITS) == []


def test_core_modules_do_not_import_django() -> None:
    code = (
        "import sys\n"
        "import container_manager_core.policy, container_manager_core.images\n"
        "import container_manager_core.envfile, container_manager_core.logtext\n"
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), 'django imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_writable_root_is_allowed_only_when_the_limits_opt_in() -> None:
    job = safe_job(read_only_root=False)
    manager = PluginManager(load_entry_points=False)
    assert [v.code for v in manager.validate_job(None, job, PolicyLimits())] == ["writable_root"]
    assert manager.validate_job(None, job, PolicyLimits(allow_writable_root=True)) == []
