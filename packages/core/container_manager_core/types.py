"""Immutable value types passed between the app, the core and executor plugins.

Executors take plain values (a :class:`JobSpec` and a :class:`HostSpec`) and return plain values
(:class:`Execution`, :class:`ExecutionStatus`, :class:`ExecutionLogs`, :class:`ResourceUsage`,
:class:`HealthStatus`). Structural checks live here (types, ranges that are never valid); security
rules live in :mod:`container_manager_core.policy` so that a spec can express a forbidden setting and
the policy can name it.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

from container_manager_core.secrets import mask_values, redact, scrub

_ABSOLUTE_PATH = re.compile(r"^/[^\x00]*$")


def _frozen_str_map(value: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> Mapping[str, str]:
    # Values arrive from JSON fields and user code: check each one rather than trust the annotation.
    source: dict[Any, Any] = dict(value or {})
    for key, val in source.items():
        # Name the key and the kinds, never the value: it may be a secret.
        if not isinstance(key, str):
            raise TypeError(f"Expected a mapping of str to str, got a {type(key).__name__} key.")
        if not isinstance(val, str):
            raise TypeError(
                f"Expected a mapping of str to str, got a {type(val).__name__} value for {key!r}."
            )
    return MappingProxyType(source)


def _frozen_any_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def _str_tuple(value: Iterable[str] | None) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("Expected a sequence of strings, got a string.")
    return tuple(value or ())


def _networks(value: Iterable[NetworkAttachment]) -> tuple[NetworkAttachment, ...]:
    return tuple(value)


def _tmpfs_mounts(value: Iterable[TmpfsMount]) -> tuple[TmpfsMount, ...]:
    return tuple(value)


def _absolute_path(_instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not _ABSOLUTE_PATH.match(value):
        raise ValueError(f"{attribute.name} must be an absolute path, got {value!r}.")


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number, got {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive finite number, got {value!r}.")


def _scrubbed(args: tuple[str, ...]) -> tuple[str, ...]:
    # A command may quote a credential (a URL with a password, a token): reprs mask it.
    return tuple(scrub(arg) for arg in args)


def _names_only(env: Mapping[str, str]) -> str:
    # Environment values are never shown, secret-looking or not; their names are.
    return repr(mask_values(env))


class CommandForm(enum.StrEnum):
    SHELL = "shell"
    EXEC = "exec"


@attrs.frozen
class Command:
    """What the container runs: a shell string (``/bin/sh -c``) or an exec-form argument list."""

    form: CommandForm = attrs.field(converter=CommandForm)
    args: tuple[str, ...] = attrs.field(converter=_str_tuple, repr=lambda args: repr(_scrubbed(args)))

    @args.validator
    def _check_args(self, _attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        if not value or not all(isinstance(a, str) for a in value):
            raise ValueError("A command needs at least one string argument.")
        if self.form is CommandForm.SHELL and len(value) != 1:
            raise ValueError("A shell-form command is exactly one string.")
        if any("\x00" in a for a in value):
            raise ValueError("Command arguments cannot contain NUL bytes.")
        if self.form is CommandForm.SHELL and not value[0].strip():
            raise ValueError("A shell-form command cannot be blank.")

    @classmethod
    def shell(cls, text: str) -> Command:
        return cls(CommandForm.SHELL, (text,))

    @classmethod
    def exec(cls, *args: str) -> Command:
        return cls(CommandForm.EXEC, args)

    @property
    def argv(self) -> list[str]:
        """Return the argument vector the engine runs."""
        if self.form is CommandForm.SHELL:
            return ["/bin/sh", "-c", self.args[0]]
        return list(self.args)

    def __str__(self) -> str:
        if self.form is CommandForm.SHELL:
            return self.args[0]
        return " ".join(self.args)


@attrs.frozen
class NetworkAttachment:
    """A network the container joins, with the DNS aliases it answers to there."""

    name: str = attrs.field(validator=attrs.validators.min_len(1))
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)


@attrs.frozen
class TmpfsMount:
    """A size-capped in-memory filesystem, the only writable place under a read-only root."""

    path: str = attrs.field(validator=_absolute_path)
    size_bytes: int = attrs.field(validator=_positive)
    mode: int = 0o1777


DEFAULT_TMPFS = (TmpfsMount("/tmp", 64 * 1024 * 1024),)  # noqa: S108 - a container-side tmpfs, not a host temp file


@attrs.frozen
class JobSpec:
    """Everything an executor needs to run one job; built by the app, never by a plugin.

    Portable: every field means the same on every executor, and an executor that cannot enforce
    one of them says so (:mod:`container_manager_core.capabilities`). Engine settings with no portable
    meaning (privileges, capabilities, namespaces, security options, devices, bind mounts) are not
    here: each executor fixes them to its safe value, and the Docker plugin's guard re-checks the
    engine request. Limits are optional at the type level so the policy can say "must be explicit".
    """

    job_id: str = attrs.field(validator=attrs.validators.min_len(1))
    image: str = attrs.field(validator=attrs.validators.min_len(1))
    command: Command | None = None
    name: str = ""
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_str_map, repr=_names_only)
    working_dir: str | None = attrs.field(default=None, validator=_absolute_path)
    user: str | None = None
    memory_limit_mb: int | None = attrs.field(default=None, validator=_positive)
    cpu_limit: float | None = attrs.field(default=None, validator=_positive)
    pids_limit: int | None = attrs.field(default=None, validator=_positive)
    timeout_seconds: int | None = attrs.field(default=None, validator=_positive)
    stop_grace_seconds: int = 10
    networks: tuple[NetworkAttachment, ...] = attrs.field(default=(), converter=_networks)
    network_mode: str | None = None  # None: the host's default (bridge); "none" isolates.
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_str_map)
    read_only_root: bool = True
    tmpfs: tuple[TmpfsMount, ...] = attrs.field(default=DEFAULT_TMPFS, converter=_tmpfs_mounts)

    @property
    def memory_limit_bytes(self) -> int | None:
        return None if self.memory_limit_mb is None else self.memory_limit_mb * 1024 * 1024


@attrs.frozen
class TlsSettings:
    """Client-side TLS for a remote engine: file paths, never the key material itself."""

    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = attrs.field(default=None)
    verify: bool = True

    @client_key.validator
    def _pair(self, _attribute: attrs.Attribute[Any], value: str | None) -> None:
        if (self.client_cert is None) != (value is None):
            raise ValueError("A TLS client certificate and its key go together.")


def _redact(config: Mapping[str, Any]) -> str:
    return repr(redact(config))


OWNER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _owner(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not OWNER_PATTERN.match(value):
        raise ValueError(
            f"owner must be 1-63 lowercase letters, digits, '-' or '_' (a valid label value), got {value!r}."
        )


@attrs.frozen
class HostSpec:
    """Where and how a job runs: the plugin-facing view of an ``ExecutorHost`` row.

    ``owner`` names the manager deployment (one database of jobs) the executions belong to. Plugins
    label every execution with it and list only executions that carry it, so two deployments sharing
    one engine never adopt, reap or clean up each other's containers.

    ``require_user_namespaces``: refuse to run jobs where the engine would not run them in a user
    namespace (root in a container would be root on the machine). Executors whose engines have such
    a choice (Docker: ``userns-remap`` or rootless) report such a host unhealthy and refuse its
    launches with :class:`~container_manager_core.errors.HostMisconfigured`.
    """

    name: str = attrs.field(validator=attrs.validators.min_len(1))
    executor_type: str = attrs.field(validator=attrs.validators.min_len(1))
    connection_string: str = ""
    tls: TlsSettings | None = None
    config: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_any_map, repr=_redact)
    auto_pull_images: bool = False
    owner: str = attrs.field(default="default", validator=_owner)
    require_user_namespaces: bool = False


class ExecutionState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    EXITED = "exited"
    NOT_FOUND = "not-found"


@attrs.frozen
class Execution:
    """The handle an executor returns from launch; ``adopted`` when it found the job already launched."""

    execution_id: str = attrs.field(validator=attrs.validators.min_len(1))
    adopted: bool = False


@attrs.frozen
class ExecutionStatus:
    state: ExecutionState = attrs.field(converter=ExecutionState)
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    # Stopped through the engine by someone other than this executor (the engine shutting down, an
    # operator's ``docker stop``): an interruption, not the job's own failure.
    interrupted: bool = False

    @property
    def finished(self) -> bool:
        return self.state is ExecutionState.EXITED


@attrs.frozen
class ExecutionLogs:
    """Output kept apart by stream; ``*_dropped_bytes`` counts what a size cap cut from the middle.

    ``*_replaced_bytes`` counts the bytes decoding replaced to make the text storable (NUL, invalid
    UTF-8: see ``logtext.storable_text``). The worker makes whatever text it gets storable again and
    adds what that replaces, so a plugin that hands over ``str`` output may leave these at 0.
    """

    stdout: str = ""
    stderr: str = ""
    timestamps: bool = False
    stdout_dropped_bytes: int = 0
    stderr_dropped_bytes: int = 0
    stdout_replaced_bytes: int = 0
    stderr_replaced_bytes: int = 0


@attrs.frozen
class ResourceUsage:
    peak_memory_bytes: int | None = None
    average_cpu_percent: float | None = None


@attrs.frozen
class HealthStatus:
    healthy: bool
    response_time: float
    error: str | None = None
    engine_version: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_any_map)

    def as_dict(self) -> dict[str, Any]:
        """Return the documented dictionary form (``health["healthy"]``, ``health["error"]``...)."""
        return {
            "healthy": self.healthy,
            "response_time": self.response_time,
            "error": self.error,
            "engine_version": self.engine_version,
            **self.details,
        }


@attrs.frozen
class Violation:
    """One broken policy rule: a stable ``code`` for machines and a ``message`` for people."""

    code: str
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return self.message


def _bounded(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    # Maxima are configurable but never unlimited: None, inf and non-positive values are refused.
    _positive(_instance, attribute, value)
    if value is None:
        raise ValueError(f"{attribute.name} must be set; limits are never unlimited.")


@attrs.frozen
class PolicyLimits:
    """The configurable maxima the built-in policy enforces (never unlimited)."""

    max_memory_mb: int = attrs.field(default=2048, validator=_bounded)
    # Docker Engine refuses a memory limit below 6 MiB ("Minimum memory limit allowed is 6MB").
    min_memory_mb: int = attrs.field(default=6, validator=_bounded)
    max_cpu: float = attrs.field(default=2.0, validator=_bounded)
    # Below 0.01 core an engine's CFS quota rounds to 0, which the kernel reads as "no limit".
    min_cpu: float = attrs.field(default=0.01, validator=_bounded)
    max_timeout_seconds: int = attrs.field(default=3600, validator=_bounded)
    max_pids: int = attrs.field(default=1024, validator=_bounded)
    max_tmpfs_bytes: int = attrs.field(default=512 * 1024 * 1024, validator=_bounded)
    min_uid: int = attrs.field(default=1001, validator=_bounded)
    # Linux refuses to exec with a single argument or NAME=value string of 128 KiB or more (E2BIG),
    # and the job would fail without a word; these keep well under that.
    max_env_var_bytes: int = attrs.field(default=64 * 1024, validator=_bounded)
    max_env_bytes: int = attrs.field(default=256 * 1024, validator=_bounded)
    max_command_bytes: int = attrs.field(default=64 * 1024, validator=_bounded)
    allowed_registries: tuple[str, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_str_tuple)
    )
    # A writable root filesystem is refused unless a deployment opts in for images that need it.
    allow_writable_root: bool = False
