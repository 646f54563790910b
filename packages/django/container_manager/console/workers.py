"""The live workers, as their jobs show them: what each runs, where, and when it last renewed its leases.

A worker renews the lease of every job it runs each third of ``LEASE_SECONDS``, so the newest lease
tells its last heartbeat. Read from the active jobs alone (a bounded set, through the status
index), never from the finished history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max
from django.utils import timezone

from container_manager.conf import app_settings
from container_manager.models import ContainerJob
from container_manager.states import ACTIVE_STATUSES, JobStatus


@dataclass
class LiveWorker:
    worker_id: str
    running: int = 0
    launching: int = 0
    hosts: set[str] = field(default_factory=set)
    lease_expires_at: datetime | None = None

    def last_heartbeat(self, lease_seconds: float) -> datetime | None:
        """When the worker last renewed a lease: its newest lease's end, less the lease's length."""
        if self.lease_expires_at is None:
            return None
        return self.lease_expires_at - timedelta(seconds=lease_seconds)

    def lost(self, now: datetime) -> bool:
        """Its leases ran out: the worker stopped renewing them, and another may take its jobs over."""
        return self.lease_expires_at is not None and self.lease_expires_at < now


def live_workers() -> list[LiveWorker]:
    """Return every worker that holds a launching or running job, by id."""
    rows = (
        ContainerJob.objects.filter(status__in=sorted(ACTIVE_STATUSES))
        .exclude(worker_id="")
        .order_by()
        .values_list("worker_id", "status", "docker_host__name")
        .annotate(n=Count("pk"), lease=Max("lease_expires_at"))
    )
    workers: dict[str, LiveWorker] = {}
    for worker_id, status, host, count, lease in rows:
        worker = workers.setdefault(worker_id, LiveWorker(worker_id))
        if status == JobStatus.RUNNING:
            worker.running += count
        else:
            worker.launching += count
        if host:
            worker.hosts.add(host)
        if lease is not None and (worker.lease_expires_at is None or lease > worker.lease_expires_at):
            worker.lease_expires_at = lease
    return [workers[key] for key in sorted(workers)]


@dataclass(frozen=True)
class WorkerRow:
    """One line of the workers page."""

    worker_id: str
    running: int
    launching: int
    hosts: str
    last_heartbeat: datetime | None
    heartbeat_age_seconds: float | None
    lost: bool


def worker_rows(now: datetime | None = None) -> list[WorkerRow]:
    """Return the live workers as the page shows them, with each heartbeat's age at ``now``."""
    now = now or timezone.now()
    lease_seconds = app_settings().LEASE_SECONDS
    rows = []
    for worker in live_workers():
        beat = worker.last_heartbeat(lease_seconds)
        rows.append(
            WorkerRow(
                worker_id=worker.worker_id,
                running=worker.running,
                launching=worker.launching,
                hosts=", ".join(sorted(worker.hosts)),
                last_heartbeat=beat,
                heartbeat_age_seconds=None if beat is None else max((now - beat).total_seconds(), 0.0),
                lost=worker.lost(now),
            )
        )
    return rows
