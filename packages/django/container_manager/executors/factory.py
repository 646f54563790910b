"""ExecutorFactory: the documented facade that binds a host to its plugin through the core PluginManager."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from container_manager.exceptions import InvalidExecutor
from container_manager.executors.registry import get_plugin_manager
from container_manager.security import log_policy_rejection
from container_manager_core.errors import NoExecutorPlugin, PolicyViolationError
from container_manager_core.types import ExecutionLogs, HostSpec, ResourceUsage

if TYPE_CHECKING:
    from container_manager.models import ContainerJob, ExecutorHost
    from container_manager_core.plugins import PluginManager


class HostExecutor:
    """One host's executor: each method calls the host's plugin with plain values."""

    def __init__(self, executor_type: str, host: ExecutorHost, manager: PluginManager) -> None:
        self.executor_type = executor_type
        self.host = host
        self._manager = manager

    def __repr__(self) -> str:
        return f"<HostExecutor {self.executor_type} host={self.host.name!r}>"

    @property
    def host_spec(self) -> HostSpec:
        # Re-read each call so a host edited in the admin is seen without a new executor.
        return self.host.to_spec()

    def launch_job(self, job: ContainerJob) -> str:
        """Launch ``job`` on this host after the policy check; return the execution id.

        Raises:
            PolicyViolationError: the job breaks policy rules (logged as a security event).
            LaunchFailed, ImagePullFailed, ExecutorUnavailable: the plugin could not start it.
        """
        from container_manager.conf import app_settings

        settings = app_settings()
        spec = job.to_spec(settings)
        host = self.host_spec
        try:
            execution = self._manager.launch_job(host, spec, settings.policy_limits())
        except PolicyViolationError as exc:
            log_policy_rejection(spec, exc.violations, host=host, source="launch")
            raise
        return execution.execution_id

    def check_status(self, execution_id: str) -> str:
        """Return the execution's state: "pending", "running", "exited" or "not-found"."""
        return self._manager.check_status(self.host_spec, execution_id).state.value

    def get_logs(self, execution_id: str) -> tuple[str, str]:
        """Return ``(stdout, stderr)``."""
        logs: ExecutionLogs = self._manager.get_logs(self.host_spec, execution_id)
        return logs.stdout, logs.stderr

    def get_usage(self, execution_id: str) -> ResourceUsage:
        """Return peak memory (bytes) and average CPU (%) seen so far; None where unknown."""
        return self._manager.get_usage(self.host_spec, execution_id)

    def get_health_status(self) -> dict[str, Any]:
        """Return ``{"healthy": bool, "response_time": float, "error": str | None, ...}``."""
        return self._manager.get_health_status(self.host_spec).as_dict()

    def stop_job(self, execution_id: str, grace_seconds: float = 10) -> bool:
        """Stop the execution (SIGTERM, then SIGKILL after ``grace_seconds``); False if it had ended."""
        return self._manager.stop_job(self.host_spec, execution_id, grace_seconds=grace_seconds)

    # The facade's name for stop_job before the operations had one name everywhere; callers use it.
    stop = stop_job

    def cleanup(self, execution_id: str) -> bool:
        """Remove the execution's resources; False if they were already gone."""
        return self._manager.cleanup(self.host_spec, execution_id)

    def wait_for_exit(self, execution_id: str, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True once the execution has exited or is gone."""
        return self._manager.wait_for_exit(self.host_spec, execution_id, timeout)

    def list_executions(self) -> list[tuple[str, str]]:
        """Return ``(job_id, execution_id)`` for every execution this deployment owns on the host."""
        return self._manager.list_executions(self.host_spec)

    def _get_client(self, host: ExecutorHost | HostSpec | None = None) -> Any:
        """Return the plugin's SDK client for ``host`` (default: this executor's host), if it has one."""
        executor = self._manager.executor(self.executor_type)
        get_client = getattr(executor, "_get_client", None)
        if get_client is None:
            raise AttributeError(
                f"The {self.executor_type!r} executor plugin {type(executor).__name__} has no SDK client "
                "(no _get_client method)."
            )
        if host is None:
            spec = self.host_spec
        elif isinstance(host, HostSpec):
            spec = host
        else:
            spec = host.to_spec()
        return get_client(spec)


class ExecutorFactory:
    """Build the executor for a host: ``ExecutorFactory.create_executor("docker", {"docker_host": host})``."""

    @staticmethod
    def create_executor(executor_type: str, config: Mapping[str, Any]) -> HostExecutor:
        """Return an executor bound to ``config["docker_host"]`` (an ExecutorHost or its name).

        Raises:
            InvalidExecutor: no installed plugin provides ``executor_type``, or the host is of another type.
        """
        from container_manager.models import ExecutorHost

        manager = get_plugin_manager()
        try:
            manager.require(executor_type)
        except NoExecutorPlugin as exc:
            raise InvalidExecutor(str(exc)) from exc
        host = config.get("docker_host")
        if isinstance(host, str):
            try:
                host = ExecutorHost.objects.get(name=host)
            except ExecutorHost.DoesNotExist:
                raise InvalidExecutor(f"No executor host named {host!r}.") from None
        if not isinstance(host, ExecutorHost):
            raise InvalidExecutor(
                f"create_executor({executor_type!r}, ...) needs {{'docker_host': <ExecutorHost>}}, got {host!r}."
            )
        if host.executor_type != executor_type:
            raise InvalidExecutor(
                f"Host {host.name!r} is a {host.executor_type!r} host, not {executor_type!r}; "
                f"use ExecutorFactory.create_executor({host.executor_type!r}, ...)."
            )
        return HostExecutor(executor_type, host, manager)
