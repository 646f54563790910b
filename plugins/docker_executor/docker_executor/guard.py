"""Re-check the final create request body against the safety rules just before it is sent.

Docker accepts every dangerous request it is given, and the policy only saw the job spec. This module
reads the engine JSON itself, so a translation bug or a caller that skipped the policy still cannot
produce a privileged, unlimited or host-sharing container.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from container_manager_core import policy
from container_manager_core.errors import PolicyViolationError
from container_manager_core.types import Violation

# The policy's system paths, plus engine state it does not list: a bind of any of these, or of a
# parent of one (binding /var exposes /var/run/docker.sock), would hand the host to the job.
SYSTEM_PATHS = (*policy.SYSTEM_PATHS, "/var/lib/containerd", "/run/containerd", "/lib32")
_HOST_SHARING_KEYS = ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")
_NAMESPACE_JOINING_KEYS = ("PidMode", "IpcMode")
# Written "key=value" or "key:value" (the older form); compared after normalising to "=".
_UNCONFINED = frozenset(
    {"seccomp=unconfined", "apparmor=unconfined", "label=disable", "systempaths=unconfined"}
)
_NO_NEW_PRIVILEGES = frozenset({"no-new-privileges", "no-new-privileges=true"})
_ROOT_USERS = frozenset({"", "0", "root"})


def check_create_payload(config: Mapping[str, Any]) -> None:
    """Raise :class:`PolicyViolationError` listing everything dangerous in a create request body."""
    violations = list(payload_violations(config))
    if violations:
        raise PolicyViolationError(violations)


def payload_violations(config: Mapping[str, Any]) -> Iterator[Violation]:
    """Yield one violation per dangerous setting in the engine's create body."""
    hc: Mapping[str, Any] = config.get("HostConfig") or {}
    if hc.get("Privileged"):
        yield _v("privileged", "The container would be privileged.", "Privileged")
    for key in _HOST_SHARING_KEYS:
        mode = str(hc.get(key) or "")
        if mode == "host":
            yield _v(
                "host-namespace", f"The container would share the host's namespace via {key}={mode!r}.", key
            )
        elif key in _NAMESPACE_JOINING_KEYS and mode.startswith("container:"):
            yield _v(
                "shared-namespace",
                f"The container would join another container's namespace via {key}={mode!r}.",
                key,
            )
    yield from _mount_violations(hc)
    yield from _user_violations(config.get("User"))
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
    for key in ("Devices", "DeviceRequests", "DeviceCgroupRules"):
        if hc.get(key):
            yield _v("devices", f"The container would get host devices via {key}={hc[key]!r}.", key)
    # A writable root is not checked here: it breaks no isolation, and the policy may allow it
    # (PolicyLimits.allow_writable_root), which this plugin cannot see.


def _v(code: str, message: str, field: str) -> Violation:
    return Violation(code=f"payload.{code}", message=message, field=field)


def _is_dangerous_source(source: str) -> bool:
    if not source.startswith("/"):
        return False  # a named volume, not a host path
    path = policy.normalise_path(source).lower()
    if path == "/" or path.endswith(policy.ENGINE_SOCKETS):
        return True
    return any(policy.is_within(path, system) or policy.is_within(system, path) for system in SYSTEM_PATHS)


def _mount_violations(hc: Mapping[str, Any]) -> Iterator[Violation]:
    sources: list[tuple[str, str]] = []
    for bind in hc.get("Binds") or []:
        sources.append((str(bind).split(":", 1)[0], "Binds"))
    for mount in hc.get("Mounts") or []:
        if mount.get("Type", "volume") == "bind":
            sources.append((str(mount.get("Source") or ""), "Mounts"))
    for source, key in sources:
        if _is_dangerous_source(source):
            yield _v("system-mount", f"The container would mount the host path {source!r}.", key)
    if hc.get("VolumesFrom"):
        yield _v(
            "volumes-from",
            f"The container would mount other containers' volumes {hc['VolumesFrom']!r}.",
            "VolumesFrom",
        )


def _user_violations(user: Any) -> Iterator[Violation]:
    name = str(user or "").strip()
    uid = name.split(":", 1)[0]
    if uid in _ROOT_USERS:
        yield _v(
            "root-user", f"The container would run as root (User={user!r}); set a non-root uid:gid.", "User"
        )


def _normalise_option(option: str) -> str:
    key, sep, value = option.strip().replace(":", "=", 1).partition("=")
    return f"{key.strip().lower()}{sep}{value.strip().lower()}"


def _security_opt_violations(options: list[str]) -> Iterator[Violation]:
    normalised = [_normalise_option(o) for o in options]
    for option, norm in zip(options, normalised, strict=True):
        if norm in _UNCONFINED:
            yield _v("unconfined", f"The container would run with {option!r}.", "SecurityOpt")
    if not _NO_NEW_PRIVILEGES.intersection(normalised):
        yield _v(
            "new-privileges", "The container could gain privileges through setuid binaries.", "SecurityOpt"
        )


def _limit_violations(hc: Mapping[str, Any]) -> Iterator[Violation]:
    pids = hc.get("PidsLimit")
    if not isinstance(pids, int) or pids <= 0:
        yield _v(
            "no-pids-limit", f"The container would have no process limit (PidsLimit={pids!r}).", "PidsLimit"
        )
    memory = hc.get("Memory")
    if not isinstance(memory, int) or memory <= 0:
        yield _v(
            "no-memory-limit", f"The container would have no memory limit (Memory={memory!r}).", "Memory"
        )
    elif hc.get("MemorySwap") != memory:
        yield _v(
            "swap",
            f"The container could swap beyond its memory limit (MemorySwap={hc.get('MemorySwap')!r}).",
            "MemorySwap",
        )
    cpus = hc.get("NanoCpus") or hc.get("CpuQuota")
    if not isinstance(cpus, int) or cpus <= 0:
        yield _v("no-cpu-limit", "The container would have no CPU limit.", "NanoCpus")
    if hc.get("OomKillDisable"):
        yield _v("oom-kill-disabled", "The container's OOM killer would be disabled.", "OomKillDisable")
    log = hc.get("LogConfig") or {}
    # No driver means the engine's default, which is usually an unbounded json-file.
    if log.get("Type") in (None, "", "json-file") and not (log.get("Config") or {}).get("max-size"):
        yield _v(
            "unbounded-logs",
            "The engine's log files for the container would grow without bound.",
            "LogConfig",
        )
