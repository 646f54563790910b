"""The ``cloudrun`` executor: each job runs as a one-task Cloud Run Job execution.

A job id maps to one Cloud Run job (named from the id, see :mod:`.naming`); launching runs it once and
the execution's full resource name is the execution id. Cloud Run's own retries are off, so a failed
job is retried only by the manager.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import attrs
from google.api_core import exceptions as api_exceptions
from google.api_core import operation
from google.api_core.future import polling
from google.cloud import run_v2

from cloudrun_executor.capabilities import CLOUD_RUN_CAPABILITIES
from cloudrun_executor.clients import ClientCache, CloudRunClients
from cloudrun_executor.config import (
    CloudRunConfig,
    ConfigError,
    accepted_unenforced,
    config_violations,
    load_config,
)
from cloudrun_executor.errors import GOOGLE_ERRORS, TRANSIENT, LogReadFailed, wrap
from cloudrun_executor.health import check_health
from cloudrun_executor.limits import cloudrun_job_violations
from cloudrun_executor.logs import LogSource, Settling, logs_from, oom_note, settled_entries
from cloudrun_executor.naming import (
    JOB_ID_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    OWNER_LABEL,
    ExecutionName,
    job_name,
    job_path,
    label_value,
)
from cloudrun_executor.status import (
    cancelled,
    execution_state,
    execution_status,
    has_attempt_result,
    needs_tasks,
)
from cloudrun_executor.translate import build_job
from container_manager_core.capabilities import Capabilities, unenforceable
from container_manager_core.errors import (
    ExecutionNotFound,
    ExecutorError,
    ExecutorUnavailable,
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

# Long-running operations (create, update, delete, cancel) usually finish within seconds: poll
# them often at first instead of api_core's default one-second start.
_OPERATION_POLLING = polling.DEFAULT_POLLING.with_delay(initial=0.1, maximum=2.0, multiplier=1.5)
_PAGE_SIZE = 100
# The first pause between two reads of an execution's state in wait_for_exit; it doubles up to the
# host's status_poll_seconds.
_FIRST_STATUS_PAUSE = 1.0
# Condition.CommonReason values (google/cloud/run/v2/condition.proto) that mean the image cannot be had.
_IMAGE_REASONS = frozenset(
    {
        run_v2.Condition.CommonReason.CONTAINER_MISSING,
        run_v2.Condition.CommonReason.CONTAINER_PERMISSION_DENIED,
        run_v2.Condition.CommonReason.CONTAINER_IMAGE_UNAUTHORIZED,
        run_v2.Condition.CommonReason.CONTAINER_IMAGE_AUTHORIZATION_CHECK_FAILED,
    }
)


class CloudRunExecutor(ExecutorPlugin):
    """Executor type ``cloudrun``: Google Cloud Run Jobs, through google-cloud-run."""

    executor_type = "cloudrun"
    capabilities: ClassVar[Capabilities] = CLOUD_RUN_CAPABILITIES

    def __init__(self, clients: ClientCache | None = None) -> None:
        self._clients = clients or ClientCache()

    # Policy --------------------------------------------------------------------------------------

    @hookimpl
    def validate_job(self, host: HostSpec | None, job: JobSpec) -> list[Violation]:
        """Return the Cloud Run limits ``job`` breaks when it is bound to a Cloud Run host, and the
        protections it needs that Cloud Run cannot enforce and the host has not accepted."""
        if host is None or not self._mine(host):
            return []
        missing = unenforceable(
            job,
            self.capabilities,
            "Cloud Run",
            accepted=accepted_unenforced(host.config),
            opt_in=f"host {host.name!r}'s accept_unenforced",
        )
        return [*missing, *cloudrun_job_violations(job)]

    @hookimpl
    def validate_host(self, host: HostSpec) -> list[Violation]:
        """Return the problems with a Cloud Run host's configuration."""
        return list(config_violations(host)) if self._mine(host) else []

    # Executor ------------------------------------------------------------------------------------

    def launch_job(self, host: HostSpec, job: JobSpec) -> Execution:
        config, clients = self._session(host)
        name = job_name(config.job_name_prefix, job.job_id)
        path = job_path(config.location, name)
        calls = _call_options(config)
        try:
            existing = self._ensure_job(config, clients, job, name, calls)
            if existing is not None:
                return Execution(existing, adopted=True)
            started = clients.jobs.run_job(request=run_v2.RunJobRequest(name=path), **calls)
        except GOOGLE_ERRORS as exc:
            if not isinstance(exc, TRANSIENT):
                # Refused for good after the job may have been created: leave no job behind to count
                # against the region's 1000. A transient failure keeps it, for the retry to reuse.
                self._delete_job_quietly(config, clients, path)
            if isinstance(exc, api_exceptions.GoogleAPICallError) and job.image in str(exc.message):
                raise ImagePullFailed(job.image, str(exc.message)) from exc
            raise wrap(exc, f"launch job {job.job_id!r} as Cloud Run job {path!r}", launching=True) from exc
        # RunJob's operation lasts as long as the execution; its metadata already names it.
        metadata = started.metadata
        if metadata is not None and metadata.name:
            return Execution(metadata.name)
        newest = self._executions_of(clients, path, calls)
        if not newest:
            raise LaunchFailed(f"Cloud Run ran job {path!r} but reported no execution for it.")
        return Execution(newest[-1].name)

    def _ensure_job(
        self, config: CloudRunConfig, clients: CloudRunClients, job: JobSpec, name: str, calls: dict[str, Any]
    ) -> str | None:
        """Create or update the job's Cloud Run job; return an existing execution's name to adopt."""
        path = job_path(config.location, name)
        desired = build_job(job, config)
        try:
            clients.jobs.get_job(name=path, **calls)
        except api_exceptions.NotFound:
            try:
                created = clients.jobs.create_job(parent=config.location, job=desired, job_id=name, **calls)
            except api_exceptions.AlreadyExists:
                pass  # a concurrent launch of the same job created it first: continue as if it existed
            else:
                self._until_ready(config, clients, job, path, created)
                return None
        # One Cloud Run job per job id, so any execution it still has is this job's launch.
        executions = self._executions_of(clients, path, calls)
        if executions:
            return executions[0].name
        desired.name = path
        self._until_ready(config, clients, job, path, clients.jobs.update_job(job=desired, **calls))
        return None

    def _until_ready(
        self,
        config: CloudRunConfig,
        clients: CloudRunClients,
        job: JobSpec,
        path: str,
        pending: operation.Operation,
    ) -> None:
        """Wait for a created or updated job to be ready; delete it and raise if it never will be.

        Cloud Run accepts the job at once and checks it afterwards: its Ready condition (the job's
        terminal_condition) fails later, with a reason such as CONTAINER_MISSING or
        SECRETS_ACCESS_CHECK_FAILED, and the operation fails with it.
        """
        try:
            _finish(pending, config)
            return
        except api_exceptions.GoogleAPICallError as exc:
            if isinstance(exc, TRANSIENT):
                raise
            failure: api_exceptions.GoogleAPICallError = exc
        ready = self._ready_condition(config, clients, path)
        self._delete_job_quietly(config, clients, path)
        message = (ready.message if ready is not None else "") or str(failure.message)
        if ready is not None and ready.reason in _IMAGE_REASONS:
            raise ImagePullFailed(job.image, message) from failure
        raise LaunchFailed(
            f"Cloud Run refused job {job.job_id!r} ({path!r}) once it checked it: {message}"
        ) from failure

    def _ready_condition(
        self, config: CloudRunConfig, clients: CloudRunClients, path: str
    ) -> run_v2.Condition | None:
        try:
            stored = clients.jobs.get_job(name=path, **_call_options(config))
        except GOOGLE_ERRORS:
            return None
        return stored.terminal_condition if "terminal_condition" in stored else None

    def _delete_job_quietly(self, config: CloudRunConfig, clients: CloudRunClients, path: str) -> None:
        # Best effort: what this misses, reconcile's sweep of execution-less jobs deletes later.
        with contextlib.suppress(*GOOGLE_ERRORS, ExecutorUnavailable):
            _finish(clients.jobs.delete_job(name=path, **_call_options(config)), config)

    def check_status(self, host: HostSpec, execution_id: str) -> ExecutionStatus:
        config, name = self._config_and_name(host, execution_id)
        if name is None:
            return ExecutionStatus(ExecutionState.NOT_FOUND)
        clients = self._connect(host, config)
        calls = _call_options(config)
        try:
            execution = clients.executions.get_execution(name=execution_id, **calls)
            tasks = self._tasks(config, clients, execution) if needs_tasks(execution) else []
        except api_exceptions.NotFound:
            return ExecutionStatus(ExecutionState.NOT_FOUND)
        except GOOGLE_ERRORS as exc:
            raise wrap(exc, f"read Cloud Run execution {execution_id!r}") from exc
        status = execution_status(execution, tasks)
        if needs_tasks(execution) and not cancelled(execution) and execution.start_time is not None:
            note = self._oom_note(config, clients, name, execution)
            if note is not None:
                return attrs.evolve(status, oom_killed=True, error=note)
        return status

    def _tasks(
        self, config: CloudRunConfig, clients: CloudRunClients, execution: run_v2.Execution
    ) -> list[run_v2.Task]:
        """Return the execution's tasks, re-read (bounded) until the last attempt's result is in.

        A task is reconciled apart from its execution, so its result may lag the execution's end;
        an execution that never started a container has none to wait for.
        """
        calls = _call_options(config)
        deadline = time.monotonic() + config.log_wait_seconds
        pause = _FIRST_STATUS_PAUSE
        while True:
            tasks = list(clients.tasks.list_tasks(parent=execution.name, **calls))
            if has_attempt_result(tasks) or execution.start_time is None or cancelled(execution):
                return tasks
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return tasks
            time.sleep(min(pause, remaining, config.status_poll_seconds))
            pause *= 2

    def _oom_note(
        self,
        config: CloudRunConfig,
        clients: CloudRunClients,
        name: ExecutionName,
        execution: run_v2.Execution,
    ) -> str | None:
        """Return Cloud Run's out-of-memory note for the execution: its only sign of an OOM kill."""
        source = self._log_source(config, clients, name, execution)
        settling = Settling(quiet=0.0, wait=config.log_wait_seconds, expect_exit=True)
        try:
            entries = settled_entries(source, settling, what=f"read the system log of {execution.name!r}")
        except (LogReadFailed, *GOOGLE_ERRORS):
            return None  # the exit is known; only whether memory ended it is not
        return oom_note(entries)

    def _log_source(
        self,
        config: CloudRunConfig,
        clients: CloudRunClients,
        name: ExecutionName,
        execution: run_v2.Execution,
    ) -> LogSource:
        return LogSource(
            clients.logging, config.project, name, execution.create_time, config.api_timeout_seconds
        )

    def get_logs(self, host: HostSpec, execution_id: str, *, timestamps: bool) -> ExecutionLogs:
        config, clients, name, execution = self._existing(host, execution_id)
        exited = execution_state(execution) is ExecutionState.EXITED
        # A running execution's logs are what has arrived so far. A finished one's are read once
        # late entries have had time to arrive, unless it finished longer ago than they can take.
        recent = exited and _age(execution.completion_time) < config.log_wait_seconds
        settling = Settling(
            quiet=config.log_quiet_seconds if recent else 0.0,
            wait=config.log_wait_seconds if recent else 0.0,
            expect_exit=recent and execution.start_time is not None and not cancelled(execution),
        )
        what = f"read the logs of Cloud Run execution {execution_id!r} from Cloud Logging"
        try:
            entries = settled_entries(self._log_source(config, clients, name, execution), settling, what=what)
            return logs_from(entries, timestamps=timestamps, limit=config.log_cap_bytes)
        except GOOGLE_ERRORS as exc:
            raise wrap(
                exc, f"read the logs of Cloud Run execution {execution_id!r} from Cloud Logging"
            ) from exc

    def get_usage(self, host: HostSpec, execution_id: str) -> ResourceUsage:
        # Cloud Run reports no per-execution peak memory or CPU through the Admin or Logging API
        # (only aggregated Cloud Monitoring metrics), so both stay unknown rather than guessed.
        return ResourceUsage()

    def stop_job(self, host: HostSpec, execution_id: str, *, grace_seconds: float) -> bool:
        # Cancelling sends SIGTERM and kills the container after a grace period Cloud Run fixes
        # itself, so grace_seconds cannot be honoured.
        config, clients, _name, execution = self._existing(host, execution_id)
        if execution_state(execution) is ExecutionState.EXITED:
            return False
        try:
            clients.executions.cancel_execution(name=execution_id, **_call_options(config))
        except api_exceptions.FailedPrecondition:
            return False  # it finished between the read and the cancel
        except api_exceptions.NotFound as exc:
            raise ExecutionNotFound(execution_id) from exc
        except GOOGLE_ERRORS as exc:
            raise wrap(exc, f"cancel Cloud Run execution {execution_id!r}") from exc
        return True

    def cleanup(self, host: HostSpec, execution_id: str) -> bool:
        config, name = self._config_and_name(host, execution_id)
        if name is None:
            return False
        clients = self._connect(host, config)
        calls = _call_options(config)
        try:
            removed = self._delete_execution(config, clients, execution_id)
            if config.delete_after_run:
                # NotFound: an earlier cleanup already deleted it.
                with contextlib.suppress(api_exceptions.NotFound):
                    _finish(clients.jobs.delete_job(name=name.job_path, **calls), config)
        except GOOGLE_ERRORS as exc:
            raise wrap(exc, f"clean up Cloud Run execution {execution_id!r}") from exc
        return removed

    def _delete_execution(self, config: CloudRunConfig, clients: CloudRunClients, execution_id: str) -> bool:
        """Cancel the execution if it still runs, then delete it; return False if it was already gone."""
        calls = _call_options(config)
        try:
            execution = clients.executions.get_execution(name=execution_id, **calls)
            if execution_state(execution) is not ExecutionState.EXITED:
                # Cloud Run deletes only finished executions; the cancel operation ends with it.
                # FailedPrecondition: it finished on its own meanwhile.
                with contextlib.suppress(api_exceptions.FailedPrecondition):
                    _finish(clients.executions.cancel_execution(name=execution_id, **calls), config)
            _finish(clients.executions.delete_execution(name=execution_id, **calls), config)
        except api_exceptions.NotFound:
            return False
        return True

    def wait_for_exit(self, host: HostSpec, execution_id: str, timeout: float) -> bool:
        """Read only the execution (no tasks, no logs), one second apart at first, then less often.

        Cloud Run's Admin API reads are rationed per minute and region: a throttled read counts as
        "still running" and the next one waits longer, instead of failing the watch.
        """
        config, name = self._config_and_name(host, execution_id)
        if name is None:
            return True
        clients = self._connect(host, config)
        deadline = time.monotonic() + max(0.0, timeout)
        pause = min(_FIRST_STATUS_PAUSE, config.status_poll_seconds)
        while True:
            try:
                execution = clients.executions.get_execution(name=execution_id, **_call_options(config))
                if execution_state(execution) is ExecutionState.EXITED:
                    return True
            except api_exceptions.NotFound:
                return True
            except api_exceptions.TooManyRequests:
                pause = config.status_poll_seconds
            except GOOGLE_ERRORS as exc:
                raise wrap(exc, f"read Cloud Run execution {execution_id!r}") from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, config.status_poll_seconds)

    def get_health_status(self, host: HostSpec) -> HealthStatus:
        return check_health(host, self._clients)

    def list_executions(self, host: HostSpec) -> list[tuple[str, str]]:
        config, clients = self._session(host)
        calls = _call_options(config)
        found: list[tuple[str, str]] = []
        try:
            for job in self._our_jobs(config, clients):
                job_id = job.annotations.get(JOB_ID_ANNOTATION)
                executions = self._executions_of(clients, job.name, calls)
                if job_id:
                    found.extend((job_id, e.name) for e in executions)
                if (
                    not executions
                    and config.delete_after_run
                    and _age(job.create_time) > config.orphan_job_seconds
                ):
                    # A launch that failed between CreateJob and RunJob left it: no execution will
                    # ever clean it up, and every job counts against the region's limit of 1000.
                    self._delete_job_quietly(config, clients, job.name)
        except GOOGLE_ERRORS as exc:
            raise wrap(exc, f"list this manager's Cloud Run executions in {config.location!r}") from exc
        return found

    # Helpers -------------------------------------------------------------------------------------

    def _session(self, host: HostSpec) -> tuple[CloudRunConfig, CloudRunClients]:
        config = _load(host)
        return config, self._connect(host, config)

    def _connect(self, host: HostSpec, config: CloudRunConfig) -> CloudRunClients:
        try:
            return self._clients.get(config)
        except GOOGLE_ERRORS as exc:
            raise wrap(exc, f"connect to Cloud Run for host {host.name!r}") from exc

    def _config_and_name(
        self, host: HostSpec, execution_id: str
    ) -> tuple[CloudRunConfig, ExecutionName | None]:
        """Return the host's config and the id's parts, or None when the id cannot be this host's."""
        config = _load(host)
        name = ExecutionName.parse(execution_id)
        if name is None or not name.belongs_to(config.region, config.job_name_prefix):
            return config, None
        return config, name

    def _existing(
        self, host: HostSpec, execution_id: str
    ) -> tuple[CloudRunConfig, CloudRunClients, ExecutionName, run_v2.Execution]:
        """Return everything needed to act on an execution; raise ExecutionNotFound if there is none."""
        config, name = self._config_and_name(host, execution_id)
        if name is None:
            raise ExecutionNotFound(execution_id)
        clients = self._connect(host, config)
        try:
            execution = clients.executions.get_execution(name=execution_id, **_call_options(config))
        except api_exceptions.NotFound as exc:
            raise ExecutionNotFound(execution_id) from exc
        except GOOGLE_ERRORS as exc:
            raise wrap(exc, f"read Cloud Run execution {execution_id!r}") from exc
        return config, clients, name, execution

    def _executions_of(
        self, clients: CloudRunClients, path: str, calls: dict[str, Any]
    ) -> list[run_v2.Execution]:
        """Return the job's executions, oldest first."""
        request = run_v2.ListExecutionsRequest(parent=path, page_size=_PAGE_SIZE)
        executions = list(clients.executions.list_executions(request=request, **calls))
        return sorted(executions, key=lambda e: (e.create_time is None, e.create_time, e.name))

    def _our_jobs(self, config: CloudRunConfig, clients: CloudRunClients) -> Iterator[run_v2.Job]:
        request = run_v2.ListJobsRequest(parent=config.location, page_size=_PAGE_SIZE)
        # Cloud Run names jobs with the project number where the configuration has the project id,
        # so only the part after the project is compared.
        prefix = f"/locations/{config.region}/jobs/{config.job_name_prefix}-"
        for job in clients.jobs.list_jobs(request=request, **_call_options(config)):
            ours = job.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
            if ours and job.labels.get(OWNER_LABEL) == label_value(config.owner) and prefix in job.name:
                yield job


