"""The ``cloudrun`` executor: each job runs as a one-task Cloud Run Job execution.

A job id maps to one Cloud Run job (named from the id, see :mod:`.naming`); launching runs it once and
the execution's full resource name is the execution id. Cloud Run's own retries are off, so a failed
job is retried only by the manager.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

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
from cloudrun_executor.errors import GOOGLE_ERRORS, wrap
from cloudrun_executor.health import check_health
from cloudrun_executor.limits import cloudrun_job_violations
from cloudrun_executor.logs import read_logs
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
from cloudrun_executor.status import execution_state, execution_status, needs_tasks
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
            if isinstance(exc, api_exceptions.GoogleAPICallError) and job.image in str(exc.message):
                # Cloud Run resolves the image when the job is created or updated and names it when
                # it cannot ("Image '...' not found.").
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
                _finish(created, config)
                return None
            except api_exceptions.AlreadyExists:
                pass  # a concurrent launch of the same job created it first: continue as if it existed
        # One Cloud Run job per job id, so any execution it still has is this job's launch.
        executions = self._executions_of(clients, path, calls)
        if executions:
            return executions[0].name
        desired.name = path
        _finish(clients.jobs.update_job(job=desired, **calls), config)
        return None

    def check_status(self, host: HostSpec, execution_id: str) -> ExecutionStatus:
        config, name = self._config_and_name(host, execution_id)
        if name is None:
            return ExecutionStatus(ExecutionState.NOT_FOUND)
        clients = self._connect(host, config)
        calls = _call_options(config)
        try:
            execution = clients.executions.get_execution(name=execution_id, **calls)
            tasks = (
                list(clients.tasks.list_tasks(parent=execution_id, **calls)) if needs_tasks(execution) else []
            )
        except api_exceptions.NotFound:
            return ExecutionStatus(ExecutionState.NOT_FOUND)
        except GOOGLE_ERRORS as exc:
            raise wrap(exc, f"read Cloud Run execution {execution_id!r}") from exc
        return execution_status(execution, tasks)

    def get_logs(self, host: HostSpec, execution_id: str, *, timestamps: bool) -> ExecutionLogs:
        config, clients, name, execution = self._existing(host, execution_id)
        try:
            return read_logs(
                clients.logging,
                config.project,
                name,
                since=execution.create_time,
                timestamps=timestamps,
                limit=config.log_cap_bytes,
                timeout=config.api_timeout_seconds,
            )
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

    def get_health_status(self, host: HostSpec) -> HealthStatus:
        return check_health(host, self._clients)

    def list_executions(self, host: HostSpec) -> list[tuple[str, str]]:
        config, clients = self._session(host)
        calls = _call_options(config)
        found: list[tuple[str, str]] = []
        try:
            for job in self._our_jobs(config, clients):
                job_id = job.annotations.get(JOB_ID_ANNOTATION)
                if job_id:
                    found.extend((job_id, e.name) for e in self._executions_of(clients, job.name, calls))
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
        prefix = f"{config.location}/jobs/{config.job_name_prefix}-"
        for job in clients.jobs.list_jobs(request=request, **_call_options(config)):
            ours = job.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
            if (
                ours
                and job.labels.get(OWNER_LABEL) == label_value(config.owner)
                and job.name.startswith(prefix)
            ):
                yield job


def _load(host: HostSpec) -> CloudRunConfig:
    try:
        return load_config(host)
    except ConfigError as exc:
        raise ExecutorError(f"Cloud Run host {host.name!r} is misconfigured: {exc}") from exc


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
