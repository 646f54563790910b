"""The built-in security policy: every job and host is checked against these rules before it runs.

Each rule is a small function returning the violations it finds; ``validate_job`` runs them all so a
caller sees every problem at once. The readings that the Docker plugin's payload guard needs too
(user, namespace mode, security option, mount source and target) are functions here that both call.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from container_manager_core.hookspecs import hookimpl
from container_manager_core.identity import InvalidUser, parse_user
from container_manager_core.images import ImageReference, InvalidImageReference, could_be_image_id
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
    "/lib32",
    "/var/lib/containerd",
    "/run/containerd",
)
# Kernel interfaces inside the container: nothing may be mounted anywhere under them.
KERNEL_PATHS = ("/proc", "/sys", "/dev")
ENGINE_SOCKETS = ("docker.sock", "containerd.sock", "podman.sock", "crio.sock")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Security option values that switch confinement off (spc_t is SELinux's "super privileged" type).
_UNCONFINED = frozenset({"unconfined", "disable", "type:spc_t", "type:unconfined_t"})
_SECURITY_OPT_KEYS = frozenset({"seccomp", "apparmor", "label", "systempaths"})

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
    if job.cpu_limit is not None and job.cpu_limit < limits.min_cpu:
        yield Violation(
            "cpu_limit_too_low",
            f"cpu_limit is {job.cpu_limit!r}, below the minimum of {limits.min_cpu!r} CPUs: the engine "
            "would round so small a CPU quota down to none, which means unlimited.",
            "cpu_limit",
        )


def check_tmpfs(_host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Keep each tmpfs within the configured size, since tmpfs is memory."""
    for mount in job.tmpfs:
        if target_problem(mount.path):
            yield Violation(
                "mount_target_system_path",
                f"The tmpfs at {mount.path!r} would hide or reach into a system directory.",
                "tmpfs",
            )
        if mount.size_bytes > limits.max_tmpfs_bytes:
            yield Violation(
                "tmpfs_too_large",
                f"The tmpfs at {mount.path!r} is {mount.size_bytes!r} bytes, above the maximum of "
                f"{limits.max_tmpfs_bytes!r} bytes.",
                "tmpfs",
            )


# Identity and privileges -------------------------------------------------------------------------


def check_user(_host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Require a numeric non-root ``UID`` or ``UID:GID`` at or above ``min_uid``, with a non-root group.

    A ``UID`` alone is fine: the engine receives ``UID:UID`` (:meth:`UserId.engine_user`), never the
    root group the engine would otherwise default to.
    """
    need = f"The container must run as a non-root user with UID > {limits.min_uid - 1}"
    if not job.user:
        yield Violation("user_missing", f"{need}; no user was set.", "user")
        return
    try:
        user = parse_user(job.user)
    except InvalidUser:
        yield Violation(
            "user_invalid",
            f"{need}, given as a numeric 'UID' or 'UID:GID' (names cannot be verified); got {job.user!r}.",
            "user",
        )
        return
    if user.uid < limits.min_uid:
        yield Violation("user_uid_too_low", f"{need}; got {job.user!r}.", "user")
    if user.effective_gid == 0:
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
        if (problem := security_opt_problem(option)) is not None:
            code, reason = problem
            yield Violation(code, f"The security option {shown_option(option)} {reason}", "security_opt")


def security_opt_problem(option: str) -> tuple[str, str] | None:
    """Return ``(code, reason)`` if the engine would weaken confinement for ``option``: the one rule.

    Read as the engine reads it ("key=value", else the legacy "key:value"), and allowed only from a
    short list: the engine's default seccomp profile (no ``seccomp`` option at all: this project
    ships no profile of its own, and any other value is an inline profile that may allow every
    call), AppArmor's ``docker-default``, an SELinux ``level:``, and ``no-new-privileges`` on.
    """
    separator = "=" if "=" in option else ":"
    key, _, value = option.partition(separator)
    if key == "no-new-privileges":
        if value in ("", "true"):
            return None
        return "new_privileges_allowed", "would let setuid binaries raise privileges."
    if key not in _SECURITY_OPT_KEYS:
        return "security_opt_unknown", "is not one the policy knows to be safe."
    if value.lower() in _UNCONFINED:
        return "security_opt_disabled", "turns off confinement, which is never allowed."
    if key == "apparmor" and value == "docker-default":
        return None
    if key == "label" and re.fullmatch(r"level:[A-Za-z0-9:,.-]+", value):
        return None
    allowed = {
        "seccomp": "only the engine's default seccomp profile is allowed: leave seccomp unset",
        "apparmor": "only the engine's 'docker-default' AppArmor profile is allowed",
        "label": "only an SELinux 'level:' label is allowed; a type, user or role could be unconfined",
        "systempaths": "the kernel's system paths stay masked",
    }[key]
    return "security_opt_not_allowed", f"replaces the engine's confinement; {allowed}."


def shown_option(option: str) -> str:
    """Return ``option`` for a message, shortened: an inline seccomp profile can be kilobytes of JSON."""
    return repr(option) if len(option) <= 60 else f"{option[:40]!r}... ({len(option)} characters)"


# Namespaces --------------------------------------------------------------------------------------


def check_network(_host: HostSpec | None, job: JobSpec, _limits: PolicyLimits) -> Iterator[Violation]:
    """Refuse the host's network and other containers' network namespaces."""
    names = [("network_mode", job.network_mode)] if job.network_mode is not None else []
    names += [("networks", attachment.name) for attachment in job.networks]
    for field, name in names:
        shared = shared_namespace(name)
        if shared == "host":
            yield Violation(
                "host_network",
                f"{field} {name!r} would share the host's network stack, which is never allowed.",
                field,
            )
        elif shared == "container":
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
        shared = shared_namespace(value)
        if shared == "host":
            yield Violation(
                f"host_{kind}", f"{field} {value!r} would share the host's {kind} namespace.", field
            )
        elif shared == "container":
            yield Violation(
                f"shared_{kind}_namespace",
                f"{field} {value!r} would join another container's {kind} namespace.",
                field,
            )
        elif value.strip().lower() not in allowed:
            yield Violation(f"{field}_invalid", f"{field} {value!r} is not a mode the policy allows.", field)


def shared_namespace(mode: str) -> str | None:
    """Return "host" or "container" if a namespace mode joins the host's or another container's one.

    The one reading of a namespace mode, for the network, PID, IPC, UTS, user and cgroup namespaces
    alike, whether a job, a host default or the engine request sets it.
    """
    lowered = mode.strip().lower()
    if lowered == "host":
        return "host"
    if lowered.startswith("container:"):
        return "container"
    return None


# Mounts ------------------------------------------------------------------------------------------


def normalise_path(path: str) -> str:
    """Collapse ``//``, ``.``, ``..`` and trailing slashes so equivalent spellings compare equal."""
    # posixpath keeps a leading "//" (POSIX leaves it implementation-defined); Linux treats it as "/".
    return posixpath.normpath("/" + path.lstrip("/"))


