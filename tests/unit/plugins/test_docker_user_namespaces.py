"""The Docker plugin's one user-namespace rule, without an engine: what /info must say, and when it is asked.

The real engines (one that does not remap, one started with --userns-remap=default) are in
tests/integration/docker/test_user_namespaces.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from docker_executor.health import UserNamespaceGate, check_health, engine_details, user_namespace_problem
from hypothesis import given
from hypothesis import strategies as st

from container_manager_core.errors import HostMisconfigured
from container_manager_core.types import HostSpec

REQUIRED = HostSpec("engine-1", "docker", "unix:///var/run/docker.sock", require_user_namespaces=True)
NOT_REQUIRED = attrs.evolve(REQUIRED, require_user_namespaces=False)
LIMITS = {"MemoryLimit": True, "PidsLimit": True, "CpuCfsQuota": True}
PLAIN = {**LIMITS, "SecurityOptions": ["name=apparmor", "name=seccomp,profile=default"]}
REMAPPING = {**LIMITS, "SecurityOptions": ["name=seccomp,profile=default", "name=userns"]}
ROOTLESS = {**LIMITS, "SecurityOptions": ["name=seccomp,profile=default", "name=rootless", "name=cgroupns"]}
REFUSAL = "the engine runs containers without user namespaces"

# Options as engines write them: "name=<name>" and optional ",key=value" pairs.
_names = st.sampled_from(["seccomp", "apparmor", "selinux", "cgroupns", "userns", "rootless", "usernsx", "x"])
_option = st.builds(
    lambda name, extra: ",".join([f"name={name}", *extra]),
    _names,
    st.lists(st.sampled_from(["profile=default", "profile=name=userns", "userns"]), max_size=2),
)


@pytest.mark.parametrize("info", [REMAPPING, ROOTLESS], ids=["userns-remap", "rootless"])
def test_an_engine_with_user_namespaces_passes(info: Mapping[str, Any]) -> None:
    assert user_namespace_problem(REQUIRED, info) is None


@pytest.mark.parametrize(
    "info", [PLAIN, LIMITS, {**LIMITS, "SecurityOptions": None}], ids=["plain", "no-key", "none"]
)
def test_an_engine_without_them_is_refused_only_when_they_are_required(info: Mapping[str, Any]) -> None:
    problem = user_namespace_problem(REQUIRED, info)
    assert problem is not None and problem.startswith(REFUSAL)
    assert "REQUIRE_USER_NAMESPACES" in problem and '"userns-remap": "default"' in problem  # what to fix
    assert user_namespace_problem(NOT_REQUIRED, info) is None


@given(st.lists(_option, max_size=6))
def test_only_an_option_named_userns_or_rootless_counts(options: list[str]) -> None:
    info = {**LIMITS, "SecurityOptions": options}
    named = {part.removeprefix("name=") for option in options for part in option.split(",")[:1]}
    isolated = bool(named & {"userns", "rootless"})
    assert (user_namespace_problem(REQUIRED, info) is None) is isolated
    details = engine_details(info, "1.41")
    assert details["userns_remap"] is ("userns" in named)
    assert details["rootless"] is ("rootless" in named)


class _Reads:
    """A stand-in for the engine's /info: counts the reads, answers what it is told."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self.info = info
        self.count = 0

    def __call__(self) -> Mapping[str, Any]:
        self.count += 1
        return self.info


def test_the_launch_gate_refuses_before_anything_and_forgets_a_refusal() -> None:
    gate, reads = UserNamespaceGate(), _Reads(PLAIN)
    for _ in range(2):
        with pytest.raises(
            HostMisconfigured, match=r"Docker host 'engine-1' is unsafe for jobs: the engine runs"
        ):
            gate.require(REQUIRED, reads)
    assert reads.count == 2  # a refusal is asked again: a fixed engine is used at once
    reads.info = REMAPPING
    gate.require(REQUIRED, reads)
    assert reads.count == 3


def test_the_launch_gate_trusts_a_confirmed_engine_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("docker_executor.health.time.monotonic", lambda: now[0])
    gate, reads = UserNamespaceGate(seconds=30), _Reads(REMAPPING)
    gate.require(REQUIRED, reads)
    now[0] += 29
    gate.require(REQUIRED, reads)
    assert reads.count == 1
    reads.info = PLAIN  # the engine was restarted without remapping
    now[0] += 2
    with pytest.raises(HostMisconfigured):
        gate.require(REQUIRED, reads)
    assert reads.count == 2


def test_the_launch_gate_asks_nothing_when_not_required() -> None:
    reads = _Reads(PLAIN)
    UserNamespaceGate().require(NOT_REQUIRED, reads)
    assert reads.count == 0


class _Api:
    api_version = "1.41"

    def __init__(self, info: Mapping[str, Any]) -> None:
        self._info = info

    def ping(self) -> bool:
        return True

    def info(self) -> Mapping[str, Any]:
        return self._info


@attrs.frozen
class _Client:
    api: _Api


def test_the_health_check_applies_the_same_rule() -> None:
    refused = check_health(REQUIRED, lambda: _Client(_Api(PLAIN)))  # type: ignore[arg-type, return-value]
    assert not refused.healthy
    assert refused.error is not None
    assert refused.error.startswith(f"Docker host 'engine-1' is unsafe for jobs: {REFUSAL}")
    with pytest.raises(HostMisconfigured) as launch:
        UserNamespaceGate().require(REQUIRED, lambda: PLAIN)
    assert str(launch.value) == refused.error  # one sentence, whichever check found it
    assert check_health(NOT_REQUIRED, lambda: _Client(_Api(PLAIN))).healthy  # type: ignore[arg-type, return-value]
    assert check_health(REQUIRED, lambda: _Client(_Api(REMAPPING))).healthy  # type: ignore[arg-type, return-value]
