"""Read a task job's row as Django's ``TaskResult``: status, timestamps, return value, errors.

``errors`` and ``worker_ids`` have one entry per attempt, as Django's ``TaskResult.attempts``
(``len(worker_ids)``) expects: each earlier attempt's error is read from its ``JobAttempt`` (the
runner's report in that attempt's stored stdout, or how its container ended).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.utils.module_loading import import_string

from container_manager.states import FINISHED_STATUSES, JobStatus, TerminationReason
from container_manager.tasks import channel, errors

if TYPE_CHECKING:
    from container_manager.attempts import JobAttempt
    from container_manager.models import ContainerJob

# LAUNCHING stays READY: the task starts (and task_started fires) when its container runs.
_WAITING = frozenset({JobStatus.PENDING, JobStatus.RETRYING, JobStatus.LAUNCHING})


def task_call(job: ContainerJob) -> dict[str, Any]:
    """Return the job's record of its call: path, backend, queue, args and kwargs."""
    if not isinstance(job.task, dict):
        raise TypeError(f"Job {job.pk} was not enqueued as a Django task.")
    return job.task


def outcome(job: ContainerJob, stdout: str | None = None) -> channel.Outcome | None:
    """Return what the runner reported in ``stdout`` (default: the job's stored stdout), or None."""
    nonce = str(job.environment_overrides.get(channel.NONCE_VARIABLE, ""))
    return channel.find_outcome(job.clean_output or job.stdout_log if stdout is None else stdout, nonce)


def task_result[**P, R](job: ContainerJob, task: Task[P, R]) -> TaskResult[P, R]:
    """Return ``job`` as a TaskResult of ``task`` (already bound to the job's queue and priority)."""
    call = task_call(job)
    status, value, failure = _status(job)
    attempts = _attempts(job)
    earlier = [attempt for attempt in attempts if attempt.is_finished and not _is_final(job, attempt)]
    worker_ids = [attempt.worker_id for attempt in attempts if attempt.worker_id]
    result: TaskResult[P, R] = TaskResult(
        task=task,
        id=str(job.pk),
        status=status,
        enqueued_at=job.created_at,
        started_at=job.started_at,
        last_attempted_at=job.started_at,
        finished_at=job.completed_at
        if status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
        else None,
        args=call["args"],
        kwargs=call["kwargs"],
        backend=call["backend"],
        errors=[_attempt_error(job, attempt) for attempt in earlier]
        + ([failure] if failure is not None else []),
        worker_ids=worker_ids or ([job.worker_id] if job.worker_id else []),
    )
    object.__setattr__(result, "_return_value", value)
    return result


def bound_task(job: ContainerJob) -> Task[..., Any]:
    """Import the job's task and bind it to the queue, priority and run_after it was enqueued with."""
    call = task_call(job)
    task = import_string(call["path"])
    if not isinstance(task, Task):
        raise TypeError(f"{call['path']!r} is no longer a task (decorate it with @task).")
    return task.using(
        priority=job.priority,
        queue_name=call["queue"],
        run_after=job.scheduled_for,
        backend=call["backend"],
    )


def _attempts(job: ContainerJob) -> list[JobAttempt]:
    if job._state.adding or job.attempt == 0:  # never claimed: no attempt yet, no query
        return []
    return list(job.attempts.order_by("number"))


def _is_final(job: ContainerJob, attempt: JobAttempt) -> bool:
    """Whether the job's row itself tells how ``attempt`` ended (the finished job's last run)."""
    return job.status in FINISHED_STATUSES and attempt.claim == job.attempt


def _attempt_error(job: ContainerJob, attempt: JobAttempt) -> TaskError:
    """The error of an earlier, failed attempt: the runner's report, else how its container ended."""
    reported = outcome(job, attempt.log_text("stdout"))
    if reported is not None and not reported.successful:
        return _raised(reported)
    ended = Ending(
        reason=attempt.termination_reason,
        exit_code=attempt.exit_code,
        started=attempt.started_at is not None,
        stdout_dropped=attempt.stdout_dropped_bytes,
        error=attempt.error,
    )
    return _container_error(job, ended)


def _status(job: ContainerJob) -> tuple[TaskResultStatus, Any, TaskError | None]:
    if job.status in _WAITING:
        return TaskResultStatus.READY, None, None
    if job.status == JobStatus.RUNNING:
        return TaskResultStatus.RUNNING, None, None
    reported = outcome(job)
    if job.status == JobStatus.COMPLETED and reported is not None and reported.successful:
        return TaskResultStatus.SUCCESSFUL, reported.value, None
    if reported is not None and not reported.successful:
        return TaskResultStatus.FAILED, None, _raised(reported)
    reason = job.termination_reason
    if not reason and job.status in (JobStatus.TIMEOUT, JobStatus.CANCELLED):
        reason = TerminationReason.TIMEOUT if job.status == JobStatus.TIMEOUT else TerminationReason.CANCELLED
    ended = Ending(
        reason=reason,
        exit_code=job.exit_code,
        started=job.started_at is not None,
        stdout_dropped=job.stdout_dropped_bytes,
        error=job.last_error,
    )
    return TaskResultStatus.FAILED, None, _container_error(job, ended)


def _raised(reported: channel.Outcome) -> TaskError:
    """The TaskError of an exception the runner reported."""
    return TaskError(exception_class_path=reported.exception_class, traceback=reported.traceback)


class Ending(NamedTuple):
    """How one run of a task's container ended: the job's last run, or an earlier attempt."""

    reason: str
    exit_code: int | None
    started: bool
    stdout_dropped: int
    error: str


def _container_error(job: ContainerJob, ended: Ending) -> TaskError:
    kind, message = container_failure(job, ended)
    path = f"{kind.__module__}.{kind.__qualname__}"
    return TaskError(exception_class_path=path, traceback=f"{path}: {message}\n")


def container_failure(job: ContainerJob, ended: Ending) -> tuple[type[errors.TaskContainerError], str]:
    """Say why a run of the job's container gave no result, in the words its TaskError carries."""
    reason = ended.reason
    if reason == TerminationReason.OOM_KILLED:
        return errors.TaskOutOfMemory, (
            f"The task's container ran out of memory at {job.memory_limit} MB and was killed "
            f"(exit code {ended.exit_code})."
        )
    if reason == TerminationReason.TIMEOUT:
        return errors.TaskTimedOut, (
            f"The task ran past its queue's timeout of {job.timeout_seconds} s and was stopped."
        )
    if reason == TerminationReason.CANCELLED:
        when = "while it ran" if ended.started else "before it started"
        return errors.TaskCancelled, f"The task was cancelled {when}."
    if reason in (TerminationReason.COMPLETED, TerminationReason.NON_ZERO_EXIT):
        lost = " Its stdout was cut by the log cap: return a smaller value." if ended.stdout_dropped else ""
        return errors.TaskNoResult, (
            f"The task's container exited with code {ended.exit_code} without reporting a result.{lost}"
        )
    return (
        errors.TaskLaunchFailed,
        f"The task's container failed ({reason or 'no reason recorded'}): {ended.error}",
    )