def is_within(path: str, directory: str) -> bool:
    """Say whether normalised ``path`` is ``directory`` or inside it."""
    return directory == "/" or path == directory or path.startswith(directory + "/")


def check_mounts(_host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Allow bind mounts only from designated safe directories, never of system paths or engine sockets.

    Sources and safe directories are resolved (``realpath``) on the machine running the check, so a
    symlink inside a safe directory is judged by what it points to. The worker runs this again right
    before the launch, and the Docker plugin resolves the final request's bind sources once more.
    """
    safe_dirs = tuple(d for d in map(resolve_path, limits.safe_mount_dirs) if d is not None)
    for mount in job.mounts:
        if (problem := bind_source_problem(mount.source)) is not None:
            code, what = problem
            yield Violation(code, f"Mount source {what}.", "mounts")
        resolved = resolve_path(mount.source)
        if resolved is None or not any(is_within(resolved, safe) for safe in safe_dirs):
            where = ", ".join(repr(d) for d in safe_dirs) or "none are configured"
            shown = (
                mount.source
                if resolved in (None, normalise_path(mount.source))
                else f"{mount.source} -> {resolved}"
            )
            yield Violation(
                "mount_outside_safe_dirs",
                f"Mount source {shown!r} is not inside a designated safe directory ({where}); "
                "only designated safe directories may be mounted.",
                "mounts",
            )
        if target_problem(mount.target):
            yield Violation(
                "mount_target_system_path",
                f"Mount target {mount.target!r} would hide or reach into a system directory.",
                "mounts",
            )


def resolve_path(path: str) -> str | None:
    """Return ``path`` normalised, with every symlink on this machine resolved; None if one cannot be read."""
    try:
        return normalise_path(os.path.realpath(normalise_path(path)))
    except OSError:  # a link this process may not read (/proc/1/root): fail closed
        return None


def bind_source_problem(source: str) -> tuple[str, str] | None:
    """Return ``(code, "'<source>' <what is wrong>")`` if binding host path ``source`` would expose the host.

    Judged as written and as resolved on this machine (a symlink by what it points to); a link this
    process cannot read is refused, since what it points to cannot be known.
    """
    lexical = normalise_path(source)
    resolved = resolve_path(source)
    if (problem := source_problem(lexical)) is not None:
        return problem[0], f"{source!r} {problem[1]}"
    if resolved is None:
        return (
            "mount_source_unresolvable",
            f"{source!r} cannot be resolved here, so what it points to is unknown",
        )
    if (problem := source_problem(resolved)) is not None:
        return problem[0], f"{source!r} resolves to {resolved!r}, which {problem[1]}"
    return None


def source_problem(path: str) -> tuple[str, str] | None:
    """Return ``(code, what)`` if binding the resolved host ``path`` would expose the host: the one rule.

    A system path, anything inside one, or a parent of one (binding ``/var`` exposes
    ``/var/run/docker.sock``), and every engine socket, wherever it lies.
    """
    lowered = path.lower()  # case-insensitively, to be safe on case-insensitive filesystems
    if lowered.endswith(ENGINE_SOCKETS):
        return "mount_engine_socket", "would hand the job control of the container engine and the host"
    if lowered == "/":
        return "mount_system_path", "is the system path '/', the host's whole filesystem"
    for system in SYSTEM_PATHS:
        if is_within(lowered, system):
            return "mount_system_path", f"is the system path {system!r} or inside it"
        if is_within(system, lowered):
            return "mount_system_path", f"contains the system path {system!r}"
    return None


def target_problem(target: str) -> bool:
    """Say whether a mount (bind or tmpfs) at ``target`` would hide a system directory or reach into a kernel one."""
    path = normalise_path(target).lower()
    shadows = any(is_within(system, path) for system in SYSTEM_PATHS)
    return shadows or any(is_within(path, kernel) for kernel in KERNEL_PATHS)


# Images and environment --------------------------------------------------------------------------


def check_image(host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Require a valid image reference from every configured registry allow-list."""
    allow_lists: list[tuple[str, tuple[str, ...]]] = []
    if limits.allowed_registries is not None:
        allow_lists.append(("the policy limits", limits.allowed_registries))
    if host is not None and (host_entries := host_allow_list(host.config)) is not None:
        allow_lists.append((f"host {host.name!r}", host_entries))
    yield from image_violations(job.image, allow_lists)


def image_violations(image: str, allow_lists: Iterable[tuple[str, tuple[str, ...]]]) -> Iterator[Violation]:
    """Check ``image`` against each ``(source, entries)`` allow-list: the one image rule."""
    try:
        reference = ImageReference.parse(image)
    except InvalidImageReference as exc:
        yield Violation("image_invalid", str(exc), "image")
        return
    for source, entries in allow_lists:
        if could_be_image_id(image):
            spelled = (
                "" if image.lower().startswith("sha256:") else f" ({str(reference)!r} if you meant that)"
            )
            yield Violation(
                "image_id_not_allowed",
                f"Image {image!r} may be read by the engine as a local image ID, which the registries "
                f"allowed by {source} cannot vouch for; name the image by its repository{spelled}, or "
                "pin it as repository@sha256:<digest>.",
                "image",
            )
        elif not any(reference.matches_registry(entry) for entry in entries):
            yield Violation(
                "image_registry_not_allowed",
                f"Image {image!r} comes from {reference.registry!r}, which is not in the registries "
                f"allowed by {source}: {list(entries)!r}.",
                "image",
            )


def host_allow_list(config: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Return a host config's ``allowed_registries``; a malformed setting allows nothing rather than everything."""
    value = config.get("allowed_registries")
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(entry for entry in value if isinstance(entry, str))
    return ()


def check_env(_host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Require portable variable names, values without NUL bytes, and sizes the kernel will exec."""
    total = 0
    for name, value in job.env.items():
        if not _ENV_NAME.fullmatch(name):
            yield Violation(
                "env_name_invalid",
                f"Environment variable name {name!r} must be letters, digits and '_', not starting with a digit.",
                "env",
            )
        if "\x00" in value:
            yield Violation("env_value_nul", f"Environment variable {name!r} contains a NUL byte.", "env")
        # Sizes only, never the value: it may be a secret.
        size = byte_length(name) + 1 + byte_length(value)
        total += size
        if size > limits.max_env_var_bytes:
            yield Violation(
                "env_var_too_large",
                f"Environment variable {name[:64]!r} is {size} bytes as NAME=value, above the maximum of "
                f"{limits.max_env_var_bytes} bytes per variable.",
                "env",
            )
    if total > limits.max_env_bytes:
        yield Violation(
            "env_too_large",
            f"The environment is {total} bytes in all ({len(job.env)} variables as NAME=value), above "
            f"the maximum of {limits.max_env_bytes} bytes.",
            "env",
        )


def check_command(_host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Keep the command within ``max_command_bytes``, so the kernel can exec it."""
    if job.command is None:
        return
    size = sum(byte_length(arg) for arg in job.command.args)
    if size > limits.max_command_bytes:
        yield Violation(
            "command_too_large",
            f"The command is {size} bytes, above the maximum of {limits.max_command_bytes} bytes; pass "
            "large inputs through the network or the image instead.",
            "command",
        )


def byte_length(text: str) -> int:
    """Return the UTF-8 size of ``text`` as the kernel would count it."""
    return len(text.encode("utf-8", "surrogatepass"))


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
    check_command,
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