def _load(host: HostSpec) -> CloudRunConfig:
    try:
        return load_config(host)
    except ConfigError as exc:
        raise ExecutorError(f"Cloud Run host {host.name!r} is misconfigured: {exc}") from exc


def _age(moment: datetime | None) -> float:
    """Return how many seconds ago ``moment`` was (0 when unknown)."""
    if moment is None:
        return 0.0
    return (datetime.now(UTC) - moment) / timedelta(seconds=1)


def _call_options(config: CloudRunConfig) -> dict[str, Any]:
    # No client-side retries: a failed call surfaces as ExecutorUnavailable and the manager
    # decides when to try again, instead of a worker hanging inside a library's backoff.
    return {"retry": None, "timeout": config.api_timeout_seconds}


def _finish(pending: operation.Operation, config: CloudRunConfig) -> None:
    """Wait for a long-running operation to finish; raise its error if it failed."""
    try:
        pending.result(  # type: ignore[no-untyped-call]
            timeout=config.api_timeout_seconds,
            polling=_OPERATION_POLLING.with_timeout(config.api_timeout_seconds),
        )
    except TimeoutError as exc:
        raise ExecutorUnavailable(
            f"Cloud Run operation {pending.operation.name!r} did not finish within "
            f"{config.api_timeout_seconds} s; try again later."
        ) from exc


plugin = CloudRunExecutor()
