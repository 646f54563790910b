"""A local fake of the Cloud Run Admin API v2 and Cloud Logging API, over real gRPC.

The server speaks the wire protocol the Google client libraries speak: the services
``google.cloud.run.v2.Jobs``, ``Executions`` and ``Tasks``, ``google.longrunning.Operations`` and
``google.logging.v2.LoggingServiceV2``, with each request and response serialised by the client
library's own message classes. A plugin under test uses the real ``google-cloud-run`` and
``google-cloud-logging`` clients against it; nothing is mocked.

Start it with :func:`start_fake_cloudrun` (or the ``fake_cloudrun`` fixture in
``tests/cloudrun/conftest.py``) and build a host for it with :func:`cloudrun_host_spec`. Jobs play
the ``FAKE_*`` scenario in their environment (see :mod:`tests.fakes.cloudrun_state`); the control
methods on :class:`FakeCloudRun` make the API fail, throttle or slow it, deny permissions or lose
executions, and ``fake.realism`` (:class:`tests.fakes.cloudrun_realism.Realism`) sets how late logs,
task results and job readiness arrive.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import grpc
from google.cloud import run_v2
from google.cloud.logging_v2 import types as logging_types
from google.longrunning import operations_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2

from container_manager_core.types import HostSpec
from tests.fakes.cloudrun_realism import RateLimiter, Realism
from tests.fakes.cloudrun_state import ApiError, FakeCloudRunState, FakeOperation, Resource

DEFAULT_PROJECT = "fake-project"
DEFAULT_REGION = "europe-west1"

Handler = Callable[[Any, grpc.ServicerContext], Any]


class FakeCloudRun:
    """A running fake server and the knobs tests turn on it."""

    def __init__(
        self, *, project: str = DEFAULT_PROJECT, region: str = DEFAULT_REGION, log_page_size: int = 3
    ) -> None:
        self.project = project
        self.region = region
        self.log_page_size = log_page_size
        self.state = FakeCloudRunState()
        self.calls: list[str] = []
        self._failures: dict[str, collections.deque[tuple[grpc.StatusCode, str]]] = collections.defaultdict(
            collections.deque
        )
        self._denied = False
        self._rates = RateLimiter()
        self._slow: dict[str, float] = {}
        self._lock = threading.Lock()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="fake-cloudrun")
        )
        self._server.add_generic_rpc_handlers(self._handlers())
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{port}"
        self._server.start()

    @property
    def location(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    @property
    def project_number(self) -> str:
        """Return the number Cloud Run puts in resource names in place of the project id."""
        return self.state.canonical(f"projects/{self.project}").split("/")[1]

    @property
    def realism(self) -> Realism:
        """Return the timing and limits of the fake's current state (reset with it)."""
        return self.state.realism

    # Control -------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop serving; calls in flight are cut off."""
        self._server.stop(grace=None).wait()

    def reset(self) -> None:
        """Forget all resources, calls, injected failures, denials and timing changes."""
        with self._lock:
            self.state = FakeCloudRunState()
            self.calls.clear()
            self._failures.clear()
            self._denied = False
            self._rates = RateLimiter()
            self._slow.clear()

    def fail_next(
        self, method: str, code: grpc.StatusCode, message: str = "Injected failure.", *, times: int = 1
    ) -> None:
        """Make the next ``times`` calls of ``method`` (e.g. ``"RunJob"``) fail with ``code``."""
        with self._lock:
            self._failures[method].extend([(code, message)] * times)

    def deny_permissions(self, denied: bool = True) -> None:
        """Answer every call with PERMISSION_DENIED, as for an identity without Cloud Run roles."""
        with self._lock:
            self._denied = denied

    def delay_starts(self, seconds: float) -> None:
        """Keep new executions pending for ``seconds`` before they start."""
        self.state.start_delay = seconds

    def lose_execution(self, execution_name: str) -> None:
        """Make an execution vanish without trace, as if deleted behind the manager's back."""
        self.state.lose_execution(execution_name)

    def refuse_image(self, image: str) -> None:
        """Make ``image`` missing: a job using it is created, then fails its Ready condition with
        CONTAINER_MISSING; an execution of a job created before fails before its container starts."""
        with self.state.lock:
            self.state.missing_images.setdefault(image, datetime.now(UTC))

    def deny_secret(self, secret: str) -> None:
        """Make the job's identity unable to read ``secret``: SECRETS_ACCESS_CHECK_FAILED at readiness."""
        self.state.denied_secrets.add(secret)

    def limit_rate(self, method: str, per_minute: int | None) -> None:
        """Answer ``method`` with RESOURCE_EXHAUSTED beyond ``per_minute`` calls a minute (None: no limit)."""
        self._rates.limit(method, per_minute)

    def slow_down(self, method: str, seconds: float) -> None:
        """Make every call of ``method`` take ``seconds`` before it is answered."""
        with self._lock:
            self._slow[method] = seconds

    def job(self, short_name: str) -> run_v2.Job | None:
        """Return the stored job ``short_name`` in the fake's location, as Cloud Run keeps it."""
        with self.state.lock:
            name = self.state.canonical(f"{self.location}/jobs/{short_name}")
            return self.state.get_job(name) if name in self.state.jobs else None

    def job_names(self) -> list[str]:
        """Return the full names of every job the fake holds."""
        with self.state.lock:
            return sorted(self.state.jobs)

    def execution_names(self) -> list[str]:
        """Return the full names of every execution the fake holds."""
        with self.state.lock:
            return sorted(self.state.executions)

    def call_count(self, method: str) -> int:
        """Return how often ``method`` (e.g. ``"RunJob"``) was called."""
        return self.calls.count(method)

    # Wire ----------------------------------------------------------------------------------------

    def _guard(self, method: str, handler: Handler) -> Handler:
        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.calls.append(method)
                failures = self._failures.get(method)
                injected = failures.popleft() if failures else None
                denied = self._denied
                delay = self._slow.get(method, 0.0)
            if delay:
                time.sleep(delay)
            if not self._rates.allow(method):
                # The wording Google APIs use for a per-minute quota (HTTP 429, RESOURCE_EXHAUSTED),
                # as quoted in public projects' issues.
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"Quota exceeded for quota metric '{method} requests' and limit '{method} requests per "
                    f"minute' of service for consumer 'project_number:{self.project_number}'.",
                )
            if denied:
                context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"Permission denied on {method} for the caller (or the resource may not exist).",
                )
            if injected is not None:
                context.abort(*injected)
            try:
                return handler(request, context)
            except ApiError as exc:
                context.abort(exc.code, exc.message)

        return guarded

    def _handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        def service(name: str, methods: dict[str, tuple[Handler, Any, Any]]) -> grpc.GenericRpcHandler:
            return grpc.method_handlers_generic_handler(
                name,
                {
                    method: grpc.unary_unary_rpc_method_handler(
                        self._guard(method, handler), request_deserializer=decode, response_serializer=encode
                    )
                    for method, (handler, decode, encode) in methods.items()
                },
            )

        op_out = operations_pb2.Operation.SerializeToString
        return (
            service(
                "google.cloud.run.v2.Jobs",
                {
                    "CreateJob": (self._create_job, run_v2.CreateJobRequest.deserialize, op_out),
                    "GetJob": (self._get_job, run_v2.GetJobRequest.deserialize, run_v2.Job.serialize),
                    "ListJobs": (
                        self._list_jobs,
                        run_v2.ListJobsRequest.deserialize,
                        run_v2.ListJobsResponse.serialize,
                    ),
                    "UpdateJob": (self._update_job, run_v2.UpdateJobRequest.deserialize, op_out),
                    "DeleteJob": (self._delete_job, run_v2.DeleteJobRequest.deserialize, op_out),
                    "RunJob": (self._run_job, run_v2.RunJobRequest.deserialize, op_out),
                },
            ),
            service(
                "google.cloud.run.v2.Executions",
                {
                    "GetExecution": (
                        self._get_execution,
                        run_v2.GetExecutionRequest.deserialize,
                        run_v2.Execution.serialize,
                    ),
                    "ListExecutions": (
                        self._list_executions,
                        run_v2.ListExecutionsRequest.deserialize,
                        run_v2.ListExecutionsResponse.serialize,
                    ),
                    "DeleteExecution": (
                        self._delete_execution,
                        run_v2.DeleteExecutionRequest.deserialize,
                        op_out,
                    ),
                    "CancelExecution": (
                        self._cancel_execution,
                        run_v2.CancelExecutionRequest.deserialize,
                        op_out,
                    ),
                },
            ),
            service(
                "google.cloud.run.v2.Tasks",
                {
                    "ListTasks": (
                        self._list_tasks,
                        run_v2.ListTasksRequest.deserialize,
                        run_v2.ListTasksResponse.serialize,
                    )
                },
            ),
            service(
                "google.longrunning.Operations",
                {
                    "GetOperation": (
                        self._get_operation,
                        operations_pb2.GetOperationRequest.FromString,
                        op_out,
                    )
                },
            ),
            service(
                "google.logging.v2.LoggingServiceV2",
                {
                    "ListLogEntries": (
                        self._list_log_entries,
                        logging_types.ListLogEntriesRequest.deserialize,
                        logging_types.ListLogEntriesResponse.serialize,
                    )
                },
            ),
        )

    # Jobs ----------------------------------------------------------------------------------------

    def _create_job(
        self, request: run_v2.CreateJobRequest, _context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        if request.validate_only:
            raise ApiError(grpc.StatusCode.UNIMPLEMENTED, "The fake does not support validate_only.")
        return self._operation_proto(self.state.create_job(request.parent, request.job_id, request.job))

    def _get_job(self, request: run_v2.GetJobRequest, _context: grpc.ServicerContext) -> run_v2.Job:
        return self.state.get_job(request.name)

    def _list_jobs(
        self, request: run_v2.ListJobsRequest, _context: grpc.ServicerContext
    ) -> run_v2.ListJobsResponse:
        page, token = self._page(
            self.state.list_jobs(request.parent),
            request.page_size,
            request.page_token,
            self.state.max_page_size,
        )
        return run_v2.ListJobsResponse(jobs=page, next_page_token=token)

    def _update_job(
        self, request: run_v2.UpdateJobRequest, _context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        return self._operation_proto(self.state.update_job(request.job, request.allow_missing))

    def _delete_job(
        self, request: run_v2.DeleteJobRequest, _context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        return self._operation_proto(self.state.delete_job(request.name))

    def _run_job(
        self, request: run_v2.RunJobRequest, _context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        if "overrides" in request:
            raise ApiError(grpc.StatusCode.UNIMPLEMENTED, "The fake does not support RunJob overrides.")
        return self._operation_proto(self.state.run_job(request.name))

    # Executions ----------------------------------------------------------------------------------

    def _get_execution(
        self, request: run_v2.GetExecutionRequest, _context: grpc.ServicerContext
    ) -> run_v2.Execution:
        return self.state.get_execution(request.name)

    def _list_executions(
        self, request: run_v2.ListExecutionsRequest, _context: grpc.ServicerContext
    ) -> run_v2.ListExecutionsResponse:
        page, token = self._page(
            self.state.list_executions(request.parent),
            request.page_size,
            request.page_token,
            self.state.max_page_size,
        )
        return run_v2.ListExecutionsResponse(executions=page, next_page_token=token)

    def _delete_execution(
        self, request: run_v2.DeleteExecutionRequest, _context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        return self._operation_proto(self.state.delete_execution(request.name))

    def _cancel_execution(
        self, request: run_v2.CancelExecutionRequest, _context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        return self._operation_proto(self.state.cancel_execution(request.name))

    def _list_tasks(
        self, request: run_v2.ListTasksRequest, _context: grpc.ServicerContext
    ) -> run_v2.ListTasksResponse:
        return run_v2.ListTasksResponse(tasks=self.state.list_tasks(request.parent))

    # Operations and logs -------------------------------------------------------------------------

    def _get_operation(
        self, request: operations_pb2.GetOperationRequest, _context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        done, resource, error = self.state.operation_state(request.name)
        return _operation_message(request.name, done, resource, error)

    def _operation_proto(self, op: FakeOperation) -> operations_pb2.Operation:
        done, resource, error = self.state.describe_operation(op)
        return _operation_message(op.name, done, resource, error)

    def _list_log_entries(
        self, request: logging_types.ListLogEntriesRequest, _context: grpc.ServicerContext
    ) -> logging_types.ListLogEntriesResponse:
        # An empty page with a token: the search "did not have time to search all the possible log
        # entries" (ListLogEntriesResponse, google/logging/v2/logging.proto); the caller must go on.
        empty_pages = self.state.realism.empty_log_pages
        token = request.page_token
        if not token and empty_pages:
            return logging_types.ListLogEntriesResponse(next_page_token="empty-1")  # noqa: S106 (a page token)
        if token.startswith("empty-"):
            served = int(token.removeprefix("empty-"))
            if served < empty_pages:
                return logging_types.ListLogEntriesResponse(next_page_token=f"empty-{served + 1}")
            token = ""
        entries = self.state.list_log_entries(list(request.resource_names), request.filter, request.order_by)
        page, token = self._page(entries, request.page_size, token, self.log_page_size)
        return logging_types.ListLogEntriesResponse(entries=page, next_page_token=token)

    @staticmethod
    def _page(items: list[Any], size: int, token: str, cap: int) -> tuple[list[Any], str]:
        # The fake answers with small pages on purpose, so a client that ignores page tokens loses data.
        start = int(token) if token else 0
        size = min(size or cap, cap)
        end = start + size
        return items[start:end], (str(end) if end < len(items) else "")


def _operation_message(
    name: str, done: bool, resource: Resource | None, error: tuple[int, str] | None = None
) -> operations_pb2.Operation:
    op = operations_pb2.Operation(name=name, done=done)
    if resource is not None:
        packed = any_pb2.Any()
        packed.Pack(type(resource).pb(resource))
        op.metadata.CopyFrom(packed)
        if done and error is not None:
            op.error.CopyFrom(status_pb2.Status(code=error[0], message=error[1]))
        elif done:
            op.response.CopyFrom(packed)
    elif done:
        op.error.CopyFrom(
            status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="The resource is gone.")
        )
    return op


def start_fake_cloudrun(*, project: str = DEFAULT_PROJECT, region: str = DEFAULT_REGION) -> FakeCloudRun:
    """Start a fake Cloud Run and Logging API on a free port of 127.0.0.1."""
    return FakeCloudRun(project=project, region=region)


# What the test jobs need that Cloud Run cannot enforce, accepted by the operator of the fake host.
ACCEPTED_BY_TEST_HOSTS = ("non_root_user", "read_only_root", "pids_limit")
# The fake's lags are a fraction of a second (Realism), so a test host waits for them on that scale
# where a real host waits seconds.
FAST_TIMING = {
    "status_poll_seconds": 0.05,
    "log_quiet_seconds": 0.1,
    "log_wait_seconds": 3.0,
}


def cloudrun_host_spec(fake: FakeCloudRun, *, name: str = "fake-cloudrun", **config: Any) -> HostSpec:
    """Return a Cloud Run host that talks to ``fake``; ``config`` overrides or adds config keys.

    The host accepts ``ACCEPTED_BY_TEST_HOSTS`` as unenforced, as an operator must for Cloud Run to
    run any job; pass ``accept_unenforced=[]`` for a host that accepts nothing. It waits for late
    entries and results on the fake's time scale (``FAST_TIMING``).
    """
    return HostSpec(
        name=name,
        executor_type="cloudrun",
        config={
            "project": fake.project,
            "region": fake.region,
            "api_endpoint": fake.endpoint,
            "credentials": "anonymous",
            "job_name_prefix": "cmtest",
            "accept_unenforced": list(ACCEPTED_BY_TEST_HOSTS),
            **FAST_TIMING,
            **config,
        },
    )
