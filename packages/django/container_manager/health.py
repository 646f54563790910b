"""Ask a host's plugin whether the host can run jobs, and record the answer on the host row."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from django.utils import timezone

from container_manager.conf import app_settings
from container_manager.executors.registry import get_plugin_manager
from container_manager.models import ExecutorHost
from container_manager_core.capacity import read_capacity
from container_manager_core.types import HealthStatus

logger = logging.getLogger("container_manager.health")

# Verdicts of the "can this host be used" rule kept per process, by host and settings (an LRU).
_VERDICTS_KEPT = 256


class _Verdicts:
    """Each host's :meth:`ExecutorHost.unusable_reason`, computed once per version of its settings.

    The key holds every field the rule reads, so a host fixed in place (even with ``.update()``) is
    judged again at once, while the claim's hot path pays a dictionary lookup, not a plugin call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: OrderedDict[tuple[Any, ...], str] = OrderedDict()

    @staticmethod
    def _key(host: ExecutorHost) -> tuple[Any, ...]:
        try:
            config = json.dumps(host.executor_config, sort_keys=True, default=repr)
        except (TypeError, ValueError):
            config = repr(host.executor_config)
        return (
            host.pk,
            host.name,
            host.executor_type,
            host.host_type,
            host.connection_string,
            host.tls_enabled,
            host.tls_verify,
            host.tls_ca_cert,
            host.tls_client_cert,
            host.tls_client_key,
            host.auto_pull_images,
            config,
            id(get_plugin_manager()),
            app_settings().LOG_CAP_BYTES,
        )

    def reason(self, host: ExecutorHost) -> str:
        key = self._key(host)
        with self._lock:
            if key in self._known:
                self._known.move_to_end(key)
                return self._known[key]
        try:
            reason = host.unusable_reason(source="worker")
        except Exception as exc:  # A plugin's validator tripping over a config is a refusal too.
            reason = f"Host {host.name!r} could not be validated: {type(exc).__name__}: {exc}"
        with self._lock:
            self._known[key] = reason
            while len(self._known) > _VERDICTS_KEPT:
                self._known.popitem(last=False)
        return reason


_verdicts = _Verdicts()


def unusable_reason(host: ExecutorHost) -> str:
    """Return why no worker can use ``host`` as it is configured, or "" (see ``ExecutorHost.unusable_errors``)."""
    return _verdicts.reason(host)


def refuse_if_unusable(host: ExecutorHost) -> bool:
    """Mark ``host`` unhealthy with the reason if it cannot be used, and say so; never raise for the host.

    The row is written only when its verdict changes, so workers applying the rule on every claim
    write nothing while the host stays broken.
    """
    reason = unusable_reason(host)
    if not reason:
        return False
    if host.healthy or host.last_health_error != reason:
        now = timezone.now()
        fields = {"healthy": False, "last_health_error": reason, "last_health_check": now}
        updated = (
            ExecutorHost.objects.filter(pk=host.pk)
            .exclude(healthy=False, last_health_error=reason)
            .update(**fields)
        )
        for field, value in fields.items():
            setattr(host, field, value)
        if updated:
            logger.warning("Host %r cannot be used as it is configured: %s", host.name, reason)
    return True


def check_host(host: ExecutorHost) -> HealthStatus:
    """Check ``host`` through its plugin, save the result with one UPDATE, and return it; never raise.

    A host that cannot be used as it is configured (see :func:`unusable_reason`) is unhealthy with
    that reason, and its plugin is not asked: a working engine behind a refused config runs no jobs.
    """
    started = time.perf_counter()
    try:
        reason = unusable_reason(host)
        if reason:
            status = HealthStatus(healthy=False, response_time=time.perf_counter() - started, error=reason)
        else:
            status = get_plugin_manager().get_health_status(host.to_spec())
    except Exception as exc:
        # A health check answers "can it run jobs?": any failure, even a missing plugin, means no.
        status = HealthStatus(
            healthy=False, response_time=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"
        )
    now = timezone.now()
    fields: dict[str, Any] = {
        "healthy": status.healthy,
        "last_health_check": now,
        "last_health_error": status.error or "",
        "health_response_time": status.response_time,
    }
    if status.healthy:
        # The engine's size, which placement uses unless the host overrides it. An unhealthy answer
        # keeps the last size read: an engine that is down has not shrunk.
        capacity = read_capacity(status.details)
        fields["engine_memory_mb"] = capacity.memory_mb
        fields["engine_cpus"] = capacity.cpus
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
