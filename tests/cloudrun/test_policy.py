"""Cloud Run's own limits and host checks, as the plugin contributes them to the core's policy."""

from __future__ import annotations

from typing import Any

import pytest

from container_manager_core.errors import PolicyViolationError
from container_manager_core.plugins import PluginManager
from container_manager_core.types import (
    HostSpec,
    NetworkAttachment,
    PolicyLimits,
    TlsSettings,
    TmpfsMount,
)
from tests.cloudrun.conftest import JobMaker
from tests.fakes import FakeCloudRun, cloudrun_host_spec

pytestmark = pytest.mark.cloudrun

# Generous core limits, so only Cloud Run's rules decide in these tests.
WIDE = PolicyLimits(max_memory_mb=64 * 1024, max_cpu=16, max_timeout_seconds=400 * 3600)


@pytest.fixture(scope="module")
def manager() -> PluginManager:
    return PluginManager()


def cloudrun_violations(manager: PluginManager, host: HostSpec | None, job: object) -> dict[str, str]:
    found = manager.validate_job(host, job, WIDE)  # type: ignore[arg-type]
    return {v.code: v.message for v in found if v.code.startswith("cloudrun_")}


def test_the_contract_job_breaks_no_rule_at_all(
    manager: PluginManager, cloudrun_host: HostSpec, make_job: JobMaker
) -> None:
    assert manager.validate_job(cloudrun_host, make_job(), PolicyLimits()) == []


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        (
            {"cpu_limit": 0.5},
            "cloudrun_cpu_not_allowed",
            "Cloud Run jobs take 1, 2, 4, 6 or 8 vCPUs (at least 1, whole numbers only); cpu_limit is 0.5.",
        ),
        ({"cpu_limit": 3}, "cloudrun_cpu_not_allowed", "cpu_limit is 3."),
        (
            {"memory_limit_mb": 256},
            "cloudrun_memory_out_of_range",
            "Cloud Run jobs take between 512 MiB and 32768 MiB (32 GiB) of memory; memory_limit_mb is 256.",
        ),
        (
            {"memory_limit_mb": 40000, "cpu_limit": 8},
            "cloudrun_memory_out_of_range",
            "memory_limit_mb is 40000.",
        ),
        (
            {"memory_limit_mb": 1024, "cpu_limit": 4},
            "cloudrun_memory_cpu_mismatch",
            "With 4 vCPU Cloud Run jobs take between 2048 MiB and 16384 MiB of memory; memory_limit_mb is 1024.",
        ),
        ({"memory_limit_mb": 8192, "cpu_limit": 1}, "cloudrun_memory_cpu_mismatch", "With 1 vCPU"),
        (
            {"timeout_seconds": 168 * 3600 + 1},
            "cloudrun_timeout_too_long",
            "Cloud Run tasks run for at most 604800 seconds (168 hours); timeout_seconds is 604801.",
        ),
        (
            {"env": {"CLOUD_RUN_TASK_INDEX": "3"}},
            "cloudrun_env_reserved",
            "'CLOUD_RUN_TASK_INDEX' is reserved",
        ),
        ({"env": {"PORT": "8080"}}, "cloudrun_env_reserved", "'PORT' is reserved by Cloud Run"),
        (
            {"networks": (NetworkAttachment("backend", ("db",)),)},
            "cloudrun_networks_not_applicable",
            "['backend']",
        ),
        ({"network_mode": "bridge"}, "cloudrun_network_mode_not_applicable", "network_mode 'bridge'"),
        (
            {"tmpfs": (TmpfsMount("/dev/shm", 1024 * 1024),)},
            "cloudrun_tmpfs_path_not_allowed",
            "Cloud Run mounts no volume at /dev, /proc, /sys or below them; the job asks for a tmpfs at '/dev/shm'.",
        ),
    ],
)
def test_cloud_run_rules_explain_themselves(
    manager: PluginManager,
    cloudrun_host: HostSpec,
    make_job: JobMaker,
    fields: dict[str, object],
    code: str,
    message: str,
) -> None:
    found = cloudrun_violations(manager, cloudrun_host, make_job(**fields))
    assert list(found) == [code]
    assert message in found[code]


