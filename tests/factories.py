"""Plain functions that make hosts, templates and jobs for tests (through the real model API)."""

from __future__ import annotations

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
    """Walk ``job`` from PENDING to ``status`` through legal transitions, as a worker would."""
    now = timezone.now()
    for step in _PATHS[status]:
        changes: dict[str, Any] = {}
        if step == JobStatus.LAUNCHING:
            # worker_id is a guard in _transition, not a change: a worker claims with its own UPDATE.
            changes = {"launched_at": now}
        elif step == JobStatus.RUNNING:
            changes = {"execution_id": f"exec-{job.pk}", "started_at": now}
        elif step == JobStatus.COMPLETED:
            changes = {"exit_code": 0, "termination_reason": TerminationReason.COMPLETED, "completed_at": now}
        elif step in (JobStatus.FAILED, JobStatus.TIMEOUT):
            reason = (
                TerminationReason.NON_ZERO_EXIT if step == JobStatus.FAILED else TerminationReason.TIMEOUT
            )
            changes = {"exit_code": 1, "termination_reason": reason, "completed_at": now}
        elif step == JobStatus.CANCELLED:
            changes = {"termination_reason": TerminationReason.CANCELLED, "completed_at": now}
        if step == status:
            changes.update(fields)
        job._transition(step, **changes)
    return job
