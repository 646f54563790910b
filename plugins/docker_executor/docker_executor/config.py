"""A Docker host's settings (``HostSpec.config``) as one typed, bounded object: :class:`DockerHostConfig`.

:func:`read_config` is the one constructor: it returns the config, or every violation of the host's
mapping (unknown keys name the known ones). The plugin reads its settings only through it, and
``validate_host`` (:func:`host_violations`) reports what it finds when a host is saved and when a worker
loads its hosts, with the address rule of :mod:`docker_executor.address`. The defaults every job
inherits (network, engine logs, init) are judged by the same rules as the engine request
(:mod:`docker_executor.rules`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import attrs
import docker.constants
import docker.utils

from container_manager_core.errors import HostMisconfigured
from container_manager_core.types import HostSpec, Violation
from docker_executor.address import AddressVerdict, DockerAddress, read_address
from docker_executor.rules import DEFAULT_LOG_MAX_FILE, DEFAULT_LOG_MAX_SIZE, host_config_violations

# The oldest engine API this plugin can build every job's request for: a private cgroup namespace
# (CgroupnsMode) needs 1.41 (Docker Engine 20.10); below it an engine on cgroup v1 shares the host's.
# The newest is docker-py's own.
MIN_API_VERSION = "1.41"
MAX_API_VERSION = str(docker.constants.DEFAULT_DOCKER_API_VERSION)
# Each stream's cap is held in memory and stored in one database row: beyond this, lower it.
MAX_LOG_CAP_BYTES = 64 * 1024 * 1024
DEFAULT_LOG_CAP_BYTES = 1024 * 1024
DEFAULT_NETWORK = "bridge"
_API_VERSION = re.compile(r"[0-9]+\.[0-9]+")
_FIELD = "executor_config"


class _Invalid(ValueError):
    """A value of the wrong type or out of bounds; the message says what the key must be."""


def _seconds(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _Invalid(f"must be a positive number of seconds, got {value!r}")
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {value!r}")
    return value


def _log_cap(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOG_CAP_BYTES:
        raise _Invalid(f"must be a whole number of bytes from 1 to {MAX_LOG_CAP_BYTES}, got {value!r}")
    return value


def _api_version(value: Any) -> str | None:
    if (problem := api_version_problem(value)) is not None:
        raise _Invalid(problem.removeprefix("api_version "))
    return None if value == "auto" else str(value)


def _registry_auth(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        # The value is not shown: it holds a password.
        raise _Invalid(f"must be an object (username, password, ...), got a {type(value).__name__}")
    return MappingProxyType(dict(value))


def _network(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _Invalid(f"must be a network name, got {value!r}")
    return value


def _registries(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(entry, str) for entry in value):
        raise _Invalid(f"must be a list of registries, got {value!r}")
    return tuple(value)


def _judged_by_rules(value: Any) -> Any:
    # Engine logs and init are judged by the guard's own rules (host_config_violations), as is the request.
    return value


@attrs.frozen(kw_only=True)
class DockerHostConfig:
    """Every setting a Docker host may have, typed and within bounds; the defaults are the safe ones."""

    timeout: float = 30.0  # seconds per engine call
    health_timeout: float = 5.0  # seconds for a health check's ping and /info
    pull_timeout: float = 600.0  # seconds an image pull may go without progress
    api_version: str | None = None  # None ("auto"): the engine's version, capped at docker-py's
    registry_auth: Mapping[str, Any] | None = attrs.field(default=None, repr=False)
    log_cap_bytes: int = DEFAULT_LOG_CAP_BYTES  # per stream, head and tail kept
    log_max_size: str = DEFAULT_LOG_MAX_SIZE  # the engine's json-file log: size per file
    log_max_file: int = attrs.field(default=DEFAULT_LOG_MAX_FILE, converter=int)  # and number of files
    use_init: Literal[True] = True  # docker-init as PID 1, always
    default_network: str = DEFAULT_NETWORK  # for jobs that name no network
    allow_insecure_tcp: bool = False
    allow_insecure_tls: bool = False
    # Read by the core policy (the host's registry allow-list); None allows any registry.
    allowed_registries: tuple[str, ...] | None = None


_READERS: Mapping[str, Callable[[Any], Any]] = {
    "timeout": _seconds,
    "health_timeout": _seconds,
    "pull_timeout": _seconds,
    "api_version": _api_version,
    "registry_auth": _registry_auth,
    "log_cap_bytes": _log_cap,
    "log_max_size": _judged_by_rules,
    "log_max_file": _judged_by_rules,
    "use_init": _judged_by_rules,
    "default_network": _network,
    "allow_insecure_tcp": _flag,
    "allow_insecure_tls": _flag,
    "allowed_registries": _registries,
}
KNOWN_KEYS = frozenset(_READERS)
_CODES = {
    "timeout": "docker_config_invalid_timeout",
    "health_timeout": "docker_config_invalid_timeout",
    "pull_timeout": "docker_config_invalid_timeout",
    "log_cap_bytes": "docker_config_invalid_log_cap",
    "api_version": "docker_config_invalid_api_version",
}


@attrs.frozen
class ConfigVerdict:
    """What :func:`read_config` found: the config when usable, else ``None``, and every violation."""

    config: DockerHostConfig | None
    violations: tuple[Violation, ...]


def api_version_problem(value: Any) -> str | None:
    """Return why ``value`` is not an ``api_version`` this plugin can use, or None if it is."""
    if value == "auto":
        return None
    if not isinstance(value, str) or not _API_VERSION.fullmatch(value):
        return f"api_version must be 'auto' or a version such as {MIN_API_VERSION!r}, got {value!r}"
    if docker.utils.version_lt(value, MIN_API_VERSION) or docker.utils.version_lt(MAX_API_VERSION, value):
        return (
            f"api_version {value!r} is outside the versions this plugin supports "
            f"({MIN_API_VERSION} to {MAX_API_VERSION}); use one of those, or 'auto' to ask the engine"
        )
    return None


def read_config(host: HostSpec) -> ConfigVerdict:
    """Return ``host``'s config typed, or every problem with it: unknown keys, types and bounds first,
    then (once those hold) the defaults that would weaken every job's container."""
    raw = host.config
    problems = [
        _bad(
            host,
            "docker_config_unknown_key",
            f"the config key {key!r} is unknown; known keys are {', '.join(sorted(KNOWN_KEYS))}.",
        )
        for key in sorted(set(raw) - KNOWN_KEYS, key=str)
    ]
    values: dict[str, Any] = {}
    for key, reader in _READERS.items():
        if key not in raw:
            continue
        try:
            values[key] = reader(raw[key])
        except _Invalid as exc:
            problems.append(_bad(host, _CODES.get(key, "docker_config_invalid_value"), f"{key} {exc}."))
    if not problems:
        problems.extend(host_config_violations(raw))
    if problems:
        return ConfigVerdict(None, tuple(problems))
    return ConfigVerdict(DockerHostConfig(**values), ())


