"""Find executor plugins through entry points and dispatch executor calls to them."""

from __future__ import annotations

import abc
import importlib.metadata
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import pluggy

from container_manager_core import hookspecs
from container_manager_core.errors import NoExecutorPlugin, PluginLoadError, PolicyViolationError
from container_manager_core.hookspecs import hookimpl
from container_manager_core.types import (
    Execution,
    ExecutionLogs,
    ExecutionState,
    ExecutionStatus,
    HealthStatus,
    HostSpec,
    JobSpec,
    PolicyLimits,
    ResourceUsage,
    Violation,
)

logger = logging.getLogger("container_manager_core.plugins")


class PluginManager:
    """The one place that knows which plugin runs which executor type.

    ``PluginManager()`` loads every plugin registered in the ``container_manager`` entry-point group
    plus the core's built-in policy; pass ``load_entry_points=False`` to register plugins by hand.
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs.ExecutorSpec)
        self._pm.add_hookspecs(hookspecs.PolicySpec)
        from container_manager_core import policy

        self._pm.register(policy, name="container_manager_core.policy")
        if load_entry_points:
            self._load_entry_points()
        self._types: dict[str, str] | None = None

    def _load_entry_points(self) -> None:
        # pluggy's load_setuptools_entrypoints would do, but its errors do not say which
        # distribution broke; a user with five plugins installed needs that name.
        for dist in importlib.metadata.distributions():
            for entry_point in dist.entry_points:
                if entry_point.group != hookspecs.ENTRY_POINT_GROUP:
                    continue
                if self._pm.get_plugin(entry_point.name) is not None or self._pm.is_blocked(entry_point.name):
                    continue
                try:
                    plugin = entry_point.load()
                except Exception as exc:
                    raise PluginLoadError(entry_point.name, dist.metadata["Name"], exc) from exc
                self._pm.register(plugin, name=entry_point.name)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object or module (tests and out-of-tree plugins without packaging)."""
        self._pm.register(plugin, name=name)
        self._types = None

    def unregister(self, name: str) -> None:
        self._pm.unregister(name=name)
        self._types = None

    @property
    def hook(self) -> Any:
        return self._pm.hook

    def executor_types(self) -> dict[str, str]:
        """Return ``{executor_type: plugin name}`` for every installed executor."""
        if self._types is None:
            types: dict[str, str] = {}
            for impl in self._pm.hook.executor_types.get_hookimpls():
                provided: Iterable[str] = impl.function()  # type: ignore[assignment]  # the hook spec's type
                for executor_type in provided:
                    if executor_type in types:
                        raise ValueError(
                            f"Executor type {executor_type!r} is provided by both "
                            f"{types[executor_type]!r} and {impl.plugin_name!r}."
                        )
                    types[executor_type] = impl.plugin_name
            self._types = types
        return dict(self._types)

    def require(self, executor_type: str) -> None:
        """Raise :class:`NoExecutorPlugin` unless a plugin provides ``executor_type``."""
        types = self.executor_types()
        if executor_type not in types:
            raise NoExecutorPlugin(executor_type, sorted(types))

    def _dispatch(self, name: str, host: HostSpec, **kwargs: Any) -> Any:
        self.require(host.executor_type)
        result = getattr(self._pm.hook, name)(host=host, **kwargs)
        if result is None:
            raise NoExecutorPlugin(host.executor_type, sorted(self.executor_types()))
        return result

    # Executor operations -------------------------------------------------------------------------

    def launch_job(self, host: HostSpec, job: JobSpec, limits: PolicyLimits | None = None) -> Execution:
        """Check the policy, then launch; raise :class:`PolicyViolationError` listing every violation."""
        self.enforce(host, job, limits or PolicyLimits())
        result: Execution = self._dispatch("launch_job", host, job=job)
        return result

    def check_status(self, host: HostSpec, execution_id: str) -> ExecutionStatus:
        result: ExecutionStatus = self._dispatch("check_status", host, execution_id=execution_id)
        return result

    def get_logs(self, host: HostSpec, execution_id: str, *, timestamps: bool = False) -> ExecutionLogs:
        result: ExecutionLogs = self._dispatch(
            "get_logs", host, execution_id=execution_id, timestamps=timestamps
        )
        return result

    def get_usage(self, host: HostSpec, execution_id: str) -> ResourceUsage:
        result: ResourceUsage = self._dispatch("get_usage", host, execution_id=execution_id)
        return result

    def stop_job(self, host: HostSpec, execution_id: str, *, grace_seconds: float = 10.0) -> bool:
        result: bool = self._dispatch(
            "stop_job", host, execution_id=execution_id, grace_seconds=grace_seconds
        )
        return result

    def cleanup(self, host: HostSpec, execution_id: str) -> bool:
        result: bool = self._dispatch("cleanup", host, execution_id=execution_id)
        return result

    def get_health_status(self, host: HostSpec) -> HealthStatus:
        result: HealthStatus = self._dispatch("get_health_status", host)
        return result

    def list_executions(self, host: HostSpec) -> list[tuple[str, str]]:
        return list(self._dispatch("list_executions", host))

    def wait_for_exits(self, host: HostSpec, execution_ids: Sequence[str], *, timeout: float) -> list[str]:
        if not execution_ids:
            return []
        result: list[str] = self._dispatch(
            "wait_for_exits", host, execution_ids=list(execution_ids), timeout=timeout
        )
        return result

    # Policy ------------------------------------------------------------------------------------------

    def validate_job(self, host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> list[Violation]:
        """Collect the violations every plugin finds, in a stable order, without duplicates."""
        found: list[Violation] = []
        for batch in self._pm.hook.validate_job(host=host, job=job, limits=limits):
            for violation in batch:
                if violation not in found:
                    found.append(violation)
        return found

    def validate_host(self, host: HostSpec) -> list[Violation]:
        found: list[Violation] = []
        for batch in self._pm.hook.validate_host(host=host):
            found.extend(v for v in batch if v not in found)
        return found

    def enforce(self, host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> None:
        """Raise :class:`PolicyViolationError` if the job breaks any rule."""
        violations = self.validate_job(host, job, limits)
        if violations:
            raise PolicyViolationError(violations)


class ExecutorPlugin(abc.ABC):
    """Optional base class: implements the hooks for one executor type and skips other hosts.

    Subclasses set ``executor_type`` and implement the abstract methods with plain values in and out.
    """

    executor_type: ClassVar[str]

    @hookimpl
    def executor_types(self) -> Iterable[str]:
        return [self.executor_type]

    def _mine(self, host: HostSpec) -> bool:
        return host.executor_type == self.executor_type

    @hookimpl
    def launch_job(self, host: HostSpec, job: JobSpec) -> Execution | None:
        return self.launch(host, job) if self._mine(host) else None

    @hookimpl
    def check_status(self, host: HostSpec, execution_id: str) -> ExecutionStatus | None:
        return self.status(host, execution_id) if self._mine(host) else None

    @hookimpl
    def get_logs(self, host: HostSpec, execution_id: str, timestamps: bool) -> ExecutionLogs | None:
        return self.logs(host, execution_id, timestamps=timestamps) if self._mine(host) else None

    @hookimpl
    def get_usage(self, host: HostSpec, execution_id: str) -> ResourceUsage | None:
        return self.usage(host, execution_id) if self._mine(host) else None

    @hookimpl
    def stop_job(self, host: HostSpec, execution_id: str, grace_seconds: float) -> bool | None:
        return self.stop(host, execution_id, grace_seconds=grace_seconds) if self._mine(host) else None

    @hookimpl
    def cleanup(self, host: HostSpec, execution_id: str) -> bool | None:
        return self.remove(host, execution_id) if self._mine(host) else None

    @hookimpl
    def get_health_status(self, host: HostSpec) -> HealthStatus | None:
        return self.health(host) if self._mine(host) else None

    @hookimpl
    def list_executions(self, host: HostSpec) -> Iterable[tuple[str, str]] | None:
        return self.executions(host) if self._mine(host) else None

    @hookimpl
    def wait_for_exits(
        self, host: HostSpec, execution_ids: Sequence[str], timeout: float
    ) -> list[str] | None:
        return self.wait(host, execution_ids, timeout=timeout) if self._mine(host) else None

    # Seconds between status checks in the default, polling ``wait``.
    exit_poll_interval: ClassVar[float] = 0.5

    def wait(self, host: HostSpec, execution_ids: Sequence[str], *, timeout: float) -> list[str]:
        """Poll ``status`` until one of ``execution_ids`` exits; engines with events override this."""
        deadline = time.monotonic() + timeout
        while True:
            exited = [
                eid
                for eid in execution_ids
                if self.status(host, eid).state in (ExecutionState.EXITED, ExecutionState.NOT_FOUND)
            ]
            remaining = deadline - time.monotonic()
            if exited or remaining <= 0:
                return exited
            time.sleep(min(self.exit_poll_interval, remaining))

    @abc.abstractmethod
    def launch(self, host: HostSpec, job: JobSpec) -> Execution: ...

    @abc.abstractmethod
    def status(self, host: HostSpec, execution_id: str) -> ExecutionStatus: ...

    @abc.abstractmethod
    def logs(self, host: HostSpec, execution_id: str, *, timestamps: bool) -> ExecutionLogs: ...

    @abc.abstractmethod
    def usage(self, host: HostSpec, execution_id: str) -> ResourceUsage: ...

    @abc.abstractmethod
    def stop(self, host: HostSpec, execution_id: str, *, grace_seconds: float) -> bool: ...

    @abc.abstractmethod
    def remove(self, host: HostSpec, execution_id: str) -> bool: ...

    @abc.abstractmethod
    def health(self, host: HostSpec) -> HealthStatus: ...

    @abc.abstractmethod
    def executions(self, host: HostSpec) -> list[tuple[str, str]]: ...
