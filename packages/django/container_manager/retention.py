"""Retention: delete finished jobs (their logs are columns of the row) once they are older than the setting.

Deleted in small batches, each its own short transaction, oldest first through cm_job_finished_idx,
so a purge never holds many row locks nor any lock for long, and can run from cron beside workers.
Only finished rows are read, and the DELETE repeats the condition, so a job re-queued between the
read and the delete stays; on PostgreSQL the batch's rows are locked as read, skipping any a
person is re-queueing at that moment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from container_manager.conf import app_settings
from container_manager.models import ContainerJob
from container_manager.states import FINISHED_STATUSES
from container_manager.workers import WorkerProcess

DEFAULT_BATCH_SIZE = 500


@dataclass
class Purged:
    """What a purge deleted (or, dry, would delete): jobs by status, and the batches it took."""

    cutoff: datetime
    by_status: Counter[str] = field(default_factory=Counter)
    batches: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def retention_cutoff(days: float | None = None, *, now: datetime | None = None) -> datetime | None:
    """Return the completion time before which finished jobs expire; None keeps them for ever.

    ``days`` overrides the FINISHED_JOB_RETENTION_DAYS setting.
    """
    keep = app_settings().FINISHED_JOB_RETENTION_DAYS if days is None else days
    if keep is None:
        return None
    return (now or timezone.now()) - timedelta(days=keep)


def expired_jobs(cutoff: datetime) -> QuerySet[ContainerJob]:
    """Return the finished jobs that completed before ``cutoff``, oldest first (the one rule of expiry)."""
    return ContainerJob.objects.filter(
        status__in=sorted(FINISHED_STATUSES), completed_at__lt=cutoff
    ).order_by("completed_at")


def count_expired(cutoff: datetime) -> Purged:
    """Count, by status, the jobs a purge with ``cutoff`` would delete; delete nothing."""
    rows = expired_jobs(cutoff).order_by().values("status").annotate(n=Count("pk")).values_list("status", "n")
    return Purged(cutoff, Counter(dict(rows)))


def purge_expired(
    cutoff: datetime,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[Purged], None] = lambda purged: None,
) -> Purged:
    """Delete the jobs that expired before ``cutoff``, ``batch_size`` per transaction; return what went.

    ``on_batch`` is called after each committed batch (the command reports progress with it).
    """
    if batch_size < 1:
        raise ValueError(f"The batch size must be at least 1, got {batch_size!r}.")
    purged = Purged(cutoff)
    while True:
        with transaction.atomic():
            batch = dict(
                expired_jobs(cutoff)
                .select_for_update(skip_locked=True)
                .values_list("pk", "status")[:batch_size]
            )
            if not batch:
                return purged
            # The condition again: a row re-queued since the read (never on PostgreSQL, which locked
            # them) stays. Counted for this model alone, whatever cascades the project added.
            gone = expired_jobs(cutoff).filter(pk__in=list(batch)).order_by().delete()[1]
            deleted = gone.get(ContainerJob._meta.label, 0)
            if deleted != len(batch):
                stayed = set(ContainerJob.objects.filter(pk__in=list(batch)).values_list("pk", flat=True))
                batch = {pk: status for pk, status in batch.items() if pk not in stayed}
        if not deleted:
            return purged  # Every row read was moved away meanwhile: nothing left to do now.
        purged.by_status.update(batch.values())
        purged.batches += 1
        on_batch(purged)


def purge_workers(cutoff: datetime, *, dry_run: bool = False) -> int:
    """Delete (or, dry, count) the rows of workers gone since before ``cutoff``; one row per process."""
    gone = WorkerProcess.expired(cutoff)
    if dry_run:
        return gone.count()
    return gone.delete()[1].get(WorkerProcess._meta.label, 0)
