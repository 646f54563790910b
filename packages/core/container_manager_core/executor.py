"""The executor operations, declared once: the base class every executor plugin subclasses.

A plugin registers its executors once (the ``register_executors`` hook, which this base class
implements for its own ``executor_type``); the :class:`~container_manager_core.plugins.PluginManager`
then calls the executor of a host's type directly. Only the policy and registration hooks are
pluggy hooks, because every plugin may answer them.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterator
from typing import ClassVar, Protocol

from container_manager_core.hookspecs import hookimpl
from container_manager_core.logstream import LogPiece, followed_after_exit
from container_manager_core.types import (
    Execution,
    ExecutionLogs,
    ExecutionState,
    ExecutionStatus,
    HealthStatus,
    HostSpec,
    JobSpec,
    ResourceUsage,
)

# The first pause between two looks at an execution's state; each later one is longer, up to the
# executor's ``exit_poll_interval``, so a short job is noticed at once and a long one costs little.
FIRST_POLL_SECONDS = 0.05


class ExecutorRegistry(Protocol):
    """What ``register_executors`` is given: add each executor this plugin provides."""

    def add(self, executor: ExecutorPlugin) -> None:
        """Register ``executor`` for its ``executor_type``; a type registered twice is an error."""


class ExecutorPlugin(abc.ABC):
    """One executor type's operations, with plain values in and out.

    Subclasses set ``executor_type`` and implement the abstract methods. Registering an instance as a
    plugin (an entry point in the ``container_manager`` group, or ``PluginManager.register``) makes it
    the executor of every host of that type. Validation hooks (``validate_job``, ``validate_host``)
    are marked with ``@hookimpl``; the operations are not hooks, and must not be marked.
    """

    executor_type: ClassVar[str]
    # Longest pause between two looks at an execution's state in :meth:`wait_for_exit`.
    exit_poll_interval: ClassVar[float] = 0.5

    @hookimpl
    def register_executors(self, registry: ExecutorRegistry) -> None:
        registry.add(self)

    def _mine(self, host: HostSpec) -> bool:
        """Say whether ``host`` is of this executor's type (the policy hooks see every host)."""
        return host.executor_type == self.executor_type

    @abc.abstractmethod
    def launch_job(self, host: HostSpec, job: JobSpec) -> Execution:
        """Start ``job`` on ``host`` and return its execution handle.

        Launching a job that is already launched on this host must not start a second execution:
        return the existing one with ``adopted=True``.

        Raises:
            LaunchFailed: the engine refused the job (``ImagePullFailed`` for image problems).
            ExecutorUnavailable: the engine cannot be reached.
            PolicyViolationError: the final request breaks the policy.
        """

    @abc.abstractmethod
    def check_status(self, host: HostSpec, execution_id: str) -> ExecutionStatus:
        """Return the execution's state; ``ExecutionState.NOT_FOUND`` when the engine has no such id."""

    @abc.abstractmethod
    def get_logs(self, host: HostSpec, execution_id: str, *, timestamps: bool) -> ExecutionLogs:
        """Return stdout and stderr separately, capped per stream.

        Raises:
            ExecutionNotFound: no execution with this id.
        """

    @abc.abstractmethod
    def get_usage(self, host: HostSpec, execution_id: str) -> ResourceUsage:
        """Return peak memory and average CPU seen so far; fields are None when unknown."""

    @abc.abstractmethod
    def stop_job(self, host: HostSpec, execution_id: str, *, grace_seconds: float) -> bool:
        """Stop a running execution: SIGTERM, then SIGKILL after ``grace_seconds``.

        Return True if it was running and is now stopped, False if it had already ended.

        Raises:
            ExecutionNotFound: no execution with this id.
        """

    @abc.abstractmethod
    def cleanup(self, host: HostSpec, execution_id: str) -> bool:
        """Remove the execution's resources. Return True if removed, False if already gone.

        Cleaning up twice is harmless.
        """

    @abc.abstractmethod
    def get_health_status(self, host: HostSpec) -> HealthStatus:
        """Check that the host can run jobs now; never raise for an unreachable host."""

    @abc.abstractmethod
    def list_executions(self, host: HostSpec) -> list[tuple[str, str]]:
        """Return ``(job_id, execution_id)`` for every execution on the host labelled with ``host.owner``.

        Crash recovery uses it to reconcile the database with what really runs.
        """

    def follow_logs(self, host: HostSpec, execution_id: str, *, cursor: str = "") -> Iterator[LogPiece]:
        """Yield the job's own output bytes as it prints them, per stream, until it has exited.

        ``cursor``: the last piece's, to go on after an error without repeating a byte. This
        default polls: it waits for the exit, then reads ``get_logs`` once (capped, the cut
        counted as skipped bytes). Engines that can stream output override it.

        Raises:
            ExecutionNotFound: no execution with this id.
        """
        return followed_after_exit(
            lambda timeout: self.wait_for_exit(host, execution_id, timeout),
            lambda: self.get_logs(host, execution_id, timestamps=False),
            cursor,
        )

    def wait_for_exit(self, host: HostSpec, execution_id: str, timeout: float) -> bool:
        """Block for up to ``timeout`` seconds until the execution has exited (or is gone).

        Return True once it has, False if it still runs when ``timeout`` passes. It reads the
        execution's state, so an exit is never missed, however it happened; override it only to
        read the state more cheaply.
        """
        return poll_until(
            lambda: (
                self.check_status(host, execution_id).state
                in (ExecutionState.EXITED, ExecutionState.NOT_FOUND)
            ),
            timeout,
            self.exit_poll_interval,
        )


def poll_until(done: Callable[[], bool], timeout: float, longest_pause: float) -> bool:
    """Ask ``done`` until it says True (return True) or ``timeout`` seconds pass (return False).

    It is always asked at least once, and once more at the deadline.
    """
    deadline = time.monotonic() + max(0.0, timeout)
    pause = min(FIRST_POLL_SECONDS, longest_pause)
    while True:
        if done():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, longest_pause)
