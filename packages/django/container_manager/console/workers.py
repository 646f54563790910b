"""The workers page: each worker's own heartbeat row (WorkerProcess), with the jobs it holds now.

A worker beats on every lease renewal, idle or not, so an idle worker is listed too. Shown: the
workers that have not stopped and beat within the last few leases (one silent longer than a lease is
marked lost: its jobs are taken over), plus any worker still named on an active job. Both reads are
bounded: the heartbeat index, and the active jobs through the status index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from container_manager.conf import app_settings
from container_manager.models import ContainerJob
from container_manager.states import ACTIVE_STATUSES, JobStatus
from container_manager.workers import WorkerProcess

# How many leases a silent worker stays on the page, marked lost, before it is dropped from it.
SHOWN_LOST_FOR_LEASES = 10


@dataclass
class LiveWorker:
    worker_id: str
    row: WorkerProcess | None = None  # None: named on an active job, but no heartbeat seen
    running: int = 0
    launching: int = 0
    hosts: set[str] = field(default_factory=set)


def live_workers(now: datetime | None = None) -> list[LiveWorker]:
    """Return the workers that beat recently or hold an active job, by id."""
    now = now or timezone.now()
    horizon = now - timedelta(seconds=app_settings().LEASE_SECONDS * SHOWN_LOST_FOR_LEASES)
    workers: dict[str, LiveWorker] = {}
    beating = WorkerProcess.objects.filter(stopped_at__isnull=True, heartbeat_at__gte=horizon)
    for row in beating:
        workers[row.worker_id] = LiveWorker(row.worker_id, row)
    holding = (
        ContainerJob.objects.filter(status__in=sorted(ACTIVE_STATUSES))
        .exclude(worker_id="")
        .order_by()
        .values_list("worker_id", "status", "docker_host__name")
        .annotate(n=Count("pk"))
    )
    for worker_id, status, host, count in holding:
        worker = workers.setdefault(worker_id, LiveWorker(worker_id))
        if status == JobStatus.RUNNING:
            worker.running += count
        else:
            worker.launching += count
        if host:
            worker.hosts.add(host)
    return [workers[key] for key in sorted(workers)]


@dataclass(frozen=True)
class WorkerRow:
    """One line of the workers page."""

    worker_id: str
    machine: str
    concurrency: int | None
    running: int
    launching: int
    hosts: str
    last_heartbeat: datetime | None
    heartbeat_age_seconds: float | None
    lost: bool


def worker_rows(now: datetime | None = None) -> list[WorkerRow]:
    """Return the workers as the page shows them, with each heartbeat's age at ``now``."""
    now = now or timezone.now()
    lease = app_settings().LEASE_SECONDS
    rows = []
    for worker in live_workers(now):
        row = worker.row
        beat = row.heartbeat_at if row is not None else None
        rows.append(
            WorkerRow(
                worker_id=worker.worker_id,
                machine=f"{row.hostname} (pid {row.pid})" if row is not None else "",
                concurrency=row.concurrency if row is not None else None,
                running=worker.running,
                launching=worker.launching,
                hosts=", ".join(sorted(worker.hosts)),
                last_heartbeat=beat,
                heartbeat_age_seconds=None if beat is None else max((now - beat).total_seconds(), 0.0),
                # The heartbeat rule itself; a worker with no heartbeat row is lost too.
                lost=row is None or not row.is_live(lease, now),
            )
        )
    return rows
