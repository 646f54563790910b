"""The fake Cloud Run's state: jobs, executions, tasks, operations and the log entries they write.

Nothing runs. An execution plays the scenario its job's environment describes (the fake's only
protocol, documented below) on the wall clock, so what the API reports changes with time the way
Cloud Run's does:

- ``FAKE_STDOUT`` / ``FAKE_STDERR``: text the container prints; each line becomes one log entry in
  ``run.googleapis.com/stdout`` or ``/stderr`` (a line that is a JSON object becomes a structured
  entry, as on Cloud Run);
- ``FAKE_EXIT_CODE``: the container's exit code (default 0);
- ``FAKE_DURATION``: seconds the container runs (default 0);
- ``FAKE_MEMORY_MB``: memory the container uses; above its limit Cloud Run kills it (see below);
- ``FAKE_REPORT``: how Cloud Run words a failure (``code-of`` by default, ``error``, ``code-and-message``,
  ``signal``): the variants public reports show, see :data:`FAILURE_REPORTS`.

How the real service behaves, and where that is written, is cited next to each behaviour: entries
arrive late (:class:`tests.fakes.cloudrun_realism.Realism`), a job's readiness resolves after
``CreateJob`` returns, task results lag the execution, names carry the project number.

An execution is pending for ``start_delay`` seconds, then runs one attempt, then (if the attempt
failed and the task template allows retries, 3 when ``max_retries`` is not sent) runs it again.
An attempt that outlives the task timeout fails with Cloud Run's timeout message. Validation
mirrors the Cloud Run Admin API v2 rules this project relies on, so a bad request fails here too.
"""

from __future__ import annotations

import itertools
import math
import re
import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import attrs
import grpc
from google.cloud import run_v2
from google.cloud.logging_v2.types import LogEntry
from google.protobuf import struct_pb2

from tests.fakes.cloudrun_realism import Realism, project_number
from tests.fakes.logging_agent import agent_record
from tests.fakes.logging_filter import compile_filter

