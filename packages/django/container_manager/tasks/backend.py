"""``ContainerTaskBackend``: Django's task API, each task run in its own container job."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from django.core import checks
from django.core.exceptions import ValidationError
from django.db import DatabaseError, router, transaction
from django.tasks import Task, TaskResult
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from container_manager.tasks import channel, profiles, results

if TYPE_CHECKING:
    from container_manager.models import ContainerJob

# One environment string may not exceed 128 KiB on Linux (MAX_ARG_STRLEN); keep well under it.
MAX_CALL_BYTES: Final = 120 * 1024


class ContainerTaskBackend(BaseTaskBackend):
    """Queue each task as a ContainerJob; a worker (``process_container_jobs``) runs it in a container."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.profiles, self.option_problems = profiles.read_profiles(self.queues, self.options)

    # Checks --------------------------------------------------------------------------------------

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Report malformed options and every profile create_job would refuse (policy and placement)."""
        where = f"TASKS[{self.alias!r}]"
        if self.option_problems:
            return [checks.Error(p, obj=where, id="container_manager.E301") for p in self.option_problems]
        try:
            problems = [
                problem
                for profile in self.profiles.values()
                for problem in profiles.profile_errors(profile, with_host=False)
            ]
        except DatabaseError as exc:
            # create_job's placement rule reads the hosts: before `migrate`, or with the database
            # down, a command must still start. Each enqueue checks the profile in full anyway.
            return [
                checks.Warning(
                    f"The queue profiles were not checked against create_job's rules: the database "
                    f"is not usable ({type(exc).__name__}). Each enqueue checks them.",
                    obj=where,
                    id="container_manager.W301",
                )
            ]
        return [checks.Error(problem, obj=where, id="container_manager.E302") for problem in problems]

    # Enqueue -------------------------------------------------------------------------------------

    def enqueue[**P, R](
        self, task: Task[P, R], args: Sequence[Any], kwargs: dict[str, Any]
    ) -> TaskResult[P, R]:
        """Validate the task and its job, then insert the job in the caller's transaction.

        The row becomes visible to workers when the caller's transaction commits and vanishes if
        it rolls back: the task is enqueued on commit, and cannot be lost between the commit and
        a callback. ``task_enqueued`` is sent once that commit happened.
        """
        from container_manager.models import ContainerJob

        self.validate_task(task)
        if self.option_problems:
            raise InvalidTask(f"TASKS[{self.alias!r}] is misconfigured: {' '.join(self.option_problems)}")
        profile = self.profiles[task.queue_name]
        record = {
            "path": task.module_path,
            "backend": self.alias,
            "queue": task.queue_name,
            "args": list(args),
            "kwargs": dict(kwargs),
        }
        try:
            json.dumps(record, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"The arguments of task {task.module_path!r} must be JSON: {exc}") from None
        job = ContainerJob.objects.create_job(
            command=profile.command(),
            name=task.module_path[-200:],
            environment_vars={**profile.environment(), channel.NONCE_VARIABLE: channel.new_nonce()},
            priority=task.priority,
            scheduled_for=task.run_after,
            task=record,
            commit=False,
            **profile.job_arguments(),
        )
        call = json.dumps({**record, "id": str(job.pk)}, separators=(",", ":"))
        if len(call.encode()) > MAX_CALL_BYTES:
            raise ValidationError(
                f"The call of task {task.module_path!r} is {len(call.encode())} bytes of JSON, over the "
                f"{MAX_CALL_BYTES} an environment variable carries: pass a reference (a row id, a path) instead.",
                code="task_call_too_large",
            )
        job.environment_overrides[channel.CALL_VARIABLE] = call
        job.save(force_insert=True)
        result = results.task_result(job, task)
        using = router.db_for_write(ContainerJob)
        transaction.on_commit(lambda: task_enqueued.send(type(self), task_result=result), using=using)
        return result

    # Results -------------------------------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        from container_manager.models import ContainerJob

        try:
            job = ContainerJob.objects.get(pk=result_id, task__isnull=False)
        except (ContainerJob.DoesNotExist, ValidationError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        return self.result_of(job)

    def result_of(self, job: ContainerJob) -> TaskResult[..., Any]:
        """Return the TaskResult the job's row says (for a job this backend enqueued)."""
        return results.task_result(job, results.bound_task(job))
