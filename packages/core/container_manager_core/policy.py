"""The built-in security policy: every job and host is checked against these rules before it runs.

Each rule is a small function returning the violations it finds; ``validate_job`` runs them all so a
caller sees every problem at once. Paths are compared after lexical normalisation only: the policy
cannot see the host's filesystem, so symlinks inside a safe directory are the operator's concern.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import urlsplit

from container_manager_core.hookspecs import hookimpl
from container_manager_core.images import ImageReference, InvalidImageReference
from container_manager_core.types import HostSpec, JobSpec, PolicyLimits, Violation

SYSTEM_PATHS = (
    "/etc",
    "/root",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/var/run",
    "/run",
    "/var/lib/docker",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
)
# Kernel interfaces inside the container: nothing may be mounted anywhere under them.
KERNEL_PATHS = ("/proc", "/sys", "/dev")
ENGINE_SOCKETS = ("docker.sock", "containerd.sock", "podman.sock", "crio.sock")
MAX_ID = 2**32 - 2  # (uid_t)-1 means "no id" to the kernel

_USER = re.compile(r"([0-9]+)(?::([0-9]+))?")  # not \d: int() would accept other scripts' digits
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Security option values that switch confinement off (spc_t is SELinux's "super privileged" type).
_UNCONFINED = frozenset({"unconfined", "disable", "type:spc_t", "type:unconfined_t"})

JobRule = Callable[[HostSpec | None, JobSpec, PolicyLimits], Iterable[Violation]]


# Resource limits ---------------------------------------------------------------------------------


def check_limits(_host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Require explicit memory, CPU, timeout and PID limits within the configured maxima."""
    checks: tuple[tuple[str, str, float | None, float, str], ...] = (
        ("memory_limit", "memory_limit_mb", job.memory_limit_mb, limits.max_memory_mb, "MB of memory"),
        ("cpu_limit", "cpu_limit", job.cpu_limit, limits.max_cpu, "CPUs"),
        (
            "timeout",
            "timeout_seconds",
            job.timeout_seconds,
            limits.max_timeout_seconds,
            "seconds of run time",
        ),
        ("pids_limit", "pids_limit", job.pids_limit, limits.max_pids, "processes"),
    )
    for code, field, value, maximum, unit in checks:
        if value is None:
            yield Violation(
                f"{code}_missing",
                f"The job must set {field} explicitly; unlimited {unit} is not allowed.",
                field,
            )
        elif value > maximum:
            yield Violation(
                f"{code}_too_high", f"{field} is {value!r}, above the maximum of {maximum!r} {unit}.", field
            )


