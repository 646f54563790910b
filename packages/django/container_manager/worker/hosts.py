"""The hosts a worker serves: which are active, what is wrong with --host names, health, unreachability."""

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


# How many existing hosts an "unknown host" error names; a typo is usually spotted among the first.
NAMES_SHOWN = 10


def host_name_errors(names: Collection[str], *, inactive_ok: bool = False) -> list[str]:
    """Return what is wrong with the names given with ``--host``: none, unknown ones, inactive hosts.

    The one rule the commands apply. A worker serves active hosts only, while ``check_hosts`` may
    check an inactive host by name (``inactive_ok``), so that it can be checked before it is activated.
    """
    if not names:
        return []
    found = dict(ExecutorHost.objects.filter(name__in=names).values_list("name", "is_active"))
    errors = []
    if unknown := sorted(set(names) - found.keys()):
        errors.append(
            f"Unknown executor {_plural('host', unknown)}: {', '.join(unknown)}. {_existing_hosts()}"
        )
    inactive = sorted(name for name, active in found.items() if not active)
    if inactive and not inactive_ok:
        errors.append(
            f"Inactive executor {_plural('host', inactive)}: {', '.join(inactive)}. "
            "A worker serves active hosts only: set is_active=True on a host to serve it."
        )
    return errors


def _plural(noun: str, items: Collection[str]) -> str:
    return noun if len(items) == 1 else f"{noun}s"


def _existing_hosts() -> str:
    names = list(ExecutorHost.objects.order_by("name").values_list("name", flat=True)[: NAMES_SHOWN + 1])
    if not names:
        return "There are no executor hosts yet: create one first (in the admin or with ExecutorHost.objects.create)."
    more = ", ..." if len(names) > NAMES_SHOWN else ""
    return f"Existing hosts: {', '.join(names[:NAMES_SHOWN])}{more}."


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
