"""The worker processes, as each last reported itself: the operators' "who is working" and "is anyone".

A worker writes its row when it starts, again on every lease renewal (a third of LEASE_SECONDS), and
marks it stopped when it exits cleanly. A worker killed outright leaves a row whose heartbeat ages:
it counts as live until the heartbeat is older than LEASE_SECONDS, the same horizon after which its
jobs are taken over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class WorkerProcess(models.Model):
    """One ``process_container_jobs`` process."""

    worker_id = models.CharField(max_length=200, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    concurrency = models.PositiveIntegerField()
    host_names = models.JSONField(
        default=list, blank=True, help_text=_("Hosts served; empty: every active host.")
    )
    running_jobs = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-heartbeat_at"]
        indexes = [models.Index(fields=["heartbeat_at"], name="cm_worker_heartbeat_idx")]

    def __str__(self) -> str:
        return self.worker_id

    @staticmethod
    def _horizon(lease_seconds: float, now: datetime | None) -> datetime:
        """The oldest heartbeat of a live worker: one lease ago (the rule ``live`` and ``is_live`` share)."""
        return (now or timezone.now()) - timedelta(seconds=lease_seconds)

    @classmethod
    def live(cls, lease_seconds: float, now: datetime | None = None) -> QuerySet[WorkerProcess]:
        """Return the workers that beat within ``lease_seconds`` and have not stopped."""
        return cls.objects.filter(heartbeat_at__gte=cls._horizon(lease_seconds, now), stopped_at__isnull=True)

    def is_live(self, lease_seconds: float, now: datetime | None = None) -> bool:
        """The same rule as ``live``, for one row already read."""
        return self.stopped_at is None and self.heartbeat_at >= self._horizon(lease_seconds, now)

    @classmethod
    def beat(
        cls,
        worker_id: str,
        *,
        hostname: str,
        pid: int,
        concurrency: int,
        host_names: Sequence[str],
        running: int,
    ) -> None:
        """Record that the worker lives: one UPDATE, and an INSERT the first time."""
        now = timezone.now()
        fields = {"running_jobs": running, "heartbeat_at": now, "stopped_at": None}
        if not cls.objects.filter(worker_id=worker_id).update(**fields):
            cls.objects.create(
                worker_id=worker_id,
                hostname=hostname,
                pid=pid,
                concurrency=concurrency,
                host_names=list(host_names),
                started_at=now,
                **fields,
            )

    @classmethod
    def stopped(cls, worker_id: str) -> None:
        """Record a clean exit: the row stays, for the workers page, until retention removes it."""
        now = timezone.now()
        cls.objects.filter(worker_id=worker_id).update(stopped_at=now, heartbeat_at=now, running_jobs=0)

    @classmethod
    def expired(cls, cutoff: datetime) -> QuerySet[WorkerProcess]:
        """Return the rows of workers gone since before ``cutoff``: stopped, or silent since then."""
        return cls.objects.filter(Q(stopped_at__lt=cutoff) | Q(heartbeat_at__lt=cutoff))
