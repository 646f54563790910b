"""Send Django's task signals from the app's job signals, for jobs enqueued as tasks.

The job signals are sent after the transition commits, in the process that made it (the worker
for ``started`` and most ``finished``; the admin for a task cancelled before it ran), so the task
signals are too. ``task_started`` is sent for the first run only: a retried task started once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal, receiver
from django.tasks import task_backends
from django.tasks.signals import task_finished, task_started

from container_manager.signals import job_finished, job_started

if TYPE_CHECKING:
    from container_manager.models import ContainerJob

logger = logging.getLogger("container_manager.tasks")


@receiver(job_started)
def _job_started(*, job: ContainerJob, **kwargs: Any) -> None:
    if job.task is not None and job.retry_count == 0 and job.interruption_count == 0:
        _send(task_started, job)


@receiver(job_finished)
def _job_finished(*, job: ContainerJob, **kwargs: Any) -> None:
    if job.task is not None:
        _send(task_finished, job)


def _send(signal: Signal, job: ContainerJob) -> None:
    from container_manager.tasks.backend import ContainerTaskBackend

    alias = str(job.task["backend"]) if isinstance(job.task, dict) else ""
    backend = task_backends[alias]
    if not isinstance(backend, ContainerTaskBackend):
        logger.warning(
            "Job id=%s is a task of backend %r, which is no ContainerTaskBackend here.", job.pk, alias
        )
        return
    signal.send(type(backend), task_result=backend.result_of(job))
