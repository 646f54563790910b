"""Decide whether an engine can run hardened jobs right now, and describe it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors

from container_manager_core.errors import ExecutorError
from container_manager_core.types import HealthStatus, HostSpec
from docker_executor.engine_errors import UNREACHABLE, explanation, version_refusal, version_refused

_FAILURES: tuple[type[BaseException], ...] = (*UNREACHABLE, docker.errors.DockerException)
# Limits every job relies on; an engine that cannot enforce one would run jobs unbounded.
_REQUIRED_FEATURES = (
    ("MemoryLimit", "memory limits"),
    ("PidsLimit", "process-count limits"),
    ("CpuCfsQuota", "CPU limits"),
)


def engine_details(info: Mapping[str, Any], api_version: str) -> dict[str, Any]:
    """Return the facts about the engine an operator needs when judging its isolation."""
    security = [str(option) for option in info.get("SecurityOptions") or []]
    return {
        "api_version": api_version,
        "cgroup_version": str(info.get("CgroupVersion") or "1"),
        "cgroup_driver": info.get("CgroupDriver"),
        "userns_remap": any("name=userns" in option for option in security),
        "rootless": any("name=rootless" in option for option in security),
        "security_options": security,
        "memory_limit": bool(info.get("MemoryLimit")),
        "pids_limit": bool(info.get("PidsLimit")),
        "cpu_cfs_quota": bool(info.get("CpuCfsQuota")),
        "containers_running": info.get("ContainersRunning"),
        "operating_system": info.get("OperatingSystem"),
    }


def limit_problems(info: Mapping[str, Any]) -> list[str]:
    """Return why the engine cannot enforce the limits jobs need (empty when it can)."""
    return [
        f"the engine cannot enforce {what} ({key} is {info.get(key)!r}; rootless engines on cgroup v1 cannot)"
        for key, what in _REQUIRED_FEATURES
        if not info.get(key)
    ]


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
    return HealthStatus(
        healthy=not problems,
        response_time=elapsed,
        error=None
        if not problems
        else f"Docker host {host.name!r} is unsafe for jobs: " + "; ".join(problems) + ".",
        engine_version=str(info.get("ServerVersion") or "") or None,
        details=engine_details(info, client.api.api_version),
    )
