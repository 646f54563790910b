"""Re-check the final create request body against the safety rules just before it is sent.

Docker accepts every dangerous request it is given, and the policy only saw the job spec. This module
reads the engine JSON itself, as the engine will read it (numbers as numbers, users as ids, paths
resolved), so a translation bug or a caller that skipped the policy still cannot produce a
privileged, unlimited or host-sharing container. It checks every engine setting the portable job
spec cannot express too (Privileged, CapAdd, namespace modes, SecurityOpt, Devices, Binds, Mounts):
the request is what the engine runs. The readings it shares with the policy (users, namespace
modes, system paths) are the policy's own functions; the Docker-only ones are in :mod:`.rules`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from container_manager_core import policy
from container_manager_core.errors import PolicyViolationError
from container_manager_core.identity import InvalidUser, parse_user
from container_manager_core.types import HostSpec, NetworkAttachment, Violation
from docker_executor import rules

_NAMESPACE_KEYS = ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")
# The engine turns NanoCpus into a CFS quota of NanoCpus / 10^4 microseconds per 100 ms period. The
# kernel's smallest quota is 1 ms, and a quota that rounds to 0 means none at all: unlimited CPU.
MIN_NANO_CPUS = 10_000_000  # 0.01 CPU
MIN_CFS_QUOTA_US = 1_000
CFS_PERIOD_RANGE_US = (1_000, 1_000_000)
DEFAULT_CFS_PERIOD_US = 100_000
# Docker Engine refuses a smaller Memory ("Minimum memory limit allowed is 6MB"; 6291455 is refused).
MIN_MEMORY_BYTES = 6 * 1024 * 1024


def check_create_payload(
    config: Mapping[str, Any],
    host: HostSpec | None = None,
    extra_networks: Iterable[NetworkAttachment] = (),
) -> None:
    """Raise :class:`PolicyViolationError` listing everything dangerous in a create request body.

    ``host`` adds its registry allow-list to the image check; ``extra_networks`` are the networks
    the container joins before it starts.
    """
    violations = list(payload_violations(config, host, extra_networks))
    if violations:
        raise PolicyViolationError(violations)


def payload_violations(
    config: Mapping[str, Any],
    host: HostSpec | None = None,
    extra_networks: Iterable[NetworkAttachment] = (),
) -> Iterator[Violation]:
    """Yield one violation per dangerous setting in the engine's create body."""
    hc: Mapping[str, Any] = config.get("HostConfig") or {}
    if hc.get("Privileged"):
        yield _v("privileged", "The container would be privileged.", "Privileged")
    yield from _namespace_violations(config, hc, extra_networks)
    yield from _mount_violations(hc)
    yield from _user_violations(config.get("User"), hc.get("GroupAdd"))
    if hc.get("CapAdd"):
        yield _v("cap-add", f"The container would gain capabilities {list(hc['CapAdd'])!r}.", "CapAdd")
    if "ALL" not in (hc.get("CapDrop") or []):
        yield _v(
            "cap-drop",
            "The container would keep the engine's default capabilities; CapDrop must be ['ALL'].",
            "CapDrop",
        )
    yield from _security_opt_violations(hc.get("SecurityOpt") or [])
    yield from _limit_violations(hc)
    if hc.get("Init") is not True:
        yield _v(
            "no-init",
            f"The container would run without docker-init as PID 1 (Init={hc.get('Init')!r}).",
            "Init",
        )
    for key in ("Devices", "DeviceRequests", "DeviceCgroupRules"):
        if hc.get(key):
            yield _v("devices", f"The container would get host devices via {key}={hc[key]!r}.", key)
    if host is not None and (entries := policy.host_allow_list(host.config)) is not None:
        for problem in policy.image_violations(
            str(config.get("Image") or ""), [(f"host {host.name!r}", entries)]
        ):
            yield _v("image", problem.message, "Image")
    # A writable root is not checked here: it breaks no isolation, and the policy may allow it
    # (PolicyLimits.allow_writable_root), which this plugin cannot see.