def host_violations(host: HostSpec) -> list[Violation]:
    """Return everything that makes ``host`` unusable: its config, then its address and transport."""
    config = read_config(host)
    if config.config is None:
        return list(config.violations)
    return list(_address(host, config.config).violations)


def docker_config(host: HostSpec) -> DockerHostConfig:
    """Return ``host``'s typed config; raise :class:`HostMisconfigured` with every problem if it has any."""
    verdict = read_config(host)
    if verdict.config is None:
        raise HostMisconfigured(" ".join(v.message for v in verdict.violations))
    return verdict.config


def docker_address(host: HostSpec) -> DockerAddress:
    """Return ``host``'s engine address; raise :class:`HostMisconfigured` if its address or config is unusable."""
    verdict = _address(host, docker_config(host))
    if verdict.address is None:
        raise HostMisconfigured(" ".join(v.message for v in verdict.violations))
    return verdict.address


def _address(host: HostSpec, config: DockerHostConfig) -> AddressVerdict:
    return read_address(
        host, allow_insecure_tcp=config.allow_insecure_tcp, allow_insecure_tls=config.allow_insecure_tls
    )


def _bad(host: HostSpec, code: str, problem: str) -> Violation:
    return Violation(code, f"Docker host {host.name!r}: {problem}", _FIELD)
