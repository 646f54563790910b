"""Check a Docker host's configuration (``HostSpec.config``) before anything uses it.

One function, :func:`config_violations`, answers "what is wrong with this host's config": the app
calls it through the ``validate_host`` hook when a host is saved and again when a worker loads its
hosts, so a config the plugin cannot use is refused up front instead of failing a job half-way.
Each key has one rule here; a typed config (as the Cloud Run plugin has) can grow from them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import docker.constants
import docker.utils

from container_manager_core.types import HostSpec, Violation
from docker_executor.rules import host_config_violations

# The oldest engine API this plugin can build every job's request for: docker-py refuses `init`
# below 1.25 and bind `mounts` below 1.30 (it supports 1.24 and up). The newest is docker-py's own.
MIN_API_VERSION = "1.30"
MAX_API_VERSION = str(docker.constants.DEFAULT_DOCKER_API_VERSION)
# Each stream's cap is held in memory and stored in one database row: beyond this, lower it.
MAX_LOG_CAP_BYTES = 64 * 1024 * 1024
_API_VERSION = re.compile(r"[0-9]+\.[0-9]+")
_SECONDS_KEYS = ("timeout", "health_timeout", "pull_timeout")
# use_init is read by the guard's rules (it may only be true), not as a free flag.
_FLAG_KEYS = ("allow_insecure_tcp", "allow_insecure_tls")

KNOWN_KEYS = frozenset(
    {
        "timeout",
        "health_timeout",
        "pull_timeout",
        "api_version",
        "registry_auth",
        "log_cap_bytes",
        "log_max_size",
        "log_max_file",
        "use_init",
        "default_network",
        "allow_insecure_tcp",
        "allow_insecure_tls",
        # Read by the core policy (registry allow-list), not by this plugin.
        "allowed_registries",
    }
)


def _bad(host: HostSpec, code: str, problem: str) -> Violation:
    return Violation(code, f"Docker host {host.name!r}: {problem}", "executor_config")


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


def _positive_seconds(value: Any) -> bool:
    return (
        not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value > 0
    )


def _check_keys(host: HostSpec, config: Mapping[str, Any]) -> Iterator[Violation]:
    for key in sorted(set(config) - KNOWN_KEYS, key=str):
        yield _bad(
            host,
            "docker_config_unknown_key",
            f"the config key {key!r} is unknown; known keys are {', '.join(sorted(KNOWN_KEYS))}.",
        )


def _check_seconds(host: HostSpec, config: Mapping[str, Any]) -> Iterator[Violation]:
    for key in _SECONDS_KEYS:
        if key in config and not _positive_seconds(config[key]):
            yield _bad(
                host,
                "docker_config_invalid_timeout",
                f"{key} must be a positive number of seconds, got {config[key]!r}.",
            )


def _check_log_cap(host: HostSpec, config: Mapping[str, Any]) -> Iterator[Violation]:
    value = config.get("log_cap_bytes", 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOG_CAP_BYTES:
        yield _bad(
            host,
            "docker_config_invalid_log_cap",
            f"log_cap_bytes must be a whole number of bytes from 1 to {MAX_LOG_CAP_BYTES}, got {value!r}.",
        )


def _check_api_version(host: HostSpec, config: Mapping[str, Any]) -> Iterator[Violation]:
    if "api_version" in config and (problem := api_version_problem(config["api_version"])) is not None:
        yield _bad(host, "docker_config_invalid_api_version", problem + ".")


def _check_types(host: HostSpec, config: Mapping[str, Any]) -> Iterator[Violation]:
    expected: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
        *((key, lambda v: isinstance(v, bool), "true or false") for key in _FLAG_KEYS),
        ("registry_auth", lambda v: isinstance(v, Mapping), "an object (username, password, ...)"),
        ("default_network", lambda v: isinstance(v, str) and bool(v), "a network name"),
        (
            "allowed_registries",
            lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(e, str) for e in v)),
            "a list of registries",
        ),
    )
    for key, valid, what in expected:
        if key in config and not valid(config[key]):
            yield _bad(host, "docker_config_invalid_value", f"{key} must be {what}, got {config[key]!r}.")


def config_violations(host: HostSpec) -> Iterator[Violation]:
    """Yield every problem with a Docker host's configuration (nothing for a usable one).

    First the keys and the values' types and bounds; once those hold, the safety of the defaults every
    job inherits (networks, engine logs, init), read by the guard's own rules.
    """
    config = host.config
    problems = [
        *_check_keys(host, config),
        *_check_seconds(host, config),
        *_check_log_cap(host, config),
        *_check_api_version(host, config),
        *_check_types(host, config),
    ]
    yield from problems
    if not problems:
        yield from host_config_violations(config)
