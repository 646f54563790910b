"""List filters of the job list that read no more than they show."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from container_manager.conf import app_settings
from container_manager.models import ContainerJob
from container_manager.workers import WorkerProcess


class WorkerFilter(admin.SimpleListFilter):
    """Jobs by the worker that ran them; offers the live workers (any id works in the URL)."""

    title = _("worker")
    parameter_name = "worker"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # The live workers only (their heartbeats, one indexed read): listing every id in the
        # history would read the whole table.
        ids = list(
            WorkerProcess.live(app_settings().LEASE_SECONDS)
            .order_by("worker_id")
            .values_list("worker_id", flat=True)
        )
        chosen = self.value()
        if chosen and chosen not in ids:
            ids.append(chosen)
        return [(worker_id, worker_id) for worker_id in ids]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[ContainerJob] | None:
        value = self.value()
        return queryset.filter(worker_id=value) if value else None