DEFAULT_MAX_RETRIES = 3  # Cloud Run's default when the request leaves max_retries out
DEFAULT_TIMEOUT = timedelta(minutes=10)
MAX_TIMEOUT = timedelta(hours=168)
CANCEL_DELAY = 0.1  # seconds from a cancel request to the execution ending
ALLOWED_CPUS = {"1": 1, "2": 2, "4": 4, "6": 6, "8": 8}
MEMORY_RANGE_BY_CPU = {1: (512, 4096), 2: (512, 8192), 4: (2048, 16384), 6: (4096, 24576), 8: (4096, 32768)}
RESERVED_ENV = re.compile(r"^(CLOUD_RUN_.*|PORT|K_SERVICE|K_REVISION|K_CONFIGURATION)$")
JOB_ID = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LOCATION = re.compile(r"^projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
RESERVED_LABEL_PREFIXES = (
    "run.googleapis.com",
    "cloud.googleapis.com",
    "serving.knative.dev",
    "autoscaling.knative.dev",
)
STDOUT, STDERR, SYSTEM = (
    "run.googleapis.com%2Fstdout",
    "run.googleapis.com%2Fstderr",
    "run.googleapis.com%2Fvarlog%2Fsystem",
)
_State = run_v2.Condition.State
_Reason = run_v2.Condition.ExecutionReason
_Common = run_v2.Condition.CommonReason
MEMORY_DOCS = "https://cloud.google.com/run/docs/configuring/memory-limits"
SIGKILL = 9
# How Cloud Run words a failed task, as public projects' issues quote it: the classic sentence with a
# code, a code-less one, "exit code: N and message: ..." and a container killed by a signal (the
# TaskAttemptResult then carries term_signal and no exit_code, google/cloud/run/v2/task.proto).
FAILURE_REPORTS = {
    "code-of": "The container exited with an exit code of {code}.",
    "error": "The container exited with an error.",
    "code-and-message": "exit code: {code} and message: {last_line}",
    "signal": "Container terminated on signal {signal}.",
}


class ApiError(Exception):
    """A gRPC error the fake answers with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen
class Scenario:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    duration: float = 0.0
    memory_mb: int = 0
    report: str = "code-of"

    @classmethod
    def from_container(cls, container: run_v2.Container) -> Scenario:
        env = {e.name: e.value for e in container.env}
        report = env.get("FAKE_REPORT", "code-of")
        if report not in FAILURE_REPORTS:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"The fake knows no FAKE_REPORT {report!r}.")
        return cls(
            env.get("FAKE_STDOUT", ""),
            env.get("FAKE_STDERR", ""),
            int(env.get("FAKE_EXIT_CODE", "0")),
            float(env.get("FAKE_DURATION", "0")),
            int(env.get("FAKE_MEMORY_MB", "0")),
            report,
        )


@attrs.define
class FakeExecution:
    """One execution and the timeline its scenario, timeout and retries give it."""

    name: str
    job_name: str
    template: run_v2.ExecutionTemplate
    scenario: Scenario
    created: datetime
    start_delay: float
    realism: Realism = attrs.field(factory=Realism)
    project_id: str = "fake-project"
    # When each image went missing: gone before the execution starts, it fails before any container does.
    missing_images: dict[str, datetime] = attrs.field(factory=dict)
    cancelled_at: datetime | None = None

    @property
    def missing_image(self) -> str | None:
        image = self.task_template.containers[0].image
        removed = self.missing_images.get(image)
        return image if removed is not None and removed <= self.start else None

    @property
    def task_template(self) -> run_v2.TaskTemplate:
        return self.template.template

    @property
    def timeout(self) -> timedelta:
        return self.task_template.timeout or DEFAULT_TIMEOUT

    @property
    def max_retries(self) -> int:
        return self.task_template.max_retries if "max_retries" in self.task_template else DEFAULT_MAX_RETRIES

    @property
    def memory_limit_mib(self) -> int:
        limits = dict(self.task_template.containers[0].resources.limits)
        return int(_mebibytes(limits.get("memory", "512Mi")) or 512)

    @property
    def out_of_memory(self) -> bool:
        return self.scenario.memory_mb > self.memory_limit_mib

    @property
    def timed_out(self) -> bool:
        return not self.out_of_memory and self.scenario.duration > self.timeout.total_seconds()

    @property
    def failed(self) -> bool:
        return (
            self.missing_image is not None
            or self.out_of_memory
            or self.timed_out
            or self.scenario.exit_code != 0
        )

    @property
    def attempt_seconds(self) -> float:
        return min(self.scenario.duration, self.timeout.total_seconds())

    @property
    def attempts(self) -> int:
        if self.missing_image is not None:
            return 0
        return 1 + (self.max_retries if self.failed else 0)

    @property
    def start(self) -> datetime:
        return self.created + timedelta(seconds=self.start_delay)

    @property
    def natural_end(self) -> datetime:
        return self.start + timedelta(seconds=self.attempts * self.attempt_seconds)

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None and self.cancelled_at < self.natural_end

    @property
    def end(self) -> datetime:
        if self.cancelled and self.cancelled_at is not None:
            return self.cancelled_at + timedelta(seconds=CANCEL_DELAY)
        return self.natural_end

    def began(self, moment: datetime) -> bool:
        """Say whether something due at ``moment`` happens: not if a cancel came first."""
        return not (self.cancelled and self.cancelled_at is not None and self.cancelled_at <= moment)

    def started(self, now: datetime) -> bool:
        return self.missing_image is None and now >= self.start and self.began(self.start)

    def finished(self, now: datetime) -> bool:
        return now >= self.end

    def attempt_starts(self, now: datetime) -> list[datetime]:
        """Return when each attempt that has begun by ``now`` began."""
        starts = (self.start + timedelta(seconds=k * self.attempt_seconds) for k in range(self.attempts))
        return [s for s in starts if s <= now and self.began(s)]

    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def task_name(self) -> str:
        return f"{self.name}/tasks/{self.short_name()}-task0"

    def failure_reason(self) -> str:
        """Return what the task's status says went wrong, worded as Cloud Run words it."""
        if self.missing_image is not None:
            return f"Image '{self.missing_image}' not found."
        if self.timed_out:
            return "The configured timeout was reached."
        if self.out_of_memory:
            return FAILURE_REPORTS["signal"].format(signal=SIGKILL)
        lines = (self.scenario.stderr or self.scenario.stdout).splitlines()
        return FAILURE_REPORTS[self.scenario.report].format(
            code=self.scenario.exit_code, signal=SIGKILL, last_line=lines[-1] if lines else ""
        )

    def failure_message(self) -> str:
        return f"Task {self.short_name()}-task0 failed with message: {self.failure_reason()}"

    def to_proto(self, now: datetime) -> run_v2.Execution:
        started, finished = self.started(now), self.finished(now)
        attempts_begun = len(self.attempt_starts(now))
        execution = run_v2.Execution(
            name=self.name,
            uid=str(uuid.uuid5(uuid.NAMESPACE_URL, self.name)),
            generation=1,
            observed_generation=1,
            labels=dict(self.template.labels),
            annotations=dict(self.template.annotations),
            create_time=self.created,
            job=self.job_name.rsplit("/", 1)[-1],
            parallelism=1,
            task_count=self.template.task_count or 1,
            template=self.task_template,
            reconciling=not finished,
            running_count=1 if started and not finished else 0,
            retried_count=1 if attempts_begun > 1 else 0,
            log_uri=f"https://console.cloud.google.com/run/jobs/executions/details/{self.short_name()}",
            etag=f"fake-{attempts_begun}-{int(finished)}",
        )
        if started:
            execution.start_time = self.start
        conditions = [
            run_v2.Condition(
                type_="ResourcesAvailable",
                state=_State.CONDITION_SUCCEEDED if started or finished else _State.CONDITION_PENDING,
            ),
            run_v2.Condition(
                type_="Started", state=_State.CONDITION_SUCCEEDED if started else _State.CONDITION_PENDING
            ),
        ]
        if not finished:
            completed = run_v2.Condition(
                type_="Completed",
                state=_State.CONDITION_RECONCILING if started else _State.CONDITION_PENDING,
                execution_reason=_Reason.CANCELLING
                if self.cancelled_at is not None
                else _Reason.EXECUTION_REASON_UNDEFINED,
            )
        else:
            execution.completion_time = self.end
            if self.cancelled:
                execution.cancelled_count = 1
                # Condition.ExecutionReason.CANCELLED: "The execution was cancelled by users."
                completed = run_v2.Condition(
                    type_="Completed",
                    state=_State.CONDITION_SUCCEEDED
                    if self.realism.cancel_reads_succeeded
                    else _State.CONDITION_FAILED,
                    message="The execution was cancelled.",
                    execution_reason=_Reason.CANCELLED,
                )
            elif self.failed:
                execution.failed_count = 1
                completed = run_v2.Condition(
                    type_="Completed",
                    state=_State.CONDITION_FAILED,
                    message=self.failure_message(),
                    execution_reason=_Reason.NON_ZERO_EXIT_CODE
                    if self.scenario.exit_code and not self.timed_out
                    else _Reason.EXECUTION_REASON_UNDEFINED,
                )
            else:
                execution.succeeded_count = 1
                completed = run_v2.Condition(
                    type_="Completed",
                    state=_State.CONDITION_SUCCEEDED,
                    message=f"Execution completed successfully in {self.attempt_seconds:.1f}s.",
                )
            completed.last_transition_time = self.end
        conditions.append(completed)
        execution.conditions = conditions
        return execution

    def task_proto(self, now: datetime) -> run_v2.Task:
        task = run_v2.Task(
            name=self.task_name(),
            job=self.job_name.rsplit("/", 1)[-1],
            execution=self.short_name(),
            index=0,
            containers=list(self.task_template.containers),
            max_retries=self.max_retries,
            timeout=self.timeout,
            retried=max(0, len(self.attempt_starts(now)) - 1),
        )
        # The task is reconciled apart from its execution: its result may show up later
        # (Realism.result_lag), and a task whose container never started has no attempt result.
        settled = now >= self.end + timedelta(seconds=self.realism.result_lag)
        if settled and not self.cancelled and self.missing_image is None:
            task.last_attempt_result = self._attempt_result()
        return task

    def _attempt_result(self) -> run_v2.TaskAttemptResult:
        if not self.failed:
            return run_v2.TaskAttemptResult(status={"code": 0})
        # TaskAttemptResult (task.proto): "At most one of exit_code or term_signal will be set", and
        # exit_code "may be unset if the container was unable to exit cleanly with a code".
        result = run_v2.TaskAttemptResult(status={"code": 2, "message": self.failure_reason()})
        if self.out_of_memory or self.scenario.report == "signal":
            result.term_signal = SIGKILL
        elif not self.timed_out and self.scenario.report != "error":
            result.exit_code = self.scenario.exit_code
        return result

    def log_entries(self, region: str, now: datetime, *, visible_only: bool = True) -> Iterator[LogEntry]:
        """Yield the entries the container and Cloud Run have written by ``now`` and Logging shows."""
        for entry, printed in self._written_entries(region, now):
            lag = timedelta(seconds=self.realism.lag(entry.insert_id))
            entry.receive_timestamp = printed + lag
            if not visible_only or printed + lag <= now:
                yield entry

    def _written_entries(self, region: str, now: datetime) -> Iterator[tuple[LogEntry, datetime]]:
        counter = itertools.count()
        for attempt, begun in enumerate(self.attempt_starts(now)):
            moment = begun
            for log, text in ((STDOUT, self.scenario.stdout), (STDERR, self.scenario.stderr)):
                for line in text.splitlines():
                    moment += timedelta(microseconds=1)  # distinct times keep the printed order
                    yield self._entry(region, log, line, moment, attempt, next(counter)), moment
            attempt_end = begun + timedelta(seconds=self.attempt_seconds)
            if attempt_end <= now and self.began(attempt_end):
                yield (
                    self._entry(region, SYSTEM, self._end_line(), attempt_end, attempt, next(counter)),
                    attempt_end,
                )

    def _end_line(self) -> str:
        if self.out_of_memory:
            # The only trace of an OOM kill: a varlog/system entry, worded as public issues quote it.
            return (
                f"Memory limit of {self.memory_limit_mib} MiB exceeded with {self.scenario.memory_mb} MiB "
                f"used. Consider increasing the memory limit, see {MEMORY_DOCS}"
            )
        code = self.scenario.exit_code if not self.timed_out else 137
        return f"Container called exit({code})."

    def _entry(self, region: str, log: str, line: str, moment: datetime, attempt: int, n: int) -> LogEntry:
        insert_id = f"{self.short_name()}-{n:06d}"
        # LogEntry.log_name (log_entry.proto): a project number is translated to the project id in queries.
        entry = LogEntry(
            log_name=f"projects/{self.project_id}/logs/{log}",
            resource={
                "type": "cloud_run_job",
                "labels": {
                    "project_id": self.project_id,
                    "job_name": self.job_name.rsplit("/", 1)[-1],
                    "location": region,
                },
            },
            labels={
                "run.googleapis.com/execution_name": self.short_name(),
                "run.googleapis.com/task_index": "0",
                "run.googleapis.com/task_attempt": str(attempt),
                "instanceId": f"fake-instance-{attempt}",
            },
            timestamp=moment,
            insert_id=insert_id,
        )
        if log == SYSTEM:
            entry.text_payload = line
            entry.severity = "ERROR" if line.startswith("Memory limit") else "DEFAULT"
            return entry
        record = agent_record(line)
        entry.severity = record.severity
        if record.timestamp is not None:
            entry.timestamp = record.timestamp  # a printed time replaces the moment of printing
        for key, value in record.labels.items():
            entry.labels[key] = value
        entry.trace, entry.span_id = record.trace, record.span_id
        if record.json is not None:
            struct = struct_pb2.Struct()
            struct.update(record.json)
            LogEntry.pb(entry).json_payload.CopyFrom(struct)
        else:
            entry.text_payload = record.text or ""
        return entry


Resource = run_v2.Job | run_v2.Execution


@attrs.define
class FakeOperation:
    name: str
    kind: str  # "job" (done once the job is ready or failed), "execution" (done when it ends) or "done"
    target: str
    response: Resource | None = None


@attrs.frozen
class Readiness:
    """When a created or updated job's Ready condition resolves, and how (None: it succeeds)."""

    at: datetime
    failure: tuple[int, str] | None = None  # (Condition.CommonReason, message)


class FakeCloudRunState:
    """Everything the fake API knows, behind one lock."""

    def __init__(
        self, *, start_delay: float = 0.05, max_page_size: int = 2, realism: Realism | None = None
    ) -> None:
        self.lock = threading.RLock()
        self.start_delay = start_delay
        self.max_page_size = max_page_size
        self.realism = realism or Realism()
        self.jobs: dict[str, run_v2.Job] = {}
        self.readiness: dict[str, Readiness] = {}
        self.executions: dict[str, FakeExecution] = {}
        self.operations: dict[str, FakeOperation] = {}
        self.archived_logs: list[LogEntry] = []
        self.missing_images: dict[str, datetime] = {}
        self.denied_secrets: set[str] = set()
        self.project_ids: dict[str, str] = {}

    # Names ---------------------------------------------------------------------------------------

    def canonical(self, name: str) -> str:
        """Return ``name`` with the project number in place of the project id.

        Requests may name the project by id or number ("where {project} can be project id or number",
        google/cloud/run/v2/job.proto); Cloud Run's answers carry the number.
        """
        match = re.match(r"^projects/(?P<project>[^/]+)(?P<rest>/.*)?$", name)
        if match is None or match["project"].isdigit():
            return name
        number = project_number(match["project"])
        self.project_ids[number] = match["project"]
        return f"projects/{number}{match['rest'] or ''}"

    def project_id(self, number_or_id: str) -> str:
        return self.project_ids.get(number_or_id, number_or_id)

    # Jobs ----------------------------------------------------------------------------------------

    def create_job(self, parent: str, job_id: str, job: run_v2.Job) -> FakeOperation:
        parent = self.canonical(parent)
        project, region = _location(parent)
        if not JOB_ID.match(job_id):
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Job id {job_id!r} must be lowercase letters, digits and '-', start with a letter and be at most 63 characters.",
            )
        name = f"{parent}/jobs/{job_id}"
        if job.name and self.canonical(job.name) != name:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Job name {job.name!r} does not match {name!r}."
            )
        with self.lock:
            if name in self.jobs:
                raise ApiError(grpc.StatusCode.ALREADY_EXISTS, f"Resource '{job_id}' already exists.")
            if sum(n.startswith(parent + "/jobs/") for n in self.jobs) >= self.realism.max_jobs:
                # cloud.google.com/run/quotas: "Maximum number of jobs", 1000 per project and region.
                raise ApiError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"Quota exceeded: {parent} already holds the maximum of {self.realism.max_jobs} jobs.",
                )
            self._validate(job)
            stored = run_v2.Job(job)
            stored.name = name
            stored.uid = str(uuid.uuid4())
            stored.generation = 1
            stored.create_time = stored.update_time = _now()
            stored.etag = secrets.token_hex(4)
            self.jobs[name] = stored
            self.readiness[name] = self._readiness(stored)
            return self._operation(project, region, "job", name)

    def update_job(self, job: run_v2.Job, allow_missing: bool) -> FakeOperation:
        name = self.canonical(job.name)
        project, region = _location(name.rsplit("/jobs/", 1)[0])
        with self.lock:
            current = self.jobs.get(name)
            if current is None and not allow_missing:
                raise ApiError(grpc.StatusCode.NOT_FOUND, f"Resource '{job.name}' was not found.")
            self._validate(job)
            stored = run_v2.Job(job)
            stored.name = name
            if current is not None:
                stored.uid, stored.create_time = current.uid, current.create_time
                stored.generation = current.generation + 1
                stored.execution_count = current.execution_count
                stored.latest_created_execution = current.latest_created_execution
            stored.update_time = _now()
            stored.etag = secrets.token_hex(4)
            self.jobs[name] = stored
            self.readiness[name] = self._readiness(stored)
            return self._operation(project, region, "job", name)

    def _readiness(self, job: run_v2.Job) -> Readiness:
        """Decide how the job's Ready condition resolves; CreateJob itself accepts the job.

        Condition.CommonReason (google/cloud/run/v2/condition.proto) names the failures: CONTAINER_MISSING
        (Cloud Run words it "Image '...' not found.") and SECRETS_ACCESS_CHECK_FAILED.
        """
        at = _now() + timedelta(seconds=self.realism.readiness_delay)
        container = job.template.template.containers[0]
        if container.image in self.missing_images:
            return Readiness(at, (_Common.CONTAINER_MISSING, f"Image '{container.image}' not found."))
        for env in container.env:
            secret = env.value_source.secret_key_ref.secret
            if secret and secret in self.denied_secrets:
                account = job.template.template.service_account or "the default compute service account"
                return Readiness(
                    at,
                    (
                        _Common.SECRETS_ACCESS_CHECK_FAILED,
                        f"Permission denied on secret: {secret}/versions/{env.value_source.secret_key_ref.version} "
                        f"for Revision service account {account}. The service account used must be granted "
                        "the 'Secret Manager Secret Accessor' role (roles/secretmanager.secretAccessor) at "
                        "the secret, project or higher level.",
                    ),
                )
        return Readiness(at)

    def _job_proto(self, name: str, now: datetime) -> run_v2.Job:
        job = run_v2.Job(self.jobs[name])
        readiness = self.readiness[name]
        ready = run_v2.Condition(type_="Ready", state=_State.CONDITION_RECONCILING)
        if now >= readiness.at and readiness.failure is None:
            ready = run_v2.Condition(type_="Ready", state=_State.CONDITION_SUCCEEDED)
        elif now >= readiness.at and readiness.failure is not None:
            ready = run_v2.Condition(
                type_="Ready",
                state=_State.CONDITION_FAILED,
                reason=_Common(readiness.failure[0]),
                message=readiness.failure[1],
            )
        if now >= readiness.at:
            ready.last_transition_time = readiness.at
        job.terminal_condition = ready
        job.reconciling = now < readiness.at
        job.observed_generation = job.generation if now >= readiness.at else job.generation - 1
        return job

    def get_job(self, name: str) -> run_v2.Job:
        name = self.canonical(name)
        with self.lock:
            if name not in self.jobs:
                raise ApiError(grpc.StatusCode.NOT_FOUND, f"Resource '{name}' was not found.")
            return self._job_proto(name, _now())

    def list_jobs(self, parent: str) -> list[run_v2.Job]:
        parent = self.canonical(parent)
        _location(parent)
        now = _now()
        with self.lock:
            return [self._job_proto(n, now) for n in sorted(self.jobs) if n.startswith(parent + "/jobs/")]

    def delete_job(self, name: str) -> FakeOperation:
        name = self.canonical(name)
        project, region = _location(name.rsplit("/jobs/", 1)[0])
        with self.lock:
            job = self.get_job(name)
            for execution in [e for e in self.executions.values() if e.job_name == name]:
                self._forget_execution(execution.name, archive=True)
            del self.jobs[name]
            del self.readiness[name]
            return self._operation(project, region, "done", name, response=job)

    def run_job(self, name: str) -> FakeOperation:
        name = self.canonical(name)
        project, region = _location(name.rsplit("/jobs/", 1)[0])
        with self.lock:
            job = self.jobs.get(name)
            if job is None:
                raise ApiError(grpc.StatusCode.NOT_FOUND, f"Resource '{name}' was not found.")
            ready = self._job_proto(name, _now()).terminal_condition
            if ready.state != _State.CONDITION_SUCCEEDED:
                detail = ready.message or "it is still reconciling"
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION, f"Job '{name}' is not ready and cannot run: {detail}"
                )
            short = f"{name.rsplit('/', 1)[-1]}-{''.join(secrets.choice('abcdefghijklmnopqrstuvwxyz0123456789') for _ in range(5))}"
            execution_name = f"{name}/executions/{short}"
            container = job.template.template.containers[0]
            self.executions[execution_name] = FakeExecution(
                name=execution_name,
                job_name=name,
                template=run_v2.ExecutionTemplate(job.template),
                scenario=Scenario.from_container(container),
                created=_now(),
                start_delay=self.start_delay,
                realism=self.realism,
                project_id=self.project_id(project),
                # An image deleted after the job became ready fails the execution before it starts.
                missing_images=self.missing_images,
            )
            job.execution_count += 1
            job.latest_created_execution = run_v2.ExecutionReference(name=execution_name, create_time=_now())
            return self._operation(project, region, "execution", execution_name)

    # Executions ----------------------------------------------------------------------------------

    def execution(self, name: str) -> FakeExecution:
        name = self.canonical(name)
        with self.lock:
            execution = self.executions.get(name)
            if execution is None:
                raise ApiError(grpc.StatusCode.NOT_FOUND, f"Resource '{name}' was not found.")
            return execution

    def get_execution(self, name: str) -> run_v2.Execution:
        return self.execution(name).to_proto(_now())

    def list_executions(self, parent: str) -> list[run_v2.Execution]:
        parent = self.canonical(parent)
        location, _, job = parent.rpartition("/jobs/")
        _location(location)
        now = _now()
        with self.lock:
            if job != "-" and parent not in self.jobs:
                raise ApiError(grpc.StatusCode.NOT_FOUND, f"Resource '{parent}' was not found.")
            chosen = [
                e
                for n, e in sorted(self.executions.items())
                if (e.job_name == parent if job != "-" else n.startswith(location + "/jobs/"))
            ]
            return [e.to_proto(now) for e in chosen]

    def cancel_execution(self, name: str) -> FakeOperation:
        name = self.canonical(name)
        project, region = _location(name.split("/jobs/", 1)[0])
        with self.lock:
            execution = self.execution(name)
            now = _now()
            if execution.finished(now):
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION, f"Execution '{name}' has already completed."
                )
            if execution.cancelled_at is None:
                execution.cancelled_at = now
            return self._operation(project, region, "execution", name)

    def delete_execution(self, name: str) -> FakeOperation:
        name = self.canonical(name)
        project, region = _location(name.split("/jobs/", 1)[0])
        with self.lock:
            execution = self.execution(name)
            now = _now()
            if not execution.finished(now):
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Execution '{name}' is still running; cancel it before deleting it.",
                )
            snapshot = execution.to_proto(now)
            self._forget_execution(name, archive=True)
            return self._operation(project, region, "done", name, response=snapshot)

    def lose_execution(self, name: str) -> None:
        with self.lock:
            self._forget_execution(self.canonical(name), archive=False)

    def _forget_execution(self, name: str, *, archive: bool) -> None:
        execution = self.executions.pop(name)
        if archive:
            # Entries still on their way keep arriving after the execution is gone.
            _project, region = _location(name.split("/jobs/", 1)[0])
            self.archived_logs.extend(execution.log_entries(region, execution.end, visible_only=False))

    def list_tasks(self, parent: str) -> list[run_v2.Task]:
        with self.lock:
            return [self.execution(parent).task_proto(_now())]

    # Operations ----------------------------------------------------------------------------------

    def _operation(
        self, project: str, region: str, kind: str, target: str, *, response: Resource | None = None
    ) -> FakeOperation:
        name = f"projects/{project}/locations/{region}/operations/{uuid.uuid4()}"
        op = FakeOperation(name, kind, target, response=response)
        self.operations[name] = op
        return op

    def operation_state(self, name: str) -> tuple[bool, Resource | None, tuple[int, str] | None]:
        """Return ``(done, resource, error)`` for a polled operation."""
        with self.lock:
            op = self.operations.get(self.canonical(name)) or self.operations.get(name)
            if op is None:
                raise ApiError(grpc.StatusCode.NOT_FOUND, f"Operation '{name}' was not found.")
            return self.describe_operation(op)

    def describe_operation(self, op: FakeOperation) -> tuple[bool, Resource | None, tuple[int, str] | None]:
        """Return ``(done, resource, error)``: the operation's response when done, its metadata before."""
        with self.lock:
            now = _now()
            if op.kind == "job":
                if op.target not in self.jobs:
                    return True, op.response, None
                job = self._job_proto(op.target, now)
                readiness = self.readiness[op.target]
                # The operation ends with the job's readiness; a failed Ready condition fails it.
                error = (
                    (grpc.StatusCode.FAILED_PRECONDITION.value[0], readiness.failure[1])
                    if readiness.failure is not None
                    else None
                )
                # Creating or updating a job takes Cloud Run a moment: never done in the first answer.
                done = now >= readiness.at and op.response is not None
                op.response = job
                return done, job, error if done else None
            if op.kind == "execution":
                execution = self.executions.get(op.target)
                if execution is None:
                    return True, op.response, None  # deleted: the last known state stands
                op.response = execution.to_proto(now)
                return execution.finished(now), op.response, None
            return True, op.response, None

    # Logs ----------------------------------------------------------------------------------------

    def list_log_entries(self, resource_names: list[str], filter_text: str, order_by: str) -> list[LogEntry]:
        if len(resource_names) != 1 or not re.match(r"^projects/[^/]+$", resource_names[0]):
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"The fake reads exactly one project, got {resource_names!r}.",
            )
        project = self.project_id(resource_names[0].split("/", 1)[1])
        try:
            matches = compile_filter(filter_text)
        except ValueError as exc:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        if order_by not in ("", "timestamp asc", "timestamp desc"):
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"Unsupported order_by {order_by!r}.")
        now = _now()
        with self.lock:
            entries = [e for e in self.archived_logs if e.receive_timestamp <= now]
            for name, execution in self.executions.items():
                _project, region = _location(name.split("/jobs/", 1)[0])
                entries.extend(execution.log_entries(region, now))
        chosen = [
            e
            for e in entries
            if e.log_name.startswith(f"projects/{project}/logs/") and matches(_fields(e), _times(e))
        ]
        chosen.sort(key=lambda e: e.timestamp, reverse=order_by == "timestamp desc")
        return chosen

    # Validation ----------------------------------------------------------------------------------

    def _validate(self, job: run_v2.Job) -> None:
        _check_labels(job.labels)
        _check_labels(job.template.labels)
        containers = job.template.template.containers
        if len(containers) != 1:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "The fake runs jobs with exactly one container.")
        container = containers[0]
        if not container.image:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT, "spec.template.spec.containers[0].image: Required."
            )
        for env in container.env:
            if RESERVED_ENV.match(env.name):
                raise ApiError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"The following reserved env names were provided: {env.name}. These values are automatically set by the system.",
                )
        _check_resources(container.resources.limits)
        timeout = job.template.template.timeout
        if timeout is not None and timeout > MAX_TIMEOUT:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "Task timeout must be at most 168 hours.")
        for mount in container.volume_mounts:
            if re.match(r"^/(dev|proc|sys)(/|$)", mount.mount_path):
                raise ApiError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Volumes cannot be mounted at {mount.mount_path!r}."
                )
        mounted = {m.name for m in container.volume_mounts}
        volumes = {v.name for v in job.template.template.volumes}
        if not mounted <= volumes:
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Volume mounts {sorted(mounted - volumes)!r} name no volume.",
            )


