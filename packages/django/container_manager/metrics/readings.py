"""What the metrics say, read from the database at scrape time: every figure is a row count or span.

Every worker process writes its jobs' rows, so the rows are the one place that knows the whole
deployment: no process keeps a counter of its own that a restart or another process would miss.

Each read is bounded. The queue (``QUEUE_STATUSES``) is counted whole: it is what is waiting. The
finished jobs, which grow for ever, are read only within a window (``METRICS_WINDOW_SECONDS``)
through ``completed_at``, and the running ones are as many as the workers' concurrency allows.
Hosts are a small table. Every label value is a host's name or a value of one of the app's enums
(``JobStatus``, ``TerminationReason``): nothing a job carries (name, command, environment) is read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, QuerySet, Sum

from container_manager.conf import app_settings
from container_manager.due import claimable_q
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import FINISHED_STATUSES, JobStatus, TerminationReason
from container_manager.workers import WorkerProcess

# The statuses of jobs that are not finished: queued, or held by a worker.
QUEUE_STATUSES: Final = (JobStatus.PENDING, JobStatus.RETRYING, JobStatus.LAUNCHING, JobStatus.RUNNING)
# Statuses a job waits in before a worker places it on a host (its host may be unset).
UNPLACED_STATUSES: Final = (JobStatus.PENDING, JobStatus.RETRYING)
# Label values stand for rows' enum values; a value outside the enum (a row written by hand) is
# counted under this one, so no stored text can become a label.
OTHER: Final = "other"
# The host label of jobs not placed on a host yet.
NO_HOST: Final = ""

# Bucket bounds in seconds. Run time: from a second to past MAX_TIMEOUT_SECONDS' default (an hour).
DURATION_BUCKETS: Final = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
# Queue wait: from an idle worker's wake-up (well under a second) to a backlog of an hour.
QUEUE_WAIT_BUCKETS: Final = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True)
class Histogram:
    """How many spans fell at or below each bound (cumulative), and the count and sum of all of them."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    sum_seconds: float


@dataclass(frozen=True)
class HostReading:
    name: str
    active: bool
    healthy: bool
    capacity: int
    last_check: datetime | None


@dataclass(frozen=True)
class Readings:
    """One scrape's figures; ``(status, host)``-style keys hold enum values and host names only."""

    window_seconds: int
    queue: Counter[tuple[str, str]]  # (status, host) -> jobs
    due: Counter[str]  # host -> jobs a worker may claim now
    oldest_active_seconds: dict[str, float]  # launching/running -> age of the oldest, 0 when none
    finished: Counter[tuple[str, str]]  # (host, termination reason) -> jobs finished in the window
    durations: Histogram
    queue_waits: Histogram
    hosts: tuple[HostReading, ...]
    live_workers: int


def read(now: datetime, window_seconds: int) -> Readings:
    """Read every figure the endpoint exposes, as of ``now``.

    The jobs are read before the hosts: a host cannot be deleted while a job names it (PROTECT),
    so every host a job count names is among the hosts read after it.
    """
    cutoff = now - timedelta(seconds=window_seconds)
    jobs = ContainerJob.objects.order_by()
    queue, due = _queue(jobs, now)
    finished_in_window = jobs.filter(status__in=FINISHED_STATUSES, completed_at__gte=cutoff)
    started_in_window = jobs.filter(
        Q(status=JobStatus.RUNNING) | Q(status__in=FINISHED_STATUSES, completed_at__gte=cutoff),
        started_at__gte=cutoff,
    )
    oldest = _oldest_active(jobs, now)
    finished = _finished(finished_in_window)
    durations = histogram(
        finished_in_window.filter(started_at__isnull=False), "started_at", "completed_at", DURATION_BUCKETS
    )
    waits = histogram(started_in_window, "created_at", "started_at", QUEUE_WAIT_BUCKETS)
    workers = live_workers(now)
    rows = ExecutorHost.objects.order_by("name").values_list(
        "pk", "name", "is_active", "healthy", "max_concurrent_jobs", "last_health_check"
    )
    hosts = tuple(HostReading(*row[1:]) for row in rows)
    names = {row[0]: row[1] for row in rows}
    # Every active host and the unplaced queue are listed, at zero when empty: a series that
    # vanishes when its queue drains would leave graphs and alerts with nothing to compare.
    queue_by_name: Counter[tuple[str, str]] = Counter()
    due_by_name: Counter[str] = Counter()
    for host in hosts:
        if host.active:
            queue_by_name.update({(status.value, host.name): 0 for status in QUEUE_STATUSES})
            due_by_name[host.name] = 0
    queue_by_name.update({(status.value, NO_HOST): 0 for status in UNPLACED_STATUSES})
    due_by_name[NO_HOST] = 0
    queue_by_name.update({(status, _host(names, pk)): n for (status, pk), n in queue.items()})
    due_by_name.update({_host(names, pk): n for pk, n in due.items()})
    return Readings(
        window_seconds=window_seconds,
        queue=queue_by_name,
        due=due_by_name,
        oldest_active_seconds=oldest,
        finished=Counter({(_host(names, pk), reason): n for (pk, reason), n in finished.items()}),
        durations=durations,
        queue_waits=waits,
        hosts=hosts,
        live_workers=workers,
    )


