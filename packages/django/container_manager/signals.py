"""Signals sent after a job's status changes (after the transaction commits)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal, receiver

from container_manager.states import FINISHED_STATUSES, JobStatus

if TYPE_CHECKING:
    from container_manager.models import ContainerJob

logger = logging.getLogger("container_manager.jobs")

# Sent with job=<ContainerJob>, old_status=<str>, new_status=<JobStatus> on every transition.
job_status_changed = Signal()
# Sent with job=<ContainerJob> when a job starts running (its container was launched).
job_started = Signal()
# Sent with job=<ContainerJob>, status=<JobStatus> when a job reaches a finished status.
job_finished = Signal()


def send_transition(job: ContainerJob, old_status: str, new_status: JobStatus) -> None:
    """Send the transition signals for ``job``; a failing receiver is logged, never raised.

    Called after commit: the status change already happened, so one broken receiver must neither
    hide it from the others nor make the caller think the transition failed.
    """
    sender = type(job)
    job_status_changed.send_robust(sender=sender, job=job, old_status=old_status, new_status=new_status)
    if new_status == JobStatus.RUNNING:
        job_started.send_robust(sender=sender, job=job)
    elif new_status in FINISHED_STATUSES:
        job_finished.send_robust(sender=sender, job=job, status=new_status)


@receiver(job_status_changed)
def _log_transition(*, job: ContainerJob, old_status: str, new_status: JobStatus, **kwargs: Any) -> None:
    logger.info("Job id=%s status %s -> %s", job.pk, old_status, new_status)