def check_tmpfs(_host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Keep each tmpfs within the configured size, since tmpfs is memory."""
    for mount in job.tmpfs:
        if mount.size_bytes > limits.max_tmpfs_bytes:
            yield Violation(
                "tmpfs_too_large",
                f"The tmpfs at {mount.path!r} is {mount.size_bytes!r} bytes, above the maximum of "
                f"{limits.max_tmpfs_bytes!r} bytes.",
                "tmpfs",
            )


# Identity and privileges -------------------------------------------------------------------------


def check_user(_host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Require a numeric non-root ``UID`` or ``UID:GID`` at or above ``min_uid``, with a non-root group."""
    need = f"The container must run as a non-root user with UID > {limits.min_uid - 1}"
    if not job.user:
        yield Violation("user_missing", f"{need}; no user was set.", "user")
        return
    match = _USER.fullmatch(job.user)
    if match is None or any(int(part) > MAX_ID for part in match.groups() if part is not None):
        yield Violation(
            "user_invalid",
            f"{need}, given as a numeric 'UID' or 'UID:GID' (names cannot be verified); got {job.user!r}.",
            "user",
        )
        return
    uid, gid = match.groups()
    if int(uid) < limits.min_uid:
        yield Violation("user_uid_too_low", f"{need}; got {job.user!r}.", "user")
    if gid is not None and int(gid) == 0:
        yield Violation(
            "user_gid_root",
            f"The container must not run in the root group (GID 0); got {job.user!r}.",
            "user",
        )


def check_privileges(_host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Forbid privileged mode, added capabilities, a writable root, devices and regaining privileges."""
    if job.privileged:
        yield Violation(
            "privileged",
            "Privileged containers are never allowed: they can take over the host.",
            "privileged",
        )
    if job.cap_add:
        yield Violation(
            "capabilities_added",
            f"All capabilities are dropped and none may be added; got cap_add={list(job.cap_add)!r}.",
            "cap_add",
        )
    if not job.no_new_privileges:
        yield Violation(
            "new_privileges_allowed",
            "no_new_privileges must stay on so setuid binaries cannot raise privileges.",
            "no_new_privileges",
        )
    if not job.read_only_root and not limits.allow_writable_root:
        yield Violation(
            "writable_root",
            "The root filesystem must be read-only; write to the tmpfs at /tmp, or set "
            "allow_writable_root in the policy limits for images that cannot run otherwise.",
            "read_only_root",
        )
    if job.devices:
        yield Violation(
            "devices_added",
            f"Host devices may not be passed in; got devices={list(job.devices)!r}.",
            "devices",
        )


def check_security_opt(_host: HostSpec | None, job: JobSpec, _limits: PolicyLimits) -> Iterator[Violation]:
    """Allow only security options that keep confinement on; refuse unknown ones rather than guess."""
    for option in job.security_opt:
        key, value = _split_option(option)
        if key == "no-new-privileges":
            if value not in ("", "true"):
                yield Violation(
                    "new_privileges_allowed",
                    f"The security option {option!r} would let setuid binaries raise privileges.",
                    "security_opt",
                )
        elif key not in ("seccomp", "apparmor", "label", "systempaths") or not value:
            yield Violation(
                "security_opt_unknown",
                f"The security option {option!r} is not one the policy knows to be safe.",
                "security_opt",
            )
        elif value in _UNCONFINED:
            yield Violation(
                "security_opt_disabled",
                f"The security option {option!r} turns off confinement, which is never allowed.",
                "security_opt",
            )


def _split_option(option: str) -> tuple[str, str]:
    # Docker accepts both "key=value" and the legacy "key:value".
    match = re.fullmatch(r"\s*([A-Za-z-]+)\s*(?:[=:]\s*(.*?))?\s*", option, re.DOTALL)
    if match is None:
        return option.strip().lower(), ""
    return match.group(1).lower(), (match.group(2) or "").lower()


# Namespaces --------------------------------------------------------------------------------------


def check_network(_host: HostSpec | None, job: JobSpec, _limits: PolicyLimits) -> Iterator[Violation]:
    """Refuse the host's network and other containers' network namespaces."""
    names = [("network_mode", job.network_mode)] if job.network_mode is not None else []
    names += [("networks", attachment.name) for attachment in job.networks]
    for field, name in names:
        lowered = name.strip().lower()
        if lowered == "host":
            yield Violation(
                "host_network",
                f"{field} {name!r} would share the host's network stack, which is never allowed.",
                field,
            )
        elif lowered.startswith("container:"):
            yield Violation(
                "shared_network_namespace",
                f"{field} {name!r} would join another container's network namespace.",
                field,
            )
        elif not _NETWORK_NAME.fullmatch(name):
            yield Violation("network_invalid", f"{field} {name!r} is not a valid network name.", field)


def check_namespaces(_host: HostSpec | None, job: JobSpec, _limits: PolicyLimits) -> Iterator[Violation]:
    """Refuse host and shared PID, IPC and user namespaces."""
    modes = (
        ("pid", job.pid_mode, ()),
        ("ipc", job.ipc_mode, ("none", "private", "shareable")),
        ("userns", job.userns_mode, ()),
    )
    for kind, value, allowed in modes:
        if not value:
            continue
        field = f"{kind}_mode"
        lowered = value.strip().lower()
        if lowered == "host":
            yield Violation(
                f"host_{kind}", f"{field} {value!r} would share the host's {kind} namespace.", field
            )
        elif lowered.startswith("container:"):
            yield Violation(
                f"shared_{kind}_namespace",
                f"{field} {value!r} would join another container's {kind} namespace.",
                field,
            )
        elif lowered not in allowed:
            yield Violation(f"{field}_invalid", f"{field} {value!r} is not a mode the policy allows.", field)


# Mounts ------------------------------------------------------------------------------------------


def normalise_path(path: str) -> str:
    """Collapse ``//``, ``.``, ``..`` and trailing slashes so equivalent spellings compare equal."""
    # posixpath keeps a leading "//" (POSIX leaves it implementation-defined); Linux treats it as "/".
    return posixpath.normpath("/" + path.lstrip("/"))


def is_within(path: str, directory: str) -> bool:
    """Say whether normalised ``path`` is ``directory`` or inside it."""
    return directory == "/" or path == directory or path.startswith(directory + "/")


def _system_path(path: str) -> str | None:
    """Return the system path ``path`` equals or lies under (case-insensitively, to be safe), if any."""
    lowered = path.lower()
    if lowered == "/":
        return "/"
    return next((system for system in SYSTEM_PATHS if is_within(lowered, system)), None)


def check_mounts(_host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Allow bind mounts only from designated safe directories, never of system paths or engine sockets."""
    safe_dirs = tuple(normalise_path(directory) for directory in limits.safe_mount_dirs)
    for mount in job.mounts:
        source = normalise_path(mount.source)
        if source.lower().endswith(ENGINE_SOCKETS):
            yield Violation(
                "mount_engine_socket",
                f"Mounting {mount.source!r} would hand the job control of the container engine and the host.",
                "mounts",
            )
        elif (system := _system_path(source)) is not None:
            yield Violation(
                "mount_system_path",
                f"Mount source {mount.source!r} is the system path {system!r} or inside it.",
                "mounts",
            )
        if not any(is_within(source, safe) for safe in safe_dirs):
            where = ", ".join(repr(d) for d in safe_dirs) or "none are configured"
            yield Violation(
                "mount_outside_safe_dirs",
                f"Mount source {mount.source!r} is not inside a designated safe directory ({where}); "
                "only designated safe directories may be mounted.",
                "mounts",
            )
        yield from _check_target(mount.target)


def _check_target(target: str) -> Iterator[Violation]:
    """Refuse targets that would hide a system directory or reach into a kernel interface."""
    path = normalise_path(target).lower()
    shadows = [system for system in SYSTEM_PATHS if is_within(system, path)]
    inside_kernel = any(is_within(path, kernel) for kernel in KERNEL_PATHS)
    if shadows or inside_kernel:
        yield Violation(
            "mount_target_system_path",
            f"Mount target {target!r} would hide or reach into a system directory.",
            "mounts",
        )


# Images and environment --------------------------------------------------------------------------


def check_image(host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Require a valid image reference from every configured registry allow-list."""
    try:
        reference = ImageReference.parse(job.image)
    except InvalidImageReference as exc:
        yield Violation("image_invalid", str(exc), "image")
        return
    allow_lists: list[tuple[str, tuple[str, ...]]] = []
    if limits.allowed_registries is not None:
        allow_lists.append(("the policy limits", limits.allowed_registries))
    if host is not None and (host_entries := _host_allow_list(host)) is not None:
        allow_lists.append((f"host {host.name!r}", host_entries))
    for source, entries in allow_lists:
        if not any(reference.matches_registry(entry) for entry in entries):
            yield Violation(
                "image_registry_not_allowed",
                f"Image {job.image!r} comes from {reference.registry!r}, which is not in the registries "
                f"allowed by {source}: {list(entries)!r}.",
                "image",
            )


def _host_allow_list(host: HostSpec) -> tuple[str, ...] | None:
    """Return the host's ``allowed_registries``; a malformed setting allows nothing rather than everything."""
    value = host.config.get("allowed_registries")
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(entry for entry in value if isinstance(entry, str))
    return ()


def check_env(_host: HostSpec | None, job: JobSpec, _limits: PolicyLimits) -> Iterator[Violation]:
    """Require portable variable names and values without NUL bytes."""
    for name, value in job.env.items():
        if not _ENV_NAME.fullmatch(name):
            yield Violation(
                "env_name_invalid",
                f"Environment variable name {name!r} must be letters, digits and '_', not starting with a digit.",
                "env",
            )
        if "\x00" in value:
            yield Violation("env_value_nul", f"Environment variable {name!r} contains a NUL byte.", "env")


JOB_RULES: tuple[JobRule, ...] = (
    check_limits,
    check_tmpfs,
    check_user,
    check_privileges,
    check_security_opt,
    check_network,
    check_namespaces,
    check_mounts,
    check_image,
    check_env,
)


@hookimpl
def validate_job(host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> list[Violation]:
    """Run every built-in job rule and return all the violations found."""
    return [violation for rule in JOB_RULES for violation in rule(host, job, limits)]


# Hosts -------------------------------------------------------------------------------------------


@hookimpl
def validate_host(host: HostSpec) -> list[Violation]:
    """Check a Docker host's connection string and transport security."""
    if host.executor_type != "docker":
        return []
    return [*check_docker_connection(host), *check_docker_tls(host)]


def check_docker_connection(host: HostSpec) -> Iterator[Violation]:
    """Accept ``unix://`` sockets, ``tcp://host:port`` with TLS and ``ssh://`` hosts; empty means the local default."""
    text = host.connection_string
    if not text:
        return
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme == "unix":
        if not rest.startswith("/"):
            yield _bad_connection(host, "a unix:// connection needs an absolute socket path")
    elif scheme == "tcp":
        if not _is_host_port(text):
            yield _bad_connection(host, "a tcp:// connection must be exactly tcp://HOST:PORT")
        elif host.tls is None and host.config.get("allow_insecure_tcp") is not True:
            yield Violation(
                "tcp_without_tls",
                f"Docker host {host.name!r} connects to {text!r} without TLS: the daemon would be open to "
                "anyone on the network, who could run anything as root on it. Configure TLS, or set "
                "allow_insecure_tcp in the host config if the network is truly private.",
                "connection_string",
            )
    elif scheme == "ssh":
        if not _has_host(text):
            yield _bad_connection(host, "an ssh:// connection needs a host")
    else:
        yield _bad_connection(host, "it must start with unix://, tcp:// or ssh://")


def check_docker_tls(host: HostSpec) -> Iterator[Violation]:
    """Refuse TLS without certificate verification unless the host opts in."""
    if host.tls is not None and not host.tls.verify and host.config.get("allow_insecure_tls") is not True:
        yield Violation(
            "tls_verify_disabled",
            f"Docker host {host.name!r} turns off TLS verification, so anyone on the path could impersonate "
            "the daemon. Provide a CA certificate, or set allow_insecure_tls in the host config.",
            "tls",
        )


def _bad_connection(host: HostSpec, reason: str) -> Violation:
    return Violation(
        "connection_string_invalid",
        f"Docker host {host.name!r} has connection string {host.connection_string!r}; {reason}.",
        "connection_string",
    )


def _is_host_port(text: str) -> bool:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return False
    plain = not (parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password)
    return bool(parts.hostname) and port is not None and plain


def _has_host(text: str) -> bool:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return bool(parts.hostname)
