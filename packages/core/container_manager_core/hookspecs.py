"""The hook specifications every executor plugin implements.

Executor hooks are ``firstresult``: each is called with the host, and the plugin whose executor type
matches ``host.executor_type`` answers; every other plugin returns ``None``. The
:class:`~container_manager_core.plugins.ExecutorPlugin` base class does that check for you. Policy
hooks are collected from every plugin: each returns the violations it finds, and all are reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pluggy

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

PROJECT_NAME = "container_manager"
ENTRY_POINT_GROUP = "container_manager"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class ExecutorSpec:
    """Executor operations, dispatched by ``host.executor_type``."""

    @hookspec
    def executor_types(self) -> Iterable[str]:
        """Return the executor types this plugin provides (e.g. ``["docker"]``)."""
        raise NotImplementedError  # pragma: no cover - a spec has no body

    @hookspec(firstresult=True)
    def launch_job(self, host: HostSpec, job: JobSpec) -> Execution | None:
        """Start ``job`` on ``host`` and return its execution handle.

        Launching a job that is already launched on this host must not start a second execution:
        return the existing one with ``adopted=True``.

        Raises:
            LaunchFailed: the engine refused the job (``ImagePullFailed`` for image problems).
            ExecutorUnavailable: the engine cannot be reached.
            PolicyViolationError: the final request breaks the policy.
        """
        raise NotImplementedError  # pragma: no cover

    @hookspec(firstresult=True)
    def check_status(self, host: HostSpec, execution_id: str) -> ExecutionStatus | None:
        """Return the execution's state; ``ExecutionState.NOT_FOUND`` when the engine has no such id."""
        raise NotImplementedError  # pragma: no cover

    @hookspec(firstresult=True)
    def get_logs(self, host: HostSpec, execution_id: str, timestamps: bool) -> ExecutionLogs | None:
        """Return stdout and stderr separately, capped per stream.

        Raises:
            ExecutionNotFound: no execution with this id.
        """
        raise NotImplementedError  # pragma: no cover

    @hookspec(firstresult=True)
    def get_usage(self, host: HostSpec, execution_id: str) -> ResourceUsage | None:
        """Return peak memory and average CPU seen so far; fields are None when unknown."""
        raise NotImplementedError  # pragma: no cover

    @hookspec(firstresult=True)
    def stop_job(self, host: HostSpec, execution_id: str, grace_seconds: float) -> bool | None:
        """Stop a running execution: SIGTERM, then SIGKILL after ``grace_seconds``.

        Return True if it was running and is now stopped, False if it had already ended.

        Raises:
            ExecutionNotFound: no execution with this id.
        """
        raise NotImplementedError  # pragma: no cover

    @hookspec(firstresult=True)
    def cleanup(self, host: HostSpec, execution_id: str) -> bool | None:
        """Remove the execution's resources. Return True if removed, False if already gone.

        Cleaning up twice is harmless.
        """
        raise NotImplementedError  # pragma: no cover

    @hookspec(firstresult=True)
    def get_health_status(self, host: HostSpec) -> HealthStatus | None:
        """Check that the host can run jobs now; never raise for an unreachable host."""
        raise NotImplementedError  # pragma: no cover

    @hookspec(firstresult=True)
    def wait_for_exits(
        self, host: HostSpec, execution_ids: Sequence[str], timeout: float
    ) -> list[str] | None:
        """Block for up to ``timeout`` seconds until one of ``execution_ids`` exits.

        Return the ids that have exited, including any that exited before the call (an empty list
        when none did). An engine with an event stream returns as soon as an exit is seen; the
        base class polls ``check_status``.
        """
        raise NotImplementedError  # pragma: no cover

    @hookspec(firstresult=True)
    def list_executions(self, host: HostSpec) -> Iterable[tuple[str, str]] | None:
        """Return ``(job_id, execution_id)`` for every execution on the host labelled with ``host.owner``.

        Crash recovery uses it to reconcile the database with what really runs.
        """
        raise NotImplementedError  # pragma: no cover


class PolicySpec:
    """Policy validators; every plugin may contribute, and all violations are collected."""

    @hookspec
    def validate_job(self, host: HostSpec | None, job: JobSpec, limits: PolicyLimits) -> Iterable[Violation]:
        """Return every rule ``job`` breaks (an empty iterable when it breaks none).

        ``host`` is None when the job is not yet bound to a host.
        """
        raise NotImplementedError  # pragma: no cover

    @hookspec
    def validate_host(self, host: HostSpec) -> Iterable[Violation]:
        """Return every rule the host configuration breaks."""
        raise NotImplementedError  # pragma: no cover
