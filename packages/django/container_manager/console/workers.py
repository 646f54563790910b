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
    hostname: str = ""
    pid: int | None = None
    concurrency: int | None = None
    heartbeat_at: datetime | None = None
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
        workers[row.worker_id] = LiveWorker(
            row.worker_id, row.hostname, row.pid, row.concurrency, row.heartbeat_at
        )
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
        beat = worker.heartbeat_at
        age = None if beat is None else max((now - beat).total_seconds(), 0.0)
        rows.append(
            WorkerRow(
                worker_id=worker.worker_id,
                machine=f"{worker.hostname} (pid {worker.pid})" if worker.hostname else "",
                concurrency=worker.concurrency,
                running=worker.running,
                launching=worker.launching,
                hosts=", ".join(sorted(worker.hosts)),
                last_heartbeat=beat,
                heartbeat_age_seconds=age,
                # No heartbeat at all: a job names a worker that never recorded itself (or is long gone).
                lost=age is None or age > lease,
            )
        )
    return rows
