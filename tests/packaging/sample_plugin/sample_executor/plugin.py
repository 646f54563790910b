"""Executor type ``sample``: jobs run in memory, on the clock, as their ``SAMPLE_*`` variables say.

A job "runs" for ``SAMPLE_DURATION`` seconds from its launch, then exits with ``SAMPLE_EXIT_CODE``,
having printed ``SAMPLE_STDOUT`` to standard output and ``SAMPLE_STDERR`` to standard error. Nothing
is executed. ``stop_job`` ends a running job at once with exit code 143 (SIGTERM). Executions belong to a
host and an owner: another owner's executions are invisible, as the executor operations require.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import attrs

from container_manager_core.errors import ExecutionNotFound, LaunchFailed
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
)

SIGTERM_EXIT_CODE = 143


@attrs.define
class _Run:
    host: str
    owner: str
    job_id: str
    stdout: str
    stderr: str
    exit_code: int
    duration: float
    started_at: datetime
    started: float  # time.monotonic() at launch
    stopped_after: float | None = None  # seconds from launch to a stop

    def ran_for(self) -> float | None:
        """Return the seconds from launch to exit, or None while the job still runs."""
        if self.stopped_after is not None:
            return self.stopped_after
        return self.duration if time.monotonic() - self.started >= self.duration else None


def _lines(text: str, stamp: datetime | None) -> str:
    if not text:
        return ""
    if not text.endswith("\n"):
        text += "\n"
    if stamp is None:
        return text
    prefix = stamp.isoformat().replace("+00:00", "Z") + " "
    return "".join(prefix + line for line in text.splitlines(keepends=True))


class SampleExecutor(ExecutorPlugin):
    """Executor type ``sample``."""

    executor_type = "sample"

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}
        self._by_job: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    def _get(self, host: HostSpec, execution_id: str) -> _Run:
        run = self._runs.get(execution_id)
        if run is None or (run.host, run.owner) != (host.name, host.owner):
            raise ExecutionNotFound(execution_id)
        return run

    def launch_job(self, host: HostSpec, job: JobSpec) -> Execution:
        try:
            exit_code = int(job.env.get("SAMPLE_EXIT_CODE", "0"))
            duration = float(job.env.get("SAMPLE_DURATION", "0"))
        except ValueError as exc:
            raise LaunchFailed(f"Invalid SAMPLE_* setting for job {job.job_id!r}: {exc}.") from exc
        key = (host.name, host.owner, job.job_id)
        with self._lock:
            existing = self._by_job.get(key)
            if existing is not None:
                return Execution(existing, adopted=True)
            execution_id = f"sample-{uuid.uuid4().hex}"
            self._runs[execution_id] = _Run(
                host=host.name,
                owner=host.owner,
                job_id=job.job_id,
                stdout=job.env.get("SAMPLE_STDOUT", ""),
                stderr=job.env.get("SAMPLE_STDERR", ""),
                exit_code=exit_code,
                duration=duration,
                started_at=datetime.now(UTC),
                started=time.monotonic(),
            )
            self._by_job[key] = execution_id
        return Execution(execution_id)

    def check_status(self, host: HostSpec, execution_id: str) -> ExecutionStatus:
        with self._lock:
            try:
                run = self._get(host, execution_id)
            except ExecutionNotFound:
                return ExecutionStatus(ExecutionState.NOT_FOUND)
            ran_for = run.ran_for()
            if ran_for is None:
                return ExecutionStatus(ExecutionState.RUNNING, started_at=run.started_at)
            stopped = run.stopped_after is not None
            return ExecutionStatus(
                ExecutionState.EXITED,
                exit_code=SIGTERM_EXIT_CODE if stopped else run.exit_code,
                started_at=run.started_at,
                finished_at=run.started_at + timedelta(seconds=ran_for),
            )

    def get_logs(self, host: HostSpec, execution_id: str, *, timestamps: bool) -> ExecutionLogs:
        with self._lock:
            run = self._get(host, execution_id)
        stamp = run.started_at if timestamps else None
        return ExecutionLogs(
            stdout=_lines(run.stdout, stamp), stderr=_lines(run.stderr, stamp), timestamps=timestamps
        )

    def get_usage(self, host: HostSpec, execution_id: str) -> ResourceUsage:
        with self._lock:
            self._get(host, execution_id)
        return ResourceUsage()  # Nothing runs, so there is nothing to measure: both figures unknown.

    def stop_job(self, host: HostSpec, execution_id: str, *, grace_seconds: float) -> bool:
        with self._lock:
            run = self._get(host, execution_id)
            if run.ran_for() is not None:
                return False
            run.stopped_after = time.monotonic() - run.started
        return True

    def cleanup(self, host: HostSpec, execution_id: str) -> bool:
        with self._lock:
            try:
                run = self._get(host, execution_id)
            except ExecutionNotFound:
                return False
            del self._runs[execution_id]
            del self._by_job[(run.host, run.owner, run.job_id)]
        return True

    def get_health_status(self, host: HostSpec) -> HealthStatus:
        # Always reachable: the "engine" is this process.
        started = time.perf_counter()
        return HealthStatus(
            healthy=True, response_time=time.perf_counter() - started, engine_version="sample-1"
        )

    def list_executions(self, host: HostSpec) -> list[tuple[str, str]]:
        with self._lock:
            return [
                (run.job_id, execution_id)
                for execution_id, run in self._runs.items()
                if (run.host, run.owner) == (host.name, host.owner)
            ]


plugin = SampleExecutor()
