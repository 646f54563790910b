"""Scrape the metrics endpoint as Prometheus would, and parse what it serves with the library's parsers."""

from __future__ import annotations

from typing import Any

from django.test import Client, override_settings
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

METRICS_URLCONF = "tests.metrics_urls"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def scrape(*, accept: str = "", urlconf: str = METRICS_URLCONF, **request: Any) -> Any:
    """GET /metrics/ with ``urlconf`` as the project's URLconf; return the response."""
    with override_settings(ROOT_URLCONF=urlconf):
        return Client().get("/metrics/", headers={"Accept": accept} if accept else {}, **request)


def families(**request: Any) -> dict[str, Metric]:
    """Return the exposition's families by name, parsed by the Prometheus text-format parser.

    The same scrape in OpenMetrics is parsed too, by the strict parser (it checks every histogram's
    buckets), and must hold the same samples.
    """
    response = scrape(**request)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = {f.name: f for f in parse_text(response.content.decode())}
    strict = scrape(accept=OPENMETRICS, **request)
    assert strict["Content-Type"].startswith("application/openmetrics-text")
    open_metrics = {f.name: f for f in parse_openmetrics(strict.content.decode())}
    assert samples_of(text) == samples_of(open_metrics)
    return text


# Figures that move with the clock between two scrapes: compared by name and labels alone.
CLOCK_FAMILIES = ("container_manager_metrics_read_seconds", "container_manager_job_oldest_active_seconds")


def samples_of(parsed: dict[str, Metric]) -> set[tuple[str, tuple[tuple[str, str], ...], float | None]]:
    """Return every sample as (name, sorted labels, value); no value for the clock's figures."""
    return {
        (
            sample.name,
            tuple(sorted(sample.labels.items())),
            None if family.name in CLOCK_FAMILIES else sample.value,
        )
        for family in parsed.values()
        for sample in family.samples
    }


def values(family: Metric, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
    """Return a family's samples (those named ``family + suffix``) as {sorted labels: value}."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for sample in family.samples
        if sample.name == family.name + suffix
    }