@pytest.mark.parametrize(
    ("cpu", "memory"), [(1, 512), (1, 4096), (2, 8192), (4, 2048), (6, 24576), (8, 32768)]
)
def test_documented_combinations_pass(
    manager: PluginManager, cloudrun_host: HostSpec, make_job: JobMaker, cpu: int, memory: int
) -> None:
    assert cloudrun_violations(manager, cloudrun_host, make_job(cpu_limit=cpu, memory_limit_mb=memory)) == {}


def test_the_rules_apply_only_to_cloud_run_hosts(manager: PluginManager, make_job: JobMaker) -> None:
    job = make_job(cpu_limit=0.5, network_mode="bridge")
    assert cloudrun_violations(manager, HostSpec("local", "docker"), job) == {}
    assert cloudrun_violations(manager, None, job) == {}


def test_launch_through_the_manager_refuses_before_calling_cloud_run(
    manager: PluginManager, cloudrun_host: HostSpec, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    with pytest.raises(PolicyViolationError, match="cloudrun_cpu_not_allowed"):
        manager.launch_job(cloudrun_host, make_job(cpu_limit=0.25))
    assert fake_cloudrun.calls == []


def test_a_complete_host_configuration_is_valid(manager: PluginManager, fake_cloudrun: FakeCloudRun) -> None:
    host = cloudrun_host_spec(
        fake_cloudrun,
        service_account="jobs@fake-project.iam.gserviceaccount.com",
        vpc_connector="projects/fake-project/locations/europe-west1/connectors/private",
        vpc_egress="private-ranges-only",
        delete_after_run=False,
        api_timeout_seconds=10,
        health_timeout_seconds=2,
        log_cap_bytes=65536,
    )
    assert manager.validate_host(host) == []


@pytest.mark.parametrize(
    ("config", "connection", "tls", "code", "message"),
    [
        ({"regoin": "x"}, "", None, "cloudrun_config_unknown_key", "unknown config key 'regoin'"),
        (
            {"accept_unenforced": ["memory_limit"]},
            "",
            None,
            "cloudrun_config_invalid",
            "lists 'memory_limit', which is not a protection Cloud Run leaves unenforced; known: "
            "['non_root_user', 'read_only_root', 'pids_limit', 'network_isolation'].",
        ),
        (
            {"accept_unenforced": "non_root_user"},
            "",
            None,
            "cloudrun_config_invalid",
            "accept_unenforced must be a list of protection names",
        ),
        ({"vpc_egress": "all-traffic"}, "", None, "cloudrun_config_invalid", "without a vpc_connector"),
        (
            {"vpc_egress": "everything", "vpc_connector": "c"},
            "",
            None,
            "cloudrun_config_invalid",
            "vpc_egress must be one of",
        ),
        (
            {"delete_after_run": "yes"},
            "",
            None,
            "cloudrun_config_invalid",
            "delete_after_run must be true or false",
        ),
        ({"credentials": "/keys/sa.json"}, "", None, "cloudrun_config_invalid", "never from the database"),
        ({"log_cap_bytes": 1.5}, "", None, "cloudrun_config_invalid", "log_cap_bytes must be a whole number"),
        ({"health_timeout_seconds": 0}, "", None, "cloudrun_config_invalid", "must be a positive number"),
        (
            {"logging_endpoint": "logging.example.com:443"},
            "",
            None,
            "cloudrun_anonymous_not_local",
            "on 127.0.0.1",
        ),
        ({}, "tcp://10.0.0.5:2376", None, "cloudrun_connection_string_unused", "does not use"),
        ({}, "", TlsSettings(ca_cert="/ca.pem"), "cloudrun_tls_unused", "always TLS"),
    ],
)
def test_host_problems_are_named(
    manager: PluginManager,
    fake_cloudrun: FakeCloudRun,
    config: dict[str, Any],
    connection: str,
    tls: TlsSettings | None,
    code: str,
    message: str,
) -> None:
    base = cloudrun_host_spec(fake_cloudrun, **config)
    host = HostSpec(base.name, base.executor_type, connection_string=connection, tls=tls, config=base.config)
    found = {v.code: v.message for v in manager.validate_host(host)}
    assert list(found) == [code]
    assert message in found[code]


def test_host_checks_ignore_other_executor_types(manager: PluginManager) -> None:
    assert [
        v
        for v in manager.validate_host(HostSpec("m", "mock", config={"regoin": 1}))
        if v.code.startswith("cloudrun_")
    ] == []
