"""Make the database and the hosts agree after a crash: adopt, harvest, relaunch, fail or remove."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from container_manager.conf import AppSettings
from container_manager.health import refuse_if_unusable
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import ACTIVE_STATUSES, JobStatus, TerminationReason
from container_manager.worker.hosts import mark_unreachable
from container_manager.worker.logevents import log_event
from container_manager.worker.tracking import Tracked
from container_manager_core.errors import ExecutionNotFound, ExecutorError, ExecutorUnavailable
from container_manager_core.plugins import PluginManager


@dataclass(frozen=True)
class Orphan:
    """A labelled container no live job needs: its job is unknown, finished, or waiting to run again."""

    job_id: str
    execution_id: str
    why: str


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def find_orphans(
    listing: Iterable[tuple[str, str]], *, finished_before: datetime | None = None
) -> list[Orphan]:
    """Return the listed containers whose job is unknown, finished, or waiting to run again.

    The listing holds only this deployment's containers (the plugins filter on the owner label), so
    a job this database does not know was deleted, not another deployment's. With
    ``finished_before``, containers of finished jobs count only if the job finished before then.
    The listing must be taken before this reads the database: a job seen active here was active
    when its container was listed, so a container a worker is launching is never taken for an orphan.
    """
    pairs = list(listing)
    ids = {u for u in (_uuid_or_none(job_id) for job_id, _ in pairs) if u is not None}
    rows = {
        str(pk): (status, completed_at)
        for pk, status, completed_at in ContainerJob.objects.filter(pk__in=ids).values_list(
            "pk", "status", "completed_at"
        )
    }
    found = []
    for job_id, execution_id in pairs:
        uid = _uuid_or_none(job_id)
        row = rows.get(str(uid)) if uid is not None else None
        if row is None:
            found.append(Orphan(job_id, execution_id, "unknown job"))
            continue
        status, completed_at = row
        if status in ACTIVE_STATUSES:
            continue
        waiting = status in (JobStatus.PENDING, JobStatus.RETRYING)
        # A finished job without a completion time (set by hand, say) counts as old.
        old_enough = finished_before is None or completed_at is None or completed_at < finished_before
        if waiting or old_enough:
            found.append(Orphan(job_id, execution_id, f"job is {status}"))
    return found


def remove_orphans(manager: PluginManager, host: ExecutorHost, orphans: Iterable[Orphan]) -> int:
    """Remove each orphan's container; return how many were removed."""
    spec = host.to_spec()
    removed = 0
    for orphan in orphans:
        try:
            removed += bool(manager.cleanup(spec, orphan.execution_id))
        except ExecutionNotFound:
            continue
        except ExecutorUnavailable:
            raise  # The engine does not answer: the caller takes the host out of this pass.
        except ExecutorError as exc:  # Refused for this container: the others are still removed.
            log_event(
                "orphan_not_removed",
                job=orphan.job_id,
                execution=orphan.execution_id,
                host=host.name,
                error=str(exc),
                level=logging.WARNING,
            )
            continue
        log_event(
            "orphan_removed", job=orphan.job_id, execution=orphan.execution_id, host=host.name, why=orphan.why
        )
    return removed


def stale_jobs(
    host: ExecutorHost, *, worker_id: str, tracked: Collection[str], now: datetime
) -> QuerySet[ContainerJob]:
    """Return the host's active jobs no live worker holds, for ``worker_id`` to take over.

    A lease that ran out means the worker died or hung; ``worker_id``'s own jobs it does not track
    are from its last life. Read through cm_job_host_status_idx: the host's active jobs only.
    """
    return (
        ContainerJob.objects.filter(docker_host=host, status__in=ACTIVE_STATUSES)
        .filter(Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True) | Q(worker_id=worker_id))
        .exclude(pk__in=list(tracked))
        .select_related("docker_host", "environment_template")
    )


class Reconciler:
    """One pass over the served hosts: what runs there against what the database says should."""

    def __init__(self, manager: PluginManager, *, worker_id: str, settings: AppSettings) -> None:
        self._pm = manager
        self._worker_id = worker_id
        self._settings = settings

    def run(self, hosts: Iterable[ExecutorHost], tracked: Collection[str]) -> list[Tracked]:
        """Reconcile every host; return the jobs this worker took over and must now follow."""
        adopted: list[Tracked] = []
        for host in hosts:
            if refuse_if_unusable(host):
                # Marked unhealthy with the reason: its jobs wait, untouched, until the host is fixed.
                continue
            try:
                listing = self._pm.list_executions(host.to_spec())
                remove_orphans(self._pm, host, find_orphans(listing))
            except ExecutorError as exc:
                # Without the listing nothing can be decided safely, and an engine that stops
                # answering while orphans are removed is no safer: the host's jobs wait.
                mark_unreachable(host.pk, str(exc))
                continue
            adopted.extend(self._take_over(host, {eid for _, eid in listing}, tracked))
        return adopted

    def _take_over(self, host: ExecutorHost, present: set[str], tracked: Collection[str]) -> list[Tracked]:
        now = timezone.now()
        result = []
        for job in stale_jobs(host, worker_id=self._worker_id, tracked=tracked, now=now):
            previous = job.worker_id
            if not job.take_over(worker_id=self._worker_id, lease_seconds=self._settings.LEASE_SECONDS):
                continue
            job.append_event(
                f"Worker {self._worker_id} took over from {previous or 'nobody'} (attempt {job.attempt})."
            )
            log_event("taken_over", job=job.pk, execution=job.execution_id, host=host.name, previous=previous)
            follow = Tracked(job=job, host=host.to_spec(), host_pk=host.pk, attempt=job.attempt, pinned=True)
            if job.status == JobStatus.LAUNCHING:
                # Launching is idempotent: the plugin adopts a container that already has the job's name.
                # A launching job's execution_id, if any, is its previous attempt's: remove that first.
                # The worker prepares it as a fresh claim (spec and policy), so leave the spec unset.
                follow.previous_execution = job.execution_id
            elif job.execution_id in present:
                follow.execution_id = job.execution_id
                if job.timeout_seconds and job.started_at is not None:
                    follow.deadline = job.started_at.timestamp() + job.timeout_seconds
            else:
                job.record_exit(
                    job.owner(),
                    TerminationReason.HOST_LOST,
                    settings=self._settings,
                    now=now,
                    error="The job's container vanished while no worker watched it.",
                )
                log_event("host_lost", job=job.pk, execution=job.execution_id, host=host.name)
                continue
            result.append(follow)
        return result
