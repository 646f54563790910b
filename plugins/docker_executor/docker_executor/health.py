"""Decide whether an engine can run hardened jobs right now, and describe it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import docker
import docker.errors

from container_manager_core.capacity import capacity_details
from container_manager_core.errors import ExecutorError, HostMisconfigured
from container_manager_core.types import HealthStatus, HostSpec
from docker_executor.engine_errors import UNREACHABLE, explanation, version_refusal, version_refused
from docker_executor.records import Recent

_FAILURES: tuple[type[BaseException], ...] = (*UNREACHABLE, docker.errors.DockerException)
# Limits every job relies on; an engine that cannot enforce one would run jobs unbounded.
_REQUIRED_FEATURES = (
    ("MemoryLimit", "memory limits"),
    ("PidsLimit", "process-count limits"),
    ("CpuCfsQuota", "CPU limits"),
)
# How long a launch trusts an engine's "I run containers in user namespaces" before asking again.
FACT_SECONDS = 30.0


def _security_options(info: Mapping[str, Any]) -> list[str]:
    return [str(option) for option in info.get("SecurityOptions") or []]


def _has_security_option(info: Mapping[str, Any], name: str) -> bool:
    # Each option reads "name=userns" or "name=seccomp,profile=default"; match the name exactly.
    return any(f"name={name}" in option.split(",") for option in _security_options(info))


def engine_details(info: Mapping[str, Any], api_version: str) -> dict[str, Any]:
    """Return the facts about the engine an operator needs when judging its isolation."""
    return {
        "api_version": api_version,
        "cgroup_version": str(info.get("CgroupVersion") or "1"),
        "cgroup_driver": info.get("CgroupDriver"),
        "userns_remap": _has_security_option(info, "userns"),
        "rootless": _has_security_option(info, "rootless"),
        "security_options": _security_options(info),
        "memory_limit": bool(info.get("MemoryLimit")),
        "pids_limit": bool(info.get("PidsLimit")),
        "cpu_cfs_quota": bool(info.get("CpuCfsQuota")),
        "containers_running": info.get("ContainersRunning"),
        "operating_system": info.get("OperatingSystem"),
        # The engine's size, which the app places jobs by (unless the host overrides it).
        **capacity_details(info.get("MemTotal"), info.get("NCPU")),
    }


def limit_problems(info: Mapping[str, Any]) -> list[str]:
    """Return why the engine cannot enforce the limits jobs need (empty when it can)."""
    return [
        f"the engine cannot enforce {what} ({key} is {info.get(key)!r}; rootless engines on cgroup v1 cannot)"
        for key, what in _REQUIRED_FEATURES
        if not info.get(key)
    ]


def user_namespace_problem(host: HostSpec, info: Mapping[str, Any]) -> str | None:
    """Return why ``host`` may not run jobs on this engine for want of user namespaces, or None.

    The one rule, applied by the health check and again before every launch: when the host requires
    user namespaces, the engine must remap users (``userns-remap``) or run rootless, or root in a
    container would be root on the machine.
    """
    if not host.require_user_namespaces:
        return None
    if _has_security_option(info, "userns") or _has_security_option(info, "rootless"):
        return None
    return (
        "the engine runs containers without user namespaces: it neither remaps users (userns-remap) "
        "nor runs rootless, and this deployment requires them (REQUIRE_USER_NAMESPACES). Start dockerd "
        'with "userns-remap": "default" in daemon.json, or rootless'
    )


def unsafe_for_jobs(host: HostSpec, problems: Sequence[str]) -> str:
    """Return the sentence a host unsafe for jobs is marked with, whichever check found the problems."""
    return f"Docker host {host.name!r} is unsafe for jobs: " + "; ".join(problems) + "."


class UserNamespaceGate:
    """Apply :func:`user_namespace_problem` before a launch, reading ``/info`` at most every few seconds.

    Only an engine's restart can change the answer; the health check re-reads it every
    HEALTH_CHECK_INTERVAL. A refusal is never remembered, so a fixed engine is used at once.
    """

    def __init__(self, seconds: float = FACT_SECONDS) -> None:
        self._seconds = seconds
        self._confirmed: Recent[float] = Recent(size=256)

    def require(self, host: HostSpec, read_info: Callable[[], Mapping[str, Any]]) -> None:
        """Raise :class:`HostMisconfigured` if ``host`` may not run jobs on its engine; never create."""
        if not host.require_user_namespaces:
            return
        key = f"{host.name}\0{host.connection_string}"
        seen = self._confirmed.get(key)
        if seen is not None and time.monotonic() - seen < self._seconds:
            return
        if problem := user_namespace_problem(host, read_info()):
            self._confirmed.forget(key)
            raise HostMisconfigured(unsafe_for_jobs(host, [problem]))
        self._confirmed.put(key, time.monotonic())


def check_health(host: HostSpec, connect: Callable[[], docker.DockerClient]) -> HealthStatus:
    """Ping the engine and read ``/info`` within the client's short timeout; never raise."""
    started = time.perf_counter()

    def unhealthy(error: str) -> HealthStatus:
        return HealthStatus(healthy=False, response_time=time.perf_counter() - started, error=error)

    try:
        client = connect()
        client.api.ping()
        # A ping is answered even by an engine whose state store is wedged; /info needs the daemon itself.
        info: Mapping[str, Any] = client.api.info()
    except ExecutorError as exc:
        return unhealthy(str(exc))
    except docker.errors.APIError as exc:
        if version_refused(exc):
            return unhealthy(str(version_refusal(host, "answer the health check", explanation(exc))))
        return unhealthy(f"Docker host {host.name!r} answered with an error: {exc}")
    except _FAILURES as exc:
        return unhealthy(f"Docker host {host.name!r} is unreachable: {exc}")
    elapsed = time.perf_counter() - started
    problems = limit_problems(info)
    if problem := user_namespace_problem(host, info):
        problems.append(problem)
    return HealthStatus(
        healthy=not problems,
        response_time=elapsed,
        error=unsafe_for_jobs(host, problems) if problems else None,
        engine_version=str(info.get("ServerVersion") or "") or None,
        details=engine_details(info, client.api.api_version),
    )
