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
from urllib.parse import quote

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from container_manager import sqltext
from container_manager.estimates import ESTIMATE_FROM
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
            # CASCADE: job attempts and their log chunks reference the jobs (none of these has any).
            cursor.execute(f"TRUNCATE {sqltext.name(ContainerJob)} CASCADE")
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

    # The statements that read the jobs table: the idle "any due?" read, what the locked hosts'
    # active jobs hold (count, memory, CPU: placement's aggregate), the candidates, the claim's
    # UPDATE (one per host the jobs were placed on).
    plans = explain_statements(claim)
    assert_bounded(plans, 4)
    # The aggregate reads the hosts' active rows through cm_job_host_status_idx, nothing else.
    loads = plans[1]
    assert "SUM" in loads.sql and "GROUP BY" in loads.sql, loads.sql
    assert {n.get("Index Name") for n in loads.nodes() if "Index" in n["Node Type"]} == {
        "cm_job_host_status_idx"
    }, loads
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


# The admin reads at most this many rows of the jobs table per statement: a page of 100, and counts
# made exactly only when the planner puts them under ESTIMATE_FROM (with room for its error).
ADMIN_MAX_ROWS = 2 * ESTIMATE_FROM


def admin_page(client: Client, name: str, query: str = "") -> list[Explained]:
    def get() -> None:
        response = client.get(reverse(f"admin:container_manager_containerjob_{name}") + query)
        assert response.status_code == 200

    return explain_statements(get)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "",
        "?status__exact=pending",
        "?status__exact=completed",
        "?docker_host__id__exact={host}",
        "?created_at__gte={day}",
    ],
)
def test_the_job_list_reads_a_page_not_the_table(
    admin_client: Client, seeded: dict[str, ExecutorHost], query: str
) -> None:
    day = quote((timezone.now() - timedelta(days=1)).isoformat())  # as the "Past 7 days" filter sends it
    plans = admin_page(admin_client, "changelist", query.format(host=seeded["plan-a"].pk, day=day))
    for plan in plans:
        assert not plan.problems(max_rows=ADMIN_MAX_ROWS), f"{plan.problems(max_rows=ADMIN_MAX_ROWS)}\n{plan}"
    # The page's rows, a count only where the result is small (never a COUNT(*) of the table), and
    # the worker filter's choices (the live workers' heartbeat rows).
    assert 1 <= len(plans) <= 3, [p.sql for p in plans]


@pytest.mark.django_db
def test_the_job_list_sends_a_fixed_number_of_queries(
    admin_client: Client, seeded: dict[str, ExecutorHost], django_assert_num_queries: Any
) -> None:
    url = reverse("admin:container_manager_containerjob_changelist")
    admin_client.get(url)  # the session and the user, loaded once
    # Session, user, the estimate (EXPLAIN), the page of 100 jobs with their hosts, the host filter,
    # the worker filter's live workers.
    with django_assert_num_queries(6):
        response = admin_client.get(url)
    assert response.context["cl"].result_count >= ESTIMATE_FROM  # estimated, not counted
    assert len(response.context["cl"].result_list) == 100


@pytest.mark.django_db
def test_the_queue_summary_estimates_big_counts(
    admin_client: Client, seeded: dict[str, ExecutorHost]
) -> None:
    plans = admin_page(admin_client, "queue_summary")
    for plan in plans:
        assert not plan.problems(max_rows=ADMIN_MAX_ROWS), f"{plan.problems(max_rows=ADMIN_MAX_ROWS)}\n{plan}"
    html = admin_page_html(admin_client)
    assert 'data-status="pending">~' in html  # 70k queued: an estimate
    assert f'data-status="running">{ACTIVE}<' in html  # small: exact


@pytest.mark.django_db
def test_the_workers_page_reads_the_active_jobs_alone(
    admin_client: Client, seeded: dict[str, ExecutorHost]
) -> None:
    plans = admin_page(admin_client, "workers")
    assert plans, "the workers page sent no query"
    for plan in plans:
        assert not plan.problems(max_rows=MAX_ROWS), f"{plan.problems(max_rows=MAX_ROWS)}\n{plan}"
    response = admin_client.get(reverse("admin:container_manager_containerjob_workers"))
    [worker] = response.context["workers"]
    assert (worker.worker_id, worker.running) == (OTHER_WORKER, ACTIVE)


def admin_page_html(client: Client) -> str:
    return client.get(reverse("admin:container_manager_containerjob_queue_summary")).content.decode()


@pytest.mark.django_db
def test_the_plans_check_catches_a_scan_of_the_backlog(seeded: dict[str, ExecutorHost]) -> None:
    # The check itself: the old claim's shape (a status list, no order the index holds) is caught.
    table, status = sqltext.name(ContainerJob), sqltext.name(ContainerJob, "status")
    plan = explain(
        f"SELECT * FROM {table} WHERE {status} IN ('pending', 'retrying') "  # noqa: S608
        "ORDER BY docker_image, created_at LIMIT 32"
    )
    assert any("rows of" in problem for problem in plan.problems(max_rows=MAX_ROWS)), plan
