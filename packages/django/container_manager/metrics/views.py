"""The scrape endpoint: the access rule, then the exposition in the format the scraper asks for."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from container_manager.conf import app_settings
from container_manager.metrics.access import refusal
from container_manager.metrics.collector import JobMetricsCollector

logger = logging.getLogger("container_manager.metrics")

# Its own registry: the library's default one holds per-process collectors (this web process's
# memory, CPU, garbage collection) that say nothing about the jobs and differ with each process.
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(JobMetricsCollector())


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Serve the metrics to a scraper the settings allow; 403 to any other."""
    if reason := refusal(request, app_settings()):
        return HttpResponse(reason, status=403, content_type="text/plain; charset=utf-8")
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encoder(REGISTRY)
    except DatabaseError as exc:
        # Prometheus records the failed scrape (up == 0); the log says why.
        logger.warning("event=metrics_unavailable error=%s", type(exc).__name__)
        return HttpResponse(
            "The database could not be read.", status=503, content_type="text/plain; charset=utf-8"
        )
    return HttpResponse(body, content_type=content_type)
