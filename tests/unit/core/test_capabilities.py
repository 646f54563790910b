"""Executor capabilities: what each executor declares it enforces, and the one rule that reads them."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mock_executor.plugin import MockExecutor

from container_manager_core.capabilities import (
    PROTECTION_NAMES,
    PROTECTIONS,
    Capabilities,
    unenforceable,
)
from container_manager_core.errors import PolicyViolationError
from container_manager_core.plugins import PluginManager
from container_manager_core.types import HostSpec, JobSpec, PolicyLimits, TmpfsMount

UNENFORCEABLE = "executor_cannot_enforce"


def complete_job(**changes: Any) -> JobSpec:
    base = JobSpec(
        job_id="job-1",
        image="docker.io/library/busybox:1.36",
        user="1001:1001",
        memory_limit_mb=64,
        cpu_limit=0.5,
        timeout_seconds=60,
        pids_limit=32,
        network_mode="none",
    )
    return attrs.evolve(base, **changes)


def test_every_flag_has_one_protection_and_one_protection_per_flag() -> None:
    assert tuple(field.name for field in attrs.fields(Capabilities)) == PROTECTION_NAMES
    assert len(set(PROTECTION_NAMES)) == len(PROTECTIONS)


def test_no_flag_defaults_to_yes() -> None:
    with pytest.raises(TypeError, match="missing"):
        Capabilities(non_root_user=True)  # type: ignore[call-arg]


def test_flags_are_booleans_not_truthy_values() -> None:
    flags: dict[str, Any] = dict.fromkeys(PROTECTION_NAMES, True)
    flags["pids_limit"] = "yes"
    with pytest.raises(TypeError, match="pids_limit"):
        Capabilities(**flags)


def test_an_unknown_protection_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"Unknown protection 'seccomp'; known: \['non_root_user'"):
        Capabilities.everything().enforces("seccomp")


def test_an_executor_that_enforces_everything_refuses_nothing() -> None:
    assert Capabilities.everything().unenforced() == ()
    assert unenforceable(complete_job(), Capabilities.everything(), "Docker") == []


capability_sets = st.fixed_dictionaries({name: st.booleans() for name in PROTECTION_NAMES}).map(
    lambda flags: Capabilities(**flags)
)
jobs = st.builds(
    complete_job,
    user=st.sampled_from([None, "1001:1001"]),
    read_only_root=st.booleans(),
    pids_limit=st.sampled_from([None, 32]),
    memory_limit_mb=st.sampled_from([None, 64]),
    cpu_limit=st.sampled_from([None, 0.5]),
    timeout_seconds=st.sampled_from([None, 60]),
    network_mode=st.sampled_from([None, "none", "bridge"]),
    tmpfs=st.sampled_from([(), (TmpfsMount("/tmp", 2**20),)]),
)


@given(jobs, capability_sets, st.sets(st.sampled_from(PROTECTION_NAMES)))
def test_exactly_the_needed_unenforced_unaccepted_protections_are_refused(
    job: JobSpec, capabilities: Capabilities, accepted: set[str]
) -> None:
    found = unenforceable(job, capabilities, "Cloud Run", accepted=accepted, opt_in="the host's opt-in")
    expected = [
        p
        for p in PROTECTIONS
        if p.needed_by(job) and not capabilities.enforces(p.name) and p.name not in accepted
    ]
    assert [v.field for v in found] == [p.field for p in expected]
    for violation, protection in zip(found, expected, strict=True):
        assert violation.code == UNENFORCEABLE
        assert violation.message.startswith(
            f"Cloud Run cannot enforce {protection.words}, which the job needs"
        )
        assert f"list {protection.name!r} in the host's opt-in" in violation.message
        assert violation.message.endswith(".")


def test_without_an_opt_in_the_message_offers_none() -> None:
    flags: dict[str, Any] = dict.fromkeys(PROTECTION_NAMES, True)
    weak = Capabilities(**{**flags, "timeout": False})
    [violation] = unenforceable(complete_job(), weak, "The 'limited' executor")
    assert violation.message == (
        "The 'limited' executor cannot enforce a run-time limit, which the job needs (timeout_seconds=60); "
        "the job is refused rather than run without it. Run it on a host whose executor enforces it."
    )


# Through the plugin manager: each plugin's validate_job reads its own class's capabilities. -------


class LimitedExecutor(MockExecutor):
    executor_type = "limited"
    capabilities: ClassVar[Capabilities] = Capabilities(
        non_root_user=False,
        read_only_root=True,
        pids_limit=False,
        memory_limit=True,
        cpu_limit=True,
        timeout=True,
        network_isolation=True,
        tmpfs=True,
    )


def test_a_plugin_refuses_on_its_own_hosts_only() -> None:
    limited, mock = LimitedExecutor(), MockExecutor()
    manager = PluginManager(load_entry_points=False)
    manager.register(limited, name="limited")
    manager.register(mock, name="mock")
    job = complete_job()
    found = manager.validate_job(HostSpec("l1", "limited"), job, PolicyLimits())
    assert [(v.code, v.field) for v in found] == [
        (UNENFORCEABLE, "user"),
        (UNENFORCEABLE, "pids_limit"),
    ]
    assert manager.validate_job(HostSpec("m1", "mock"), job, PolicyLimits()) == []
    with pytest.raises(PolicyViolationError, match="'limited' executor cannot enforce a non-root user"):
        manager.launch_job(HostSpec("l1", "limited"), job)
    assert limited.launch_count == 0
    manager.launch_job(HostSpec("m1", "mock"), job)
    assert mock.launch_count == 1


def test_every_installed_executor_declares_its_capabilities() -> None:
    from cloudrun_executor.plugin import CloudRunExecutor
    from docker_executor.plugin import DockerExecutor

    assert DockerExecutor.capabilities == Capabilities.everything()
    assert MockExecutor.capabilities == Capabilities.everything()
    assert CloudRunExecutor.capabilities.unenforced() == (
        "non_root_user",
        "read_only_root",
        "pids_limit",
        "network_isolation",
    )
