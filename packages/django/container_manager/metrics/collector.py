"""The Prometheus families of one scrape, built from the database's rows (``readings``).

A custom collector, not the library's Counter/Gauge objects: those live in one process, and a
deployment serves scrapes from several web processes while workers in others change the jobs. Here
every scrape reads the rows, so any process answers the same. The figures over finished jobs are
gauges and gauge histograms over the window: totals counted from the rows would fall whenever
finished jobs are deleted (retention) or re-queued, and a falling counter reads as a reset.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from django.utils import timezone
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from container_manager.conf import app_settings
from container_manager.metrics import readings
from container_manager.metrics.readings import Histogram, Readings


@dataclass(frozen=True)
class Family:
    """One exposed metric: its name (without the prefix), kind, help text and label names."""

    name: str
    kind: str  # "gauge" or "gaugehistogram"
    help: str
    labels: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{PREFIX}{self.name}"


PREFIX: Final = "container_manager_"
JOBS = Family(
    "jobs", "gauge", "Jobs not finished, by status and host (host empty: not placed yet).", ("status", "host")
)
JOBS_DUE = Family(
    "jobs_due", "gauge", "Queued jobs a worker may claim now, by host (host empty: any).", ("host",)
)
OLDEST_ACTIVE = Family(
    "job_oldest_active_seconds",
    "gauge",
    "Seconds the oldest launching job has been launching, and the oldest running job running; 0 when none.",
    ("status",),
)
WINDOW = Family("window_seconds", "gauge", "How far back the window_* figures look (METRICS_WINDOW_SECONDS).")
FINISHED = Family(
    "window_jobs_finished",
    "gauge",
    "Jobs that finished within the window, by host and termination reason.",
    ("host", "reason"),
)
DURATION = Family(
    "window_job_duration_seconds",
    "gaugehistogram",
    "Run time (started to completed) of the jobs that finished within the window.",
)
QUEUE_WAIT = Family(
    "window_job_queue_wait_seconds",
    "gaugehistogram",
    "Wait from creation to the latest start, of the jobs that started within the window "
    "and are running or finished.",
)
HOST_HEALTHY = Family("host_healthy", "gauge", "1 if the host's last health check passed, else 0.", ("host",))
HOST_ACTIVE = Family("host_active", "gauge", "1 if the host is in service (is_active), else 0.", ("host",))
HOST_CAPACITY = Family("host_capacity_jobs", "gauge", "The host's max_concurrent_jobs.", ("host",))
HOST_CHECKED = Family(
    "host_last_health_check_timestamp_seconds",
    "gauge",
    "When the host was last health-checked (Unix time); absent before its first check.",
    ("host",),
)
WORKERS = Family(
    "workers_live",
    "gauge",
    "Workers holding an unexpired lease on a launching or running job (an idle worker holds none).",
)
READ_SECONDS = Family("metrics_read_seconds", "gauge", "Seconds this scrape spent reading the database.")

FAMILIES: Final = (
    JOBS,
    JOBS_DUE,
    OLDEST_ACTIVE,
    WINDOW,
    FINISHED,
    DURATION,
    QUEUE_WAIT,
    HOST_HEALTHY,
    HOST_ACTIVE,
    HOST_CAPACITY,
    HOST_CHECKED,
    WORKERS,
    READ_SECONDS,
)


class JobMetricsCollector(Collector):
    """Read the rows at each scrape and yield every family of ``FAMILIES``."""

    def describe(self) -> Iterator[Metric]:
        # Registering asks for the names; answering from the table keeps the database out of it.
        for family in FAMILIES:
            yield _empty(family)

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        figures = readings.read(timezone.now(), app_settings().METRICS_WINDOW_SECONDS)
        read_seconds = time.perf_counter() - started
        yield from families(figures, read_seconds)


def families(figures: Readings, read_seconds: float) -> Iterator[Metric]:
    """Turn one scrape's readings into metric families, in ``FAMILIES`` order."""
    jobs = _gauge(JOBS)
    for (status, host), n in sorted(figures.queue.items()):
        jobs.add_metric([status, host], n)
    due = _gauge(JOBS_DUE)
    for host, n in sorted(figures.due.items()):
        due.add_metric([host], n)
    oldest = _gauge(OLDEST_ACTIVE)
    for status, seconds in sorted(figures.oldest_active_seconds.items()):
        oldest.add_metric([status], seconds)
    finished = _gauge(FINISHED)
    for (host, reason), n in sorted(figures.finished.items()):
        finished.add_metric([host, reason], n)
    yield from (jobs, due, oldest, _gauge(WINDOW, figures.window_seconds), finished)
    yield _histogram(DURATION, figures.durations)
    yield _histogram(QUEUE_WAIT, figures.queue_waits)
    healthy, active, capacity, checked = (
        _gauge(f) for f in (HOST_HEALTHY, HOST_ACTIVE, HOST_CAPACITY, HOST_CHECKED)
    )
    for reading in figures.hosts:
        healthy.add_metric([reading.name], int(reading.healthy))
        active.add_metric([reading.name], int(reading.active))
        capacity.add_metric([reading.name], reading.capacity)
        if reading.last_check is not None:
            checked.add_metric([reading.name], reading.last_check.timestamp())
    yield from (healthy, active, capacity, checked)
    yield _gauge(WORKERS, figures.live_workers)
    yield _gauge(READ_SECONDS, read_seconds)


def _gauge(family: Family, value: float | None = None) -> GaugeMetricFamily:
    if family.labels:
        return GaugeMetricFamily(family.full_name, family.help, labels=family.labels)
    return GaugeMetricFamily(family.full_name, family.help, value=value)


def _histogram(family: Family, histogram: Histogram) -> GaugeHistogramMetricFamily:
    buckets = [
        (str(float(bound)), float(n)) for bound, n in zip(histogram.bounds, histogram.cumulative, strict=True)
    ]
    buckets.append(("+Inf", float(histogram.count)))
    return GaugeHistogramMetricFamily(
        family.full_name, family.help, buckets=buckets, gsum_value=histogram.sum_seconds
    )


def _empty(family: Family) -> Metric:
    if family.kind == "gaugehistogram":
        return GaugeHistogramMetricFamily(family.full_name, family.help, labels=family.labels)
    return GaugeMetricFamily(family.full_name, family.help, labels=family.labels)