def _v(code: str, message: str, field: str) -> Violation:
    return Violation(code=f"payload.{code}", message=message, field=field)


def _namespace_violations(
    config: Mapping[str, Any], hc: Mapping[str, Any], extra_networks: Iterable[NetworkAttachment]
) -> Iterator[Violation]:
    settings: list[tuple[str, object]] = [(key, hc.get(key)) for key in _NAMESPACE_KEYS]
    endpoints = (config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    settings += [("EndpointsConfig", name) for name in endpoints]
    settings += [("the network joined before start", network.name) for network in extra_networks]
    for key, mode in settings:
        problem = rules.namespace_problem(key if key != "EndpointsConfig" else "The network", mode)
        if problem is not None and problem[0] == "host":
            yield _v("host-namespace", problem[1], key)
        elif problem is not None:
            yield _v("shared-namespace", problem[1], key)
    if hc.get("CgroupnsMode") != "private":
        # Left unset, an engine on cgroup v1 gives the container the host's cgroup namespace.
        yield _v(
            "host-namespace",
            f"CgroupnsMode is {hc.get('CgroupnsMode')!r}; it must be 'private', or an engine on cgroup v1 "
            "shares the host's cgroup namespace.",
            "CgroupnsMode",
        )


def _mount_violations(hc: Mapping[str, Any]) -> Iterator[Violation]:
    sources: list[tuple[str, str]] = []
    targets: list[tuple[str, str]] = [(str(path), "Tmpfs") for path in hc.get("Tmpfs") or {}]
    for bind in hc.get("Binds") or []:
        source, _, rest = str(bind).partition(":")
        sources.append((source, "Binds"))
        targets.append((rest.partition(":")[0], "Binds"))
    for mount in hc.get("Mounts") or []:
        kind = mount.get("Type", "volume")
        if kind == "bind":
            sources.append((str(mount.get("Source") or ""), "Mounts"))
        targets.append((str(mount.get("Target") or ""), "Mounts"))
    for source, key in sources:
        if not source.startswith("/"):
            continue  # a named volume, not a host path
        # Resolved on this machine, right before the create: a symlink is judged by what it points to.
        if (problem := rules.bind_source_problem(source)) is not None:
            yield _v("system-mount", f"The container would mount the host path {problem[1]}.", key)
    for target, key in targets:
        if target and policy.target_problem(target):
            yield _v(
                "mount-target",
                f"The container would mount over {target!r}, hiding or reaching into a system directory.",
                key,
            )
    if hc.get("VolumesFrom"):
        yield _v(
            "volumes-from",
            f"The container would mount other containers' volumes {hc['VolumesFrom']!r}.",
            "VolumesFrom",
        )


def _user_violations(user: Any, group_add: Any) -> Iterator[Violation]:
    try:
        parsed = parse_user(user)
    except InvalidUser:
        yield _v(
            "root-user",
            f"The container would run as User={user!r}, which the engine resolves inside the image "
            "(possibly as root); set a numeric non-root 'UID:GID'.",
            "User",
        )
        return
    if parsed.uid == 0:
        yield _v("root-user", f"The container would run as root (User={user!r} is UID 0).", "User")
    if parsed.gid is None:
        yield _v(
            "root-group",
            f"User={user!r} names no group, so the engine would run the container in the image's "
            "group for that user, GID 0 by default; the group must be explicit.",
            "User",
        )
    elif parsed.gid == 0:
        yield _v("root-group", f"The container would run in the root group (User={user!r} is GID 0).", "User")
    if group_add:
        yield _v(
            "group-add",
            f"The container would get supplementary groups GroupAdd={list(group_add)!r}.",
            "GroupAdd",
        )


def _security_opt_violations(options: list[str]) -> Iterator[Violation]:
    no_new_privileges = False
    for option in options:
        problem = rules.security_opt_problem(option)
        if problem is None:
            no_new_privileges = no_new_privileges or option.startswith("no-new-privileges")
            continue
        code, reason = problem
        message = f"The container would run with {rules.shown_option(option)}, which {reason}"
        if code == "security_opt_disabled":
            yield _v("unconfined", message, "SecurityOpt")
        elif code == "new_privileges_allowed":
            yield _v("new-privileges", message, "SecurityOpt")
        else:
            yield _v("security-opt", message, "SecurityOpt")
    if not no_new_privileges:
        yield _v(
            "new-privileges", "The container could gain privileges through setuid binaries.", "SecurityOpt"
        )


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _limit_violations(hc: Mapping[str, Any]) -> Iterator[Violation]:
    pids = _number(hc.get("PidsLimit"))
    if pids is None or pids <= 0:
        yield _v(
            "no-pids-limit",
            f"The container would have no process limit (PidsLimit={hc.get('PidsLimit')!r}).",
            "PidsLimit",
        )
    memory = _number(hc.get("Memory"))
    if memory is None or memory <= 0:
        yield _v(
            "no-memory-limit",
            f"The container would have no memory limit (Memory={hc.get('Memory')!r}).",
            "Memory",
        )
    elif memory < MIN_MEMORY_BYTES:
        yield _v(
            "memory-too-low",
            f"The container's memory limit Memory={memory!r} is below the engine's minimum of "
            f"{MIN_MEMORY_BYTES} bytes (6 MiB).",
            "Memory",
        )
    if memory is not None and memory > 0 and hc.get("MemorySwap") != memory:
        yield _v(
            "swap",
            f"The container could swap beyond its memory limit (MemorySwap={hc.get('MemorySwap')!r}).",
            "MemorySwap",
        )
    if (cpu := _cpu_problem(hc)) is not None:
        yield _v("no-cpu-limit", f"The container would have no CPU limit: {cpu}", "NanoCpus")
    if hc.get("OomKillDisable"):
        yield _v("oom-kill-disabled", "The container's OOM killer would be disabled.", "OomKillDisable")
    log = hc.get("LogConfig") or {}
    options = log.get("Config") or {}
    # No driver means the engine's default, which is usually an unbounded json-file.
    if log.get("Type") != "json-file":
        reason: str | None = f"the log driver is {log.get('Type')!r}, not a bounded 'json-file'."
    else:
        reason = rules.log_problem(options.get("max-size"), options.get("max-file"))
    if reason is not None:
        yield _v(
            "unbounded-logs",
            f"The engine's log files for the container could grow without bound: {reason}",
            "LogConfig",
        )


def _cpu_problem(hc: Mapping[str, Any]) -> str | None:
    """Say why the engine would give the container no CPU quota, reading the numbers as it does."""
    nano, quota, period = (hc.get(key) for key in ("NanoCpus", "CpuQuota", "CpuPeriod"))
    if nano not in (None, 0):
        count = _number(nano)
        if count is None or count < MIN_NANO_CPUS:
            return (
                f"NanoCpus={nano!r} is below {MIN_NANO_CPUS} (0.01 CPU), so the engine's CFS quota would "
                "round to none."
            )
        return None
    if quota in (None, 0):
        return "neither NanoCpus nor CpuQuota is set."
    us, period_us = _number(quota), _number(period) if period not in (None, 0) else DEFAULT_CFS_PERIOD_US
    if us is None or us < MIN_CFS_QUOTA_US:
        return f"CpuQuota={quota!r} is below the kernel's minimum quota of {MIN_CFS_QUOTA_US} microseconds."
    low, high = CFS_PERIOD_RANGE_US
    if period_us is None or not low <= period_us <= high:
        return f"CpuPeriod={period!r} is outside the kernel's range of {low} to {high} microseconds."
    return None
