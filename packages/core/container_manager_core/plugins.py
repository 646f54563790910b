"""Find executor plugins through entry points, keep each executor type's executor, and call it."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator

import pluggy

from container_manager_core import hookspecs
from container_manager_core.errors import NoExecutorPlugin, PluginLoadError, PolicyViolationError
from container_manager_core.executor import ExecutorPlugin, ExecutorRegistry
from container_manager_core.logstream import LogPiece
from container_manager_core.types import (
    Execution,
    ExecutionLogs,
    ExecutionStatus,
    HealthStatus,
    HostSpec,
    JobSpec,
    PolicyLimits,
    ResourceUsage,
    Violation,
)

__all__ = ["ExecutorPlugin", "ExecutorRegistry", "PluginManager"]

_SPECS = (hookspecs.RegistrationSpec, hookspecs.PolicySpec)
_HOOK_NAMES = ", ".join(name for spec in _SPECS for name in vars(spec) if not name.startswith("_"))


class _PluginRegistry:
    """The registry one plugin's ``register_executors`` is given: it adds to the manager's table."""

    def __init__(self, table: dict[str, tuple[str, ExecutorPlugin]], plugin: str) -> None:
        self._table = table
        self._plugin = plugin

    def add(self, executor: ExecutorPlugin) -> None:
        if not isinstance(executor, ExecutorPlugin):
            raise TypeError(
                f"register_executors added {executor!r}, which is not a "
                "container_manager_core.plugins.ExecutorPlugin."
            )
        executor_type = getattr(executor, "executor_type", None)
        if not isinstance(executor_type, str) or not executor_type:
            raise TypeError(f"{type(executor).__name__} sets no executor_type (a non-empty string).")
        if executor_type in self._table:
            raise ValueError(
                f"executor type {executor_type!r} is already provided by plugin {self._table[executor_type][0]!r}."
            )
        self._table[executor_type] = (self._plugin, executor)


class PluginManager:
    """The one place that knows which executor runs which executor type.

    ``PluginManager()`` loads every plugin registered in the ``container_manager`` entry-point group
    plus the core's built-in policy; pass ``load_entry_points=False`` to register plugins by hand.
    Each plugin's ``register_executors`` hook is called once, when it is loaded.
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        for spec in _SPECS:
            self._pm.add_hookspecs(spec)
        # executor type -> (plugin name, executor)
        self._executors: dict[str, tuple[str, ExecutorPlugin]] = {}
        from container_manager_core import policy

        self.register(policy, name="container_manager_core.policy")
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        # pluggy's load_setuptools_entrypoints would do, but its errors do not say which
        # distribution broke; a user with five plugins installed needs that name.
        for dist in importlib.metadata.distributions():
            for entry_point in dist.entry_points:
                if entry_point.group != hookspecs.ENTRY_POINT_GROUP:
                    continue
                if self._pm.get_plugin(entry_point.name) is not None or self._pm.is_blocked(entry_point.name):
                    continue
                distribution = dist.metadata["Name"]
                try:
                    plugin = entry_point.load()
                except Exception as exc:
                    raise PluginLoadError(entry_point.name, distribution, exc) from exc
                self._add(plugin, entry_point.name, distribution)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object or module (tests and out-of-tree plugins without packaging).

        Raises:
            PluginLoadError: it implements a hook that does not exist, or an executor type that
                another plugin provides; it is then not registered.
        """
        self._add(plugin, name, None)

    def _add(self, plugin: object, name: str | None, distribution: str | None) -> None:
        label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        try:
            registered = self._pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:  # a hook implemented with arguments its spec lacks
            raise PluginLoadError(label, distribution, str(exc)) from exc
        if registered is None:  # blocked
            return
        try:
            self._check_hooks()
            # Called for this plugin alone: each plugin registers its executors once, when loaded.
            self._pm.subset_hook_caller(
                "register_executors", [p for p in self._pm.get_plugins() if p is not plugin]
            )(registry=_PluginRegistry(self._executors, registered))
            if isinstance(plugin, ExecutorPlugin) and registered not in self.executor_types().values():
                raise TypeError(
                    f"{type(plugin).__name__} registered no executor: an override of register_executors "
                    "needs @hookimpl."
                )
        except pluggy.PluginValidationError as exc:
            self._forget(registered)
            raise PluginLoadError(registered, distribution, str(exc)) from exc
        except Exception as exc:
            self._forget(registered)
            raise PluginLoadError(registered, distribution, exc) from exc

    def _check_hooks(self) -> None:
        """Refuse a plugin that implements a hook with no specification (a misspelled name, say)."""
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise pluggy.PluginValidationError(
                exc.plugin,
                f"{exc}; the hooks are {_HOOK_NAMES} (executor operations such as launch_job are "
                "methods of an ExecutorPlugin, not hooks).",
            ) from exc

    def _forget(self, name: str) -> None:
        self._executors = {t: entry for t, entry in self._executors.items() if entry[0] != name}
        if self._pm.get_plugin(name) is not None:
            self._pm.unregister(name=name)

    def unregister(self, name: str) -> None:
        self._forget(name)

    def executor_types(self) -> dict[str, str]:
        """Return ``{executor_type: plugin name}`` for every installed executor."""
        return {executor_type: plugin for executor_type, (plugin, _) in self._executors.items()}

    def require(self, executor_type: str) -> None:
        """Raise :class:`NoExecutorPlugin` unless a plugin provides ``executor_type``."""
        self.executor(executor_type)

    def executor(self, executor_type: str) -> ExecutorPlugin:
        """Return the executor of ``executor_type``; raise :class:`NoExecutorPlugin` if none is installed."""
        entry = self._executors.get(executor_type)
        if entry is None:
            raise NoExecutorPlugin(executor_type, sorted(self._executors))
        return entry[1]

    # Executor operations: the host's executor, called directly --------------------------------------

    def launch_job(self, host: HostSpec, job: JobSpec, limits: PolicyLimits | None = None) -> Execution:
        """Check the policy, then launch; raise :class:`PolicyViolationError` listing every violation."""
        executor = self.executor(host.executor_type)
        self.enforce(host, job, limits or PolicyLimits())
        return executor.launch_job(host, job)

    def check_status(self, host: HostSpec, execution_id: str) -> ExecutionStatus:
        return self.executor(host.executor_type).check_status(host, execution_id)

    def get_logs(self, host: HostSpec, execution_id: str, *, timestamps: bool = False) -> ExecutionLogs:
        return self.executor(host.executor_type).get_logs(host, execution_id, timestamps=timestamps)

    def get_usage(self, host: HostSpec, execution_id: str) -> ResourceUsage:
        return self.executor(host.executor_type).get_usage(host, execution_id)

    def stop_job(self, host: HostSpec, execution_id: str, *, grace_seconds: float = 10.0) -> bool:
        return self.executor(host.executor_type).stop_job(host, execution_id, grace_seconds=grace_seconds)

    def cleanup(self, host: HostSpec, execution_id: str) -> bool:
        return self.executor(host.executor_type).cleanup(host, execution_id)

    def get_health_status(self, host: HostSpec) -> HealthStatus:
        return self.executor(host.executor_type).get_health_status(host)

    def list_executions(self, host: HostSpec) -> list[tuple[str, str]]:
        return list(self.executor(host.executor_type).list_executions(host))

    def follow_logs(self, host: HostSpec, execution_id: str, *, cursor: str = "") -> Iterator[LogPiece]:
        """Yield the execution's output as it is printed, until it has exited (``ExecutorPlugin.follow_logs``)."""
        return self.executor(host.executor_type).follow_logs(host, execution_id, cursor=cursor)

    def follows_live(self, host: HostSpec) -> bool:
        """Say whether the host's executor streams output while it runs (overrides ``follow_logs``)."""
        return type(self.executor(host.executor_type)).follow_logs is not ExecutorPlugin.follow_logs

    def wait_for_exit(self, host: HostSpec, execution_id: str, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True once the execution has exited or is gone."""
        return self.executor(host.executor_type).wait_for_exit(host, execution_id, timeout)

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
