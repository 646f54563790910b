"""Typed errors raised by the core and by executor plugins.

Plugins wrap their SDK's exceptions in these (``raise LaunchFailed(...) from exc``) so callers never
import docker or google exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from container_manager_core.types import Violation

# Executor types whose plugin ships with this project, and the extra that installs it.
KNOWN_EXTRAS = {"docker": "docker", "cloudrun": "cloudrun", "mock": "mock"}


class ContainerManagerError(Exception):
    """Base class for container-manager errors. Do not raise directly."""


class NoExecutorPlugin(ContainerManagerError):
    """No installed plugin provides the requested executor type."""

    def __init__(self, executor_type: str, available: Sequence[str] = ()) -> None:
        self.executor_type = executor_type
        self.available = tuple(available)
        extra = KNOWN_EXTRAS.get(executor_type)
        if extra is not None:
            hint = f'pip install "container-manager-django[{extra}]"'
        else:
            hint = (
                f"install a package that registers an executor of type {executor_type!r} "
                "in the 'container_manager' entry-point group"
            )
        installed = ", ".join(repr(t) for t in self.available) or "none"
        super().__init__(f"No executor plugin for {executor_type!r}: {hint} (installed: {installed}).")


class PluginLoadError(ContainerManagerError):
    """An installed plugin cannot be used: its entry point fails to import, it implements a hook that
    does not exist, or it registers an executor type that another plugin already provides."""

    def __init__(self, plugin: str, distribution: str | None, error: BaseException | str) -> None:
        self.plugin = plugin
        self.entry_point = plugin
        self.distribution = distribution
        origin = f" from the distribution {distribution!r}" if distribution else ""
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        super().__init__(f"Executor plugin {plugin!r}{origin} failed to load: {reason}")


class PolicyViolationError(ContainerManagerError):
    """A job spec breaks one or more policy rules; every violation is listed."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        lines = "; ".join(f"[{v.code}] {v.message}" for v in self.violations)
        super().__init__(f"The job breaks {len(self.violations)} policy rule(s): {lines}")


class ExecutorError(ContainerManagerError):
    """An executor call failed; the SDK's exception, if any, is in ``__cause__``."""


class ExecutorUnavailable(ExecutorError):
    """The host's engine or API cannot be reached: a transient condition, retry later."""


class HostMisconfigured(ExecutorUnavailable):
    """The host answers but refuses to work as it is configured (say, an API version its engine refuses).

    Like an unreachable host, it is the host's fault and not the job's: the job is released without
    using a retry, and the host is marked unhealthy with this message until it is fixed.
    """


class LaunchFailed(ExecutorError):
    """The engine refused to create or start the job's container or execution."""


class ImagePullFailed(LaunchFailed):
    """The image is missing or could not be pulled; the registry's message is kept."""

    def __init__(self, image: str, reason: str) -> None:
        self.image = image
        self.reason = reason
        super().__init__(f"Image {image!r} could not be pulled: {reason}")


class ExecutionNotFound(ExecutorError):
    """The engine knows no execution with this id."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(f"No execution {execution_id!r} on this host.")
