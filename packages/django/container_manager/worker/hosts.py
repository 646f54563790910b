"""The hosts a worker serves: which are active, their health checks, and marking one unreachable."""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import QuerySet
from django.utils import timezone

from container_manager.health import check_host
from container_manager.models import ExecutorHost
from container_manager.worker.logevents import log_event


def active_hosts(names: Collection[str]) -> QuerySet[ExecutorHost]:
    """Return the active hosts this worker serves: all of them, or those named on the command line."""
    hosts = ExecutorHost.objects.filter(is_active=True)
    return hosts.filter(name__in=names) if names else hosts


def check_health(names: Collection[str]) -> list[ExecutorHost]:
    """Health-check every active served host (healthy or not, so a recovered one comes back)."""
    hosts = list(active_hosts(names))
    for host in hosts:
        was_healthy = host.healthy
        check_host(host)
        if host.healthy != was_healthy:
            log_event(
                "host_healthy" if host.healthy else "host_unhealthy",
                host=host.name,
                error=host.last_health_error,
            )
    return hosts


def mark_unreachable(host_pk: int, error: str) -> None:
    """Record that a call to the host failed, so nothing new is launched there until it answers again."""
    updated = ExecutorHost.objects.filter(pk=host_pk, healthy=True).update(
        healthy=False, last_health_error=error, last_health_check=timezone.now()
    )
    if updated:
        log_event("host_unhealthy", host=str(host_pk), error=error)
