"""A deterministic, in-memory executor: what unit tests and third-party authors test against.

Jobs do not run anywhere. Each job's ``MOCK_*`` environment variables (see :mod:`.scenario`) decide
its output, exit code, duration and failures; the host's config decides the host's health:
``{"unhealthy": "reason"}`` reports it unhealthy, ``{"unreachable": true}`` makes every call raise
:class:`~container_manager_core.errors.ExecutorUnavailable`, and ``{"memory_mb": 4096, "cpus": 2}``
is the size its health check reports.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import attrs

from container_manager_core.capabilities import Capabilities, unenforceable
from container_manager_core.capacity import MIB, capacity_details
from container_manager_core.errors import (
    ExecutionNotFound,
    ExecutorUnavailable,
    HostMisconfigured,
    ImagePullFailed,
    LaunchFailed,
)
from container_manager_core.hookspecs import hookimpl
from container_manager_core.plugins import ExecutorPlugin
from container_manager_core.types import (
    Execution,
    ExecutionLogs,
    ExecutionState,
    ExecutionStatus,
    HealthStatus,
    HostSpec,
    JobSpec,
    ResourceUsage,
    Violation,
)
from mock_executor.config import mock_config, read_config
from mock_executor.scenario import Scenario

OOM_EXIT_CODE = 137
SIGTERM_EXIT_CODE = 143


@attrs.define
class _Run:
    job_id: str
    host: str
    owner: str
    scenario: Scenario
    started_at: datetime
    started_mono: float
    stopped_at: datetime | None = None

    def finished_at(self, now_mono: float) -> datetime | None:
        if self.stopped_at is not None:
            return self.stopped_at
        if now_mono - self.started_mono >= self.scenario.duration:
            return self.started_at + timedelta(seconds=self.scenario.duration)
        return None


def _stamp(text: str, when: datetime) -> str:
    prefix = when.strftime("%Y-%m-%dT%H:%M:%S.%f000Z ")
    return "".join(prefix + line for line in text.splitlines(keepends=True))


class MockExecutor(ExecutorPlugin):
    """Executor type ``mock``."""

    executor_type = "mock"
    # It runs no process, so nothing a protection guards against can happen: it stands in for an
    # executor that enforces them all. A test of a weaker executor subclasses it with fewer flags.
    capabilities: ClassVar[Capabilities] = Capabilities.everything()

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}
        self._by_job: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self.launch_count = 0

    def reset(self) -> None:
        """Forget every execution (for test isolation)."""
        with self._lock:
            self._runs.clear()
            self._by_job.clear()
            self.launch_count = 0

    @hookimpl
    def validate_job(self, host: HostSpec | None, job: JobSpec) -> list[Violation]:
        """Refuse a job needing a protection this executor's ``capabilities`` do not include."""
        if host is None or not self._mine(host):
            return []
        return unenforceable(job, self.capabilities, f"The {self.executor_type!r} executor")

    @hookimpl
    def validate_host(self, host: HostSpec) -> list[Violation]:
        """Return the problems with a mock host's config (see :mod:`mock_executor.config`)."""
        return list(read_config(host).violations) if self._mine(host) else []

    @staticmethod
    def _reachable(host: HostSpec) -> None:
        if mock_config(host).unreachable:
            raise ExecutorUnavailable(f"Mock host {host.name!r} is configured as unreachable.")

    def _get(self, host: HostSpec, execution_id: str) -> _Run:
        self._reachable(host)
        run = self._runs.get(execution_id)
        if run is None or run.host != host.name or run.owner != host.owner:
            raise ExecutionNotFound(execution_id)
        return run

    def launch_job(self, host: HostSpec, job: JobSpec) -> Execution:
        self._reachable(host)
        scenario = Scenario.from_env(job.env)
        if scenario.image_pull_error:
            raise ImagePullFailed(job.image, scenario.image_pull_error)
        if scenario.launch_error:
            raise LaunchFailed(scenario.launch_error)
        with self._lock:
            existing = self._by_job.get((host.name, job.job_id))
            if existing is not None and existing in self._runs:
                if self._runs[existing].owner != host.owner:
                    raise LaunchFailed(
                        f"Job {job.job_id!r} is already running for another owner on {host.name!r}."
                    )
                return Execution(existing, adopted=True)
            execution_id = f"mock-{uuid.uuid4().hex}"
            self._runs[execution_id] = _Run(
                job.job_id, host.name, host.owner, scenario, datetime.now(UTC), time.monotonic()
            )
            self._by_job[(host.name, job.job_id)] = execution_id
            self.launch_count += 1
        return Execution(execution_id)

    def check_status(self, host: HostSpec, execution_id: str) -> ExecutionStatus:
        try:
            run = self._get(host, execution_id)
        except ExecutionNotFound:
            return ExecutionStatus(ExecutionState.NOT_FOUND)
        finished = run.finished_at(time.monotonic())
        if finished is None:
            return ExecutionStatus(ExecutionState.RUNNING, started_at=run.started_at)
        if run.stopped_at is not None:
            code, oom = SIGTERM_EXIT_CODE, False
        elif run.scenario.oom:
            code, oom = OOM_EXIT_CODE, True
        else:
            code, oom = run.scenario.exit_code, False
        return ExecutionStatus(
            ExecutionState.EXITED,
            exit_code=code,
            oom_killed=oom,
            started_at=run.started_at,
            finished_at=finished,
        )

    def get_logs(self, host: HostSpec, execution_id: str, *, timestamps: bool) -> ExecutionLogs:
        run = self._get(host, execution_id)
        stdout = run.scenario.stdout + (
            "\n" if run.scenario.stdout and not run.scenario.stdout.endswith("\n") else ""
        )
        stderr = run.scenario.stderr + (
            "\n" if run.scenario.stderr and not run.scenario.stderr.endswith("\n") else ""
        )
        if timestamps:
            stdout, stderr = _stamp(stdout, run.started_at), _stamp(stderr, run.started_at)
        return ExecutionLogs(stdout=stdout, stderr=stderr, timestamps=timestamps)

    def get_usage(self, host: HostSpec, execution_id: str) -> ResourceUsage:
        run = self._get(host, execution_id)
        return ResourceUsage(run.scenario.peak_memory_bytes, run.scenario.cpu_percent)

    def stop_job(self, host: HostSpec, execution_id: str, *, grace_seconds: float) -> bool:
        run = self._get(host, execution_id)
        with self._lock:
            if run.finished_at(time.monotonic()) is not None:
                return False
            run.stopped_at = datetime.now(UTC)
        return True

    def cleanup(self, host: HostSpec, execution_id: str) -> bool:
        self._reachable(host)
        with self._lock:
            run = self._runs.get(execution_id)
            if run is None or run.owner != host.owner:
                return False
            del self._runs[execution_id]
            self._by_job.pop((run.host, run.job_id), None)
        return True

    def get_health_status(self, host: HostSpec) -> HealthStatus:
        started = time.perf_counter()
        error: str | None
        details: dict[str, object] = {}
        try:
            config = mock_config(host)
            unreachable = f"Mock host {host.name!r} is configured as unreachable."
            error = unreachable if config.unreachable else (config.unhealthy or None)
            memory = None if config.memory_mb is None else config.memory_mb * MIB
            details = capacity_details(memory, config.cpus)
        except HostMisconfigured as exc:
            error = str(exc)
        return HealthStatus(
            healthy=error is None,
            response_time=time.perf_counter() - started,
            error=error,
            engine_version="mock-1",
            details=details,
        )

    def list_executions(self, host: HostSpec) -> list[tuple[str, str]]:
        self._reachable(host)
        with self._lock:
            return [
                (run.job_id, eid)
                for eid, run in self._runs.items()
                if run.host == host.name and run.owner == host.owner
            ]


plugin = MockExecutor()
