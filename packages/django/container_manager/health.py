"""Ask a host's plugin whether the host can run jobs, and record the answer on the host row."""

from __future__ import annotations

import logging
import time

from django.utils import timezone

from container_manager.executors.registry import get_plugin_manager
from container_manager.models import ExecutorHost
from container_manager_core.types import HealthStatus

logger = logging.getLogger("container_manager.health")


def check_host(host: ExecutorHost) -> HealthStatus:
    """Check ``host`` through its plugin, save the result with one UPDATE, and return it; never raise."""
    started = time.perf_counter()
    try:
        status = get_plugin_manager().get_health_status(host.to_spec())
    except Exception as exc:
        # A health check answers "can it run jobs?": any failure, even a missing plugin, means no.
        status = HealthStatus(
            healthy=False, response_time=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"
        )
    now = timezone.now()
    fields = {
        "healthy": status.healthy,
        "last_health_check": now,
        "last_health_error": status.error or "",
        "health_response_time": status.response_time,
    }
    recovered = status.healthy and not host.healthy
    ExecutorHost.objects.filter(pk=host.pk).update(**fields)
    for field, value in fields.items():
        setattr(host, field, value)
    if status.healthy:
        # A routine healthy answer (every HEALTH_CHECK_INTERVAL per host) is debug detail; a recovery is news.
        level = logging.INFO if recovered else logging.DEBUG
        logger.log(level, "Host %r is healthy (%.3fs)", host.name, status.response_time)
    else:
        logger.warning("Host %r is unhealthy (%.3fs): %s", host.name, status.response_time, status.error)
    return status
