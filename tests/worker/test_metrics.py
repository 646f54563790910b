"""The Prometheus endpoint after real jobs ran through the worker: every figure is the rows' own."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import FINISHED_STATUSES, JobStatus, TerminationReason
from container_manager.workers import WorkerProcess
from docs import mdscan
from tests.metricstools import families, scrape
from tests.worker.conftest import make_host, make_job

pytestmark = pytest.mark.django_db

# Planted in everything a job carries: it must never reach a label or the exposition.
PLANTED = "hunter2-C0FFEE-planted"
PREFIX = "container_manager_"
UNFINISHED = ("pending", "retrying", "launching", "running")
DURATION_BOUNDS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
WAIT_BOUNDS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def flat(parsed: dict[str, Any]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of every family, by (sample name without the prefix, labels)."""
    return {
        (sample.name.removeprefix(PREFIX), frozenset(sample.labels.items())): sample.value
        for family in parsed.values()
        for sample in family.samples
    }


def by_labels(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> dict[Any, float]:
    return {tuple(sorted(labels)): value for (sample, labels), value in samples.items() if sample == name}


def run_mixed_jobs() -> tuple[ExecutorHost, ExecutorHost]:
    """Two mock hosts, jobs that end every way the worker records, two still queued; one host unhealthy."""
    busy, spare = make_host("mock-1"), make_host("mock-2")
    later = timezone.now() + timedelta(hours=1)
    secret_env = {"API_TOKEN": PLANTED, "DATABASE_URL": f"postgres://u:{PLANTED}@db/app"}
    make_job(busy, env={"MOCK_DURATION": 1.2, **secret_env}, name=f"nightly {PLANTED}")
    make_job(busy, env={"MOCK_STDOUT": PLANTED})
    make_job(busy, env={"MOCK_EXIT_CODE": 3, "MOCK_STDERR": PLANTED})
    make_job(busy, env={"MOCK_OOM": 1})
    make_job(spare, env={"MOCK_LAUNCH_ERROR": f"refused {PLANTED}"})
    make_job(spare, scheduled_for=later, name=PLANTED)  # queued on a host, not due yet
    make_job(None, scheduled_for=later, env=secret_env)  # queued, not placed on a host
    call_command("process_container_jobs", once=True)
    ExecutorHost.objects.filter(pk=spare.pk).update(healthy=False, last_health_error=f"engine said {PLANTED}")
    return busy, spare


def histogram_of(spans: list[float], bounds: tuple[float, ...]) -> dict[str, float]:
    """The cumulative buckets, count and sum Prometheus expects for ``spans``."""
    buckets = {str(bound): float(sum(s <= bound for s in spans)) for bound in bounds}
    return {**buckets, "+Inf": float(len(spans)), "count": float(len(spans)), "sum": sum(spans)}


def exposed_histogram(samples: dict[Any, float], name: str) -> dict[str, float]:
    buckets = {dict(labels)["le"]: value for labels, value in by_labels(samples, f"{name}_bucket").items()}
    return {
        **buckets,
        "count": samples[(f"{name}_gcount", frozenset())],
        "sum": samples[(f"{name}_gsum", frozenset())],
    }


def test_the_exposition_is_the_rows_after_jobs_ran_through_the_worker() -> None:
    run_mixed_jobs()
    samples = flat(families())
    rows = list(
        ContainerJob.objects.values(
            "status", "docker_host__name", "termination_reason", "created_at", "started_at", "completed_at"
        )
    )

    # The queue, by status and host: every active host and status listed, zero or the rows' count.
    queue = by_labels(samples, "jobs")
    expected_queue = Counter(
        (("host", row["docker_host__name"] or ""), ("status", row["status"]))
        for row in rows
        if row["status"] in UNFINISHED
    )
    assert {k: v for k, v in queue.items() if v} == expected_queue
    assert expected_queue == {
        (("host", "mock-2"), ("status", "pending")): 1,
        (("host", ""), ("status", "pending")): 1,
    }
    assert set(queue) == {
        *((("host", host), ("status", status)) for host in ("mock-1", "mock-2") for status in UNFINISHED),
        (("host", ""), ("status", "pending")),
        (("host", ""), ("status", "retrying")),
    }
    assert by_labels(samples, "jobs_due") == {
        (("host", ""),): 0,
        (("host", "mock-1"),): 0,
        (("host", "mock-2"),): 0,
    }

    # Finished jobs by host and termination reason, within the window.
    assert samples[("window_seconds", frozenset())] == 300
    assert by_labels(samples, "window_jobs_finished") == {
        (("host", "mock-1"), ("reason", "completed")): 2,
        (("host", "mock-1"), ("reason", "non_zero_exit")): 1,
        (("host", "mock-1"), ("reason", "oom_killed")): 1,
        (("host", "mock-2"), ("reason", "launch_failed")): 1,
    }

    # The histograms are the spans of the rows, bucketed.
    finished = [row for row in rows if row["status"] in FINISHED_STATUSES and row["started_at"]]
    durations = [(row["completed_at"] - row["started_at"]).total_seconds() for row in finished]
    waits = [(row["started_at"] - row["created_at"]).total_seconds() for row in finished]
    assert (
        len(durations) == 4 and max(durations) > 1.0
    )  # one past the first bound; a launch failure never starts
    for name, spans, bounds in (
        ("window_job_duration_seconds", durations, DURATION_BOUNDS),
        ("window_job_queue_wait_seconds", waits, WAIT_BOUNDS),
    ):
        exposed, expected = exposed_histogram(samples, name), histogram_of(spans, bounds)
        assert exposed == {**expected, "sum": pytest.approx(expected["sum"], abs=1e-3)}, name

    # Hosts: health, service, capacity, when last checked (by the worker that just ran).
    assert by_labels(samples, "host_healthy") == {(("host", "mock-1"),): 1, (("host", "mock-2"),): 0}
    assert by_labels(samples, "host_active") == {(("host", "mock-1"),): 1, (("host", "mock-2"),): 1}
    assert by_labels(samples, "host_capacity_jobs") == {(("host", "mock-1"),): 10, (("host", "mock-2"),): 10}
    checked = ExecutorHost.objects.get(name="mock-1").last_health_check
    assert checked is not None
    assert by_labels(samples, "host_last_health_check_timestamp_seconds")[
        (("host", "mock-1"),)
    ] == pytest.approx(checked.timestamp())
    # The worker has stopped, and said so: nothing is launching or running.
    assert samples[("workers_live", frozenset())] == 0
    assert by_labels(samples, "job_oldest_active_seconds") == {
        (("status", "launching"),): 0,
        (("status", "running"),): 0,
    }


def test_live_workers_are_those_with_a_recent_heartbeat_and_the_oldest_launch_is_timed() -> None:
    host = make_host("mock-1")
    queued = [make_job(host) for _ in range(4)]
    now = timezone.now()
    lease = now + timedelta(seconds=30)

    def claim(
        job: ContainerJob, worker: str, *, lease_expires_at: Any = lease, at: Any = now
    ) -> ContainerJob:
        job.refresh_from_db()
        (won,) = ContainerJob.mark_launching(
            [job], host=host, worker_id=worker, lease_expires_at=lease_expires_at, now=at
        )
        return won

    claim(queued[0], "worker-a", at=now - timedelta(seconds=90))  # launching for 90 s
    running = claim(queued[1], "worker-b")
    running.mark_running(running.owner(), execution_id="mock-exec")
    claim(queued[2], "worker-c", lease_expires_at=now - timedelta(seconds=1))  # its worker is gone

    beats = {"hostname": "h", "pid": 1, "concurrency": 4, "host_names": (), "running": 0}
    for worker in ("worker-a", "worker-b", "worker-c", "worker-idle", "worker-stopped"):
        WorkerProcess.beat(worker, **beats)
    WorkerProcess.stopped("worker-stopped")
    # worker-c was killed: its last beat is older than LEASE_SECONDS (its lease ran out too).
    WorkerProcess.objects.filter(worker_id="worker-c").update(heartbeat_at=now - timedelta(seconds=61))

    samples = flat(families())
    # An idle worker is live too: the heartbeat does not depend on holding a job.
    assert samples[("workers_live", frozenset())] == 3
    oldest = by_labels(samples, "job_oldest_active_seconds")
    assert 90 <= oldest[(("status", "launching"),)] < 120
    assert 0 <= oldest[(("status", "running"),)] < 30
    queue = by_labels(samples, "jobs")
    assert queue[(("host", "mock-1"), ("status", "launching"))] == 2
    assert queue[(("host", "mock-1"), ("status", "running"))] == 1
    assert queue[(("host", "mock-1"), ("status", "pending"))] == 1
    assert by_labels(samples, "jobs_due") == {(("host", ""),): 0, (("host", "mock-1"),): 1}


def test_label_values_are_host_names_and_enum_values_never_what_a_job_carries() -> None:
    run_mixed_jobs()
    # A reason written by hand, outside the enum, is counted but never becomes a label.
    ContainerJob.objects.filter(termination_reason=TerminationReason.OOM_KILLED).update(
        termination_reason=f"custom {PLANTED}"
    )
    parsed = families()
    for body in (scrape().content.decode(), scrape(accept="application/openmetrics-text").content.decode()):
        assert PLANTED not in body
    allowed = {
        "host": {"", *ExecutorHost.objects.values_list("name", flat=True)},
        "status": set(JobStatus.values),
        "reason": {*TerminationReason.values, "other"},
        "le": {*map(str, DURATION_BOUNDS), *map(str, WAIT_BOUNDS), "+Inf"},
    }
    seen: dict[str, set[str]] = {}
    for family in parsed.values():
        for sample in family.samples:
            for label, value in sample.labels.items():
                seen.setdefault(label, set()).add(value)
    assert set(seen) <= set(allowed)
    for label, values in seen.items():
        assert values <= allowed[label], label
    assert by_labels(flat(parsed), "window_jobs_finished")[(("host", "mock-1"), ("reason", "other"))] == 1


def test_a_scrape_costs_the_same_queries_however_many_jobs_and_hosts() -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            families()
        return len(captured)

    host = make_host("mock-1")
    make_job(host)
    call_command("process_container_jobs", once=True)
    few = queries()
    for index in range(2, 6):
        extra = make_host(f"mock-{index}")
        for _ in range(5):
            make_job(extra, env={"MOCK_EXIT_CODE": index % 2})
    call_command("process_container_jobs", once=True)
    make_job(host, scheduled_for=timezone.now() + timedelta(hours=1))
    assert queries() == few


# The documented alert rules ---------------------------------------------------------------------

DURATION = re.compile(r"^[1-9][0-9]*[smhdw]$")
METRIC = re.compile(r"\b(container_manager_[a-z_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r'([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")
# The values a label matcher may name, for the labels whose values are an enum.
ENUM_LABELS = {"status": set(JobStatus.values), "reason": set(TerminationReason.values)}


def documented_rules() -> list[dict[str, Any]]:
    blocks = [b for b in mdscan.load("DOCKER.md").blocks if b.lang == "yaml" and "groups:" in b.text]
    assert len(blocks) == 1, [b.where for b in blocks]
    document = yaml.safe_load(blocks[0].text)
    assert set(document) == {"groups"}
    rules = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"], group
        rules += group["rules"]
    return rules


def test_the_documented_alert_rules_name_metrics_and_labels_the_endpoint_exposes() -> None:
    run_mixed_jobs()
    exposed: dict[str, set[str]] = {}  # sample name -> its label names
    for family in families().values():
        for sample in family.samples:
            exposed.setdefault(sample.name, set()).update(sample.labels)
    rules = documented_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules) >= 5
    for rule in rules:
        name, expr = rule["alert"], rule["expr"]
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert DURATION.match(rule["for"]), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), name
        used = METRIC.findall(expr)
        assert used, name
        labels_in_expr: set[str] = set()
        for metric, matchers in used:
            assert metric in exposed, f"{name}: {metric} is not in the exposition"
            labels_in_expr |= exposed[metric]
            for label, operator, value in MATCHER.findall(matchers):
                assert label in exposed[metric], f"{name}: {metric} has no label {label}"
                if label in ENUM_LABELS:
                    wanted = set(value.split("|")) if "~" in operator else {value}
                    assert wanted <= ENUM_LABELS[label], (
                        f"{name}: {label} is never {wanted - ENUM_LABELS[label]}"
                    )
        for grouping in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                assert label in labels_in_expr, f"{name}: no metric of the rule has the label {label}"