def _location(parent: str) -> tuple[str, str]:
    match = LOCATION.match(parent)
    if match is None:
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid resource name {parent!r}.")
    return match["project"], match["region"]


def _check_labels(labels: object) -> None:
    for key, value in dict(labels).items():  # type: ignore[call-overload]
        if (
            key.startswith(RESERVED_LABEL_PREFIXES)
            or not LABEL_KEY.match(key)
            or not LABEL_VALUE.match(value)
        ):
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid label {key!r}: {value!r}.")


def _check_resources(limits: object) -> None:
    values = dict(limits)  # type: ignore[call-overload]
    cpu = ALLOWED_CPUS.get(values.get("cpu", "1"))
    if cpu is None:
        raise ApiError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Invalid value for CPU {values.get('cpu')!r}: jobs take 1, 2, 4, 6 or 8.",
        )
    memory = _mebibytes(values.get("memory", "512Mi"))
    least, most = MEMORY_RANGE_BY_CPU[cpu]
    if memory is None or not least <= memory <= most:
        raise ApiError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Invalid value for memory {values.get('memory')!r} with {cpu} CPU.",
        )


def _mebibytes(text: str) -> float | None:
    match = re.match(r"^(\d+(?:\.\d+)?)(Mi|Gi|M|G)$", text)
    if match is None:
        return None
    scale = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}[match[2]]
    return math.floor(float(match[1]) * scale)


def _times(entry: LogEntry) -> dict[str, datetime]:
    return {"timestamp": entry.timestamp, "receiveTimestamp": entry.receive_timestamp}


def _fields(entry: LogEntry) -> dict[str, str]:
    fields = {"logName": entry.log_name, "resource.type": entry.resource.type}
    fields.update({f"resource.labels.{k}": v for k, v in entry.resource.labels.items()})
    fields.update({f"labels.{k}": v for k, v in entry.labels.items()})
    return fields
