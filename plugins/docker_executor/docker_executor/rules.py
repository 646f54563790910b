"""Docker-only readings shared by the payload guard and the host validation: one function per rule.

The guard reads the engine request; ``validate_host`` reads a host's ``executor_config`` when the
host is saved (and ``validate_job`` again for every job of that host). Both call these, so a host
default and the request it turns into are judged by the same rule. The engine settings the portable
job spec does not have (security options, bind mounts) are read here, not in the core policy: only
the engine request can carry them, and the guard refuses them there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from container_manager_core import policy
from container_manager_core.types import Violation

# A json-file log of one container may hold at most this much: max-size x max-file.
MAX_LOG_BYTES = 1024**3
DEFAULT_LOG_MAX_SIZE = "10m"
DEFAULT_LOG_MAX_FILE = 5
# Docker's size grammar (go-units): a number, an optional unit k/m/g/t/p, then optional "i" and "b".
# Read with 1024-based units, the larger of the engine's two readings, so a bound here holds for both.
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?(?:([kKmMgGtTpP])[iI]?)?[bB]?")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_COUNT = re.compile(r"[0-9]{1,6}")
ENGINE_SOCKETS = ("docker.sock", "containerd.sock", "podman.sock", "crio.sock")
# Security option values that switch confinement off (spc_t is SELinux's "super privileged" type).
_UNCONFINED = frozenset({"unconfined", "disable", "type:spc_t", "type:unconfined_t"})
_SECURITY_OPT_KEYS = frozenset({"seccomp", "apparmor", "label", "systempaths"})


class InvalidSize(ValueError):
    """The text is not a size the engine reads (``10m``, ``512k``, ``1g``, ``1048576``)."""


def parse_size(text: object) -> int:
    """Return the number of bytes in a Docker size (``"10m"`` is 10 MiB); raise :class:`InvalidSize`."""
    match = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidSize(f"{text!r} is not a size like '10m', '512k' or '1g'.")
    number, unit = match.group(1), (match.group(2) or "").lower()
    whole, _, fraction = number.partition(".")
    scale = _UNITS[unit]
    # Exact arithmetic: a float would let "0.0000001g" pass as more than zero.
    return (int(whole) * scale) + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)


def log_problem(max_size: object, max_file: object) -> str | None:
    """Say why a json-file log with these options could grow past ``MAX_LOG_BYTES``, or None."""
    try:
        size = parse_size(max_size)
    except InvalidSize as exc:
        return f"max-size {exc}"
    files_text = str(max_file) if isinstance(max_file, int) and not isinstance(max_file, bool) else max_file
    if not isinstance(files_text, str) or not _COUNT.fullmatch(files_text) or int(files_text) < 1:
        return f"max-file is {max_file!r}, not a whole number of files of at least 1."
    if size < 1:
        return f"max-size is {max_size!r}, which the engine reads as no limit."
    total = size * int(files_text)
    if total > MAX_LOG_BYTES:
        return (
            f"max-size {max_size!r} x max-file {files_text} is {total} bytes, above the maximum of "
            f"{MAX_LOG_BYTES} bytes (1 GiB) of engine log per container."
        )
    return None


def namespace_problem(setting: str, mode: object) -> tuple[str, str] | None:
    """Return ``("host" | "container", message)`` if ``mode`` shares a namespace, else None.

    ``setting`` names where the mode comes from (``NetworkMode``, a host's ``default_network``...).
    """
    if not isinstance(mode, str):
        return None
    shared = policy.shared_namespace(mode)
    if shared == "host":
        return "host", f"{setting} {mode!r} would share the host's namespace, which is never allowed."
    if shared == "container":
        return "container", f"{setting} {mode!r} would join another container's namespace."
    return None


def host_config_violations(config: Mapping[str, Any]) -> Iterator[Violation]:
    """Yield what a Docker host's ``executor_config`` would weaken in every job's container."""
    network = config.get("default_network")
    if network is not None:
        problem = namespace_problem("The host's default_network", network)
        if problem is not None and problem[0] == "host":
            yield Violation("host_network", problem[1], "executor_config")
        elif problem is not None:
            yield Violation("shared_network_namespace", problem[1], "executor_config")
    if "log_max_size" in config or "log_max_file" in config:
        reason = log_problem(
            config.get("log_max_size", DEFAULT_LOG_MAX_SIZE), config.get("log_max_file", DEFAULT_LOG_MAX_FILE)
        )
        if reason is not None:
            yield Violation(
                "log_limits_invalid", f"The host's log_max_size and log_max_file: {reason}", "executor_config"
            )
    if config.get("use_init", True) is not True:
        yield Violation(
            "init_disabled",
            f"The host's use_init is {config.get('use_init')!r}; docker-init is always PID 1 (it forwards "
            "SIGTERM and reaps zombies), so use_init may only be true.",
            "executor_config",
        )


# Security options --------------------------------------------------------------------------------


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


# Bind mounts -------------------------------------------------------------------------------------


def resolve_path(path: str) -> str | None:
    """Return ``path`` normalised, with every symlink on this machine resolved; None if one cannot be read."""
    try:
        return policy.normalise_path(os.path.realpath(policy.normalise_path(path)))
    except OSError:  # a link this process may not read (/proc/1/root): fail closed
        return None


def bind_source_problem(source: str) -> tuple[str, str] | None:
    """Return ``(code, "'<source>' <what is wrong>")`` if binding host path ``source`` would expose the host.

    Judged as written and as resolved on this machine (a symlink by what it points to); a link this
    process cannot read is refused, since what it points to cannot be known.
    """
    lexical = policy.normalise_path(source)
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
    for system in policy.SYSTEM_PATHS:
        if policy.is_within(lowered, system):
            return "mount_system_path", f"is the system path {system!r} or inside it"
        if policy.is_within(system, lowered):
            return "mount_system_path", f"contains the system path {system!r}"
    return None
