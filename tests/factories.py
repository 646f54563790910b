"""Plain functions that make hosts, templates and jobs for tests (through the real model API)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager.states import JobStatus, TerminationReason

# The steps that walk a new job to each status through legal transitions only.
_PATHS: dict[JobStatus, tuple[JobStatus, ...]] = {
    JobStatus.PENDING: (),
    JobStatus.LAUNCHING: (JobStatus.LAUNCHING,),
    JobStatus.RUNNING: (JobStatus.LAUNCHING, JobStatus.RUNNING),
    JobStatus.COMPLETED: (JobStatus.LAUNCHING, JobStatus.RUNNING, JobStatus.COMPLETED),
    JobStatus.FAILED: (JobStatus.LAUNCHING, JobStatus.RUNNING, JobStatus.FAILED),
    JobStatus.TIMEOUT: (JobStatus.LAUNCHING, JobStatus.RUNNING, JobStatus.TIMEOUT),
    JobStatus.RETRYING: (JobStatus.LAUNCHING, JobStatus.RUNNING, JobStatus.RETRYING),
    JobStatus.CANCELLED: (JobStatus.CANCELLED,),
}


# The worker the factory's claims are made for.
TEST_WORKER = "test-worker"
# The reason each ending records, so the job lands in the status wanted.
_ENDINGS = {
    JobStatus.COMPLETED: TerminationReason.COMPLETED,
    JobStatus.FAILED: TerminationReason.NON_ZERO_EXIT,
    JobStatus.TIMEOUT: TerminationReason.TIMEOUT,
    JobStatus.RETRYING: TerminationReason.NON_ZERO_EXIT,
}


def make_host(name: str = "mock-1", **fields: Any) -> ExecutorHost:
    """Create an active, healthy mock host."""
    values: dict[str, Any] = {
        "executor_type": "mock",
        "host_type": ExecutorHost.HostType.UNIX,
        "connection_string": "unix:///var/run/mock.sock",
        "max_concurrent_jobs": 5,
    }
    values.update(fields)
    return ExecutorHost.objects.create(name=name, **values)


def make_template(
    name: str = "base", text: str = "APP_ENV=test\nLOG_LEVEL=info\n"
) -> EnvironmentVariableTemplate:
    return EnvironmentVariableTemplate.objects.create(name=name, environment_variables_text=text)


def make_job(*, host: ExecutorHost | None = None, **kwargs: Any) -> ContainerJob:
    """Queue a valid mock job through create_job (a host is made if none is given)."""
    kwargs.setdefault("image", "busybox:latest")
    kwargs.setdefault("command", "echo hello")
    kwargs.setdefault("name", "test-job")
    if host is None:
        host = ExecutorHost.objects.filter(name="mock-1").first() or make_host()
    return ContainerJob.objects.create_job(docker_host=host, **kwargs)


def advance(job: ContainerJob, status: JobStatus, **fields: Any) -> ContainerJob:
    """Walk ``job`` from PENDING to ``status`` through the event methods a worker (or a person) calls.

    ``fields`` go with the last step: a finished job's result fields (``last_error`` becomes the
    error recorded with the exit), or nothing else.
    """
    for step in _PATHS[status]:
        last = fields if step == status else {}
        if step == JobStatus.LAUNCHING:
            host = job.docker_host or make_host()
            now = timezone.now()
            (job,) = ContainerJob.mark_launching(
                [job], host=host, worker_id=TEST_WORKER, lease_expires_at=now + timedelta(seconds=60), now=now
            )
        elif step == JobStatus.RUNNING:
            job.mark_running(job.owner(), execution_id=f"exec-{job.pk}")
        elif step == JobStatus.CANCELLED:
            job.request_cancel()
        else:
            result = {"exit_code": 0 if step == JobStatus.COMPLETED else 1, **last}
            error = result.pop("last_error", "")
            job.record_exit(
                job.owner(),
                _ENDINGS[step],
                result=result,
                error=error,
                # An engine that went away under the job: retried at once, whatever max_retries says.
                interrupted=step == JobStatus.RETRYING,
            )
    return job
