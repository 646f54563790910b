"""A scrape on a table of 100k jobs reads the queue and the window, never the history (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from container_manager.metrics import readings
from container_manager.states import JobStatus
from tests.factories import make_host
from tests.plans import explain_statements
from tests.seeding import analyze, seed_jobs

pytestmark = pytest.mark.postgres

HISTORY = 100_000  # finished long before the window
RECENT = 300  # finished within it
QUEUED = 200
RUNNING = 100
# The queue and the window's jobs, and some slack for the planner's estimates.
MAX_ROWS = 3 * (RECENT + QUEUED + RUNNING)


@pytest.fixture
def seeded(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        host = make_host("plan-metrics")
        now = timezone.now()
        seed_jobs(HISTORY, status=JobStatus.COMPLETED, host=host, oldest=now - timedelta(days=3))
        seed_jobs(RECENT, status=JobStatus.FAILED, host=host, oldest=now - timedelta(seconds=120))
        seed_jobs(QUEUED, host=host)
        seed_jobs(RUNNING, status=JobStatus.RUNNING, host=host, worker_id="plan-worker")
        analyze()
        try:
            yield
        finally:
            from container_manager.models import ContainerJob, ExecutorHost

            ContainerJob.objects.all().delete()
            ExecutorHost.objects.all().delete()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("seeded")
def test_no_read_of_a_scrape_scans_the_finished_history() -> None:
    captured: dict[str, readings.Readings] = {}
    plans = explain_statements(lambda: captured.setdefault("r", readings.read(timezone.now(), 300)))
    assert len(plans) >= 6
    problems = [f"{problem}:\n{plan}" for plan in plans for problem in plan.problems(max_rows=MAX_ROWS)]
    assert not problems, "\n\n".join(problems)
    figures = captured["r"]
    assert sum(figures.finished.values()) == RECENT
    assert figures.queue[("pending", "plan-metrics")] == QUEUED
    assert figures.queue[("running", "plan-metrics")] == RUNNING
