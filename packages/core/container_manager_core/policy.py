"""The built-in security policy: every job and host is checked against these rules before it runs.

Each rule is a small function returning the violations it finds; ``validate_job`` runs them all so a
caller sees every problem at once. The rules here are portable: they read only :class:`JobSpec`
fields every executor has. Engine-only readings (security options, bind mounts, devices) live in
the executor plugin that has such settings (the Docker plugin's ``rules`` and ``guard``); the
readings both need (namespace mode, system paths) are functions here that both call.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

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
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

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
    if job.memory_limit_mb is not None and job.memory_limit_mb < limits.min_memory_mb:
        yield Violation(
            "memory_limit_too_low",
            f"memory_limit_mb is {job.memory_limit_mb!r}, below the minimum of {limits.min_memory_mb!r} MB: "
            "the engine refuses to start a container with so little memory.",
            "memory_limit_mb",
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


# Identity and the root filesystem ----------------------------------------------------------------


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


def check_read_only_root(_host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterator[Violation]:
    """Require a read-only root filesystem unless the deployment allows a writable one."""
    if not job.read_only_root and not limits.allow_writable_root:
        yield Violation(
            "writable_root",
            "The root filesystem must be read-only; write to the tmpfs at /tmp, or set "
            "allow_writable_root in the policy limits for images that cannot run otherwise.",
            "read_only_root",
        )


# Networks ----------------------------------------------------------------------------------------


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


# Paths -------------------------------------------------------------------------------------------


def normalise_path(path: str) -> str:
    """Collapse ``//``, ``.``, ``..`` and trailing slashes so equivalent spellings compare equal."""
    # posixpath keeps a leading "//" (POSIX leaves it implementation-defined); Linux treats it as "/".
    return posixpath.normpath("/" + path.lstrip("/"))


def is_within(path: str, directory: str) -> bool:
    """Say whether normalised ``path`` is ``directory`` or inside it."""
    return directory == "/" or path == directory or path.startswith(directory + "/")


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
    check_read_only_root,
    check_network,
    check_image,
    check_env,
    check_command,
)


@hookimpl
def validate_job(host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> list[Violation]:
    """Run every built-in job rule and return all the violations found."""
    return [violation for rule in JOB_RULES for violation in rule(host, job, limits)]
