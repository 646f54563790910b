"""The worker's queries on a table of 100k jobs: each reads a bounded number of rows (PostgreSQL).

A claim used to read and sort the whole backlog (a sequential scan and a sort spilling to disk),
so its cost grew with every queued job. Here every statement the worker sends per claim, per lease
renewal, per cancel check and per takeover is run under EXPLAIN ANALYZE on a seeded table: none
may scan the jobs table, spill a sort to disk, or read more than a few hundred of its rows.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from container_manager import sqltext
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.retention import Purged, purge_expired
from container_manager.states import JobStatus
from container_manager.worker import claim_sql, claims
from container_manager.worker.reconcile import stale_jobs
from tests.factories import make_host
from tests.plans import Explained, explain, explain_statements
from tests.seeding import analyze, seed_jobs

pytestmark = pytest.mark.postgres

BACKLOG = 70_000
PINNED_BACKLOG = 5_000
FINISHED = 24_000
ACTIVE = 100
URGENT = 20
OTHER_WORKER = "other-worker"
# A claim of 16 reads up to 32 candidates and counts each host's active jobs; nothing near the table.
MAX_ROWS = 500


@pytest.fixture(scope="module")
def seeded(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, ExecutorHost]]:
    """A committed table of 100k jobs: a queued backlog (floating and pinned), history, active jobs."""
    with django_db_blocker.unblock():
        hosts = {name: make_host(name, max_concurrent_jobs=ACTIVE + 50) for name in ("plan-a", "plan-b")}
        seed_jobs(BACKLOG, priority=0)
        seed_jobs(PINNED_BACKLOG, priority=0, host=hosts["plan-a"])
        for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
            seed_jobs(
                FINISHED // 3, status=status, host=hosts["plan-a"], oldest=timezone.now() - timedelta(days=2)
            )
        seed_jobs(ACTIVE, status=JobStatus.RUNNING, host=hosts["plan-b"], worker_id=OTHER_WORKER)
        seed_jobs(URGENT, priority=5)
        analyze()
        yield hosts
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {sqltext.name(ContainerJob)}")
        ExecutorHost.objects.filter(pk__in=[h.pk for h in hosts.values()]).delete()


def assert_bounded(plans: list[Explained], expected: int) -> None:
    """At least ``expected`` statements were sent, and none of them grows with the table."""
    assert len(plans) >= expected, "\n".join(p.sql[:120] + " ... " + p.sql[-200:] for p in plans)
    for plan in plans:
        assert not plan.problems(max_rows=MAX_ROWS), f"{plan.problems(max_rows=MAX_ROWS)}\n{plan}"


@pytest.mark.django_db
def test_a_claim_walks_the_queue_index_and_stops_after_its_limit(seeded: dict[str, ExecutorHost]) -> None:
    won: list[claims.Claim] = []

    def claim() -> None:
        won.extend(
            claims.claim_jobs(
                worker_id="plan-worker",
                limit=16,
                host_names=[],
                default_executor_type="mock",
                lease_seconds=30,
                rng=random.Random(1),  # noqa: S311 - host weighting
            ).won
        )

    # The idle "any due?" read, the hosts and their active counts, the candidates, the claim's UPDATE
    # (one per host the jobs were placed on).
    plans = explain_statements(claim)
    assert_bounded(plans, 4)
    # The urgent jobs come first: the index holds the claim's order.
    assert len(won) == 16
    assert {c.job.priority for c in won} == {5}
    # No sort at all in the two queue reads: the rows come off the index in order.
    for plan in plans[:1] + plans[2:3]:
        assert not [n for n in plan.nodes() if n["Node Type"] in ("Sort", "Incremental Sort")], plan


@pytest.mark.django_db
def test_the_idle_check_and_the_claimable_verb_read_a_few_rows(seeded: dict[str, ExecutorHost]) -> None:
    plans = explain_statements(lambda: claim_sql.any_due(timezone.now()))
    plans += explain_statements(lambda: list(ContainerJob.objects.claimable()[:16]))
    assert_bounded(plans, 2)


@pytest.mark.django_db
def test_lease_cancel_and_takeover_scans_read_only_the_jobs_they_name(
    seeded: dict[str, ExecutorHost],
) -> None:
    held = [
        str(pk) for pk in ContainerJob.objects.filter(worker_id=OTHER_WORKER).values_list("pk", flat=True)
    ]
    assert len(held) == ACTIVE
    plans = explain_statements(lambda: ContainerJob.renew_leases(OTHER_WORKER, held, 30))
    plans += explain_statements(lambda: ContainerJob.cancels_requested(held))
    takeover = stale_jobs(seeded["plan-b"], worker_id=OTHER_WORKER, tracked=held[:10], now=timezone.now())
    plans += explain_statements(lambda: list(takeover))
    assert_bounded(plans, 3)


@pytest.mark.django_db
def test_a_retention_batch_reads_only_its_rows(seeded: dict[str, ExecutorHost]) -> None:
    # The seeded history completed two days ago: all of it has expired.
    cutoff = timezone.now() - timedelta(days=1)
    plans = explain_statements(lambda: one_batch(cutoff))
    assert_bounded(plans, 2)


class _OneBatch(Exception):
    """Raised after the first committed batch: one batch's statements are what is checked."""


def one_batch(cutoff: datetime) -> None:
    def stop(purged: Purged) -> None:
        raise _OneBatch

    with contextlib.suppress(_OneBatch):
        purge_expired(cutoff, batch_size=100, on_batch=stop)


@pytest.mark.django_db
def test_the_plans_check_catches_a_scan_of_the_backlog(seeded: dict[str, ExecutorHost]) -> None:
    # The check itself: the old claim's shape (a status list, no order the index holds) is caught.
    table, status = sqltext.name(ContainerJob), sqltext.name(ContainerJob, "status")
    plan = explain(
        f"SELECT * FROM {table} WHERE {status} IN ('pending', 'retrying') "  # noqa: S608
        "ORDER BY docker_image, created_at LIMIT 32"
    )
    assert any("rows of" in problem for problem in plan.problems(max_rows=MAX_ROWS)), plan