def _queue(jobs: QuerySet[ContainerJob], now: datetime) -> tuple[Counter[tuple[str, Any]], Counter[Any]]:
    """Count the unfinished jobs by status and host, and the due ones (the claim's own rule) by host."""
    queue: Counter[tuple[str, Any]] = Counter()
    rows = (
        jobs.filter(status__in=QUEUE_STATUSES).values_list("status", "docker_host_id").annotate(n=Count("pk"))
    )
    for status, host_pk, n in rows:
        queue[(_enum_label(status, JobStatus), host_pk)] += n
    due: Counter[Any] = Counter()
    for host_pk, n in jobs.filter(claimable_q(now)).values_list("docker_host_id").annotate(n=Count("pk")):
        due[host_pk] += n
    return queue, due


def _oldest_active(jobs: QuerySet[ContainerJob], now: datetime) -> dict[str, float]:
    """Return how long the oldest launching job has been launching, and the oldest running one running."""
    since = jobs.filter(status__in=(JobStatus.LAUNCHING, JobStatus.RUNNING)).aggregate(
        launching=Min("launched_at", filter=Q(status=JobStatus.LAUNCHING)),
        running=Min("started_at", filter=Q(status=JobStatus.RUNNING)),
    )
    return {status: max(0.0, (now - at).total_seconds()) if at else 0.0 for status, at in since.items()}


def _finished(finished_in_window: QuerySet[ContainerJob]) -> Counter[tuple[Any, str]]:
    counts: Counter[tuple[Any, str]] = Counter()
    rows = finished_in_window.values_list("docker_host_id", "termination_reason").annotate(n=Count("pk"))
    for host_pk, reason, n in rows:
        counts[(host_pk, _enum_label(reason, TerminationReason))] += n
    return counts


def histogram(jobs: QuerySet[ContainerJob], start: str, end: str, bounds: Sequence[float]) -> Histogram:
    """Bucket ``end - start`` of ``jobs`` in the database: one aggregate, whatever the number of rows."""
    span = ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    buckets = {
        f"le_{i}": Count("pk", filter=Q(span__lte=timedelta(seconds=bound))) for i, bound in enumerate(bounds)
    }
    figures = jobs.annotate(span=span).aggregate(count=Count("pk"), total=Sum("span"), **buckets)
    total: timedelta | None = figures["total"]
    return Histogram(
        bounds=tuple(bounds),
        cumulative=tuple(int(figures[f"le_{i}"]) for i in range(len(bounds))),
        count=int(figures["count"]),
        sum_seconds=total.total_seconds() if total is not None else 0.0,
    )


def live_workers(now: datetime) -> int:
    """Count the workers whose heartbeat is younger than LEASE_SECONDS and that have not stopped."""
    return WorkerProcess.live(app_settings().LEASE_SECONDS, now).count()


def _enum_label(value: str, enum: type[JobStatus] | type[TerminationReason]) -> str:
    return value if value in enum.values else OTHER


def _host(names: dict[Any, str], pk: Any) -> str:
    return NO_HOST if pk is None else names.get(pk, OTHER)
