"""A mock host's settings as one typed object: :func:`read_config` returns it or every violation.

The mock reads four keys of its own: ``unreachable`` (every call raises ExecutorUnavailable),
``unhealthy`` (the health check reports that reason), and ``memory_mb`` and ``cpus``, the size its
health check reports (unset: the host is unbounded, as a Cloud Run host is). The app sets ``log_cap_bytes`` on every host,
and the core policy reads ``allowed_registries``; anything else is a mistake and refused by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from container_manager_core.errors import HostMisconfigured
from container_manager_core.types import HostSpec, Violation

_TYPES: Mapping[str, tuple[tuple[type, ...], str]] = {
    "unreachable": ((bool,), "true or false"),
    "unhealthy": ((str,), "a reason (text)"),
    "memory_mb": ((int,), "a positive whole number of MB"),
    "cpus": ((int, float), "a positive number of CPUs"),
    "log_cap_bytes": ((int,), "a whole number of bytes"),
    "allowed_registries": ((list, str), "a list of registries"),
}
KNOWN_KEYS = frozenset(_TYPES)
_SIZES = ("memory_mb", "cpus")


@attrs.frozen(kw_only=True)
class MockHostConfig:
    """A mock host: reachable and healthy unless told otherwise."""

    unreachable: bool = False
    unhealthy: str = ""
    memory_mb: int | None = None
    cpus: float | None = None


@attrs.frozen
class ConfigVerdict:
    config: MockHostConfig | None
    violations: tuple[Violation, ...]


def read_config(host: HostSpec) -> ConfigVerdict:
    """Return the mock host's config, or every unknown key and value of the wrong type."""
    problems = [
        Violation(
            "mock_config_unknown_key",
            f"Mock host {host.name!r}: the config key {key!r} is unknown; known keys are "
            f"{', '.join(sorted(KNOWN_KEYS))}.",
            "executor_config",
        )
        for key in sorted(set(host.config) - KNOWN_KEYS, key=str)
    ]
    for key, (types, what) in _TYPES.items():
        value = host.config.get(key)
        wrong_type = not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        if key in _SIZES and isinstance(value, int | float) and not wrong_type:
            wrong_type = not math.isfinite(value) or value <= 0
        if key in host.config and wrong_type:
            problems.append(
                Violation(
                    "mock_config_invalid_value",
                    f"Mock host {host.name!r}: {key} must be {what}, got {value!r}.",
                    "executor_config",
                )
            )
    if problems:
        return ConfigVerdict(None, tuple(problems))
    config: dict[str, Any] = {
        key: host.config[key] for key in ("unreachable", "unhealthy", *_SIZES) if key in host.config
    }
    return ConfigVerdict(MockHostConfig(**config), ())


def mock_config(host: HostSpec) -> MockHostConfig:
    """Return the mock host's config; raise :class:`HostMisconfigured` with every problem if it has any."""
    verdict = read_config(host)
    if verdict.config is None:
        raise HostMisconfigured(" ".join(v.message for v in verdict.violations))
    return verdict.config
